"""sertk.datasummary: counts and problems of a dataset, as a library."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from iemocap_tree import make_iemocap_tree  # noqa: E402

import sertk.plugins
from sertk import Utterance
from sertk.datasummary import (
    DataSummary,
    audio_problem,
    check_audio_files,
    handle_bad_audio,
    summarize_dataset,
    summarize_utterances,
)
from sertk.errors import ConfigError, DatasetError


@pytest.fixture
def host(builtin_host):
    return builtin_host


def wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(800, 0.1, dtype=np.float32), 16000)
    return path


def test_counts_and_crosstabs(tmp_path):
    rows = [("a", "s1", "g1"), ("a", "s1", "g1"), ("b", "s2", "g1"), ("b", "s3", "g2"), ("a", "s3", "g2")]
    utts = [Utterance(f"u{i}", wav(tmp_path / f"u{i}.wav"), lab, spk, grp) for i, (lab, spk, grp) in enumerate(rows)]
    s = summarize_utterances(utts, dataset="x")
    assert s.n_utterances == 5 and s.ok and s.problems == []
    assert s.labels == {"a": 3, "b": 2}
    assert s.speakers == {"s1": 2, "s2": 1, "s3": 2} and s.groups == {"g1": 3, "g2": 2}
    assert s.label_by_group == {"g1": {"a": 2, "b": 1}, "g2": {"a": 1, "b": 1}}
    assert s.label_by_speaker["s2"] == {"a": 0, "b": 1}
    assert s.speaker_groups == {"s1": ["g1"], "s2": ["g1"], "s3": ["g2"]}
    assert s.to_dict()["labels"] == {"a": 3, "b": 2}


def test_problems_are_found(tmp_path):
    good = wav(tmp_path / "ok.wav")
    (tmp_path / "bad.wav").write_bytes(b"nope")
    utts = [
        Utterance("u1", good, "a", "s1", "g1"),
        Utterance("u1", good, "a", "s1", "g2"),              # duplicate id and file; s1 in two groups
        Utterance("u3", tmp_path / "gone.wav", "a", "s2", "g2"),
        Utterance("u4", tmp_path / "bad.wav", "b", "s2", "g2"),  # b: a single utterance
    ]
    s = summarize_utterances(utts)
    kinds = {p.kind: p for p in s.problems}
    assert set(kinds) == {"bad-audio", "duplicate-id", "duplicate-file", "speaker-in-several-groups", "small-class"}
    assert kinds["bad-audio"].items == (f"{tmp_path}/gone.wav: missing", f"{tmp_path}/bad.wav: unreadable: "
                                        "Format not recognised.")
    assert kinds["duplicate-id"].items == ("u1",)
    assert kinds["speaker-in-several-groups"].items == ("s1: g1, g2",)
    assert "not speaker-independent" in kinds["speaker-in-several-groups"].message
    assert kinds["small-class"].items == ("b: 1",)
    relaxed = {p.kind for p in summarize_utterances(utts, check_audio=False, min_per_class=1).problems}
    assert relaxed == {"duplicate-id", "duplicate-file", "speaker-in-several-groups"}


def test_degenerate_datasets(tmp_path):
    s = summarize_utterances([Utterance("u", wav(tmp_path / "u.wav"), "a", "unknown", "unknown")] * 1)
    assert {p.kind for p in s.problems} == {"small-class", "single-class", "single-speaker", "single-group"}
    assert [p.kind for p in summarize_utterances([]).problems] == ["empty"]


def test_audio_checks(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 16000)
    (tmp_path / "dir.wav").mkdir()
    assert audio_problem(tmp_path / "empty.wav") == "empty file"
    assert audio_problem(tmp_path / "silent.wav") == "no audio samples"
    assert audio_problem(tmp_path / "dir.wav") == "not a file"
    assert audio_problem(wav(tmp_path / "ok.flac")) is None
    (tmp_path / "junk.wav").write_bytes(b"x" * 100)
    assert audio_problem(tmp_path / "junk.wav", read_header=False) is None
    assert list(check_audio_files([tmp_path / "ok.flac", tmp_path / "nope.wav"]).values()) == ["missing"]
    problems = {tmp_path / f"f{i}.wav": "missing" for i in range(25)}
    with pytest.raises(DatasetError, match=r"25 audio file\(s\) .*f19.wav \(missing\) and 5 more; restore"):
        handle_bad_audio(problems, "error", dataset="d")
    handle_bad_audio({}, "error", dataset="d")  # nothing to report


def test_summarize_iemocap_lists_missing_files_instead_of_failing(tmp_path, host):
    root = make_iemocap_tree(tmp_path, sessions=[1, 2], missing=["Ses01F_impro01_F000"])
    s = summarize_dataset("iemocap", root)
    assert isinstance(s, DataSummary) and s.options == {"missing": "skip"}
    assert s.n_utterances == 27 and s.groups == {"Session1": 13, "Session2": 14}
    assert [p.kind for p in s.problems] == ["bad-audio"]
    assert "Ses01F_impro01_F000.wav: missing" in s.problems[0].items[0]
    with pytest.raises(DatasetError, match="Ses01F_impro01_F000.wav \\(missing\\)"):
        summarize_dataset("iemocap", root, {"missing": "error"})


def test_summarize_dataset_errors(tmp_path, host):
    with pytest.raises(ConfigError, match="needs its files: pass --data-root"):
        summarize_dataset("iemocap")
    known = "known datasets: combined, cremad, csv, demo, emodb, folder, iemocap, ravdess"
    with pytest.raises(sertk.errors.UnknownComponentError, match=known):
        summarize_dataset("nope", tmp_path)
