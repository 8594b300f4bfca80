"""The experiment pipeline on the toy plugin: reports, schema, repeatability, cache use, protocols."""

from __future__ import annotations

import json

import numpy as np
import pytest
from toy_plugin import ToyFeaturizer

from sertk.errors import ConfigError, DatasetError
from sertk.experiment.config import RunConfig, load_config
from sertk.experiment.pipeline import run_experiment
from sertk.experiment.report import REPORT_KEYS


def _config(root, out, **extra) -> RunConfig:
    data = {"dataset": {"name": "toy", "root": str(root)}, "featurizer": {"name": "toy-bands"},
            "classifier": {"name": "sklearn-nusvc", "options": {"nu": 0.1}}, "out": str(out)}
    data.update(extra)
    return RunConfig.from_dict(data)


def test_report_schema_and_files(toy_host, toy_corpus, tmp_path):
    result = run_experiment(_config(toy_corpus, tmp_path / "run"))
    out = tmp_path / "run"
    for name in ("report.json", "report.md", "confusion_matrix.png", "config.toml", "predictions.csv"):
        assert (out / name).stat().st_size > 0
    assert not list(out.glob(".*.tmp")) and not list(out.glob(".*"))  # no temporary leftovers
    report = json.loads((out / "report.json").read_text())
    assert set(REPORT_KEYS) <= set(report)
    labels = report["labels"]
    assert labels == ["ang", "hap", "neu", "sad"]
    assert report["n_train"] + report["n_test"] == 80 and report["n_test"] == 16
    assert set(report["per_class"]) == set(labels)
    for scores in report["per_class"].values():
        assert set(scores) == {"precision", "recall", "f1", "support"}
    assert sum(s["support"] for s in report["per_class"].values()) == report["n_test"]
    cm = np.array(report["confusion_matrix"])
    assert cm.shape == (4, 4) and cm.sum() == report["n_test"]
    assert report["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert report["unweighted_accuracy"] == pytest.approx(np.mean(np.diag(cm) / cm.sum(axis=1)))
    assert report["accuracy"] >= 0.75  # tones of four pitches: any working pipeline separates them
    assert report["protocol"] == {"name": "sd-random", "kind": "speaker-dependent", "n_folds": 1,
                                  "speaker_independent": False, "repeats": 1}
    assert report["config"]["classifier"] == {"name": "sklearn-nusvc", "options": {"nu": 0.1}}
    assert report["featurizer"]["fingerprint"] == {"name": "toy-bands", "n_bands": 16, "version": 1}
    md = (out / "report.md").read_text()
    assert "| Emotion | Precision (%) | Recall (%) | F1-score (%) | Support |" in md
    assert "Unweighted accuracy (UA" in md and "sd-random** (speaker-dependent)" in md
    predictions = (out / "predictions.csv").read_text().splitlines()
    assert predictions[0] == "id,fold,speaker,label,predicted" and len(predictions) == 1 + report["n_test"]
    assert result.report["accuracy"] == report["accuracy"]


def test_saved_config_repeats_the_run_exactly(toy_host, toy_corpus, tmp_path):
    first = run_experiment(_config(toy_corpus, tmp_path / "a", seed=5)).report
    config = load_config(tmp_path / "a" / "config.toml")
    config.out = str(tmp_path / "b")
    second = run_experiment(config).report
    assert (tmp_path / "a" / "predictions.csv").read_text() == (tmp_path / "b" / "predictions.csv").read_text()
    for key in ("accuracy", "unweighted_accuracy", "confusion_matrix", "per_class"):
        assert first[key] == second[key]


def test_second_run_is_served_from_the_cache(toy_host, toy_corpus, tmp_path):
    ToyFeaturizer.calls = 0
    first = run_experiment(_config(toy_corpus, tmp_path / "a", cache_dir=str(tmp_path / "cache"))).report
    calls = ToyFeaturizer.calls
    assert calls > 0 and first["featurizer"]["n_computed"] == 80
    second = run_experiment(_config(toy_corpus, tmp_path / "b", cache_dir=str(tmp_path / "cache"))).report
    assert ToyFeaturizer.calls == calls and second["featurizer"]["n_cached"] == 80
    assert first["accuracy"] == second["accuracy"]


def test_speaker_independent_protocol_reports_folds(toy_host, toy_corpus, tmp_path):
    report = run_experiment(_config(toy_corpus, tmp_path / "run", protocol={"name": "loso"})).report
    assert report["protocol"]["kind"] == "speaker-independent" and report["protocol"]["n_folds"] == 2
    assert [f["name"] for f in report["folds"]] == ["group-g0", "group-g1"]
    assert report["n_test"] == 80
    assert set(report["fold_summary"]) == {"accuracy", "unweighted_accuracy", "macro_f1"}
    assert "## Per fold" in (tmp_path / "run" / "report.md").read_text()
    assert not any("in both training and test" in w for w in report["warnings"])
    # per speaker and per group: the same numbers as counting predictions.csv by hand
    import csv

    with open(tmp_path / "run" / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for speaker, entry in report["per_speaker"].items():
        mine = [r for r in rows if r["speaker"] == speaker]
        assert entry["n"] == len(mine)
        assert entry["accuracy"] == pytest.approx(sum(r["label"] == r["predicted"] for r in mine) / len(mine))
    assert sum(e["n"] for e in report["per_speaker"].values()) == 80
    assert {k: v["n"] for k, v in report["per_group"].items()} == {"g0": 40, "g1": 40}
    text = (tmp_path / "run" / "report.md").read_text()
    assert "## Per speaker" in text and "## Per group" in text


def test_unreadable_audio_stops_the_run_or_is_skipped(toy_host, toy_corpus, tmp_path):
    (toy_corpus / "spk1_hap_2.wav").write_bytes(b"not a wav file")
    with pytest.raises(DatasetError, match=r"1 audio file\(s\) could not be read, e.g. .*spk1_hap_2.wav"):
        run_experiment(_config(toy_corpus, tmp_path / "run"))
    assert not (tmp_path / "run" / "report.json").exists()
    report = run_experiment(_config(toy_corpus, tmp_path / "run", skip_bad_audio=True)).report
    assert report["dataset"]["n_utterances"] == 79
    assert any("spk1_hap_2.wav" in w for w in report["warnings"])


def test_bad_component_options_fail_before_any_work(toy_host, toy_corpus, tmp_path):
    ToyFeaturizer.calls = 0
    config = _config(toy_corpus, tmp_path / "run", classifier={"name": "sklearn-nusvc", "options": {"nuu": 1}})
    with pytest.raises(ConfigError, match="classifier 'sklearn-nusvc' has no option 'nuu'; its options are: .*nu"):
        run_experiment(config)
    assert ToyFeaturizer.calls == 0


def test_missing_root_is_a_clear_error(toy_host, tmp_path):
    config = _config(tmp_path, tmp_path / "run")
    config.data_root = None
    with pytest.raises(ConfigError, match="dataset 'toy' needs its files: pass --data-root"):
        run_experiment(config)


def test_repeats_give_mean_and_std(toy_host, toy_corpus, tmp_path):
    report = run_experiment(_config(toy_corpus, tmp_path / "run", repeats=3, plots=False)).report
    assert [f["seed"] for f in report["folds"]] == [0, 1, 2]
    assert report["protocol"]["n_folds"] == 3 and report["n_test"] == 48
    assert set(report["fold_summary"]["accuracy"]) == {"mean", "std"}
    assert "mean ± std" in (tmp_path / "run" / "report.md").read_text()


def test_tsne_figures_are_drawn(toy_host, toy_corpus, tmp_path):
    result = run_experiment(_config(toy_corpus, tmp_path / "run"))
    for key in ("tsne_emotion", "tsne_speaker"):
        assert result.paths[key].stat().st_size > 10_000
    assert result.report["timings"]["plots_s"] > 0


def test_trained_pipeline_is_saved_and_predicts_like_the_run(toy_host, toy_corpus, tmp_path):
    from sertk.experiment.model import load_model

    config = _config(toy_corpus, tmp_path / "run", classifier={"name": "toy-centroid"}, plots=False)
    report = run_experiment(config).report
    assert report["model"]["trained_on"].startswith("the training split")
    model = load_model(tmp_path / "run" / "model")
    assert model.labels == report["labels"] and model.scaler is not None
    import csv

    from sertk.featurization.embed import embed_paths

    rows = list(csv.DictReader(open(tmp_path / "run" / "predictions.csv")))
    featurizer = model.build_featurizer()
    paths = [toy_corpus / f"{row['id']}.wav" for row in rows]
    X = embed_paths(featurizer, paths, cache=None).embeddings
    predicted, scores, kind = model.scores(X)
    assert predicted.tolist() == [row["predicted"] for row in rows]
    assert scores.shape == (len(rows), 4) and kind == "decision"


def test_a_classifier_without_save_leaves_no_model(toy_host, toy_corpus, tmp_path, monkeypatch):
    from sertk_plugins.classifiers.sklearn_reference import SklearnNuSVC

    run_experiment(_config(toy_corpus, tmp_path / "run", classifier={"name": "toy-centroid"}, plots=False))
    assert (tmp_path / "run" / "model" / "model.json").exists()
    monkeypatch.setattr(SklearnNuSVC, "save", None)  # a classifier without save()
    report = run_experiment(_config(toy_corpus, tmp_path / "run", plots=False), overwrite=True).report
    assert not (tmp_path / "run" / "model").exists()
    assert any("cannot be saved without pickle" in w for w in report["warnings"])


def test_presets_and_the_paper_comparison():
    from sertk.experiment.config import is_paper_configuration, preset

    paper = preset("paper")
    assert (paper.dataset.name, paper.featurizer.name, paper.classifier.name, paper.protocol.name) == (
        "iemocap", "imagebind", "nusvm", "sd-random")
    assert paper.classifier.options["nu"] == 0.1 and paper.protocol.options["test_size"] == 0.2
    assert is_paper_configuration(paper)
    si = preset("paper-si")
    assert si.protocol.name == "loso" and not is_paper_configuration(si)
    paper.classifier.options["nu"] = 0.2
    assert not is_paper_configuration(paper)
    with pytest.raises(ConfigError, match="unknown preset 'papers'; known presets: paper, paper-si"):
        preset("papers")


def test_identical_audio_on_both_sides_is_flagged(toy_host, toy_corpus, tmp_path):
    """The same recording under many ids: a random split puts copies on both sides, and the report says so."""
    import shutil

    lines = (toy_corpus / "labels.csv").read_text().splitlines()
    for k in range(20):
        shutil.copy(toy_corpus / "spk0_ang_0.wav", toy_corpus / f"copy{k}.wav")
        lines.append(f"copy{k},copy{k}.wav,ang,spk0")
    (toy_corpus / "labels.csv").write_text("\n".join(lines) + "\n")
    report = run_experiment(_config(toy_corpus, tmp_path / "run", plots=False)).report
    assert any("identical audio are in both training and test sets" in w for w in report["warnings"])
