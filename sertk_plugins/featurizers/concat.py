"""The ``concat`` featurizer: the embeddings of several configured featurizers side by side (say imagebind +
opensmile), each part cached under its own fingerprint.

Configured in TOML as::

    [featurizer]
    name = "concat"
    [featurizer.options]
    parts = ["imagebind", {name = "opensmile", options = {feature_set = "ComParE_2016"}}]

or on the command line with the same TOML value: ``-o 'featurizer.parts=["handcrafted", {name = "opensmile"}]'``.
A part is a featurizer name, or a table with ``name`` and optional ``options``.

The host embeds each part through the embedding cache on its own (:attr:`ConcatFeaturizer.parts`, see
:mod:`sertk.featurization.composite`), so changing one part recomputes only that part, and a file fails when any part
fails it, with the part named. :attr:`ConcatFeaturizer.blocks` tells the pipeline which columns belong to which part, so
that after z-scoring it can scale each part to equal weight: ComParE's 6373 columns would otherwise drown
ImageBind's 1024.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import sertk
from sertk.errors import AudioError, ConfigError
from sertk.plugins import get_component, instantiate

__all__ = ["ConcatFeaturizer", "parse_parts"]


def parse_parts(parts: Any) -> list[tuple[str, dict[str, Any]]]:
    """``parts`` as ``[(name, options), ...]``; a :class:`ConfigError` naming the bad entry otherwise."""
    example = '["handcrafted", {name = "opensmile", options = {feature_set = "eGeMAPSv02"}}]'
    if isinstance(parts, (str, Mapping)) or not isinstance(parts, Sequence) or not parts:
        raise ConfigError(f"featurizer 'concat': option parts must be a non-empty list of featurizers, e.g. "
                          f"parts = {example}; got {parts!r}")
    parsed = []
    for number, part in enumerate(parts, start=1):
        if isinstance(part, str):
            part = {"name": part}
        if not isinstance(part, Mapping) or not isinstance(part.get("name"), str) or not part["name"]:
            raise ConfigError(f"featurizer 'concat': part {number} must be a featurizer name or a table with "
                              f"`name` (and `options`), got {part!r}")
        unknown = sorted(set(part) - {"name", "options"})
        if unknown:
            raise ConfigError(f"featurizer 'concat': part {number} ({part['name']!r}) has unknown key(s) "
                              f"{', '.join(map(repr, unknown))}; a part has `name` and `options`")
        options = part.get("options", {})
        if not isinstance(options, Mapping):
            raise ConfigError(f"featurizer 'concat': part {number} ({part['name']!r}): options must be a table, "
                              f"got {options!r}")
        if part["name"] == ConcatFeaturizer.name:
            raise ConfigError("featurizer 'concat': a part cannot be concat itself; list its parts here instead")
        parsed.append((part["name"], dict(options)))
    return parsed


def _labels(names: Sequence[str]) -> list[str]:
    """One label per part: its name, numbered where a name repeats (``opensmile``, ``opensmile-2``)."""
    labels: list[str] = []
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return labels


class ConcatFeaturizer(sertk.Featurizer):
    """Several featurizers' embeddings side by side, each cached on its own and scaled per part.

    Parameters
    ----------
    parts
        The featurizers, in column order: each a name or a table ``{name = ..., options = {...}}``.
    """

    name: ClassVar[str] = "concat"
    description: ClassVar[str] = "several featurizers side by side (parts = [...]), each cached on its own"
    standardize: ClassVar[bool] = True

    def __init__(self, parts: Any = ()) -> None:
        specs = parse_parts(parts)
        #: the part featurizers, in column order; the host embeds each through the cache (sertk.featurization.composite)
        self.parts: list[Any] = [instantiate(get_component("featurizer", name), options) for name, options in specs]
        self.labels = _labels([name for name, _ in specs])
        #: (part label, dim) per part in column order: the pipeline weighs each block alike after z-scoring
        self.blocks: list[tuple[str, int]] = [(label, int(part.dim)) for label, part in zip(self.labels, self.parts)]
        self.batch_size = min(int(getattr(part, "batch_size", 16)) for part in self.parts)

    @property
    def dim(self) -> int:
        return sum(dim for _, dim in self.blocks)

    def fingerprint(self) -> Mapping[str, Any]:
        return {"name": self.name, "parts": [dict(part.fingerprint()) for part in self.parts]}

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """Each part's embeddings, side by side, float32 ``(len(paths), dim)``, without the cache (the host goes
        through :mod:`sertk.featurization.composite` instead); an :class:`AudioError` names the part."""
        columns = []
        for label, part in zip(self.labels, self.parts):
            try:
                columns.append(np.asarray(part.embed(list(paths)), dtype=np.float32))
            except AudioError as exc:
                raise AudioError(exc.path, f"part {label!r}: {exc.reason}") from exc
        return np.hstack(columns)


@sertk.hookimpl
def sertk_register_featurizers(register) -> None:
    register(ConcatFeaturizer)
