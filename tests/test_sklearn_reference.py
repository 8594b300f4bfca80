"""The scikit-learn reference classifiers are saved and loaded with skops, trusting only their own class."""

from __future__ import annotations

import csv
import json
import logging
import os
import zipfile

import numpy as np
import pytest
import sklearn
import skops.io as sio
from click.testing import CliRunner
from sklearn.base import clone
from sklearn.svm import NuSVC

from sertk.cli.main import cli
from sertk.errors import ModelError
from sertk_plugins.classifiers.sklearn_reference import (
    NOTE,
    SklearnLogisticRegression,
    SklearnNuSVC,
    SklearnSVC,
)

MODULE = "sertk_plugins.classifiers.sklearn_reference"
CLASSES = [SklearnNuSVC, SklearnSVC, SklearnLogisticRegression]
LABELS = np.array(["ang", "hap", "neu", "sad"])

# scikit-learn 1.9 deprecates SVC(probability=True); it still works and we still test it
pytestmark = pytest.mark.filterwarnings("ignore:The `probability` parameter:FutureWarning")


@pytest.fixture(scope="module")
def data():
    """4 classes, 60 samples, 8 features; the classes overlap, so every model has many support vectors."""
    rng = np.random.default_rng(7)
    y = LABELS[np.arange(60) % 4]
    X = rng.normal(size=(60, 8)) + 0.8 * (np.arange(60) % 4)[:, None] * rng.normal(size=8)[None, :]
    return X, y


def _fit(cls, data, **options):
    X, y = data
    return cls(random_state=0, **options).fit(X, y)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_the_trusted_list_is_the_class_and_all_a_fitted_model_needs(cls, data, tmp_path):
    assert cls.trusted_types() == [f"{MODULE}.{cls.__name__}"]
    variants = [{}, {"class_weight": "balanced"}]
    if cls is not SklearnLogisticRegression:
        variants += [{"probability": True}, {"kernel": "linear"}]
    X, _ = data
    for i, options in enumerate(variants):
        path = tmp_path / f"{i}.model"
        _fit(cls, data, **options).save(path)
        assert sio.get_untrusted_types(file=path) == cls.trusted_types(), options
    binary = cls().fit(X[:20], np.array(["neg", "pos"])[np.arange(20) % 2])
    binary.save(tmp_path / "binary.model")
    assert sio.get_untrusted_types(file=tmp_path / "binary.model") == cls.trusted_types()
    assert cls.load(tmp_path / "binary.model").predict(X).tolist() == binary.predict(X).tolist()


@pytest.mark.parametrize("cls, options", [
    (SklearnNuSVC, {}), (SklearnNuSVC, {"probability": True, "nu": 0.3}), (SklearnSVC, {"C": 2.0}),
    (SklearnSVC, {"probability": True, "kernel": "poly", "degree": 2}), (SklearnLogisticRegression, {"C": 0.5}),
], ids=lambda v: getattr(v, "name", None) or ",".join(f"{k}={x}" for k, x in v.items()) or "defaults")
def test_round_trip_gives_identical_predictions(cls, options, data, tmp_path):
    X, y = data
    model = _fit(cls, data, **options)
    path = tmp_path / "classifier.model"
    model.save(path)
    loaded = cls.load(path)
    assert type(loaded) is cls
    assert loaded.get_params() == model.get_params()
    assert loaded.get_params()["random_state"] == 0
    for key, value in options.items():
        assert loaded.get_params()[key] == value
    assert loaded.classes_.tolist() == ["ang", "hap", "neu", "sad"]
    predicted = loaded.predict(X)
    assert predicted.tolist() == model.predict(X).tolist()
    assert (predicted == y).mean() > 0.5  # a real model, not a constant
    assert np.array_equal(loaded.decision_function(X), model.decision_function(X))
    assert loaded.decision_function(X).shape == (60, 4)
    if cls is SklearnLogisticRegression or options.get("probability"):
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    again = clone(loaded)
    assert type(again) is cls and again.get_params() == model.get_params()
    assert again.fit(X, y).predict(X).tolist() == model.predict(X).tolist()
    with zipfile.ZipFile(path) as zf:
        note = json.loads(zf.read(NOTE))
    assert note["sklearn_version"] == sklearn.__version__ and note["estimator"] == f"{MODULE}.{cls.__name__}"


def test_default_nu_is_the_papers(data, tmp_path):
    model = _fit(SklearnNuSVC, data)
    model.save(tmp_path / "m")
    assert SklearnNuSVC.load(tmp_path / "m").nu == 0.1


class _Note:
    """Not a type anyone trusts."""

    def __init__(self):
        self.text = "hello"


@pytest.mark.parametrize("extra, untrusted", [(_Note(), f"{__name__}._Note"), (os.system, "system")])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_a_file_with_an_untrusted_type_is_refused(cls, extra, untrusted, data, tmp_path):
    model = _fit(cls, data)
    model.extra_ = extra
    path = tmp_path / "evil.model"
    sio.dump(model, path)
    assert untrusted in " ".join(sio.get_untrusted_types(file=path))
    with pytest.raises(ModelError) as info:
        cls.load(path)
    message = str(info.value)
    assert str(path) in message and "does not trust" in message and untrusted in message
    assert "re-run `sertk run`" in message


def test_a_file_of_another_class_is_refused(data, tmp_path):
    X, y = data
    plain = tmp_path / "plain.model"
    sio.dump(NuSVC(nu=0.1).fit(X, y), plain)  # scikit-learn's own class: trusted by skops, but not ours
    with pytest.raises(ModelError, match=r"holds a sklearn\.svm\._classes\.NuSVC, not a "
                                         rf"{MODULE}\.SklearnNuSVC") as info:
        SklearnNuSVC.load(plain)
    assert str(plain) in str(info.value)
    svc = tmp_path / "svc.model"
    _fit(SklearnSVC, data).save(svc)
    with pytest.raises(ModelError, match=rf"holds a {MODULE}\.SklearnSVC, not a {MODULE}\.SklearnNuSVC"):
        SklearnNuSVC.load(svc)
    assert type(SklearnSVC.load(svc)) is SklearnSVC


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_garbage_and_missing_files_raise_model_error_naming_the_path(cls, tmp_path):
    missing = tmp_path / "nope" / "classifier.model"
    with pytest.raises(ModelError, match="does not exist") as info:
        cls.load(missing)
    assert str(missing) in str(info.value)
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"this is not a model\x00\x01" * 10)
    with pytest.raises(ModelError, match="not a skops archive") as info:
        cls.load(garbage)
    assert str(garbage) in str(info.value) and "re-run `sertk run`" in str(info.value)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ModelError, match="not a skops archive") as info:
        cls.load(other_zip)
    assert str(other_zip) in str(info.value)
    folder = tmp_path / "a-folder.model"
    folder.mkdir()
    with pytest.raises(ModelError, match="does not exist"):
        cls.load(folder)


@pytest.mark.parametrize("attribute, value, message", [
    ("_n_support", np.array([1, 1, 1, 1], dtype=np.int32), "_n_support [1, 1, 1, 1] does not add up to"),
    ("_dual_coef_", np.zeros((3, 2)), "_dual_coef_ is float64 (3, 2), expected float64 (3, "),
    ("support_vectors_", np.zeros((5, 8), dtype=np.float32),
     "support_vectors_ is float32 (5, 8), expected float64 (n, 8)"),
    ("_intercept_", np.zeros(7), "_intercept_ is float64 (7,), expected float64 (6,)"),
    ("kernel", np.add, "attribute 'kernel' is callable"),
    ("kernel", "precomputed", "kernel is 'precomputed'"),
    ("kernel", np.array(["rbf", "rbf"]), "kernel is array(['rbf', 'rbf']"),
    ("classes_", np.array(["ang"]), "classes_ holds 1 class(es)"),
    ("support_", np.full(1, 10**6, dtype=np.int32), "support_ is int32 (1,), expected int32 ("),
    ("_impl", "epsilon_svr", "attribute '_impl' shadows the class's own"),
    ("_sparse", True, "claims sparse training data"),
])
def test_damaged_svm_files_are_refused_before_libsvm_sees_them(attribute, value, message, data, tmp_path):
    model = _fit(SklearnNuSVC, data)
    setattr(model, attribute, value)
    path = tmp_path / "damaged.model"
    sio.dump(model, path)  # only trusted types: skops alone would load it
    with pytest.raises(ModelError) as info:
        SklearnNuSVC.load(path)
    assert message in str(info.value) and "is damaged or was not written by sertk" in str(info.value)
    assert str(path) in str(info.value)


def test_damaged_logreg_file_is_refused(data, tmp_path):
    model = _fit(SklearnLogisticRegression, data)
    model.coef_ = model.coef_[:, :5]
    sio.dump(model, tmp_path / "m")
    with pytest.raises(ModelError, match=r"coef_ is float64 \(4, 5\), expected kind 'f' \(4, 8\)"):
        SklearnLogisticRegression.load(tmp_path / "m")


def test_save_is_atomic(data, tmp_path, monkeypatch):
    model = _fit(SklearnNuSVC, data)
    path = tmp_path / "classifier.model"
    model.save(path)
    before = path.read_bytes()

    def broken_dump(obj, file, **kwargs):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(sio, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        _fit(SklearnNuSVC, data, nu=0.3).save(path)
    assert path.read_bytes() == before  # the old file is untouched
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "new.model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classifier.model"]  # no temporary leftovers
    monkeypatch.undo()
    assert SklearnNuSVC.load(path).nu == 0.1


def test_saving_an_unfitted_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot save an unfitted 'logreg' classifier"):
        SklearnLogisticRegression().save(tmp_path / "m")
    assert not list(tmp_path.iterdir())


def test_another_scikit_learn_version_warns(data, tmp_path, monkeypatch, caplog):
    X, _ = data
    model = _fit(SklearnSVC, data)
    monkeypatch.setattr(sklearn, "__version__", "0.99.0")
    model.save(tmp_path / "old.model")
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING):
        loaded = SklearnSVC.load(tmp_path / "old.model")
    assert loaded.predict(X).tolist() == model.predict(X).tolist()
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert str(tmp_path / "old.model") in record.getMessage()
    assert f"written with scikit-learn 0.99.0 and is loaded with {sklearn.__version__}" in record.getMessage()
    caplog.clear()
    model.save(tmp_path / "same.model")
    with caplog.at_level(logging.WARNING):
        SklearnSVC.load(tmp_path / "same.model")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_file_another_version_cannot_load_is_a_model_error(data, tmp_path, monkeypatch):
    model = _fit(SklearnNuSVC, data)
    monkeypatch.setattr(sklearn, "__version__", "0.99.0")
    model.save(tmp_path / "old.model")
    monkeypatch.undo()

    def incompatible(self, state):  # what an estimator whose internals changed does
        raise AttributeError("'SklearnNuSVC' object has no attribute '_old_internal'")

    monkeypatch.setattr(SklearnNuSVC, "__setstate__", incompatible)
    with pytest.raises(ModelError) as info:
        SklearnNuSVC.load(tmp_path / "old.model")
    message = str(info.value)
    assert str(tmp_path / "old.model") in message and "_old_internal" in message
    assert f"written with scikit-learn 0.99.0 and this is scikit-learn {sklearn.__version__}" in message
    assert "install the version it was written with, or re-run `sertk run`" in message


def _read_predictions(out):
    with open(out / "predictions.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _demo_files(ids):
    from sertk_plugins.datasets.demo import DemoDataset

    paths = {u.id: str(u.path) for u in DemoDataset().utterances()}
    return [paths[i] for i in ids]


def test_run_then_predict_with_sklearn_nusvc_on_the_demo(builtin_host, tmp_path):
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(cli, ["--no-progress", "run", "--classifier", "sklearn-nusvc", "--no-plots", "--out",
                                 str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "demo · handcrafted · sklearn-nusvc · sd-random" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["path"] == "model"
    assert not any("cannot be saved" in w for w in report["warnings"])
    assert sio.get_untrusted_types(file=out / "model" / "classifier.model") == [f"{MODULE}.SklearnNuSVC"]
    tested = _read_predictions(out)
    assert len(tested) == report["n_test"] == 29
    files = _demo_files([row["id"] for row in tested])
    predicted = runner.invoke(cli, ["predict", str(out / "model"), *files, "--json"], catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in predicted.output.splitlines()]
    assert [r["path"] for r in rows] == files
    assert [r["emotion"] for r in rows] == [row["predicted"] for row in tested]
    assert sum(r["emotion"] == row["label"] for r, row in zip(rows, tested)) == round(report["accuracy"] * 29)
    assert all(r["score_kind"] == "decision" and set(r["scores"]) == set(LABELS) for r in rows)
    assert all(max(r["scores"], key=r["scores"].get) == r["emotion"] for r in rows)


@pytest.mark.parametrize("classifier", ["sklearn-svc", "logreg"])
def test_run_then_predict_on_the_toy_corpus(classifier, toy_host, toy_corpus, tmp_path):
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(cli, ["--no-progress", "run", "--dataset", "toy", "--data-root", str(toy_corpus),
                                 "--featurizer", "toy-bands", "--classifier", classifier, "--no-plots", "--out",
                                 str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    tested = _read_predictions(out)
    files = [str(toy_corpus / f"{row['id']}.wav") for row in tested]
    predicted = runner.invoke(cli, ["predict", str(out / "model"), *files, "--json"], catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in predicted.output.splitlines()]
    assert len(rows) == 16 and [r["emotion"] for r in rows] == [row["predicted"] for row in tested]
    assert {r["score_kind"] for r in rows} == {"decision"}
