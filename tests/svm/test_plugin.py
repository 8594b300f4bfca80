"""The built-in classifier plugin ``nusvm``."""

from __future__ import annotations

import numpy as np

from sertk.plugins import PluginHost, component_options, instantiate
from sertk.svm import NuSVC


def test_nusvm_plugin_registers_the_estimator(datasets):
    host = PluginHost(builtins=("sertk_plugins.classifiers.nusvm",), load_external=False)
    component = host.get("classifier", "nusvm")
    assert issubclass(component.cls, NuSVC)
    assert component.description
    options = component_options(component.cls)
    assert options["nu"] == 0.5 and "random_state" in options and "class_weight" in options
    clf = instantiate(component, {"nu": 0.2, "kernel": "linear"}, random_state=0)
    X, y = datasets["iris"]
    labels = np.array(["ang", "hap", "neu"])[y]
    clf.fit(X, labels)
    assert set(clf.predict(X)) <= {"ang", "hap", "neu"}
    assert clf.get_params()["nu"] == 0.2


def test_plugin_model_saves_and_loads_as_its_class(datasets, tmp_path):
    host = PluginHost(builtins=("sertk_plugins.classifiers.nusvm",), load_external=False)
    cls = host.get("classifier", "nusvm").cls
    X, y = datasets["wine"]
    m = cls(nu=0.3).fit(X, y)
    m.save(tmp_path / "m.nusvm")
    loaded = cls.load(tmp_path / "m.nusvm")
    assert type(loaded) is cls and loaded.name == "nusvm"
    np.testing.assert_array_equal(loaded.predict(X), m.predict(X))
