"""Output folders and files: nothing a user has is lost, and no earlier result is silently replaced.

What the user sees, case by case, is in each test's docstring.
"""

from __future__ import annotations

import json
import os

import pytest
from toy_plugin import ToyFeaturizer

from sertk.experiment.outputs import RECORD

from .conftest import assert_no_work_done, assert_usage_error, assert_user_error, listing, sertk_cli, toy_run_args


def test_an_explicit_out_that_is_not_empty_is_refused(host, toy_corpus, tmp_path):
    """`--out DIR` where DIR holds anything: "Error: output folder DIR is not empty (notes.txt); pass --overwrite
    … or choose another --out"; nothing is read or written."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    assert_user_error(sertk_cli(*toy_run_args(toy_corpus, out)), f"output folder {out} is not empty",
                      "notes.txt", "--overwrite", "another --out")
    assert_no_work_done()
    assert listing(out) == ["notes.txt"]


def test_overwrite_never_deletes_a_users_model_folder(host, toy_corpus, tmp_path):
    """`--out DIR --overwrite` where DIR/model is the user's own work (no sertk record): "Error: output folder DIR
    holds model/model.json, model/weights.bin, not written by sertk, where this run would write; …"; kept."""
    out = tmp_path / "work"
    (out / "model").mkdir(parents=True)
    (out / "model" / "model.json").write_text("{}")
    (out / "model" / "weights.bin").write_bytes(b"\x00" * 10)
    (out / "report.md").write_text("my report")
    result = sertk_cli(*toy_run_args(toy_corpus, out, "--overwrite"))
    assert_user_error(result, f"output folder {out} holds model/model.json, model/weights.bin, report.md",
                      "not written by sertk", "move them away or choose another --out")
    assert_no_work_done()
    assert listing(out) == ["model", "model/model.json", "model/weights.bin", "report.md"]
    assert (out / "report.md").read_text() == "my report"


def test_overwrite_replaces_only_what_sertk_wrote_and_says_so(host, toy_corpus, tmp_path):
    """`--overwrite` on an earlier run's folder: the earlier run's files (listed in sertk-run.json) are removed,
    logged with -v ("--overwrite: removed N file(s) of the earlier run …"), a user's other file stays."""
    out = tmp_path / "run"
    assert sertk_cli(*toy_run_args(toy_corpus, out, "--classifier", "toy-centroid")).exit_code == 0
    assert (out / "model" / "model.json").is_file()
    (out / "my-notes.md").write_text("keep me")
    again = sertk_cli("-v", *toy_run_args(toy_corpus, out, "--no-save-model", "--overwrite"))
    assert again.exit_code == 0, again.output
    assert "--overwrite: removed" in again.stderr and "model/classifier.model" in again.stderr
    assert not (out / "model").exists()  # the earlier run's model never sits beside this run's report
    assert (out / "my-notes.md").read_text() == "keep me"
    record = json.loads((out / RECORD).read_text())
    assert set(record["files"]) == {"config.toml", "predictions.csv", "report.json", "report.md",
                                    "confusion_matrix.png"}


def test_the_record_lists_exactly_the_files_written(host, toy_corpus, tmp_path):
    """A finished run's sertk-run.json names every file it wrote, and nothing else."""
    out = tmp_path / "run"
    assert sertk_cli(*toy_run_args(toy_corpus, out, "--classifier", "toy-centroid")).exit_code == 0
    record = json.loads((out / RECORD).read_text())
    on_disk = [name for name in listing(out) if (out / name).is_file() and name != RECORD]
    assert sorted(record["files"]) == on_disk
    assert "model/digests.json" in on_disk and "report.json" in on_disk


def test_the_default_out_is_never_reused(host, toy_corpus, tmp_path, monkeypatch):
    """Two runs without --out: the second writes to runs/<name>-2 (the report line says where); the first
    run's files are untouched."""
    monkeypatch.chdir(tmp_path)
    first = sertk_cli(*toy_run_args(toy_corpus, None))
    assert first.exit_code == 0, first.output
    default = tmp_path / "runs" / "toy-toy-bands-logreg-sd-random-seed0"
    before = (default / "report.json").read_bytes()
    second = sertk_cli(*toy_run_args(toy_corpus, None))
    assert second.exit_code == 0, second.output
    assert "report: runs/toy-toy-bands-logreg-sd-random-seed0-2/report.md" in second.output
    assert (default / "report.json").read_bytes() == before
    saved = (tmp_path / "runs" / "toy-toy-bands-logreg-sd-random-seed0-2" / "config.toml").read_text()
    assert 'out = "runs/toy-toy-bands-logreg-sd-random-seed0-2"' in saved  # the saved config says where it went


def test_a_run_from_a_saved_config_writes_a_new_folder(host, toy_corpus, tmp_path):
    """`run --config runs/X/config.toml --seed 3`: the saved config's `out` is a default name, so the run goes to
    runs/X-2 and run X is untouched; `--out` or `--overwrite` says otherwise."""
    out = tmp_path / "X"
    assert sertk_cli(*toy_run_args(toy_corpus, out)).exit_code == 0
    before = {name: (out / name).read_bytes() for name in ("report.json", "predictions.csv", "config.toml")}
    again = sertk_cli("run", "--config", out / "config.toml", "--seed", "3")
    assert again.exit_code == 0, again.output
    assert f"report: {tmp_path / 'X-2' / 'report.md'}" in again.output
    assert {name: (out / name).read_bytes() for name in before} == before
    assert json.loads((tmp_path / "X-2" / "report.json").read_text())["config"]["seed"] == 3


def test_a_run_that_fails_leaves_no_empty_folder(host, toy_corpus, tmp_path):
    """A run that stops on an error (here: an unreadable file) takes back the folder it created."""
    (toy_corpus / "spk0_ang_0.wav").write_bytes(b"not audio")
    out = tmp_path / "new"
    assert_user_error(sertk_cli(*toy_run_args(toy_corpus, out)), "could not be read", "--skip-bad-audio")
    assert not out.exists()


def test_an_out_that_is_a_file(host, toy_corpus, tmp_path):
    """`--out FILE`: click's usage error "Invalid value for '--out': Directory 'FILE' is a file." (exit 2)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_usage_error(sertk_cli(*toy_run_args(toy_corpus, blocker)), "Invalid value for '--out'", "is a file")
    assert_no_work_done()


@pytest.mark.parametrize("kind", ["below-a-file", "unwritable-place"])
def test_an_out_that_cannot_be_created(host, toy_corpus, tmp_path, kind):
    """`--out` below a file, or where no folder can be made: one line naming it, before any work."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = {"below-a-file": blocker / "run", "unwritable-place": "/proc/sertk-run"}[kind]
    expected = {"below-a-file": f"cannot create output folder {out}: {blocker} is a file",
                "unwritable-place": "cannot create output folder /proc/sertk-run"}[kind]
    assert_user_error(sertk_cli(*toy_run_args(toy_corpus, out)), expected, "another --out")
    assert_no_work_done()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_follow_the_umask(host, toy_corpus, tmp_path, umask, mode):
    """Reports, predictions, the config and the model get 0o666 less the umask (a colleague can read them under
    the usual 022), not tempfile's 0600."""
    out = tmp_path / "run"
    old = os.umask(umask)
    try:
        assert sertk_cli(*toy_run_args(toy_corpus, out, "--classifier", "toy-centroid")).exit_code == 0
    finally:
        os.umask(old)
    for name in ("report.md", "report.json", "predictions.csv", "config.toml", "confusion_matrix.png",
                 "model/model.json", "model/classifier.model", RECORD):
        assert (out / name).stat().st_mode & 0o777 == mode, name


def test_replacing_a_file_keeps_its_mode(tmp_path):
    """A file sertk replaces keeps the permissions the user gave it."""
    from sertk.atomic import atomic_write_text

    path = tmp_path / "report.md"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o640


# -- sertk embed --out -----------------------------------------------------------------------------------------
def _embed(corpus, out, *extra):
    return sertk_cli("embed", corpus / "spk0_ang_0.wav", corpus / "spk1_sad_1.wav", "-f", "toy-bands", "--no-cache",
                     "--out", out, *extra)


def test_embed_refuses_an_existing_file(host, toy_corpus, tmp_path):
    """`embed --out FILE` where FILE exists: "Error: FILE already exists; pass --overwrite to replace it, or
    choose another --out", before anything is embedded; with --overwrite an earlier embed output is replaced."""
    out = tmp_path / "emb.npz"
    assert _embed(toy_corpus, out).exit_code == 0
    before = out.read_bytes()
    calls = ToyFeaturizer.calls
    assert_user_error(_embed(toy_corpus, out), f"{out} already exists", "--overwrite", "another --out")
    assert ToyFeaturizer.calls == calls  # refused before embedding
    assert out.read_bytes() == before
    assert _embed(toy_corpus, out, "--overwrite").exit_code == 0


@pytest.mark.parametrize("content", [b"my own data", b"PK\x03\x04 not really a zip"])
def test_embed_overwrite_never_replaces_a_foreign_file(host, toy_corpus, tmp_path, content):
    """`embed --out FILE --overwrite` where FILE is not an earlier embed output: "Error: FILE is not an
    embeddings file written by sertk embed, so --overwrite does not replace it; …"; the file is kept."""
    out = tmp_path / "data.npz"
    out.write_bytes(content)
    assert_user_error(_embed(toy_corpus, out, "--overwrite"), f"{out} is not an embeddings file written by sertk "
                      "embed", "move it away or choose another --out")
    assert_no_work_done()
    assert out.read_bytes() == content


def test_embed_out_that_is_a_folder(host, toy_corpus, tmp_path):
    """`embed --out DIR`: click's usage error "Invalid value for '--out': File 'DIR' is a directory." (exit 2)."""
    assert_usage_error(_embed(toy_corpus, tmp_path), "Invalid value for '--out'", "is a directory")
    assert_no_work_done()


def test_embed_out_below_a_file(host, toy_corpus, tmp_path):
    """`embed --out a-file/emb.npz`: "Error: cannot create output file …: … is a file, not a folder; …"."""
    (tmp_path / "a-file").write_text("x")
    assert_user_error(_embed(toy_corpus, tmp_path / "a-file" / "emb.npz"), "cannot create output file",
                      "a-file is a file, not a folder", "another --out")
    assert_no_work_done()
