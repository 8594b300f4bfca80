"""The ``csv`` dataset: a manifest with path, label, speaker, group; bad rows reported as file:line."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sertk.errors import ConfigError, DatasetError
from sertk.plugins import PluginHost
from sertk_plugins.datasets.manifest import CsvDataset


def write_audio(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, dtype=np.float32) + 0.01, 16000, subtype="PCM_16")


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    for name in ("a1", "a2", "b1", "b2", "c1"):
        write_audio(root / "audio" / f"{name}.wav")
    (root / "manifest.csv").write_text(
        "path,label,speaker,group,transcript\n"
        "audio/a1.wav,angry,anna,f,hello\n"
        "audio/a2.wav,happy,anna,f,\n"
        "\n"
        "# a comment line\n"
        "audio/b1.wav,angry,bert,,bye\n"
        "audio/b2.wav,sad,bert,m,\n"
        f"{root / 'audio' / 'c1.wav'},happy,cleo,f,absolute path\n"
    )
    return root


def load(root, **options):
    return list(CsvDataset(root=root, **options).utterances())


def test_rows_become_utterances(corpus):
    utts = load(corpus)
    assert [u.id for u in utts] == ["audio/a1.wav", "audio/a2.wav", "audio/b1.wav", "audio/b2.wav",
                                    str(corpus / "audio" / "c1.wav")]
    assert [u.path for u in utts] == [corpus / "audio" / f"{n}.wav" for n in ("a1", "a2", "b1", "b2", "c1")]
    assert [(u.label, u.speaker, u.group) for u in utts] == [
        ("angry", "anna", "f"), ("happy", "anna", "f"), ("angry", "bert", "bert"), ("sad", "bert", "m"),
        ("happy", "cleo", "f")]
    assert utts[0].meta == {"transcript": "hello", "original_label": "angry", "line": 2}


def test_root_may_be_the_manifest_or_a_named_file(corpus, monkeypatch, tmp_path):
    assert len(load(corpus / "manifest.csv")) == 5
    (corpus / "manifest.csv").rename(corpus / "list.csv")
    assert len(load(corpus, manifest="list.csv")) == 5
    monkeypatch.chdir(tmp_path)  # paths stay relative to the manifest, not to the working folder
    assert len(list(CsvDataset(manifest=str(corpus / "list.csv")).utterances())) == 5
    with pytest.raises(DatasetError, match=r"manifest .*manifest.csv not found in .*corpus"):
        CsvDataset(root=corpus)
    with pytest.raises(ConfigError, match="needs a manifest"):
        CsvDataset()


def test_optional_columns_tsv_and_semicolons(tmp_path):
    write_audio(tmp_path / "x.wav")
    write_audio(tmp_path / "y.wav")
    (tmp_path / "m.tsv").write_text("Path\tLabel\tid\nx.wav\tcalm\tu1\ny.wav\tangry\tu2\n")
    utts = load(tmp_path / "m.tsv")
    assert [(u.id, u.label, u.speaker, u.group) for u in utts] == [("u1", "calm", "unknown", "unknown"),
                                                                  ("u2", "angry", "unknown", "unknown")]
    (tmp_path / "m.csv").write_text("path;label;speaker\nx.wav;calm;s1\ny.wav;angry;s2\n")
    assert [u.speaker for u in load(tmp_path / "m.csv")] == ["s1", "s2"]


def test_classes_option(corpus):
    assert Counter(u.label for u in load(corpus, classes=["angry", "sad"])) == {"angry": 2, "sad": 1}
    merged = load(corpus, classes={"angry": "neg", "sad": "neg", "happy": "pos"})
    assert Counter(u.label for u in merged) == {"neg": 3, "pos": 2}
    assert {u.meta["original_label"] for u in merged} == {"angry", "sad", "happy"}


def test_bad_rows_are_all_named_with_file_and_line(tmp_path):
    write_audio(tmp_path / "a.wav")
    write_audio(tmp_path / "b.wav")
    table = tmp_path / "manifest.csv"
    table.write_text(
        "path,label,speaker,id\n"
        "a.wav,angry,anna,\n"        # 2 ok
        ",happy,anna,\n"             # 3 empty path
        "b.wav,,,\n"                 # 4 empty label, empty speaker
        "./a.wav,sad,anna,\n"        # 5 the same file again
        "b.wav,sad,bert,a.wav\n"     # 6 id of line 2 again
        "b.wav,sad,bert,x,extra\n"   # 7 too many cells
    )
    with pytest.raises(DatasetError) as info:
        load(tmp_path)
    assert str(info.value) == (
        f"{table}: 5 bad row(s): {table}:3: empty path; {table}:4: empty label, empty speaker; "
        f"{table}:5: file ./a.wav is listed again (first at line 2); {table}:6: id 'a.wav' is used again "
        f"(first at line 2); {table}:7: 5 cells but the header has 4 columns (a value with the delimiter in it "
        f"needs quotes)"
    )


def test_missing_columns(tmp_path):
    (tmp_path / "manifest.csv").write_text("\n# made by hand\nfile,emotion,speaker\na.wav,angry,x\n")
    with pytest.raises(DatasetError, match=r"manifest.csv:3: missing column\(s\) path, label; the header has "
                                           r"file, emotion, speaker; expected path, label and optionally"):
        load(tmp_path)
    (tmp_path / "manifest.csv").write_text("")
    with pytest.raises(DatasetError, match="is empty"):
        load(tmp_path)


def test_missing_files_named_with_their_line_or_skipped(corpus, caplog):
    (corpus / "audio" / "b1.wav").unlink()
    with pytest.raises(DatasetError) as info:
        load(corpus)
    assert f"manifest.csv:6: {corpus}/audio/b1.wav (missing)" in str(info.value)
    ds = CsvDataset(root=corpus, missing="skip")
    with caplog.at_level(logging.WARNING):
        assert [u.id for u in ds.utterances()][:3] == ["audio/a1.wav", "audio/a2.wav", "audio/b2.wav"]
    assert "manifest.csv:6:" in caplog.text and ds.skipped == {str(corpus / "audio" / "b1.wav"): "missing"}


def test_registered_as_csv():
    host = PluginHost(builtins=["sertk_plugins.datasets.manifest"], load_external=False)
    assert host.get("dataset", "csv").cls is CsvDataset
