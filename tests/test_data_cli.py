"""``sertk data summary``: options, output, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from iemocap_tree import make_iemocap_tree

from sertk.cli.main import cli


@pytest.fixture
def host(builtin_host):
    return builtin_host


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_iemocap_tree(tmp_path_factory.mktemp("iemocap"), missing=["Ses04M_impro02_M002"])


def run(*args):
    return CliRunner().invoke(cli, ["data", "summary", *args])


def test_text_summary(corpus, host):
    r = run("--dataset", "iemocap", "--data-root", str(corpus), "-o", "sessions=[1,2]")
    assert r.exit_code == 0, r.output
    out = r.output
    assert "28 utterances · 4 labels · 4 speakers · 2 groups" in out
    assert "options sessions=[1, 2], missing='skip'" in out
    lines = out.splitlines()
    assert lines[lines.index(next(x for x in lines if x.startswith("group"))) + 1].split() == \
        ["Session1", "3", "5", "3", "3", "14"]
    assert any(x.split() == ["Ses02_M", "1", "2", "2", "2", "7", "Session2"] for x in lines)
    assert out.rstrip().endswith("no problems found")


def test_json_and_toml_option_values(corpus, host):
    r = run("-d", "iemocap", "--data-root", str(corpus), "-o", "sessions=[1,2]", "-o", "improvised_only=true",
            "-o", "classes=4class-noexc", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["options"] == {"sessions": [1, 2], "improvised_only": True, "classes": "4class-noexc",
                               "missing": "skip"}
    assert data["n_utterances"] == 10  # impro01: neu hap ang sad; impro02: neu — per session
    assert data["labels"] == {"ang": 2, "hap": 2, "neu": 4, "sad": 2}
    assert data["groups"] == {"Session1": 5, "Session2": 5}
    assert data["speaker_groups"]["Ses01_F"] == ["Session1"]
    assert data["problems"] == []


def test_missing_files_are_listed_and_strict_fails(corpus, host):
    r = run("-d", "iemocap", "--data-root", str(corpus), "-o", "sessions=[3, 4]", "--strict")
    assert r.exit_code == 1
    assert "problems (1):" in r.output and "Ses04M_impro02_M002.wav (missing)" in r.output
    r = run("-d", "iemocap", "--data-root", str(corpus), "-o", "missing=error")
    assert r.exit_code == 1
    assert r.output.startswith("Error: dataset 'iemocap': 1 audio file(s) missing or unreadable: ")
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["-d", "nope"], "Error: unknown dataset 'nope'; known datasets: combined, cremad, csv, demo, emodb,"
     " folder, iemocap, ravdess"),
    (["-d", "iemocap"], "Error: dataset 'iemocap' needs its files: pass --data-root DIR"),
    (["-d", "iemocap", "--data-root", "{root}", "-o", "session=1"],
     "Error: dataset 'iemocap' has no option 'session'; its options are: classes, full_release, improvised_only, "
     "missing, scripted_only, sessions"),
    (["-d", "iemocap", "--data-root", "{root}", "-o", "sessions"],
     "Error: bad option 'sessions': expected KEY=VALUE, e.g. 'batch_size=8'"),
    (["-d", "iemocap", "--data-root", "{root}/Session1/sentences"], "Error: no IEMOCAP sessions under "),
])
def test_errors_are_one_line(corpus, host, args, message):
    r = run(*[a.format(root=corpus) for a in args])
    assert r.exit_code == 1
    assert r.output.startswith(message) and len(r.output.strip().splitlines()) == 1, r.output


def test_folder_and_csv_datasets(tmp_path, host):
    for rel in ("angry/s1_a.wav", "angry/s2_b.wav", "calm/s1_c.wav", "calm/s2_d.wav", "calm/s3_e.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / rel, np.full(400, 0.1, dtype=np.float32), 16000)
    r = run("-d", "folder", "--data-root", str(tmp_path), "-o", "speaker_regex=^(?P<speaker>s\\d)_", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["labels"] == {"angry": 2, "calm": 3} and data["speakers"] == {"s1": 2, "s2": 2, "s3": 1}
    (tmp_path / "list.csv").write_text("path,label,speaker,group\nangry/s1_a.wav,angry,s1,A\n"
                                       "calm/s1_c.wav,calm,s1,B\n")
    r = run("-d", "csv", "--data-root", str(tmp_path / "list.csv"))
    assert r.exit_code == 0, r.output
    assert "[speaker-in-several-groups] 1 speaker(s) occur in several groups" in r.output
    assert "[small-class]" in r.output and "s1: A, B" in r.output


def test_data_group_is_registered():
    r = CliRunner().invoke(cli, ["data", "--help"])
    assert r.exit_code == 0 and "summary" in r.output
