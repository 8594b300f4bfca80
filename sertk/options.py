"""Parse ``key=value`` options from the command line into plain Python values.

One rule everywhere (``sertk embed -o``, ``sertk run -o``): the value is read as a TOML literal when it is one
(``0.1``, ``true``, ``"text"``, ``[1, 2]``, ``{a = 1}``), and is kept as the literal string otherwise
(``weights=ckpt/model.safetensors``). Quote a value that must stay a string although it parses (``-o tag='"1"'``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from typing import Any

from sertk.errors import ConfigError

__all__ = ["parse_option_value", "parse_assignments", "parse_component_assignments", "COMPONENT_KINDS"]

#: the kinds ``sertk run -o KIND.OPTION=VALUE`` addresses by default
COMPONENT_KINDS: tuple[str, ...] = ("dataset", "featurizer", "classifier", "protocol")


def parse_option_value(text: str) -> Any:
    """The TOML value that ``text`` spells, or ``text`` itself when it is not a single TOML literal.

    >>> parse_option_value("0.5"), parse_option_value("true"), parse_option_value("a/b.pt")
    (0.5, True, 'a/b.pt')
    """
    if "\n" in text or "\r" in text:  # a newline could smuggle in more TOML keys; such a value is a string
        return text
    try:
        parsed = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        return text
    if set(parsed) != {"value"}:  # pragma: no cover - unreachable without a newline, kept as a guard
        return text
    return parsed["value"]


def _split(item: str, what: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"bad {what} {item!r}: expected KEY=VALUE, e.g. 'batch_size=8'")
    return key, value.strip()


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``["k=v", ...]`` → ``{"k": parsed v, ...}``; a later assignment to the same key wins.

    Raises
    ------
    ConfigError
        Naming the item that has no ``=`` or an empty key.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, value = _split(item, "option")
        options[key] = parse_option_value(value)
    return options


def parse_component_assignments(
    items: Iterable[str], kinds: Iterable[str] = COMPONENT_KINDS
) -> dict[str, dict[str, Any]]:
    """``["classifier.nu=0.1", ...]`` → ``{"classifier": {"nu": 0.1}, "dataset": {}, ...}``.

    The result has one (possibly empty) dict for every kind in ``kinds``; a later assignment to the same option
    wins. The option name is everything after the first dot.

    Raises
    ------
    ConfigError
        Naming the bad item: no ``=``, no ``KIND.`` prefix, an empty option name or an unknown kind (the error
        lists the known kinds).
    """
    kinds = tuple(kinds)
    known = ", ".join(kinds)
    result: dict[str, dict[str, Any]] = {kind: {} for kind in kinds}
    for item in items:
        key, value = _split(item, "option")
        kind, dot, option = key.partition(".")
        kind, option = kind.strip(), option.strip()
        if not dot or not option:
            raise ConfigError(f"bad option {item!r}: expected KIND.OPTION=VALUE where KIND is one of: {known}")
        if kind not in result:
            raise ConfigError(f"bad option {item!r}: unknown kind {kind!r}; known kinds: {known}")
        result[kind][option] = parse_option_value(value)
    return result
