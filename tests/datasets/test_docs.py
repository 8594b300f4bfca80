"""docs/datasets.md cannot drift: its minimal plugin works, and every built-in dataset option is documented."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import sertk.plugins
from sertk.datasummary import summarize_dataset
from sertk.plugins import PluginHost, component_options

DOC = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"
OURS = ["sertk_plugins.datasets.iemocap", "sertk_plugins.datasets.emodb", "sertk_plugins.datasets.ravdess",
        "sertk_plugins.datasets.cremad", "sertk_plugins.datasets.folder", "sertk_plugins.datasets.manifest",
        "sertk_plugins.datasets.combined"]


def test_minimal_plugin_from_the_docs_works(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 20
    module = types.ModuleType("my_sertk_corpus")
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    host = PluginHost(builtins=OURS, load_external=False)
    host.register_plugin(module, "my_corpus")
    monkeypatch.setattr(sertk.plugins, "_host", host)
    for name in ("anna_angry_1", "anna_calm_2", "bert_angry_3", "bert_calm_4"):
        sf.write(tmp_path / f"{name}.wav", np.full(800, 0.1, dtype=np.float32), 16000)
    summary = summarize_dataset("my-corpus", tmp_path)
    assert summary.labels == {"angry": 2, "calm": 2} and summary.speakers == {"anna": 2, "bert": 2}
    assert summary.problems == []


@pytest.mark.parametrize("name", ["iemocap", "emodb", "ravdess", "cremad", "folder", "csv", "combined"])
def test_every_option_is_documented(name):
    text = DOC.read_text()
    section = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
    cls = PluginHost(builtins=OURS, load_external=False).get("dataset", name).cls
    for option in component_options(cls):
        assert f"| `{option}` |" in section, f"option {option!r} of {name} is not in docs/datasets.md"
