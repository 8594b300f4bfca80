"""``key=value`` option parsing shared by ``sertk embed -o`` and ``sertk run -o``."""

from __future__ import annotations

import pytest

from sertk.errors import ConfigError
from sertk.options import parse_assignments, parse_component_assignments, parse_option_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1", 0.1),
        ("3", 3),
        ("-2", -2),
        ("1e3", 1000.0),
        ("true", True),
        ("false", False),
        ('"quoted"', "quoted"),
        ("'1'", "1"),
        ("[1, 2]", [1, 2]),
        ('["a", "b"]', ["a", "b"]),
        ("{a = 1, b = 'x'}", {"a": 1, "b": "x"}),
        ("weights/model.safetensors", "weights/model.safetensors"),
        ("/abs/path.pt", "/abs/path.pt"),
        ("hello world", "hello world"),
        ("", ""),
        ("True", "True"),  # TOML booleans are lowercase: this stays a string
        ("1\nother = 2", "1\nother = 2"),  # no smuggling of extra TOML keys
    ],
)
def test_parse_option_value(text, expected):
    value = parse_option_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_assignments_values_and_last_wins():
    assert parse_assignments(["a=1", "b = x.pt", "c=a=b", "a=2"]) == {"a": 2, "b": "x.pt", "c": "a=b"}
    assert parse_assignments([]) == {}


@pytest.mark.parametrize("item", ["novalue", "=3", "  =x"])
def test_parse_assignments_names_bad_item(item):
    with pytest.raises(ConfigError) as info:
        parse_assignments(["ok=1", item])
    assert repr(item) in str(info.value)


def test_parse_component_assignments():
    result = parse_component_assignments(["classifier.nu=0.1", "featurizer.weights=w.pt", "classifier.kernel=rbf",
                                          "dataset.a.b=1"])
    assert result == {
        "dataset": {"a.b": 1},
        "featurizer": {"weights": "w.pt"},
        "classifier": {"nu": 0.1, "kernel": "rbf"},
        "protocol": {},
    }
    assert parse_component_assignments([], kinds=("x",)) == {"x": {}}


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ("model.nu=0.1", "unknown kind 'model'"),
        ("nu=0.1", "KIND.OPTION"),
        ("classifier.=1", "KIND.OPTION"),
        ("classifier.nu", "KEY=VALUE"),
    ],
)
def test_parse_component_assignments_errors(item, fragment):
    with pytest.raises(ConfigError) as info:
        parse_component_assignments([item])
    message = str(info.value)
    assert repr(item) in message and fragment in message
    if "kind" in fragment or "KIND" in fragment:
        assert "dataset, featurizer, classifier, protocol" in message
