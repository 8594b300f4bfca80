"""Bad data sets: whatever a loader drops is counted and named (log, ``data summary``, the report), and folds that
cannot learn a class say so in the report's warnings.

Each test writes its own corpus and says, in its docstring, what the user sees.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner, Result

import sertk.plugins
from sertk.cli.main import cli
from sertk.errors import DatasetError
from sertk.protocols import Fold, class_warnings
from sertk_plugins.datasets.folder import FolderDataset

RATE = 16000


@pytest.fixture
def data_host(monkeypatch):
    """The built-in folder and csv datasets, the handcrafted featurizer, logreg and the protocols."""
    host = sertk.plugins.PluginHost(builtins=["sertk_plugins.datasets.folder", "sertk_plugins.datasets.manifest",
                                             "sertk_plugins.featurizers.handcrafted",
                                             "sertk_plugins.classifiers.sklearn_reference",
                                             "sertk_plugins.protocols.standard"], load_external=False)
    monkeypatch.setattr(sertk.plugins, "_host", host)
    return host


def run_cli(*args: object) -> Result:
    return CliRunner().invoke(cli, ["--no-progress", *map(str, args)])


def write_tone(path: Path, f0: float, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(RATE // 4) / RATE
    wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    sf.write(str(path), wave.astype(np.float32), RATE, subtype="PCM_16")
    return path


def corpus(root: Path, labels=("ang", "neu"), speakers=("s0", "s1", "s2"), per=3) -> Path:
    for i, label in enumerate(labels):
        for s in speakers:
            for k in range(per):
                write_tone(root / label / f"{s}_{label}_{k}.wav", 150.0 * (i + 1) * (1 + 0.02 * k), seed=k)
    return root


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, result.stderr
    return lines[0]


# -- dropped files are named ----------------------------------------------------------------------------------
def test_dangling_symlink_in_a_folder_dataset_is_an_error_naming_it(tmp_path):
    """User sees: ``dataset 'folder': 1 audio file(s) missing or unreadable: PATH (missing); restore them, or pass
    missing="skip" …``. Before, the link vanished without a word."""
    root = corpus(tmp_path / "c")
    link = root / "ang" / "s9_ang_0.wav"
    link.symlink_to(root / "ang" / "gone.wav")
    with pytest.raises(DatasetError, match=r"1 audio file\(s\) missing or unreadable: .*s9_ang_0.wav \(missing\)"):
        FolderDataset(root=root).load()


def test_skipped_files_are_named_in_log_summary_and_report(tmp_path, data_host, caplog):
    """With ``missing=skip`` the user sees a warning naming each dropped file (a dangling link, bytes that are not
    audio, an empty file, a WAV with zero frames), ``sertk data summary`` lists them under its problems with the
    count, and the run's report.json / report.md warnings say ``dataset left out PATH: reason``."""
    root = corpus(tmp_path / "c")
    (root / "ang" / "s9_link.wav").symlink_to(root / "nowhere.wav")
    (root / "ang" / "s9_garbage.wav").write_bytes(b"this is not audio" * 20)
    (root / "neu" / "s9_empty.wav").write_bytes(b"")
    sf.write(str(root / "neu" / "s9_zero.wav"), np.zeros(0, np.float32), RATE)
    dropped = ["s9_link.wav", "s9_garbage.wav", "s9_empty.wav", "s9_zero.wav"]

    with caplog.at_level(logging.WARNING):
        ds = FolderDataset(root=root, missing="skip")
        assert len(ds.load()) == 18
    assert "leaving out 4 audio file(s)" in caplog.text and all(name in caplog.text for name in dropped)
    assert sorted(Path(p).name for p in ds.skipped) == sorted(dropped)

    result = run_cli("data", "summary", "--dataset", "folder", "--data-root", root)
    assert "4 audio file(s)" in result.output and all(name in result.output for name in dropped), result.output

    out = tmp_path / "run"
    result = run_cli("run", "--dataset", "folder", "--data-root", root, "-o", "dataset.missing=skip", "--featurizer",
                     "handcrafted", "--classifier", "logreg", "--no-plots", "--no-cache", "--no-save-model",
                     "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["n_utterances"] == 18
    left_out = [w for w in report["warnings"] if w.startswith("dataset left out ")]
    assert sorted(Path(w.split()[3].rstrip(":")).name for w in left_out) == sorted(dropped), left_out
    assert "dataset left out" in (out / "report.md").read_text()


def test_manifest_row_with_empty_label_is_an_error_with_its_line(tmp_path, data_host):
    """User sees one line: ``Error: …manifest.csv:3: empty label`` (the row is never dropped silently)."""
    root = corpus(tmp_path / "c")
    rows = ["path,label,speaker", "ang/s0_ang_0.wav,ang,s0", "ang/s0_ang_1.wav,,s0", "neu/s0_neu_0.wav,neu,s0"]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    line = one_line_error(run_cli("data", "summary", "--dataset", "csv", "--data-root", root))
    assert "manifest.csv:3" in line and "empty label" in line


# -- folds that cannot learn a class --------------------------------------------------------------------------
def test_class_warnings_name_the_fold_and_class():
    """The report's warnings: ``fold F: class(es) 'sad' (2) are in the test set but not in the training set …``
    and ``fold F: class(es) 'hap' (1) have fewer than 2 training utterances …``."""
    y = np.array(["ang", "ang", "hap", "neu", "neu", "sad", "sad"])
    fold = Fold("speaker-s0", train=np.array([0, 1, 2, 3, 4]), test=np.array([5, 6]))
    absent, few = class_warnings(fold, y)
    assert absent.startswith("fold speaker-s0: class(es) 'sad' (2) are in the test set but not in the training")
    assert few.startswith("fold speaker-s0: class(es) 'hap' (1) have fewer than 2 training utterances")
    assert class_warnings(Fold("ok", train=np.array([0, 1, 3, 4]), test=np.array([2])), y[[0, 1, 0, 3, 4]]) == []


def test_loso_fold_without_a_class_in_training_is_reported(tmp_path, data_host):
    """Under leave-one-speaker-out, a class recorded by one speaker only is absent from that speaker's training
    side. User sees: the run completes and report.json / report.md warnings name the fold and the class."""
    root = corpus(tmp_path / "c")
    for k in range(3):
        write_tone(root / "sad" / f"s0_sad_{k}.wav", 90.0, seed=k)
    out = tmp_path / "run"
    result = run_cli("run", "--dataset", "folder", "--data-root", root,
                     "-o", "dataset.speaker_regex=^(?P<speaker>s\\d)_", "--protocol", "loso-speaker",
                     "--featurizer", "handcrafted", "--classifier", "logreg", "--no-plots", "--no-cache",
                     "--no-save-model", "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    hits = [w for w in report["warnings"] if "'sad' (3) are in the test set but not in the training set" in w]
    assert len(hits) == 1 and "s0" in hits[0], report["warnings"]
    assert "not in the training set" in (out / "report.md").read_text()
