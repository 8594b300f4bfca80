"""Bad options, config files, output and cache paths: each is one line naming the option, the value and what is
allowed, before any audio is featurized (the toy featurizer counts its calls)."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from sertk.cli.main import cli
from sertk.errors import ConfigError

from .conftest import assert_no_work_done, assert_user_error, sertk_cli, toy_run_args

OPTION_CASES = [
    # (extra arguments, fragments of the one line the user sees)
    (["--classifier", "nusvm", "-o", "classifier.nu=2"],
     ["classifier 'nusvm': nu must be a number in (0, 1], got 2"]),
    (["--classifier", "nusvm", "-o", "classifier.nu=abc"],
     ["classifier 'nusvm': nu must be a number in (0, 1], got 'abc'"]),
    (["--classifier", "nusvm", "-o", "classifier.kernel=cubic"], ["kernel='cubic' is not supported; choose one of"]),
    (["--classifier", "nusvm", "-o", "classifier.C=1"], ["classifier 'nusvm' has no option 'C'; its options are:"]),
    (["-o", "classifier.C=-1"], ["classifier 'logreg'", "'C' parameter", "range (0.0, inf]. Got -1"]),
    (["--classifier", "sklearn-svc", "-o", "classifier.C=-1"], ["classifier 'sklearn-svc'", "Got -1"]),
    (["--classifier", "sklearn-nusvc", "-o", "classifier.nu=2"], ["'nu' parameter", "(0.0, 1.0]. Got 2"]),
    (["-o", "featurizer.n_bands=0x"], ["featurizer 'toy-bands'", "'0x'; expected a positive integer"]),
    (["-o", "featurizer.colour=red"], ["featurizer 'toy-bands' has no option 'colour'"]),
    (["-o", "protocol.test_size=2"], ["protocol sd-random: test_size must be a fraction in (0, 1), got 2"]),
    (["-o", "protocol.stratify=maybe"], ["protocol sd-random: stratify must be true or false, got 'maybe'"]),
    (["--protocol", "kfold", "-o", "protocol.n_splits=1"], ["protocol kfold: n_splits must be an integer ≥ 2"]),
    (["--protocol", "kfold", "-o", "protocol.n_splits=1000"], ["protocol kfold cannot split 80 utterances"]),
    (["--protocol", "group-split", "-o", "protocol.test=nope"], ["protocol group-split: option test: no group 'nope'"]),
    (["--protocol", "nope"], ["unknown protocol 'nope'; known protocols:"]),
    (["-o", "classifier"], ["bad option 'classifier': expected KEY=VALUE"]),
    (["-o", "model.nu=1"], ["unknown kind 'model'; known kinds: dataset, featurizer, classifier, protocol"]),
]


@pytest.mark.parametrize("extra, fragments", OPTION_CASES, ids=[" ".join(c[0]) for c in OPTION_CASES])
def test_bad_options_fail_before_any_work(host, toy_corpus, tmp_path, extra, fragments):
    out = tmp_path / "run"
    assert_user_error(sertk_cli(*toy_run_args(toy_corpus, out, *extra)), *fragments)
    assert_no_work_done()
    assert not out.exists()  # nor is an output folder left behind


def test_the_debug_flag_shows_the_traceback(host, toy_corpus, tmp_path):
    """Only `--debug` turns the one line into the exception itself."""
    with pytest.raises(ConfigError, match="nu must be a number"):
        CliRunner().invoke(cli, ["--debug", *map(str, toy_run_args(toy_corpus, tmp_path / "run", "--classifier",
                                                                     "nusvm", "-o", "classifier.nu=2"))],
                           catch_exceptions=False)


# -- config files ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content, fragments", [
    ("seed = 1\n# café\n".encode("latin-1"), ["is not UTF-8 text (byte 0xe9", "save it as UTF-8"]),
    (b"\xff\xfes\x00e\x00e\x00d\x00", ["is not UTF-8 text (byte 0xff at offset 0)"]),  # UTF-16 with BOM
    (b"seed = \n", ["is not valid TOML"]),
    (b"seed = 'three'\n", ["seed must be int, got 'three'"]),
    (b"sed = 3\n", ["unknown key 'sed'; known keys:"]),
    (b"[classifier]\nname = 'logreg'\n[classifier.options]\nC = -2\n", ["classifier 'logreg'", "Got -2"]),
], ids=["latin-1", "utf-16", "not-toml", "wrong-type", "unknown-key", "bad-option"])
def test_bad_config_files(host, toy_corpus, tmp_path, content, fragments):
    """`run --config FILE` with a broken file: one line naming FILE (or the option) and what is wrong."""
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    line = assert_user_error(sertk_cli(*toy_run_args(toy_corpus, tmp_path / "run", "--config", path)), *fragments)
    if "UTF-8" in line or "TOML" in line:
        assert str(path) in line
    assert_no_work_done()


def test_a_config_file_that_is_a_folder(host, toy_corpus, tmp_path):
    """`--config DIR`: click's usage error (exit 2) names the option."""
    result = sertk_cli(*toy_run_args(toy_corpus, tmp_path / "run", "--config", tmp_path))
    assert result.exit_code == 2 and "Invalid value for '-c' / '--config'" in result.output


# -- cache paths -----------------------------------------------------------------------------------------------
def test_a_cache_folder_that_is_a_file(host, toy_corpus, tmp_path):
    """`--cache-dir FILE`: click's usage error (exit 2) for `run`; the library says the same in one line."""
    blocker = tmp_path / "cache"
    blocker.write_text("x")
    result = sertk_cli(*toy_run_args(toy_corpus, tmp_path / "run", cache=blocker))
    assert result.exit_code == 2 and "Invalid value for '--cache-dir'" in result.output
    from sertk.errors import CacheError
    from sertk.featurization.cache import EmbeddingCache

    with pytest.raises(CacheError, match="the embedding cache folder .* is a file, not a folder; use another"):
        EmbeddingCache(blocker)


def test_a_cache_folder_below_a_file(host, toy_corpus, tmp_path):
    """`--cache-dir a-file/cache` (also `$SERTK_CACHE_DIR`): "Error: cannot create the embedding cache folder …";
    before any work, and no output folder is left behind."""
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "run"
    result = sertk_cli(*toy_run_args(toy_corpus, out, cache=tmp_path / "a-file" / "cache"))
    assert_user_error(result, "cannot create the embedding cache folder", "--no-cache")
    assert_no_work_done()
    assert not out.exists()


def test_a_default_cache_folder_that_is_a_file(host, toy_corpus, tmp_path, monkeypatch):
    """`$SERTK_CACHE_DIR` pointing at a file: "Error: the embedding cache folder … is a file, not a folder"."""
    blocker = tmp_path / "cache-file"
    blocker.write_text("x")
    monkeypatch.setenv("SERTK_CACHE_DIR", str(blocker))
    args = [a for a in toy_run_args(toy_corpus, tmp_path / "run") if a != "--no-cache"]
    assert_user_error(sertk_cli(*args), f"the embedding cache folder {blocker} is a file, not a folder")
    assert_no_work_done()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_folder(host, toy_corpus, tmp_path):
    """A read-only cache folder: "Error: the embedding cache folder … is not writable; fix its permissions, or use
    another --cache-dir, or --no-cache"."""
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        result = sertk_cli(*toy_run_args(toy_corpus, tmp_path / "run", cache=cache))
    finally:
        cache.chmod(0o755)
    assert_user_error(result, f"the embedding cache folder {cache} is not writable", "--no-cache")
    assert_no_work_done()


def test_a_read_only_cache_database_is_named(tmp_path, monkeypatch):
    """A cache SQLite cannot write (read-only file, even for root: simulated): one line naming it."""
    import sqlite3

    from sertk.errors import CacheError
    from sertk.featurization.cache import EmbeddingCache

    real_connect = sqlite3.connect

    def read_only(path, *args, **kwargs):
        return real_connect(f"file:{path}?mode=ro", *args, uri=True, **kwargs)

    EmbeddingCache(tmp_path).close()
    monkeypatch.setattr(sqlite3, "connect", read_only)
    with pytest.raises(CacheError, match="cannot be written .*readonly.*fix the permissions"):
        with EmbeddingCache(tmp_path) as cache:
            cache.put_many(*_one_entry())


def _one_entry():
    import numpy as np

    from sertk.featurization.cache import fingerprint_key

    fingerprint = {"name": "x"}
    return fingerprint_key(fingerprint), fingerprint, [("0" * 64, np.ones(3))]
