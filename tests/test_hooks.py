"""Every hook is documented (name and signature in docs/plugins.md) and has a ``test_hook_<name>`` here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import sertk
from sertk import hookspecs
from sertk.plugins import PluginHost

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
HOOKS = [name for name, fn in vars(hookspecs).items() if name.startswith("sertk_") and callable(fn)]


def test_hooks_exist():
    assert set(HOOKS) == {"sertk_register_datasets", "sertk_register_featurizers", "sertk_register_classifiers",
                          "sertk_register_protocols", "sertk_register_commands"}


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"### `{hook}({params})`" in DOCS.read_text(), f"docs/plugins.md lacks a section for {hook}({params})"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    assert f"test_hook_{hook}" in globals(), f"write test_hook_{hook} in tests/test_hooks.py"


def test_documented_hooks_all_exist():
    documented = re.findall(r"^### `(sertk_\w+)\(", DOCS.read_text(), flags=re.M)
    assert sorted(documented) == sorted(HOOKS)


def _host_with(module_attrs: dict) -> PluginHost:
    import types

    module = types.ModuleType("hook_test_plugin")
    for key, value in module_attrs.items():
        setattr(module, key, value)
    host = PluginHost(builtins=[], load_external=False)
    host.register_plugin(module, "hook-test")
    return host


def test_hook_sertk_register_datasets(toy_corpus):
    class Minimal:  # the minimal third-party dataset: a class and one hookimpl
        name = "minimal"

        def __init__(self, root=None):
            self.root = root

        def utterances(self):
            yield sertk.Utterance("u1", toy_corpus / "spk0_ang_0.wav", "ang", "s1", "g1")

    @sertk.hookimpl
    def sertk_register_datasets(register):
        register(Minimal)

    host = _host_with({"sertk_register_datasets": sertk_register_datasets})
    component = host.get("dataset", "minimal")
    assert component.cls is Minimal and component.plugin.name == "hook-test"
    assert [u.id for u in component.cls(root=None).utterances()] == ["u1"]


def test_hook_sertk_register_featurizers():
    from toy_plugin import ToyFeaturizer

    @sertk.hookimpl
    def sertk_register_featurizers(register):
        register(ToyFeaturizer)

    host = _host_with({"sertk_register_featurizers": sertk_register_featurizers})
    assert host.get("featurizer", "toy-bands").cls is ToyFeaturizer


def test_hook_sertk_register_classifiers():
    from sklearn.neighbors import KNeighborsClassifier

    class Knn(KNeighborsClassifier):
        name = "knn"

    @sertk.hookimpl
    def sertk_register_classifiers(register):
        register(Knn)

    host = _host_with({"sertk_register_classifiers": sertk_register_classifiers})
    assert host.get("classifier", "knn").cls is Knn


def test_hook_sertk_register_protocols(toy_host, toy_corpus, tmp_path):
    import numpy as np

    from sertk.experiment.config import RunConfig
    from sertk.experiment.pipeline import run_experiment

    class FirstSpeakerOut(sertk.Protocol):  # a third-party protocol: test on one speaker, train on the rest
        name = "first-speaker-out"
        speaker_independent = True

        def split(self, labels, speakers, groups, seed):
            speakers = np.asarray(speakers)
            first = sorted(set(speakers.tolist()))[0]
            return [sertk.Fold(first, np.flatnonzero(speakers != first), np.flatnonzero(speakers == first))]

    @sertk.hookimpl
    def sertk_register_protocols(register):
        register(FirstSpeakerOut)

    import types

    module = types.ModuleType("protocol_plugin")
    module.sertk_register_protocols = sertk_register_protocols
    toy_host.register_plugin(module, "protocol-plugin")
    assert toy_host.get("protocol", "first-speaker-out").plugin.name == "protocol-plugin"
    config = RunConfig.from_dict({"dataset": {"name": "toy", "root": str(toy_corpus)},
                                  "featurizer": {"name": "toy-bands"}, "classifier": {"name": "logreg"},
                                  "protocol": {"name": "first-speaker-out"}, "out": str(tmp_path / "run")})
    report = run_experiment(config).report
    assert report["protocol"]["name"] == "first-speaker-out"
    assert report["protocol"]["kind"] == "speaker-independent" and report["protocol"]["n_folds"] == 1


def test_protocol_example_in_the_docs_works():
    import types

    section = DOCS.read_text().split("### `sertk_register_protocols(register)`", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("male_to_female")
    exec(compile(code, str(DOCS), "exec"), module.__dict__)
    host = _host_with({"sertk_register_protocols": module.sertk_register_protocols})
    protocol = host.get("protocol", "male-to-female").cls()
    (fold,) = protocol.split(["a", "b", "a"], ["Ses01_F", "Ses01_M", "Ses02_M"], ["g"] * 3, seed=0)
    assert fold.train.tolist() == [1, 2] and fold.test.tolist() == [0]


def test_hook_sertk_register_commands():
    @sertk.hookimpl
    def sertk_register_commands(cli):
        @cli.command()
        def hello():
            """Say hello."""
            click.echo("hello from a plugin")

    host = _host_with({"sertk_register_commands": sertk_register_commands})

    @click.group()
    def group():
        pass

    host.add_commands(group)
    result = CliRunner().invoke(group, ["hello"])
    assert result.exit_code == 0 and result.output == "hello from a plugin\n"
