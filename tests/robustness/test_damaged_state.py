"""Damaged state: a cache database or a saved model folder that is not what sertk wrote gives one clear line and a
way out; ``sertk cache clear`` works on any cache, readable or not."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from toy_plugin import toy_plugin

import sertk.featurization.cache as cache_mod
import sertk.plugins
from sertk.featurization.cache import EmbeddingCache, database_path, fingerprint_key

from .conftest import assert_no_work_done, assert_user_error, sertk_cli, toy_run_args

PAGE = 4096


def _filled_cache(directory: Path, n: int = 400) -> Path:
    fingerprint = {"name": "toy-bands", "n_bands": 16}
    rng = np.random.default_rng(0)
    with EmbeddingCache(directory) as cache:
        cache.put_many(fingerprint_key(fingerprint), fingerprint,
                       [(f"{i:064x}", rng.standard_normal(256)) for i in range(n)])
        cache.audio_keys([])  # nothing; the digest table exists from the schema
    cache_mod._VERIFIED.clear()
    return database_path(directory)


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif how == "truncated":
        data = data[: len(data) // 3]
    elif how == "pages":  # every page but the header page overwritten: the header still says SQLite
        rng = np.random.default_rng(1)
        data[PAGE:] = rng.integers(0, 256, len(data) - PAGE, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    cache_mod._VERIFIED.clear()


@pytest.mark.parametrize("how, detail", [("garbage", "file is not a database"),
                                         ("truncated", "malformed"), ("pages", "")])
def test_a_damaged_cache_stops_the_run_before_any_work(host, toy_corpus, tmp_path, how, detail):
    """A cache database that is random bytes, truncated, or has damaged pages behind an intact header: "Error:
    cannot open the embedding cache DB: it is damaged (…); delete it with `sertk cache clear --cache-dir DIR`
    (embeddings are recomputed on the next run), or use another --cache-dir or --no-cache"."""
    cache = tmp_path / "cache"
    _damage(_filled_cache(cache), how)
    result = sertk_cli(*toy_run_args(toy_corpus, tmp_path / "run", cache=cache))
    assert_user_error(result, f"cannot open the embedding cache {database_path(cache)}: it is damaged", detail,
                      f"`sertk cache clear --cache-dir {cache}`", "--no-cache")
    assert_no_work_done()
    assert not (tmp_path / "run").exists()


def test_damage_past_the_quick_check_size_is_still_one_line(host, toy_corpus, tmp_path, monkeypatch):
    """A cache too large to check on open (here: a limit of 0 bytes) whose pages are damaged: the first query
    fails, and the user sees "Error: the embedding cache DB is damaged (database disk image is malformed); …"."""
    monkeypatch.setattr(cache_mod, "QUICK_CHECK_MAX_BYTES", 0)
    cache = tmp_path / "cache"
    _damage(_filled_cache(cache), "pages")
    result = sertk_cli(*toy_run_args(toy_corpus, tmp_path / "run", cache=cache))
    assert_user_error(result, "embedding cache", "damaged", "sertk cache clear --cache-dir")


def test_a_healthy_cache_is_checked_once_per_process(tmp_path, monkeypatch):
    """The fast path: an unchanged database that passed quick_check is not checked again in the same process."""
    path = _filled_cache(tmp_path)
    checks = []
    real = EmbeddingCache._verify

    def counting(self):
        checks.append(self.path)
        return real(self)

    monkeypatch.setattr(EmbeddingCache, "_verify", counting)
    EmbeddingCache(tmp_path).close()
    cache_mod._VERIFIED.clear()
    with EmbeddingCache(tmp_path):
        pass
    assert len(cache_mod._VERIFIED) == 1 and checks == [path, path]


def test_cache_info_on_a_damaged_cache(tmp_path):
    """`sertk cache info` on a damaged cache: the same one line and way out."""
    cache = tmp_path / "cache"
    _damage(_filled_cache(cache), "garbage")
    assert_user_error(sertk_cli("cache", "info", "--cache-dir", cache), "it is damaged",
                      f"sertk cache clear --cache-dir {cache}")


def test_cache_clear_deletes_a_damaged_cache(tmp_path):
    """`sertk cache clear --yes` on a damaged cache: "deleted the damaged embedding cache DB (N file(s));
    embeddings are recomputed on the next run"; the next open starts an empty cache."""
    cache = tmp_path / "cache"
    _damage(_filled_cache(cache), "truncated")
    result = sertk_cli("cache", "clear", "--cache-dir", cache, "--yes")
    assert result.exit_code == 0, result.output
    assert f"deleted the damaged embedding cache {database_path(cache)}" in result.stderr
    assert not database_path(cache).exists()
    with EmbeddingCache(cache) as fresh:
        assert fresh.info().entries == 0


def test_cache_clear_asks_first(tmp_path):
    """Without --yes the user is asked; answering no keeps the file ("Aborted!", exit 1)."""
    cache = tmp_path / "cache"
    _damage(_filled_cache(cache), "garbage")
    refused = sertk_cli("cache", "clear", "--cache-dir", cache, input="n\n")
    assert refused.exit_code == 1 and "is damaged" in refused.stderr and "Aborted!" in refused.stderr
    assert database_path(cache).exists()
    accepted = sertk_cli("cache", "clear", "--cache-dir", cache, input="y\n")
    assert accepted.exit_code == 0 and not database_path(cache).exists()


def test_cache_clear_asks_once_for_a_damaged_cache_and_its_fits(tmp_path):
    """A damaged cache with fit checkpoints beside it: one question names both ("… Delete it (and the 1 ν-SVM fit
    checkpoint(s) in …)?"); no keeps both, yes deletes both and leaves a user's own file in the fits folder."""
    cache = tmp_path / "cache"
    _damage(_filled_cache(cache), "garbage")
    (cache / "fits").mkdir()
    fit = cache / "fits" / "nusvm-0123.npz"
    fit.write_bytes(b"a checkpoint")
    (cache / "fits" / "notes.txt").write_text("mine")
    refused = sertk_cli("cache", "clear", "--cache-dir", cache, input="n\n")
    assert refused.exit_code == 1 and refused.stderr.count("[y/N]") == 1
    assert "Delete it (and the 1 ν-SVM fit checkpoint(s) in" in refused.stderr
    assert fit.exists() and database_path(cache).exists()
    accepted = sertk_cli("cache", "clear", "--cache-dir", cache, input="y\n")
    assert accepted.exit_code == 0 and accepted.stderr.count("[y/N]") == 1
    assert not fit.exists() and not database_path(cache).exists()
    assert [p.name for p in (cache / "fits").iterdir()] == ["notes.txt"]


def test_selective_clear_of_a_damaged_cache_says_how(tmp_path):
    """`sertk cache clear --featurizer NAME` on a damaged cache: "Error: … is damaged (…), so it cannot be
    cleared selectively; `sertk cache clear` without --featurizer/--fingerprint deletes it"."""
    cache = tmp_path / "cache"
    _damage(_filled_cache(cache), "garbage")
    result = sertk_cli("cache", "clear", "--cache-dir", cache, "--featurizer", "toy-bands", "--yes")
    assert_user_error(result, "cannot be cleared selectively", "without --featurizer/--fingerprint deletes it")
    assert database_path(cache).exists()


# -- saved model folders ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A run's `model` folder (toy-bands, toy-centroid, standardised features), made once for this module."""
    root = tmp_path_factory.mktemp("saved")
    from toy_plugin import write_toy_corpus

    corpus = write_toy_corpus(root / "toy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SERTK_HOME", str(root / "home"))
        host = sertk.plugins.PluginHost(builtins=["sertk_plugins.protocols.standard"], load_external=False)
        host.register_plugin(toy_plugin, "toy")
        mp.setattr(sertk.plugins, "_host", host)
        result = sertk_cli(*toy_run_args(corpus, root / "run", "--classifier", "toy-centroid", "--standardize"))
        assert result.exit_code == 0, result.output
    return root / "run" / "model"


@pytest.fixture
def model(saved_model, tmp_path, host) -> Path:
    """A copy of the saved model folder for this test to damage."""
    return Path(shutil.copytree(saved_model, tmp_path / "model"))


def _predict(model: Path, toy_corpus: Path):
    return sertk_cli("predict", model, toy_corpus / "spk0_ang_0.wav", "--no-cache")


def test_an_intact_model_predicts(model, toy_corpus):
    result = _predict(model, toy_corpus)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", ["model.json", "classifier.model", "scaler.npz", "digests.json"])
def test_a_model_folder_with_a_file_missing(model, toy_corpus, name):
    """A model folder missing any of its files: refused, naming the file ("…/classifier.model is missing; the
    model folder is incomplete; restore the folder from a good copy, or save the model again with `sertk run`")."""
    (model / name).unlink()
    expected = {"model.json": "holds no saved model (no model.json)",
                "digests.json": f"{model / 'digests.json'} is missing, so the model folder cannot be verified"}
    assert_user_error(_predict(model, toy_corpus),
                      expected.get(name, f"{model / name} is missing; the model folder is incomplete"))
    assert_no_work_done()


def test_an_edited_label_list_is_refused(model, toy_corpus):
    """Two labels swapped in model.json (predictions would print one emotion's scores under another's name):
    "Error: …/model.json differs from the file that was saved (its sha256 does not match …/digests.json): it was
    edited or damaged; …"."""
    meta = json.loads((model / "model.json").read_text())
    meta["labels"][0], meta["labels"][1] = meta["labels"][1], meta["labels"][0]
    (model / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    assert_user_error(_predict(model, toy_corpus), f"{model / 'model.json'} differs from the file that was saved",
                      "edited or damaged")
    assert_no_work_done()


def test_an_edited_label_list_with_new_digests_is_still_refused(model, toy_corpus):
    """The same edit with digests.json rewritten to match: the labels disagree with the classifier's own classes,
    "Error: …/model.json: labels [...] disagree with the classifier's classes [...]; the folder was edited: …"."""
    from sertk.experiment.model import write_digests

    meta = json.loads((model / "model.json").read_text())
    meta["labels"][0], meta["labels"][1] = meta["labels"][1], meta["labels"][0]
    (model / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_digests(model)
    assert_user_error(_predict(model, toy_corpus), "labels", "disagree with the classifier's classes")


@pytest.mark.parametrize("name", ["classifier.model", "scaler.npz"])
def test_a_damaged_model_file_is_refused(model, toy_corpus, name):
    """One byte changed in a model file: "Error: …/NAME differs from the file that was saved …"."""
    data = bytearray((model / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (model / name).write_bytes(bytes(data))
    assert_user_error(_predict(model, toy_corpus), f"{model / name} differs from the file that was saved")
    assert_no_work_done()


@pytest.mark.parametrize("content, fragment", [
    ("not json", "cannot read"),
    ('{"format": "sertk-model-digests/1", "files": {"../../etc/passwd": "0"}}', "is not a digest record"),
    ('{"format": "sertk-model-digests/1", "files": {"model.json": "0", "classifier.model": "0", "x.py": "0"}}',
     "names 'x.py', which is not a model file"),
])
def test_a_damaged_digest_record_is_refused(model, toy_corpus, content, fragment):
    """digests.json itself unreadable or naming files outside the model: refused, naming digests.json."""
    (model / "digests.json").write_text(content)
    assert_user_error(_predict(model, toy_corpus), str(model / "digests.json"), fragment)


def test_a_model_json_that_is_not_json(model, toy_corpus):
    """model.json truncated: "Error: cannot read …/model.json: …"."""
    (model / "model.json").write_text('{"format": "sertk-mo')
    assert_user_error(_predict(model, toy_corpus), f"cannot read {model / 'model.json'}")
