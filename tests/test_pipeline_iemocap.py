"""The whole pipeline on a miniature IEMOCAP in the real layout: speakers, sessions as folds, reports."""

from __future__ import annotations

import json

import pytest
from iemocap_tree import make_iemocap_tree

from sertk.experiment.config import RunConfig
from sertk.experiment.pipeline import run_experiment


@pytest.fixture
def iemocap_host(builtin_host):
    return builtin_host


@pytest.mark.parametrize("protocol, n_folds", [("loso", 5), ("loso-speaker", 10)])
def test_speaker_independent_protocols_on_miniature_iemocap(iemocap_host, tmp_path, protocol, n_folds):
    root = make_iemocap_tree(tmp_path)
    config = RunConfig.from_dict({
        "dataset": {"name": "iemocap", "root": str(root)},
        "featurizer": {"name": "handcrafted"},
        "classifier": {"name": "logreg"},
        "protocol": {"name": protocol},
        "plots": False, "out": str(tmp_path / "run"),
    })
    report = run_experiment(config).report
    assert report["dataset"]["n_speakers"] == 10 and report["dataset"]["n_groups"] == 5
    assert report["labels"] == ["ang", "hap", "neu", "sad"]  # the paper's 4-class set, exc merged into hap
    assert report["protocol"]["kind"] == "speaker-independent" and report["protocol"]["n_folds"] == n_folds
    assert report["n_test"] == report["dataset"]["n_utterances"]  # every utterance tested exactly once
    assert not any("in both training and test" in w for w in report["warnings"])
    if protocol == "loso":
        assert [f["name"] for f in report["folds"]] == [f"group-Session{i}" for i in range(1, 6)]
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["protocol"] == report["protocol"]
    assert "speaker-independent" in (tmp_path / "run" / "report.md").read_text()


def test_paper_preset_on_miniature_iemocap_compares_with_the_paper(iemocap_host, tmp_path, monkeypatch):
    """--preset paper with a stand-in classifier still names the protocol; the comparison line needs the real
    configuration, so it must be absent when the classifier differs."""
    from sertk.experiment.config import preset

    root = make_iemocap_tree(tmp_path)
    config = preset("paper")
    config.update({"featurizer": {"name": "handcrafted"}, "classifier": {"name": "logreg"}, "plots": False,
                   "out": str(tmp_path / "run")})
    config.data_root = str(root)
    report = run_experiment(config).report
    assert report["protocol"]["name"] == "sd-random" and "paper_comparison" not in report


def test_paper_comparison_line_when_the_configuration_matches(iemocap_host, tmp_path, monkeypatch):
    import sertk.experiment.pipeline

    monkeypatch.setattr(sertk.experiment.pipeline, "is_paper_configuration", lambda config: True)
    root = make_iemocap_tree(tmp_path)
    config = RunConfig.from_dict({"dataset": {"name": "iemocap", "root": str(root)},
                                  "featurizer": {"name": "handcrafted"}, "classifier": {"name": "logreg"},
                                  "plots": False, "out": str(tmp_path / "run")})
    report = run_experiment(config).report
    assert report["paper_comparison"].startswith("The paper reports 80.58 % accuracy in this configuration")
    assert f"this run: {100 * report['accuracy']:.2f} %" in report["paper_comparison"]
    assert report["paper_comparison"] in (tmp_path / "run" / "report.md").read_text()
