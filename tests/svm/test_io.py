"""Save and load a fitted NuSVC in the documented non-pickle format (ZIP of header.json + .npy arrays)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from sertk.errors import ModelError
from sertk.svm import NuSVC
from sertk.svm._io import FORMAT, FORMAT_VERSION


def _roundtrip(model, tmp_path):
    path = tmp_path / "model.nusvm"
    model.save(path)
    return type(model).load(path), path


@pytest.mark.parametrize("params, name", [
    ({"nu": 0.3}, "iris"),
    ({"nu": 0.2, "probability": True, "random_state": 0, "class_weight": {0: 2.0}}, "wine"),
    ({"nu": 0.3, "kernel": "linear", "decision_function_shape": "ovo"}, "breast_cancer"),
    ({"nu": 0.2, "gamma": 0.5, "break_ties": True, "class_weight": "balanced"}, "emb_4class"),
])
def test_roundtrip_predicts_identically(datasets, tmp_path, params, name):
    X, y = datasets[name]
    m = NuSVC(**params).fit(X, y)
    loaded, _ = _roundtrip(m, tmp_path)
    assert loaded.get_params() == m.get_params()
    for attr in ("classes_", "support_", "support_vectors_", "n_support_", "dual_coef_", "intercept_", "n_iter_",
                 "probA_", "probB_", "class_weight_"):
        assert_array_equal(getattr(loaded, attr), getattr(m, attr))
    assert loaded.fit_status_ == m.fit_status_ and loaded.n_features_in_ == m.n_features_in_
    assert_array_equal(loaded.predict(X), m.predict(X))
    assert_array_equal(loaded.decision_function(X), m.decision_function(X))
    if m.probability:
        assert_array_equal(loaded.predict_proba(X), m.predict_proba(X))


def test_string_labels_and_precomputed_kernel(datasets, tmp_path):
    X, y = datasets["iris"]
    labels = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    K = X @ X.T
    m = NuSVC(kernel="precomputed", nu=0.2).fit(K, labels)
    loaded, _ = _roundtrip(m, tmp_path)
    assert_array_equal(loaded.predict(K), m.predict(K))
    assert loaded.predict(K)[0] in {"setosa", "versicolor", "virginica"}


def test_file_is_a_documented_zip_without_pickle(datasets, tmp_path):
    X, y = datasets["iris"]
    _, path = _roundtrip(NuSVC(nu=0.3).fit(X, y), tmp_path)
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read("header.json"))
        assert header["format"] == FORMAT and header["format_version"] == FORMAT_VERSION
        assert set(header["arrays"]) == {n[len("arrays/"):-len(".npy")] for n in zf.namelist() if n != "header.json"}
        for name in zf.namelist():
            if name.endswith(".npy"):
                with zf.open(name) as fh:
                    np.lib.format.read_array(fh, allow_pickle=False)  # raises if an array needed pickle


def _rewrite(path, out, mutate):
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "header.json":
                header = json.loads(data)
                mutate(header)
                data = json.dumps(header).encode()
            zout.writestr(name, data)


def test_bad_files_raise_model_error(datasets, tmp_path):
    X, y = datasets["iris"]
    _, path = _roundtrip(NuSVC(nu=0.3).fit(X, y), tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        NuSVC.load(tmp_path / "missing.nusvm")
    junk = tmp_path / "junk.nusvm"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a sertk"):
        NuSVC.load(junk)
    newer = tmp_path / "newer.nusvm"
    _rewrite(path, newer, lambda h: h.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ModelError, match="format version"):
        NuSVC.load(newer)
    other = tmp_path / "other.nusvm"
    _rewrite(path, other, lambda h: h.update(format="something.else"))
    with pytest.raises(ModelError, match="not a sertk"):
        NuSVC.load(other)
    broken = tmp_path / "broken.nusvm"
    _rewrite(path, broken, lambda h: h["fitted"].update(n_features_in=7))
    with pytest.raises(ModelError, match="inconsistent"):
        NuSVC.load(broken)


def test_unfitted_model_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        NuSVC().save(tmp_path / "m.nusvm")
    assert not (tmp_path / "m.nusvm").exists()
