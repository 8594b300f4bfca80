"""Run configurations: TOML in, TOML out, clear errors, and a saved config that repeats the run."""

import pytest

from sertk.errors import ConfigError
from sertk.experiment.config import RunConfig, dump_config, load_config


def test_defaults_are_the_demo_with_the_papers_classifier_and_protocol():
    config = RunConfig()
    assert config.dataset.name == "demo"
    assert (config.classifier.name, config.classifier.options) == ("nusvm", {"nu": 0.1})
    assert config.protocol.name == "sd-random" and config.protocol.options["test_size"] == 0.2


def test_round_trip_through_toml(tmp_path):
    config = RunConfig.from_dict({
        "seed": 3, "standardize": False,
        "dataset": {"name": "iemocap", "root": "/data/IEMOCAP", "options": {"sessions": [1, 2]}},
        "classifier": {"name": "sklearn-nusvc", "options": {"nu": 0.2}},
    })
    path = tmp_path / "config.toml"
    path.write_text(dump_config(config))
    again = load_config(path)
    assert again == config
    assert again.data_root == "/data/IEMOCAP" and again.dataset.options == {"sessions": [1, 2]}


def test_changing_a_component_drops_the_options_of_the_old_one():
    config = RunConfig()
    config.update({"classifier": {"name": "logreg"}})
    assert config.classifier.options == {}
    config.update({"classifier": {"options": {"C": 2.0}}})
    assert config.classifier.options == {"C": 2.0}


@pytest.mark.parametrize("data, message", [
    ({"sed": 1}, "unknown key 'sed'"),
    ({"seed": "1"}, "seed must be int"),
    ({"seed": True}, "seed must be int"),
    ({"dataset": {"name": "demo", "path": "x"}}, r"unknown key\(s\) \['path'\] in \[dataset\]"),
    ({"classifier": {"options": [1]}}, r"\[classifier.options\] must be a table"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
])
def test_bad_configurations_name_the_problem(data, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(data, source="cfg.toml")


def test_unreadable_and_invalid_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file .*missing.toml"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1\n")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        load_config(bad)
