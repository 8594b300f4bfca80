"""``nusvm-tuned``: ν and γ chosen by inner cross-validation over sertk's NuSVC, saved without pickle."""

from __future__ import annotations

import csv
import json
import logging
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from sertk.cli.main import cli
from sertk.errors import ConfigError, ModelError
from sertk.plugins import get_component
from sertk.svm import NuSVC
from sertk_plugins.classifiers.nusvm_tuned import HEADER, INNER, TunedNuSVC, scale_gamma


@pytest.fixture(scope="module")
def data():
    """Three imbalanced, overlapping Gaussian classes."""
    rng = np.random.default_rng(0)
    sizes = [40, 30, 20]
    X = np.vstack([rng.normal(1.2 * c, 1.0, (n, 4)) for c, n in enumerate(sizes)])
    y = np.repeat(np.array(["ang", "neu", "sad"]), sizes)
    return X, y


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return TunedNuSVC(nu=[0.05, 0.2, 0.5], gamma_scale=[0.25, 1.0, 4.0], cv=3, random_state=0).fit(X, y)


def test_chooses_the_argmax_of_the_cv_results_and_refits_a_plain_nusvc(data, fitted):
    X, y = data
    rows = fitted.cv_results_
    assert len(rows) == 9 and [(r["nu"], r["gamma_scale"]) for r in rows[:3]] == [(0.05, 0.25), (0.05, 1.0),
                                                                                   (0.05, 4.0)]
    best = rows[int(np.nanargmax([r["mean_score"] for r in rows]))]
    assert fitted.best_params_ == {"nu": best["nu"], "gamma_scale": best["gamma_scale"], "gamma": best["gamma"]}
    assert fitted.best_score_ == best["mean_score"] and best["rank"] == 1
    assert fitted.best_params_["gamma"] == fitted.best_params_["gamma_scale"] * scale_gamma(X)
    json.dumps(rows, allow_nan=False)  # a plain JSON-able summary
    plain = NuSVC(nu=best["nu"], gamma=best["gamma"]).fit(X, y)
    assert isinstance(fitted.best_estimator_, NuSVC)
    np.testing.assert_array_equal(fitted.predict(X), plain.predict(X))
    np.testing.assert_array_equal(fitted.decision_function(X), plain.decision_function(X))
    assert fitted.score(X, y) == plain.score(X, y)
    np.testing.assert_array_equal(fitted.classes_, ["ang", "neu", "sad"])


def test_the_cv_scores_are_balanced_accuracy_on_seeded_stratified_folds(data, fitted):
    X, y = data
    row = fitted.cv_results_[4]
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(X, y)
    scores = []
    for train, test in folds:
        pred = NuSVC(nu=row["nu"], gamma=row["gamma"]).fit(X[train], y[train]).predict(X[test])
        scores.append(np.mean([np.mean(pred[y[test] == c] == c) for c in np.unique(y)]))
    assert row["mean_score"] == pytest.approx(np.mean(scores), abs=1e-12)
    assert row["std_score"] == pytest.approx(np.std(scores), abs=1e-12)


def test_a_clear_cut_gamma_is_found():
    """Two concentric rings: a nearly linear kernel (tiny γ) cannot separate them, the "scale" γ can."""
    rng = np.random.default_rng(1)
    angle = rng.uniform(0, 2 * np.pi, 120)
    radius = np.repeat([1.0, 3.0], 60) + rng.normal(0, 0.1, 120)
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    y = np.repeat([0, 1], 60)
    model = TunedNuSVC(nu=[0.1], gamma_scale=[1e-4, 1.0], cv=3, scoring="accuracy", random_state=0).fit(X, y)
    assert model.best_params_["gamma_scale"] == 1.0 and model.best_score_ > 0.95
    assert model.cv_results_[0]["mean_score"] < 0.8


def test_infeasible_nu_is_skipped(data, caplog):
    X, y = data  # smallest pair: 20 vs 40 -> largest feasible nu about 2*13/(13+27) in the inner folds
    with caplog.at_level(logging.INFO, logger="sertk_plugins.classifiers.nusvm_tuned"):
        model = TunedNuSVC(nu=[0.1, 0.9], gamma_scale=[1.0], cv=3, random_state=0).fit(X, y)
    assert model.best_params_["nu"] == 0.1
    assert model.cv_results_[1]["mean_score"] is None and model.cv_results_[1]["std_score"] is None
    assert "skipped nu [0.9]" in caplog.text and "chose nu=0.1" in caplog.text


def test_every_nu_infeasible_is_a_clear_error(data):
    X, y = data
    with pytest.raises(ValueError, match=r"nu \[0\.8, 0\.9\] are infeasible .* largest feasible nu is 0\.6"):
        TunedNuSVC(nu=[0.8, 0.9], gamma_scale=[1.0], cv=3, random_state=0).fit(X, y)


def test_too_few_samples_for_the_folds(data):
    X, y = data
    with pytest.raises(ValueError, match="class 'sad' has only 20 training samples, fewer than cv=25"):
        TunedNuSVC(cv=25).fit(X, y)


@pytest.mark.parametrize("options, message", [
    ({"nu": []}, "option 'nu' is empty"),
    ({"nu": [0.1, 1.5]}, "option 'nu' must list numbers in \\(0, 1\\]"),
    ({"nu": ["a"]}, "option 'nu' must list numbers"),
    ({"nu": [0.1, 0.1]}, "option 'nu' lists a value twice"),
    ({"gamma_scale": [0.0]}, "option 'gamma_scale' must list numbers > 0"),
    ({"gamma_scale": [True]}, "option 'gamma_scale' must list numbers"),
    ({"cv": 1}, "option 'cv'"),
    ({"cv": 2.5}, "option 'cv'"),
    ({"scoring": "f1"}, "option 'scoring' must be one of 'unweighted_accuracy', 'accuracy'"),
    ({"random_state": -1}, "option 'random_state'"),
    ({"n_jobs": 0}, "option 'n_jobs'"),
    ({"cache_size": -5}, "option 'cache_size'"),
])
def test_bad_options_name_the_option(options, message, data):
    with pytest.raises(ConfigError, match="^classifier 'nusvm-tuned': " + message):
        TunedNuSVC(**options)
    model = TunedNuSVC().set_params(**options)  # set_params skips __init__: fit checks again
    with pytest.raises(ConfigError, match=message):
        model.fit(*data)


def test_a_single_number_is_a_one_value_grid(data):
    model = TunedNuSVC(nu=0.2, gamma_scale=2, cv=3, random_state=0).fit(*data)
    assert model.best_params_["nu"] == 0.2 and model.best_params_["gamma_scale"] == 2.0


def test_get_params_and_clone():
    model = TunedNuSVC(nu=[0.1, 0.2], cv=3, random_state=7, n_jobs=2)
    params = model.get_params()
    assert params == {"nu": [0.1, 0.2], "gamma_scale": [0.25, 0.5, 1.0, 2.0, 4.0], "cv": 3,
                      "scoring": "unweighted_accuracy", "random_state": 7, "n_jobs": 2, "cache_size": 1024}
    copy = clone(model)
    assert copy.get_params() == params and not hasattr(copy, "best_estimator_")


def test_registered_as_a_classifier():
    component = get_component("classifier", "nusvm-tuned")
    assert component.cls is TunedNuSVC and "inner cross-validation" in component.description


def test_save_load_round_trip(data, fitted, tmp_path):
    X, y = data
    fitted.save(tmp_path / "tuned.model")
    loaded = TunedNuSVC.load(tmp_path / "tuned.model")
    assert loaded.get_params() == fitted.get_params()
    assert loaded.best_params_ == fitted.best_params_ and loaded.best_score_ == fitted.best_score_
    assert loaded.cv_results_ == fitted.cv_results_ and loaded.n_features_in_ == 4
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(loaded.decision_function(X), fitted.decision_function(X))
    with zipfile.ZipFile(tmp_path / "tuned.model") as zf:
        assert sorted(zf.namelist()) == sorted([HEADER, INNER])
    assert [p.name for p in tmp_path.iterdir()] == ["tuned.model"]  # no temporary sibling left


def _rewrite(src, dst, header=None, inner=None):
    with zipfile.ZipFile(src) as zf:
        old_header, old_inner = json.loads(zf.read(HEADER)), zf.read(INNER)
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr(HEADER, json.dumps(old_header if header is None else header(old_header)))
        zf.writestr(INNER, old_inner if inner is None else inner)


def _set(path, value):
    def edit(header):
        target = header
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return header
    return edit


@pytest.mark.parametrize("header, inner, message", [
    (_set(["format"], "sertk.nusvm"), None, "is not a 'nusvm-tuned' model file"),
    (_set(["format_version"], 99), None, "format version 99"),
    (_set(["best_params", "nu"], 0.123), None, "do not match the stored NuSVC"),
    (_set(["best_score"], "high"), None, "best_score is 'high'"),
    (_set(["cv_results"], []), None, "cv_results is not a non-empty list"),
    (_set(["params", "cv"], 0), None, "option 'cv'"),
    (None, b"garbage", "its best.nusvm is damaged"),
])
def test_damaged_files_are_model_errors_naming_the_file(header, inner, message, fitted, tmp_path):
    fitted.save(tmp_path / "good.model")
    bad = tmp_path / "bad.model"
    _rewrite(tmp_path / "good.model", bad, header, inner)
    with pytest.raises(ModelError, match=message) as info:
        TunedNuSVC.load(bad)
    assert str(bad) in str(info.value)


def test_garbage_missing_and_incomplete_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        TunedNuSVC.load(tmp_path / "missing.model")
    (tmp_path / "garbage.model").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="garbage.model is not a 'nusvm-tuned' model file"):
        TunedNuSVC.load(tmp_path / "garbage.model")
    with zipfile.ZipFile(tmp_path / "empty.model", "w") as zf:
        zf.writestr("other.txt", "")
    with pytest.raises(ModelError, match="empty.model is not a 'nusvm-tuned' model file"):
        TunedNuSVC.load(tmp_path / "empty.model")
    with pytest.raises(ModelError, match="unfitted"):
        TunedNuSVC().save(tmp_path / "unfitted.model")


def test_run_then_predict_on_the_demo(builtin_host, tmp_path):
    from sertk_plugins.datasets.demo import DemoDataset

    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(cli, ["--no-progress", "run", "--classifier", "nusvm-tuned", "-o", "classifier.nu=[0.1,0.3]",
                                 "-o", "classifier.gamma_scale=[1.0]", "-o", "classifier.cv=3", "--no-plots",
                                 "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "demo · handcrafted · nusvm-tuned" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["path"] == "model"
    meta = json.loads((out / "model" / "model.json").read_text())
    assert meta["classifier"] == {"name": "nusvm-tuned", "options": {"nu": [0.1, 0.3], "gamma_scale": [1.0], "cv": 3,
                                                                     "random_state": 0}}
    model = TunedNuSVC.load(out / "model" / "classifier.model")
    assert model.get_params()["nu"] == [0.1, 0.3] and model.best_params_["nu"] in (0.1, 0.3)
    with open(out / "predictions.csv", newline="") as fh:
        tested = list(csv.DictReader(fh))
    paths = {u.id: str(u.path) for u in DemoDataset().utterances()}
    files = [paths[row["id"]] for row in tested]
    predicted = runner.invoke(cli, ["predict", str(out / "model"), *files, "--json"], catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in predicted.output.splitlines()]
    assert [r["path"] for r in rows] == files
    assert [r["emotion"] for r in rows] == [row["predicted"] for row in tested]
    assert all(r["score_kind"] == "decision" for r in rows)
