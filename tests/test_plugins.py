"""The plugin host: registration rules, entry-point discovery, broken plugins, the on/off switch."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import types

import pytest
from toy_plugin import ToyDataset, toy_plugin

import sertk
from sertk.errors import DuplicateComponentError, PluginError, UnknownComponentError
from sertk.plugins import PluginHost


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def _dataset_plugin(name: str, dataset_name: str) -> types.ModuleType:
    cls = type(f"DS_{dataset_name}", (), {"name": dataset_name, "utterances": lambda self: iter(())})

    @sertk.hookimpl
    def sertk_register_datasets(register):
        register(cls)

    return _module(name, sertk_register_datasets=sertk_register_datasets, DS=cls)


class FakeDistribution:
    """Just enough of importlib.metadata.Distribution for entry-point discovery."""

    def __init__(self, name: str, version: str, entry_points: list[importlib.metadata.EntryPoint]):
        self.metadata = {"name": name}
        self.version = version
        self.entry_points = entry_points


@pytest.fixture
def fake_distributions(monkeypatch):
    """Install fake distributions with `sertk` entry points, without installing anything."""
    dists: list[FakeDistribution] = []
    real = importlib.metadata.distributions

    monkeypatch.setattr(importlib.metadata, "distributions", lambda **kw: iter(list(real(**kw)) + dists))
    monkeypatch.delenv("SERTK_LOAD_PLUGINS", raising=False)

    def add(package: str, ep_name: str, module: types.ModuleType | None, module_name: str | None = None):
        module_name = module_name or (module.__name__ if module else f"missing_{ep_name}")
        if module is not None:
            monkeypatch.setitem(sys.modules, module_name, module)
        ep = importlib.metadata.EntryPoint(name=ep_name, value=module_name, group="sertk")
        dists.append(FakeDistribution(package, "1.2.3", [ep]))

    return add


def test_entry_point_plugin_is_discovered(fake_distributions):
    fake_distributions("sertk-third-party", "third", _dataset_plugin("third_party_mod", "third-corpus"))
    host = PluginHost(builtins=[])
    component = host.get("dataset", "third-corpus")
    assert component.plugin.name == "third"
    assert component.plugin.package == "sertk-third-party"
    assert component.plugin.version == "1.2.3"
    assert not component.plugin.builtin


def test_load_plugins_env_switches_external_plugins_off(fake_distributions, monkeypatch):
    fake_distributions("pkg-a", "alpha", _dataset_plugin("alpha_mod", "alpha-corpus"))
    fake_distributions("pkg-b", "beta", _dataset_plugin("beta_mod", "beta-corpus"))
    monkeypatch.setenv("SERTK_LOAD_PLUGINS", "")
    assert PluginHost(builtins=[]).registries["dataset"].names() == []
    monkeypatch.setenv("SERTK_LOAD_PLUGINS", "beta")
    assert PluginHost(builtins=[]).registries["dataset"].names() == ["beta-corpus"]
    monkeypatch.delenv("SERTK_LOAD_PLUGINS")
    assert PluginHost(builtins=[]).registries["dataset"].names() == ["alpha-corpus", "beta-corpus"]


def test_broken_plugin_is_reported_by_entry_point_name(fake_distributions, caplog):
    fake_distributions("pkg-broken", "brokenplug", None, module_name="no_such_module_for_sertk_tests")
    fake_distributions("pkg-good", "goodplug", _dataset_plugin("good_mod", "good-corpus"))
    with caplog.at_level(logging.WARNING, logger="sertk.plugins"):
        host = PluginHost(builtins=[])
    assert [b.name for b in host.broken] == ["brokenplug"]
    assert host.broken[0].package == "pkg-broken"
    assert "No module named" in host.broken[0].error
    assert "brokenplug" in caplog.text
    assert "good-corpus" in host.registries["dataset"]  # the others still load


def test_duplicate_names_name_both_plugins():
    host = PluginHost(builtins=[], load_external=False)
    host.register_plugin(_dataset_plugin("first_mod", "same"), "first-plugin")
    with pytest.raises(DuplicateComponentError) as excinfo:
        host.register_plugin(_dataset_plugin("second_mod", "same"), "second-plugin")
    message = str(excinfo.value)
    assert "'first-plugin'" in message and "'second-plugin'" in message and "'same'" in message


def test_unknown_name_lists_known_ones():
    host = PluginHost(builtins=[], load_external=False)
    host.register_plugin(toy_plugin, "toy")
    with pytest.raises(UnknownComponentError, match=r"unknown dataset 'nope'; known datasets: toy"):
        host.get("dataset", "nope")


@pytest.mark.parametrize(
    "cls, message",
    [
        (type("NoName", (), {"utterances": lambda self: iter(())}), "needs a class attribute `name`"),
        (type("Upper", (), {"name": "Upper", "utterances": lambda self: iter(())}), "lowercase"),
        (type("NoUtts", (), {"name": "no-utts"}), "lacks utterances"),
    ],
)
def test_register_validates_the_contract(cls, message):
    @sertk.hookimpl
    def sertk_register_datasets(register):
        register(cls)

    host = PluginHost(builtins=[], load_external=False)
    with pytest.raises(PluginError, match=message):
        host.register_plugin(_module("bad", sertk_register_datasets=sertk_register_datasets), "bad")


def test_register_rejects_instances():
    @sertk.hookimpl
    def sertk_register_datasets(register):
        register(ToyDataset(root=None))

    host = PluginHost(builtins=[], load_external=False)
    with pytest.raises(PluginError, match="takes a class"):
        host.register_plugin(_module("inst", sertk_register_datasets=sertk_register_datasets), "inst")


def test_unknown_hook_name_is_rejected():
    @sertk.hookimpl
    def sertk_register_dataset(register):  # typo: singular
        pass

    host = PluginHost(builtins=[], load_external=False)
    with pytest.raises(PluginError, match="typo|does not define"):
        host.register_plugin(_module("typo", sertk_register_dataset=sertk_register_dataset), "typo")


def test_exception_inside_a_hook_names_the_plugin():
    @sertk.hookimpl
    def sertk_register_featurizers(register):
        raise RuntimeError("boom")

    host = PluginHost(builtins=[], load_external=False)
    with pytest.raises(PluginError, match="plugin 'exploding' failed in sertk_register_featurizers: RuntimeError"):
        host.register_plugin(_module("exploding", sertk_register_featurizers=sertk_register_featurizers),
                             "exploding")


def test_default_host_registers_every_builtin():
    host = PluginHost(load_external=False)
    names = {kind: host.registries[kind].names() for kind in host.registries}
    assert "demo" in names["dataset"]
    assert {"iemocap", "folder", "csv"} <= set(names["dataset"])
    assert {"handcrafted", "imagebind"} <= set(names["featurizer"])
    assert {"nusvm", "sklearn-nusvc", "sklearn-svc", "logreg"} <= set(names["classifier"])
    for kind in host.registries:
        for component in host.registries[kind]:
            assert component.plugin.builtin and component.plugin.package == "sertk"
            assert component.plugin.name.startswith("sertk_plugins.")


def test_importing_sertk_and_building_the_host_does_not_import_torch():
    """`sertk list` and `--help` stay fast: the host, every built-in plugin and their commands load without torch."""
    import subprocess

    code = ("import sys, sertk, sertk.cli; from sertk.plugins import PluginHost; "
            "PluginHost(load_external=False).add_commands(sertk.cli.cli); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
