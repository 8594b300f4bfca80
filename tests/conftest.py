"""Shared fixtures: a controlled plugin host with the toy plugin, and an isolated sertk home per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from toy_plugin import toy_plugin, write_toy_corpus

import sertk.plugins


@pytest.fixture
def toy_host(monkeypatch):
    """The process-wide host replaced by: the scikit-learn reference classifiers, the protocols, the toy plugin."""
    host = sertk.plugins.PluginHost(builtins=["sertk_plugins.classifiers.sklearn_reference",
                                             "sertk_plugins.protocols.standard"], load_external=False)
    host.register_plugin(toy_plugin, "toy")
    monkeypatch.setattr(sertk.plugins, "_host", host)
    yield host


@pytest.fixture
def builtin_host(monkeypatch):
    """The process-wide host with every built-in plugin and no external one (whatever the machine has)."""
    host = sertk.plugins.PluginHost(load_external=False)
    monkeypatch.setattr(sertk.plugins, "_host", host)
    return host


@pytest.fixture
def toy_corpus(tmp_path) -> Path:
    return write_toy_corpus(tmp_path / "toy")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Keep caches and weights of every test inside its own temporary folder."""
    monkeypatch.setenv("SERTK_HOME", str(tmp_path / "sertk-home"))
    monkeypatch.delenv("SERTK_CACHE_DIR", raising=False)
    monkeypatch.setenv("SERTK_LOAD_PLUGINS", "")
    sertk.plugins.reset_host()
    yield
    sertk.plugins.reset_host()




# -- `pytest --tolerances`: the largest floating-point difference per check (see tests/tolerances.py) ----------
def pytest_addoption(parser):
    parser.addoption("--tolerances", action="store_true",
                     help="print the largest difference seen per floating-point check next to its tolerance "
                          "(with -m golden: just the golden and reference comparisons)")


def pytest_terminal_summary(terminalreporter, config):
    if not config.getoption("--tolerances"):
        return
    import tolerances

    from sertk.machine import describe

    terminalreporter.section("tolerances")
    terminalreporter.write_line(f"machine: {describe()}")
    for line in tolerances.report_lines():
        terminalreporter.write_line(line)
