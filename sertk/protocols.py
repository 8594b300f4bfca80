"""Evaluation protocols: the contract between the host and protocol plugins, and the checks on their splits.

A protocol maps the utterances' labels, speakers and groups to train/test folds. Every protocol says whether it
is speaker-dependent or speaker-independent, because numbers from different protocols are not comparable, and
every report names the protocol next to its numbers. The built-in protocols (``sd-random``, ``kfold``, ``loso``,
``loso-speaker``, ``speaker-kfold``, ``group-split``) live in :mod:`sertk_plugins.protocols.standard`; plugins
add more through the ``sertk_register_protocols`` hook.

The host never trusts a protocol's folds blindly: :func:`check_folds` rejects indices out of range, a fold with an
empty side or an utterance on both sides, and :func:`leakage_warnings` flags speakers and identical recordings
shared by the two sides.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from sertk.errors import PluginError
from sertk.experiment.metrics import Labels

__all__ = ["Fold", "Protocol", "get_protocol", "check_folds", "class_warnings", "leakage_warnings"]


@dataclasses.dataclass(frozen=True)
class Fold:
    """One train/test split, as index arrays into the utterance list."""

    name: str
    train: np.ndarray
    test: np.ndarray


class Protocol:
    """Base class for protocols (plugins need not inherit from it, but must have these members).

    ``name`` and ``description`` as for every component; ``speaker_independent`` says whether the protocol
    promises that no speaker is on both sides of a fold (the host checks the promise). Options are constructor
    keyword arguments; :meth:`split` must return the same folds for the same inputs and ``seed``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    speaker_independent: ClassVar[bool]

    def split(self, labels: Sequence[str], speakers: Sequence[str], groups: Sequence[str],
              seed: int) -> list[Fold]:
        raise NotImplementedError

    @property
    def kind(self) -> str:
        return kind_of(self)

    def describe(self) -> str:
        return f"{self.name} ({self.kind})"


def kind_of(protocol: Any) -> str:
    """``"speaker-independent"`` or ``"speaker-dependent"``, for any object with ``speaker_independent``."""
    return "speaker-independent" if protocol.speaker_independent else "speaker-dependent"


def get_protocol(name: str, options: dict[str, Any] | None = None) -> Any:
    """Build a registered protocol by name; an unknown name or option is an error that lists what is known."""
    from sertk.plugins import get_component, instantiate

    return instantiate(get_component("protocol", name), dict(options or {}))


def check_folds(protocol: Any, folds: Any, n: int) -> list[Fold]:
    """The folds a protocol returned, as sorted int64 index arrays, or :class:`PluginError` saying what is wrong."""
    name = getattr(protocol, "name", type(protocol).__name__)
    where = f"protocol {name!r}"
    if not isinstance(folds, (list, tuple)) or not folds:
        raise PluginError(f"{where} returned {type(folds).__name__} {folds!r:.60}; expected a non-empty list of "
                          "sertk.protocols.Fold")
    checked: list[Fold] = []
    names: set[str] = set()
    for i, fold in enumerate(folds):
        if not all(hasattr(fold, a) for a in ("name", "train", "test")):
            raise PluginError(f"{where}: fold {i} is {type(fold).__name__}, not a Fold(name, train, test)")
        label = f"{where}, fold {fold.name!r}"
        if str(fold.name) in names:
            raise PluginError(f"{label}: two folds share this name; fold names must be unique")
        names.add(str(fold.name))
        sides = []
        for side in ("train", "test"):
            index = np.asarray(getattr(fold, side))
            if index.ndim != 1 or not (index.size == 0 or np.issubdtype(index.dtype, np.integer)):
                raise PluginError(f"{label}: {side} must be a 1-D array of integer indices, got dtype "
                                  f"{index.dtype} and shape {index.shape}")
            if index.size == 0:
                raise PluginError(f"{label}: the {side} set is empty")
            if index.min() < 0 or index.max() >= n:
                raise PluginError(f"{label}: {side} indices must lie in [0, {n}), got {index.min()} … {index.max()}")
            unique = np.unique(index)
            if unique.size != index.size:
                raise PluginError(f"{label}: {side} repeats {index.size - unique.size} index(es)")
            sides.append(unique.astype(np.int64))
        both = np.intersect1d(sides[0], sides[1])
        if both.size:
            raise PluginError(f"{label}: {both.size} utterance(s) are in both training and test sets "
                              f"(e.g. index {int(both[0])})")
        checked.append(Fold(str(fold.name), sides[0], sides[1]))
    return checked


#: a class with fewer training utterances than this in a fold is reported (one example is not a class model)
MIN_TRAIN_PER_CLASS = 2


def class_warnings(fold: Fold, labels: Labels) -> list[str]:
    """Classes a fold cannot learn: tested but absent from its training side (every such test utterance counts
    as an error), or trained on fewer than :data:`MIN_TRAIN_PER_CLASS` utterances."""
    y = np.asarray(labels)
    train, test = Counter(y[fold.train].tolist()), Counter(y[fold.test].tolist())
    problems = []
    absent = sorted(set(test) - set(train))
    if absent:
        shown = ", ".join(f"{c!r} ({test[c]})" for c in absent)
        problems.append(f"fold {fold.name}: class(es) {shown} are in the test set but not in the training set, so "
                        f"the classifier cannot predict them and those test utterances all count as errors")
    few = sorted(c for c, n in train.items() if n < MIN_TRAIN_PER_CLASS)
    if few:
        shown = ", ".join(f"{c!r} ({train[c]})" for c in few)
        problems.append(f"fold {fold.name}: class(es) {shown} have fewer than {MIN_TRAIN_PER_CLASS} training "
                        f"utterances: too few for this protocol to learn them")
    return problems


def leakage_warnings(fold: Fold, speakers: Labels, audio_keys: Sequence[str] | None,
                     speaker_independent: bool) -> list[str]:
    """Problems that make a split's numbers mean less than its name says."""
    problems = []
    speaker_array = np.asarray(speakers)
    if speaker_independent:
        shared = sorted(set(speaker_array[fold.train].tolist()) & set(speaker_array[fold.test].tolist()))
        if shared:
            problems.append(f"fold {fold.name}: speaker-independent protocol, but speakers {shared} are in both "
                            f"training and test sets")
    if audio_keys is not None:
        keys = np.asarray(audio_keys)
        dup = set(keys[fold.train]) & set(keys[fold.test])
        if dup:
            problems.append(f"fold {fold.name}: {len(dup)} recording(s) with identical audio are in both training "
                            f"and test sets")
    return problems

