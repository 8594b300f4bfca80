"""The ``combined`` dataset: several registered datasets as one, for cross-corpus experiments.

Speech-emotion results on one corpus say little about another: the usual checks are *train on one corpus, test on
another* and *leave one corpus out*. ``combined`` makes both work without a special pipeline. It builds each part
through the plugin host, exactly as ``sertk run`` builds a dataset, and yields the parts' utterances one after the
other, so any protocol sees one corpus whose groups are the parts:

- ``id`` and ``speaker`` are prefixed with ``"<label>/"`` (``iemocap/Ses01F_impro01_F000``, ``ravdess/Actor_01``):
  ids stay unique and speakers of different corpora never collide;
- ``group`` is the part's label, so ``loso`` is leave-one-corpus-out and ``group-split`` trains on some corpora and
  tests on the others (the parts' own groups, e.g. IEMOCAP's sessions, are not kept);
- ``label`` is unchanged: map each part's labels onto a shared set with that part's own ``classes`` option. Labels
  that occur in only some parts cannot be learned across corpora; loading warns, naming them;
- ``meta`` is the part's meta with ``corpus`` set to the label.

The one option, ``datasets``, is a list of tables, one per part (TOML: ``[[dataset.options.datasets]]``)::

    {name = "iemocap", root = "/data/IEMOCAP_full_release", options = {classes = "4class"}}
    {name = "demo", label = "demo-a"}          root only for datasets that need one; label defaults to name

A relative part ``root`` is relative to the combined dataset's own root (``--data-root``) when one is given.
The same dataset may appear twice under different labels (two copies, two subsets). Every mistake in the list —
not a list, empty, an unknown key, dataset or option, a part that is itself ``combined``, a missing root, a label
used twice — is a :class:`sertk.ConfigError` naming the entry, raised when the dataset is built (before any audio
is read).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import sertk
from sertk import ConfigError, Dataset, DatasetError, UnknownComponentError, Utterance
from sertk.plugins import get_component, instantiate

__all__ = ["ENTRY_KEYS", "CombinedDataset", "Part"]

logger = logging.getLogger(__name__)

#: the keys a part's table may have
ENTRY_KEYS: tuple[str, ...] = ("name", "root", "options", "label")
_EXAMPLE = '[{name = "iemocap", root = "/data/IEMOCAP_full_release"}, {name = "ravdess", root = "/data/RAVDESS"}]'


@dataclasses.dataclass(frozen=True)
class Part:
    """One part of a combined dataset: its label (the group and id prefix), the dataset's name, the instance."""

    label: str
    name: str
    dataset: Any


class CombinedDataset(Dataset):
    """Several datasets as one, for cross-corpus experiments: group = the part, ids and speakers prefixed.

    Parameters
    ----------
    root
        Optional: the folder that relative part roots are relative to.
    datasets
        The parts: a list of tables ``{name, root, options, label}``; ``name`` is required, ``root`` is required
        for datasets that need files, ``options`` are the part's own dataset options, ``label`` (default: the
        name) names the part in ids, speakers, groups and ``meta["corpus"]``.
    """

    name: ClassVar[str] = "combined"
    description: ClassVar[str] = ("several datasets as one for cross-corpus experiments: group = the part, so loso "
                                  "is leave-one-corpus-out and group-split trains on one corpus, tests on another")
    requires_root: ClassVar[bool] = False

    def __init__(self, root: str | Path | None = None, datasets: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(root)
        self.parts: tuple[Part, ...] = _build_parts(datasets, self.root)

    @property
    def part_labels(self) -> tuple[str, ...]:
        """The parts' labels, in the order given: the groups of the combined dataset."""
        return tuple(p.label for p in self.parts)

    @property
    def skipped(self) -> dict[str, str]:
        """Files the parts left out (path → reason, the reason prefixed with the part's label)."""
        out: dict[str, str] = {}
        for part in self.parts:
            for path, reason in dict(getattr(part.dataset, "skipped", None) or {}).items():
                out[str(path)] = f"{part.label}: {reason}"
        return out

    def load(self) -> list[Utterance]:
        utterances: list[Utterance] = []
        label_sets: dict[str, set[str]] = {}
        for part in self.parts:
            where = f"dataset 'combined', part {part.label!r} ({part.name})"
            try:
                loaded = list(part.dataset.utterances())
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
            except DatasetError as exc:
                raise DatasetError(f"{where}: {exc}") from exc
            if not loaded:
                raise DatasetError(f"{where} yielded no utterances; check its root and options")
            for u in loaded:
                if not isinstance(u, Utterance):
                    raise DatasetError(f"{where} yielded {type(u).__name__}, not sertk.Utterance")
                meta = {"corpus": part.label, **{k: v for k, v in u.meta.items() if k != "corpus"}}
                utterances.append(Utterance(id=f"{part.label}/{u.id}", path=u.path, label=u.label,
                                            speaker=f"{part.label}/{u.speaker}", group=part.label, meta=meta))
            label_sets[part.label] = {u.label for u in loaded}
        _warn_on_label_mismatch(label_sets)
        return utterances


def _warn_on_label_mismatch(label_sets: Mapping[str, set[str]]) -> None:
    """Log a warning naming every label that occurs in some parts but not in all."""
    every = set().union(*label_sets.values())
    partial = {label: [p for p, labels in label_sets.items() if label in labels]
               for label in sorted(every) if not all(label in labels for labels in label_sets.values())}
    if partial:
        listing = "; ".join(f"{label!r} only in {', '.join(parts)}" for label, parts in partial.items())
        logger.warning("dataset 'combined': the parts have different label sets, and labels that occur in only "
                       "some parts cannot be learned across corpora: %s. Map each part's labels onto a shared set "
                       "with its classes option, or leave them out", listing)


def _build_parts(value: Any, base: Path | None) -> tuple[Part, ...]:
    if value is None:
        raise ConfigError(f"dataset 'combined' needs the option datasets: a list of tables, e.g. {_EXAMPLE}")
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ConfigError(f"dataset 'combined': option datasets must be a list of tables {{name = …, root = …, "
                          f"options = {{…}}, label = …}}, got {type(value).__name__} {value!r:.80}")
    if not value:
        raise ConfigError(f"dataset 'combined': option datasets is empty; list the parts, e.g. {_EXAMPLE}")
    parts: list[Part] = []
    first_use: dict[str, int] = {}
    for i, entry in enumerate(value):
        part = _build_part(i, entry, base, first_use)
        first_use[part.label] = i
        parts.append(part)
    return tuple(parts)


def _build_part(i: int, entry: Any, base: Path | None, first_use: Mapping[str, int]) -> Part:
    where = f"dataset 'combined': datasets[{i}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a table {{name = …, root = …, options = {{…}}, label = …}}, got "
                          f"{type(entry).__name__} {entry!r:.80}")
    unknown = sorted(str(k) for k in entry if k not in ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                          f"{', '.join(ENTRY_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name must be a registered dataset's name (a non-empty string), got {name!r}")
    where = f"{where} ({name!r})"
    label = entry.get("label", name)
    if not isinstance(label, str) or not label.strip() or "/" in label:
        raise ConfigError(f"{where}: label must be a non-empty string without '/', got {label!r}")
    if label in first_use:
        raise ConfigError(f"{where}: label {label!r} is already used by datasets[{first_use[label]}]; give one of "
                          "them another label = \"…\" (every part needs its own)")
    root = entry.get("root")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ConfigError(f"{where}: root must be a path string, got {type(root).__name__} {root!r}")
    options = entry.get("options", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"{where}: options must be a table of the dataset's options, got "
                          f"{type(options).__name__} {options!r}")
    try:
        component = get_component("dataset", name)
    except UnknownComponentError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if component.name == CombinedDataset.name or issubclass(component.cls, CombinedDataset):
        raise ConfigError(f"{where}: a part cannot itself be a combined dataset; list its parts here instead")
    if root is None and getattr(component.cls, "requires_root", False):
        raise ConfigError(f"{where}: dataset {name!r} needs its files: give this entry a root = \"DIR\"")
    if root is not None and base is not None:
        root = base / Path(root)  # an absolute root stays as it is
    try:
        dataset = instantiate(component, dict(options), root=None if root is None else str(root))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except DatasetError as exc:
        raise DatasetError(f"{where}: {exc}") from exc
    return Part(label, name, dataset)


@sertk.hookimpl
def sertk_register_datasets(register) -> None:
    register(CombinedDataset)
