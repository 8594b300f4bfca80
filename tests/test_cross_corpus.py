"""Cross-corpus experiments through plugins: the ``combined`` dataset and the ``group-split`` protocol."""

from __future__ import annotations

import csv
import json
import logging
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from iemocap_tree import make_iemocap_tree
from public_corpora_trees import make_ravdess_tree
from toy_plugin import toy_plugin, write_toy_corpus

import sertk.plugins
from sertk.errors import ConfigError, DatasetError
from sertk.experiment.config import RunConfig, load_config
from sertk.experiment.pipeline import load_utterances, run_experiment
from sertk.plugins import PluginHost, get_component, instantiate
from sertk.protocols import check_folds, get_protocol, leakage_warnings
from sertk_plugins.datasets.demo import DemoDataset

DOCS = Path(__file__).resolve().parents[1] / "docs"
COMBINED_LOGGER = "sertk_plugins.datasets.combined"


@pytest.fixture
def cross_host(monkeypatch):
    """The process-wide host replaced by: demo, iemocap, ravdess, combined, the reference classifiers, the
    protocols and the toy plugin."""
    host = PluginHost(builtins=["sertk_plugins.datasets.demo", "sertk_plugins.datasets.iemocap",
                                "sertk_plugins.datasets.ravdess", "sertk_plugins.datasets.combined",
                                "sertk_plugins.classifiers.sklearn_reference", "sertk_plugins.protocols.standard"],
                      load_external=False)
    host.register_plugin(toy_plugin, "toy")
    monkeypatch.setattr(sertk.plugins, "_host", host)
    return host


@pytest.fixture
def two_toys(tmp_path) -> tuple[Path, Path]:
    """Two toy corpora: ``a`` with 4 speakers (groups g0 g1), ``b`` with 2 speakers, other noise; 2 per class."""
    return (write_toy_corpus(tmp_path / "a", per_class_speaker=2, speakers=4, seed=0),
            write_toy_corpus(tmp_path / "b", per_class_speaker=2, speakers=2, seed=1))


def _combined(datasets, root=None):
    return instantiate(get_component("dataset", "combined"), {"datasets": datasets}, root=root)


def _toys(a: Path, b: Path) -> list[dict]:
    return [{"name": "toy", "root": str(a), "label": "a"}, {"name": "toy", "root": str(b), "label": "b"}]


# -- the combined dataset ------------------------------------------------------------------------------------
def test_combined_prefixes_ids_and_speakers_and_groups_by_part(cross_host, two_toys):
    a, b = two_toys
    utts = list(_combined(_toys(a, b)).utterances())
    assert len(utts) == 32 + 16
    first = utts[0]
    assert (first.id, first.speaker, first.group, first.label) == ("a/spk0_ang_0", "a/spk0", "a", "ang")
    assert first.path == a / "spk0_ang_0.wav" and dict(first.meta) == {"corpus": "a"}
    last = utts[-1]
    assert (last.id, last.speaker, last.group, last.label) == ("b/spk1_sad_1", "b/spk1", "b", "sad")
    assert last.path == b / "spk1_sad_1.wav" and dict(last.meta) == {"corpus": "b"}
    assert [u.group for u in utts] == ["a"] * 32 + ["b"] * 16
    assert sorted({u.speaker for u in utts}) == ["a/spk0", "a/spk1", "a/spk2", "a/spk3", "b/spk0", "b/spk1"]
    assert len({u.id for u in utts}) == 48  # the same ids in both toys are told apart by the prefix
    assert {u.label for u in utts} == {"ang", "hap", "neu", "sad"}
    assert load_utterances(_combined(_toys(a, b)), "combined")[3].id == "a/spk0_hap_1"


def test_combined_of_the_demo_corpus_keeps_labels_and_meta(cross_host):
    dataset = _combined([{"name": "demo"}])
    assert dataset.part_labels == ("demo",)
    utts = list(dataset.utterances())
    originals = list(DemoDataset().utterances())
    assert len(utts) == len(originals) == 144
    for u, o in zip(utts, originals):
        assert u.id == f"demo/{o.id}" and u.speaker == f"demo/{o.speaker}" and u.group == "demo"
        assert u.label == o.label and u.path == o.path
        assert dict(u.meta) == {"corpus": "demo", "text": o.meta["text"]}
    assert utts[0].id == "demo/" + originals[0].id and utts[0].meta["text"] != ""


def test_the_same_dataset_twice_under_two_labels_with_its_own_options(cross_host):
    dataset = _combined([{"name": "demo", "label": "d1", "options": {"speakers": ["s1m", "s1f"]}},
                         {"name": "demo", "label": "d2", "options": {"speakers": "s2m"}}])
    utts = list(dataset.utterances())
    assert [u.group for u in utts].count("d1") == 48 and [u.group for u in utts].count("d2") == 24
    assert {u.speaker for u in utts} == {"d1/s1m", "d1/s1f", "d2/s2m"}
    assert {u.meta["corpus"] for u in utts} == {"d1", "d2"}


def test_relative_part_roots_are_relative_to_the_combined_root(cross_host, two_toys, tmp_path):
    utts = list(_combined([{"name": "toy", "root": "b"}], root=str(tmp_path)).utterances())
    assert len(utts) == 16 and utts[0].path == tmp_path / "b" / "spk0_ang_0.wav" and utts[0].id == "toy/spk0_ang_0"


@pytest.mark.parametrize("datasets, message", [
    (None, r"dataset 'combined' needs the option datasets: a list of tables"),
    ([], r"dataset 'combined': option datasets is empty"),
    ("demo", r"option datasets must be a list of tables .*got str 'demo'"),
    ({"name": "demo"}, r"option datasets must be a list of tables .*got dict"),
    (["demo"], r"datasets\[0\] must be a table .*got str 'demo'"),
    ([{"name": "demo"}, 3], r"datasets\[1\] must be a table .*got int 3"),
    ([{"root": "/x"}], r"datasets\[0\]: name must be a registered dataset's name .*got None"),
    ([{"name": ""}], r"datasets\[0\]: name must be .*got ''"),
    ([{"name": "demo", "rot": "/x"}], r"datasets\[0\]: unknown key\(s\) 'rot'; allowed: name, root, options, label"),
    ([{"name": "nope"}], (r"datasets\[0\] \('nope'\): unknown dataset 'nope'; known datasets: combined, demo, "
                         r"iemocap, ravdess, toy")),
    ([{"name": "demo"}, {"name": "combined", "options": {"datasets": [{"name": "demo", "label": "x"}]}}],
     r"datasets\[1\] \('combined'\): a part cannot itself be a combined dataset"),
    ([{"name": "toy"}], r"datasets\[0\] \('toy'\): dataset 'toy' needs its files: give this entry a root"),
    ([{"name": "demo"}, {"name": "demo"}], (r"datasets\[1\] \('demo'\): label 'demo' is already used by "
                                           r"datasets\[0\]")),
    ([{"name": "demo", "label": "x"}, {"name": "demo", "label": "y"}, {"name": "demo", "label": "x"}],
     r"datasets\[2\] \('demo'\): label 'x' is already used by datasets\[0\]"),
    ([{"name": "demo", "label": "a/b"}], (r"datasets\[0\] \('demo'\): label must be a non-empty string without "
                                         r"'/', got 'a/b'")),
    ([{"name": "demo", "label": 7}], r"datasets\[0\] \('demo'\): label must be .*got 7"),
    ([{"name": "demo", "root": 3}], r"datasets\[0\] \('demo'\): root must be a path string, got int 3"),
    ([{"name": "demo", "options": ["labels"]}], r"datasets\[0\] \('demo'\): options must be a table"),
    ([{"name": "demo", "options": {"colour": "red"}}], (r"datasets\[0\] \('demo'\): dataset 'demo' has no option "
                                                       r"'colour'; its options are: labels, speakers")),
    ([{"name": "demo", "options": {"labels": []}}], r"datasets\[0\] \('demo'\): .*option labels is empty"),
])
def test_bad_datasets_option_is_a_config_error_naming_the_entry(cross_host, datasets, message):
    with pytest.raises(ConfigError, match=message):
        _combined(datasets)


def test_a_part_that_fails_to_load_is_named(cross_host, tmp_path):
    (tmp_path / "empty").mkdir()
    dataset = _combined([{"name": "demo"}, {"name": "toy", "root": str(tmp_path / "empty"), "label": "broken"}])
    with pytest.raises(DatasetError, match=r"dataset 'combined', part 'broken' \(toy\): toy corpus not found under "):
        list(dataset.utterances())
    with pytest.raises(ConfigError, match=r"dataset 'combined', part 'demo' \(demo\): .*unknown 'xyz'"):
        list(_combined([{"name": "demo", "options": {"labels": ["xyz"]}}]).utterances())


def test_different_label_sets_warn_naming_the_labels(cross_host, caplog):
    dataset = _combined([{"name": "demo", "label": "d1", "options": {"labels": ["ang", "hap", "neu"]}},
                         {"name": "demo", "label": "d2", "options": {"labels": ["ang", "hap", "sad"]}}])
    with caplog.at_level(logging.WARNING, logger=COMBINED_LOGGER):
        utts = list(dataset.utterances())
    assert len(utts) == 2 * 108
    warnings = [r.getMessage() for r in caplog.records if r.name == COMBINED_LOGGER]
    assert len(warnings) == 1
    assert "labels that occur in only some parts cannot be learned across corpora: 'neu' only in d1; " \
           "'sad' only in d2." in warnings[0]
    assert "'ang'" not in warnings[0] and "'hap'" not in warnings[0]


def test_equal_label_sets_do_not_warn(cross_host, two_toys, caplog):
    with caplog.at_level(logging.WARNING, logger=COMBINED_LOGGER):
        list(_combined(_toys(*two_toys)).utterances())
    assert [r for r in caplog.records if r.name == COMBINED_LOGGER] == []


# -- the group-split protocol --------------------------------------------------------------------------------
LABELS = np.array(["ang", "sad", "ang", "sad", "ang", "sad", "ang", "sad", "ang"])
GROUPS = np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 2)
SPEAKERS = np.array([f"{g}/s{i % 2}" for i, g in enumerate(GROUPS)])


def _split(options, groups=GROUPS, speakers=SPEAKERS, seed=0):
    return get_protocol("group-split", options).split(LABELS[:len(groups)], speakers, groups, seed)


def test_group_split_tests_on_the_named_groups_and_trains_on_the_rest():
    (fold,) = _split({"test": "b"})
    assert fold.name == "a+c→b"
    assert fold.train.tolist() == [0, 1, 2, 3, 7, 8] and fold.test.tolist() == [4, 5, 6]
    (fold,) = _split({"train": "a", "test": ["c", "b"]})
    assert fold.name == "a→c+b" and fold.train.tolist() == [0, 1, 2, 3] and fold.test.tolist() == [4, 5, 6, 7, 8]
    (fold,) = _split({"train": ["a"], "test": ["c"]})
    assert fold.name == "a→c" and fold.train.tolist() == [0, 1, 2, 3] and fold.test.tolist() == [7, 8]
    (checked,) = check_folds(get_protocol("group-split", {"train": ["a"], "test": ["c"]}), [fold], len(GROUPS))
    assert checked.test.tolist() == [7, 8]


def test_group_split_ignores_the_seed_and_is_speaker_independent():
    (one,), (other,) = _split({"test": "a"}, seed=0), _split({"test": "a"}, seed=99)
    assert one.name == other.name == "b+c→a"
    assert np.array_equal(one.train, other.train) and np.array_equal(one.test, other.test)
    protocol = get_protocol("group-split", {"test": "a"})
    assert protocol.speaker_independent is True and protocol.kind == "speaker-independent"
    assert leakage_warnings(one, SPEAKERS, None, protocol.speaker_independent) == []


def test_group_split_relies_on_the_leakage_check_when_a_speaker_is_on_both_sides():
    speakers = np.array(["x", "y", "x", "y", "z", "x", "z", "z", "z"])
    protocol = get_protocol("group-split", {"train": "a", "test": "b"})
    (fold,) = protocol.split(LABELS, speakers, GROUPS, 0)
    assert leakage_warnings(fold, speakers, None, protocol.speaker_independent) == [
        "fold a→b: speaker-independent protocol, but speakers ['x'] are in both training and test sets"]


@pytest.mark.parametrize("options, message", [
    ({}, r"protocol group-split needs the option test: the group \(or list of groups\) to test on"),
    ({"train": "a"}, r"protocol group-split needs the option test"),
    ({"test": []}, r"protocol group-split: test is an empty list; name at least one group"),
    ({"test": "b", "train": []}, r"protocol group-split: train is an empty list"),
    ({"test": 3}, r"protocol group-split: test must be a group name or a list of group names, got 3"),
    ({"test": ["b", ""]}, r"test must be a group name or a list of group names, got \['b', ''\]"),
    ({"test": ["b", "c"], "train": ["a", "c"]}, (r"protocol group-split: group\(s\) 'c' are named in both train and "
                                                r"test; a group goes on one side only")),
    ({"test": "b", "seed": 1}, r"protocol 'group-split' has no option 'seed'; its options are: test, train"),
])
def test_group_split_option_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        get_protocol("group-split", options)


@pytest.mark.parametrize("options, message", [
    ({"test": "d"}, r"protocol group-split: option test: no group 'd'; the dataset's groups are: a, b, c"),
    ({"test": ["b", "x", "y"]}, r"option test: no group 'x', 'y'; the dataset's groups are: a, b, c"),
    ({"test": "b", "train": ["a", "e"]}, r"option train: no group 'e'; the dataset's groups are: a, b, c"),
    ({"test": ["a", "b", "c"]}, (r"protocol group-split: nothing left to train on: test names every group of the "
                                r"dataset \(a, b, c\)")),
])
def test_group_split_errors_that_need_the_groups(options, message):
    with pytest.raises(ConfigError, match=message):
        _split(options)


# -- whole experiments ---------------------------------------------------------------------------------------
def _run_config(datasets, protocol, out, **extra) -> RunConfig:
    data = {"dataset": {"name": "combined", "options": {"datasets": datasets}}, "featurizer": {"name": "toy-bands"},
            "classifier": {"name": "sklearn-nusvc", "options": {"nu": 0.1}}, "protocol": protocol, "out": str(out),
            "plots": False, "save_model": False}
    data.update(extra)
    return RunConfig.from_dict(data)


def _predictions(out: Path) -> list[dict]:
    with open(out / "predictions.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_loso_on_combined_leaves_one_corpus_out(cross_host, two_toys):
    utts = list(_combined(_toys(*two_toys)).utterances())
    groups = np.array([u.group for u in utts])
    protocol = get_protocol("loso", {})
    folds = protocol.split(np.array([u.label for u in utts]), np.array([u.speaker for u in utts]), groups, 0)
    assert [f.name for f in folds] == ["group-a", "group-b"]
    assert folds[0].test.tolist() == list(range(32)) and folds[0].train.tolist() == list(range(32, 48))
    assert folds[1].test.tolist() == list(range(32, 48)) and folds[1].train.tolist() == list(range(32))


def test_run_loso_on_combined_reports_one_fold_per_corpus(cross_host, two_toys, tmp_path):
    report = run_experiment(_run_config(_toys(*two_toys), {"name": "loso"}, tmp_path / "run")).report
    assert report["protocol"]["n_folds"] == 2 and report["protocol"]["kind"] == "speaker-independent"
    assert [(f["name"], f["n_train"], f["n_test"]) for f in report["folds"]] == [("group-a", 16, 32),
                                                                                 ("group-b", 32, 16)]
    assert report["dataset"]["n_groups"] == 2 and report["dataset"]["n_speakers"] == 6
    assert not any("in both training and test" in w for w in report["warnings"])


def test_run_trains_on_one_corpus_and_tests_on_the_other(cross_host, two_toys, tmp_path):
    a, b = two_toys
    out = tmp_path / "run"
    config = _run_config(_toys(a, b), {"name": "group-split", "options": {"train": "a", "test": "b"}}, out)
    result = run_experiment(config)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["protocol"] == {"name": "group-split", "kind": "speaker-independent", "n_folds": 1,
                                  "speaker_independent": True, "repeats": 1}
    assert [(f["name"], f["n_train"], f["n_test"]) for f in report["folds"]] == [("a→b", 32, 16)]
    assert report["n_train"] == 32 and report["n_test"] == 16
    assert report["dataset"] == {"name": "combined", "n_utterances": 48, "n_speakers": 6, "n_groups": 2,
                                 "label_counts": {"ang": 12, "hap": 12, "neu": 12, "sad": 12}}
    assert report["accuracy"] == result.report["accuracy"] >= 0.5  # four tone pitches, learnt on a, told apart in b
    assert report["warnings"] == []
    rows = _predictions(out)
    expected = {f"b/spk{s}_{label}_{k}" for s in range(2) for label in ("ang", "hap", "neu", "sad") for k in range(2)}
    assert {r["id"] for r in rows} == expected and len(rows) == 16
    assert {r["fold"] for r in rows} == {"a→b"} and {r["speaker"] for r in rows} == {"b/spk0", "b/spk1"}
    assert "**group-split** (speaker-independent)" in (out / "report.md").read_text(encoding="utf-8")
    again = load_config(out / "config.toml")  # the saved configuration repeats the cross-corpus run
    assert again.dataset.name == "combined" and again.dataset.options == {"datasets": _toys(a, b)}
    assert again.protocol.options == {"train": "a", "test": "b"}


# -- the example in docs/datasets.md -------------------------------------------------------------------------
def _docs_example() -> str:
    section = (DOCS / "datasets.md").read_text(encoding="utf-8").split("### `combined`", 1)[1].split("\n### ", 1)[0]
    match = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert match, "docs/datasets.md: the combined section has no TOML example"
    return match.group(1)


def test_the_docs_example_is_a_valid_run_configuration(tmp_path):
    path = tmp_path / "cross.toml"
    path.write_text(_docs_example(), encoding="utf-8")
    config = load_config(path)
    assert config.dataset.name == "combined" and config.data_root is None
    assert config.dataset.options == {"datasets": [
        {"name": "iemocap", "root": "/data/IEMOCAP_full_release", "options": {"classes": "4class"}},
        {"name": "ravdess", "root": "/data/RAVDESS",
         "options": {"classes": {"angry": "ang", "happy": "hap", "neutral": "neu", "sad": "sad"}}},
    ]}
    assert config.protocol.name == "group-split" and config.protocol.options == {"train": "iemocap",
                                                                                 "test": "ravdess"}
    assert (config.featurizer.name, config.classifier.name, config.classifier.options) == ("imagebind", "nusvm",
                                                                                           {"nu": 0.1})
    assert config.out == "runs/iemocap-to-ravdess" and config.seed == 0
    protocol = get_protocol(config.protocol.name, config.protocol.options)
    (fold,) = protocol.split(["ang"] * 3, ["x", "y", "z"], ["iemocap", "iemocap", "ravdess"], 0)
    assert fold.name == "iemocap→ravdess" and fold.test.tolist() == [2]


def test_the_docs_example_runs_on_miniature_corpora(cross_host, tmp_path, caplog):
    """The documented dataset and protocol, on miniature IEMOCAP and RAVDESS trees in the release layouts (the
    featurizer and classifier swapped for the toy ones: no ImageBind weights here)."""
    config = RunConfig.from_dict(tomllib.loads(_docs_example()))
    parts = config.dataset.options["datasets"]
    parts[0]["root"] = str(make_iemocap_tree(tmp_path / "iemocap", clutter=False))
    parts[1]["root"] = str(make_ravdess_tree(tmp_path / "ravdess"))
    config.update({"featurizer": {"name": "toy-bands"}, "classifier": {"name": "sklearn-nusvc", "options": {"nu": 0.1}},
                   "plots": False, "save_model": False, "out": str(tmp_path / "run")})
    with caplog.at_level(logging.WARNING, logger=COMBINED_LOGGER):
        report = run_experiment(config).report
    assert [r for r in caplog.records if r.name == COMBINED_LOGGER] == []  # the mapping gives both the same labels
    assert [(f["name"], f["n_train"], f["n_test"]) for f in report["folds"]] == [("iemocap→ravdess", 70, 16)]
    assert report["labels"] == ["ang", "hap", "neu", "sad"]
    rows = _predictions(tmp_path / "run")
    assert len(rows) == 16 and all(r["id"].startswith("ravdess/03-01-") for r in rows)
    assert {r["speaker"] for r in rows} == {"ravdess/Actor_01", "ravdess/Actor_02", "ravdess/Actor_03",
                                            "ravdess/Actor_04"}
