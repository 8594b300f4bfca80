"""The ``folder`` dataset: ``root/<label>/*`` audio, speakers from a file-name regex or a CSV."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sertk.errors import ConfigError, DatasetError
from sertk.plugins import PluginHost
from sertk_plugins.datasets.folder import FolderDataset

FILES = {
    "angry/spk1_001.wav": "WAV",
    "angry/spk2_002.flac": "FLAC",
    "angry/take2/spk1_003.wav": "WAV",
    "happy/spk1_004.ogg": "OGG",
    "happy/spk2_005.wav": "WAV",
    "happy/spk3_006.aiff": "AIFF",
    "neutral/spk3_007.wav": "WAV",
    "neutral/spk2_008.wav": "WAV",
}


def write_audio(path: Path, fmt: str = "WAV") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.sin(np.linspace(0, 200, 3200)).astype(np.float32)
    sf.write(path, x, 16000, format=fmt, subtype="VORBIS" if fmt == "OGG" else "PCM_16")


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "mine"
    for rel, fmt in FILES.items():
        write_audio(root / rel, fmt)
    (root / "angry" / "._spk1_001.wav").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    (root / "angry" / "notes.txt").write_text("not audio")
    (root / ".hidden").mkdir()
    write_audio(root / ".hidden" / "x.wav")
    (root / "happy" / ".DS_Store").write_bytes(b"\x00\x00")
    return root


def load(root, **options):
    return list(FolderDataset(root=root, **options).utterances())


def test_labels_from_folders_and_formats(corpus):
    utts = load(corpus)
    assert [u.id for u in utts] == sorted(FILES)
    assert Counter(u.label for u in utts) == {"angry": 3, "happy": 3, "neutral": 2}
    assert {u.speaker for u in utts} == {"unknown"} and {u.group for u in utts} == {"unknown"}
    u = utts[0]
    assert u.path == corpus / "angry" / "spk1_001.wav" and u.meta == {"file": "angry/spk1_001.wav", "folder": "angry"}


def test_speaker_regex(corpus):
    utts = load(corpus, speaker_regex=r"^(?P<speaker>spk\d+)_")
    assert {u.id: u.speaker for u in utts}["angry/take2/spk1_003.wav"] == "spk1"
    assert Counter(u.speaker for u in utts) == {"spk1": 3, "spk2": 3, "spk3": 2}
    assert all(u.group == u.speaker for u in utts)


def test_speaker_regex_with_group(corpus):
    utts = load(corpus, speaker_regex=r"^(?P<group>spk(?P<speaker>\d))")
    assert {(u.speaker, u.group) for u in utts} == {("1", "spk1"), ("2", "spk2"), ("3", "spk3")}


def test_speaker_regex_errors(corpus):
    with pytest.raises(ConfigError, match="needs a named group 'speaker'"):
        FolderDataset(root=corpus, speaker_regex=r"^(spk\d)_")
    with pytest.raises(ConfigError, match="is not a regular expression"):
        FolderDataset(root=corpus, speaker_regex=r"^(?P<speaker>spk")
    with pytest.raises(DatasetError, match=r"finds no speaker in 2 file name\(s\): happy/spk3_006.aiff, "
                                           r"neutral/spk3_007.wav"):
        load(corpus, speaker_regex=r"^(?P<speaker>spk[12])_")


def test_speakers_csv(corpus):
    (corpus / "speakers.csv").write_text(
        "path,speaker,group\n"
        "angry/spk1_001.wav,anna,women\n"
        "spk2_002.flac,bert,men\n"           # a bare file name, unique in the tree
        "angry/take2/spk1_003.wav,anna,\n"   # empty group: the speaker
        "happy/spk1_004.ogg,anna,women\n"
        "happy/spk2_005.wav,bert,men\n"
        "happy/spk3_006.aiff,cleo,women\n"
        "neutral/spk3_007.wav,cleo,women\n"
        "./neutral/spk2_008.wav,bert,men\n"
    )
    by_id = {u.id: u for u in load(corpus, speakers="speakers.csv")}
    assert by_id["angry/spk2_002.flac"].speaker == "bert" and by_id["angry/spk2_002.flac"].group == "men"
    assert by_id["angry/take2/spk1_003.wav"].group == "anna"
    assert Counter(u.speaker for u in by_id.values()) == {"anna": 3, "bert": 3, "cleo": 2}


def test_speakers_csv_errors(corpus, tmp_path, caplog):
    table = tmp_path / "who.csv"
    table.write_text("path,speaker\nangry/spk1_001.wav,anna\nangry/spk1_001.wav,bob\nhappy/spk1_004.ogg,\n"
                     "gone.wav,zed\n")
    with pytest.raises(DatasetError) as info:
        load(corpus, speakers=str(table))
    assert str(info.value) == (f"{table}: 2 bad row(s): {table}:3: angry/spk1_001.wav is mapped again (first at "
                               f"line 2); {table}:4: empty speaker")
    table.write_text("path,speaker\nangry/spk1_001.wav,anna\ngone.wav,zed\n")
    with caplog.at_level(logging.WARNING), pytest.raises(DatasetError) as info:
        load(corpus, speakers=str(table))
    assert "gives no speaker for 7 file(s): angry/spk2_002.flac, angry/take2/spk1_003.wav" in str(info.value)
    assert "name no audio file" in caplog.text and "gone.wav" in caplog.text
    table.write_text("file,speaker\n")
    with pytest.raises(DatasetError, match=rf"{table}:1: missing column\(s\) path; the header has file, speaker"):
        load(corpus, speakers=str(table))
    with pytest.raises(ConfigError, match="not both"):
        FolderDataset(root=corpus, speakers=str(table), speaker_regex="(?P<speaker>x)")


def test_ambiguous_file_name_in_csv(tmp_path):
    root = tmp_path / "c"
    write_audio(root / "a" / "x.wav")
    write_audio(root / "b" / "x.wav")
    (root / "s.csv").write_text("path,speaker\nx.wav,anna\n")
    with pytest.raises(DatasetError, match=r"s.csv:2: file name x.wav is in several folders \(a/x.wav, b/x.wav\)"):
        load(root, speakers="s.csv")


def test_classes_option(corpus):
    assert Counter(u.label for u in load(corpus, classes=["happy", "neutral"])) == {"happy": 3, "neutral": 2}
    merged = load(corpus, classes={"angry": "negative", "happy": "positive"})
    assert Counter(u.label for u in merged) == {"negative": 3, "positive": 3}
    with pytest.raises(DatasetError, match="names folder\\(s\\) sad that .* lacks; its label folders: angry, happy"):
        load(corpus, classes=["sad", "happy"])


def test_unreadable_audio_is_named_or_skipped(corpus, caplog):
    (corpus / "happy" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (corpus / "happy" / "empty.flac").write_bytes(b"")
    with pytest.raises(DatasetError) as info:
        load(corpus)
    assert f"{corpus}/happy/broken.wav (unreadable: " in str(info.value)
    assert f"{corpus}/happy/empty.flac (empty file)" in str(info.value)
    ds = FolderDataset(root=corpus, missing="skip")
    with caplog.at_level(logging.WARNING):
        assert len(list(ds.utterances())) == len(FILES)
    assert "broken.wav" in caplog.text and set(map(Path, ds.skipped)) == {corpus / "happy" / "broken.wav",
                                                                           corpus / "happy" / "empty.flac",
                                                                           corpus / "angry" / "notes.txt"}


def test_extensions_option(corpus):
    assert {u.id for u in load(corpus, extensions=["flac", ".OGG"])} == {"angry/spk2_002.flac", "happy/spk1_004.ogg"}


def test_files_that_are_not_audio_are_named_not_dropped_unseen(corpus, caplog):
    ds = FolderDataset(root=corpus)
    with caplog.at_level(logging.WARNING):
        utts = list(ds.utterances())
    assert len(utts) == len(FILES)
    assert "1 file(s) in label folders are not audio by their extension" in caplog.text and "notes.txt" in caplog.text
    assert ds.skipped == {str(corpus / "angry" / "notes.txt"):
                          "not read: .txt is not one of the audio extensions (option extensions)"}
    assert not any(".DS_Store" in p or "._spk1" in p for p in ds.skipped)  # hidden files stay silent


def test_bad_roots(tmp_path, caplog):
    with pytest.raises(DatasetError, match="does not exist"):
        FolderDataset(root=tmp_path / "nope")
    write_audio(tmp_path / "loose.wav")
    with caplog.at_level(logging.WARNING), pytest.raises(DatasetError, match=r"no label folders in .*<label>/\*.wav"):
        load(tmp_path)
    assert "loose.wav" in caplog.text
    (tmp_path / "angry").mkdir()
    (tmp_path / "angry" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match="no audio files"):
        load(tmp_path)


def test_registered_as_folder():
    host = PluginHost(builtins=["sertk_plugins.datasets.folder"], load_external=False)
    assert host.get("dataset", "folder").cls is FolderDataset
