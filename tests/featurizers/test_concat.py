"""The ``concat`` featurizer and the host's composite path: configuration (TOML and ``-o``), each part cached under
its own fingerprint, failures that name the part, ``blocks``, and ``sertk run`` with a concat of two parts."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from toy_plugin import toy_plugin

import sertk
import sertk.plugins
from sertk.cli.main import cli
from sertk.errors import ConfigError, UnknownComponentError
from sertk.experiment.config import RunConfig, load_config
from sertk.featurization.cache import EmbeddingCache, fingerprint_key
from sertk.featurization.embed import embed_paths
from sertk.options import parse_component_assignments
from sertk_plugins.featurizers.concat import ConcatFeaturizer


class Stats(sertk.Featurizer):
    """Mean, std and peak of the first ``dim`` thirds of a file, times ``scale``; counts the files it embeds and
    fails files whose name starts with ``fail_for``."""

    name = "stats"
    embedded: list[str] = []

    def __init__(self, scale: float = 1.0, fail_for: str = "") -> None:
        self.scale, self.fail_for = scale, fail_for

    @property
    def dim(self) -> int:
        return 3

    def fingerprint(self):
        return {"name": self.name, "scale": self.scale}

    def embed(self, paths):
        rows = []
        for path in paths:
            if self.fail_for and Path(path).name.startswith(self.fail_for):
                raise sertk.AudioError(path, "refused by stats")
            type(self).embedded.append(f"{self.scale}:{Path(path).name}")
            x, _ = sf.read(str(path), dtype="float32")
            rows.append([x.mean(), x.std(), np.abs(x).max()])
        return self.scale * np.array(rows, dtype=np.float32)


class Length(Stats):
    """Seconds and sample count of a file."""

    name = "length"

    @property
    def dim(self) -> int:
        return 2

    def embed(self, paths):
        rows = []
        for path in paths:
            type(self).embedded.append(f"length:{Path(path).name}")
            info = sf.info(str(path))
            rows.append([info.duration, info.frames])
        return np.array(rows, dtype=np.float32)


parts_plugin = types.SimpleNamespace(sertk_register_featurizers=sertk.hookimpl(
    lambda register: (register(Stats), register(Length))))


@pytest.fixture
def host(monkeypatch):
    host = sertk.plugins.PluginHost(builtins=["sertk_plugins.featurizers.concat",
                                             "sertk_plugins.classifiers.sklearn_reference",
                                             "sertk_plugins.protocols.standard"], load_external=False)
    host.register_plugin(parts_plugin, "parts")
    host.register_plugin(toy_plugin, "toy")
    monkeypatch.setattr(sertk.plugins, "_host", host)
    Stats.embedded = []
    return host


@pytest.fixture
def files(tmp_path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        path = tmp_path / f"f{i}.wav"
        sf.write(str(path), (0.1 * (i + 1) * rng.standard_normal(1600 * (i + 1))).astype(np.float32), 16000)
        paths.append(path)
    return paths


def concat(*parts) -> ConcatFeaturizer:
    return sertk.plugins.instantiate(sertk.plugins.get_component("featurizer", "concat"), {"parts": list(parts)})


# -- configuration ----------------------------------------------------------------------------------------------
def test_parts_from_a_toml_config_and_from_dash_o(tmp_path, host):
    config_file = tmp_path / "run.toml"
    config_file.write_text('[featurizer]\nname = "concat"\n[featurizer.options]\n'
                           'parts = ["length", {name = "stats", options = {scale = 2.0}}]\n')
    config = load_config(config_file)
    featurizer = concat(*config.featurizer.options["parts"])
    assert [type(p) for p in featurizer.parts] == [Length, Stats] and featurizer.parts[1].scale == 2.0
    options = parse_component_assignments(['featurizer.parts=["length", {name = "stats", options = {scale = 2.0}}]'])
    assert options["featurizer"]["parts"] == config.featurizer.options["parts"]
    # and written back as the run's config.toml, it reads the same
    again = RunConfig.from_dict({"featurizer": {"name": "concat", "options": options["featurizer"]}})
    assert again.featurizer.options == config.featurizer.options


@pytest.mark.parametrize(("parts", "message"), [
    ([], "option parts must be a non-empty list"),
    ("stats", "option parts must be a non-empty list"),
    ([{"options": {}}], "part 1 must be a featurizer name or a table with `name`"),
    (["stats", {"name": "stats", "scale": 2}], "part 2 ('stats') has unknown key(s) 'scale'"),
    ([{"name": "stats", "options": 3}], "options must be a table"),
    (["concat"], "a part cannot be concat itself"),
])
def test_bad_parts_are_one_line_errors(host, parts, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        ConcatFeaturizer(parts=parts)


def test_an_unknown_part_lists_the_featurizers(host):
    with pytest.raises(UnknownComponentError, match="unknown featurizer 'nope'; known featurizers: concat, "):
        ConcatFeaturizer(parts=["stats", "nope"])


def test_a_bad_part_option_names_the_part(host):
    with pytest.raises(ConfigError, match="featurizer 'stats' has no option 'size'"):
        ConcatFeaturizer(parts=[{"name": "stats", "options": {"size": 1}}])


# -- blocks, fingerprint, values --------------------------------------------------------------------------------
def test_blocks_fingerprint_and_values(host, files):
    featurizer = concat("stats", "length", {"name": "stats", "options": {"scale": 3.0}})
    assert featurizer.blocks == [("stats", 3), ("length", 2), ("stats-2", 3)] and featurizer.dim == 8
    assert featurizer.standardize is True
    assert featurizer.fingerprint() == {"name": "concat", "parts": [p.fingerprint() for p in featurizer.parts]}
    result = embed_paths(featurizer, files, cache=None)
    alone = [embed_paths(part, files, cache=None).embeddings for part in featurizer.parts]
    np.testing.assert_array_equal(result.embeddings, np.hstack(alone))  # the parts' own rows, in block order
    assert result.fp_key == fingerprint_key(featurizer.fingerprint())
    np.testing.assert_array_equal(featurizer.embed(files), result.embeddings)  # without the host: the same


# -- the cache, part by part ----------------------------------------------------------------------------------
def test_each_part_is_cached_under_its_own_fingerprint(tmp_path, host, files):
    """A second run with one part changed recomputes only that part; the unchanged part comes from the cache."""
    with EmbeddingCache(tmp_path / "cache") as cache:
        first = embed_paths(concat("length", "stats"), files, cache=cache)
        assert first.n_computed == 5 and first.n_cached == 0
        assert sorted(Stats.embedded) == sorted([f"length:{p.name}" for p in files] + [f"1.0:{p.name}" for p in files])

        Stats.embedded = []
        changed = concat("length", {"name": "stats", "options": {"scale": 2.0}})
        second = embed_paths(changed, files, cache=cache)
        assert sorted(Stats.embedded) == sorted(f"2.0:{p.name}" for p in files)  # length: all from the cache
        assert second.n_computed == 5 and second.n_cached == 0
        np.testing.assert_array_equal(second.embeddings[:, :2], first.embeddings[:, :2])
        np.testing.assert_allclose(second.embeddings[:, 2:], 2 * first.embeddings[:, 2:], rtol=1e-6)  # float32

        Stats.embedded = []
        again = embed_paths(changed, files, cache=cache)
        assert Stats.embedded == [] and again.n_cached == 5 and again.n_computed == 0
        # the part's entries are those of the part used alone: sertk embed -f length hits the same cache
        Stats.embedded = []
        assert embed_paths(changed.parts[0], files, cache=cache).n_cached == 5 and Stats.embedded == []


def test_a_file_any_part_fails_fails_with_the_part_named(tmp_path, host, files):
    bad = tmp_path / "bad.wav"
    sf.write(str(bad), np.zeros(1600, np.float32), 16000)
    featurizer = concat("length", {"name": "stats", "options": {"fail_for": "bad"}})
    with EmbeddingCache(tmp_path / "cache") as cache:
        result = embed_paths(featurizer, [files[0], bad, files[1]], cache=cache)
        assert result.ok.tolist() == [True, False, True]
        assert result.failures == {1: "part 'stats': refused by stats"}
        assert result.embeddings.shape == (2, 5)
        # the part that could embed it cached it: fixing the other part costs only that part's work
        assert embed_paths(featurizer.parts[0], [bad], cache=cache).n_cached == 1


def test_keyword_options_reach_every_part(host, files, monkeypatch):
    """embed_paths' other keyword arguments (an executor, say) are passed to each part's embed_paths."""
    import sertk.featurization.composite

    seen = []

    def spy(part, paths, **kwargs):
        seen.append((part.name, kwargs))
        return real(part, paths, cache=kwargs["cache"], batch_size=kwargs["batch_size"], desc=kwargs["desc"])

    real = sertk.featurization.composite.embed_paths
    monkeypatch.setattr(sertk.featurization.composite, "embed_paths", spy)
    sertk.featurization.composite.embed_parts(concat("length", "stats"), files, cache=None, batch_size=2, marker="m")
    assert [(name, kw["marker"], kw["batch_size"]) for name, kw in seen] == [("length", "m", 2), ("stats", "m", 2)]


# -- end to end -----------------------------------------------------------------------------------------------
def test_sertk_run_with_a_concat_of_two_parts(tmp_path, host, toy_corpus):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [
        "--no-progress", "run", "--dataset", "toy", "--data-root", str(toy_corpus), "--featurizer", "concat",
        "-o", 'featurizer.parts=["toy-bands", {name = "stats", options = {scale = 2.0}}]',
        "--classifier", "logreg", "--no-plots", "--no-save-model", "--out", str(out),
        "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["featurizer"]["dim"] == 19
    assert [p["name"] for p in report["featurizer"]["fingerprint"]["parts"]] == ["toy-bands", "stats"]
    assert report["classifier"]["standardize"] is True
    saved = load_config(out / "config.toml")  # the run's config repeats it
    assert saved.featurizer.options["parts"][1] == {"name": "stats", "options": {"scale": 2.0}}
