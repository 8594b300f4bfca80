"""Evaluation protocols: how utterances are split into training and test sets.

Every protocol says whether it is speaker-dependent or speaker-independent, because numbers from different
protocols are not comparable, and every report names the protocol next to its numbers.

- ``sd-random`` — the paper's: one seeded random split (80/20 by default), stratified by label unless
  ``stratify=false``. Speaker-dependent: a speaker's utterances land on both sides.
- ``loso`` — leave one group out (IEMOCAP: one session, i.e. two speakers, per fold). Speaker-independent.
- ``loso-speaker`` — leave one speaker out. Speaker-independent.
- ``kfold`` — stratified k-fold over utterances. Speaker-dependent.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from sertk.errors import ConfigError, UnknownComponentError
from sertk.metrics import Labels

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Fold:
    """One train/test split, as index arrays into the utterance list."""

    name: str
    train: np.ndarray
    test: np.ndarray


class Protocol:
    """Base class: ``split`` maps labels, speakers and groups to folds."""

    name: ClassVar[str]
    description: ClassVar[str]
    speaker_independent: ClassVar[bool]

    def split(self, labels: Sequence[str], speakers: Sequence[str], groups: Sequence[str],
              seed: int) -> list[Fold]:
        raise NotImplementedError

    @property
    def kind(self) -> str:
        return "speaker-independent" if self.speaker_independent else "speaker-dependent"

    def describe(self) -> str:
        return f"{self.name} ({self.kind})"


class RandomSplit(Protocol):
    name = "sd-random"
    description = "seeded random train/test split (the paper's 80/20), stratified by label by default"
    speaker_independent = False

    def __init__(self, test_size: float = 0.2, stratify: bool = True) -> None:
        if not 0.0 < float(test_size) < 1.0:
            raise ConfigError(f"protocol sd-random: test_size must be in (0, 1), got {test_size!r}")
        self.test_size = float(test_size)
        self.stratify = bool(stratify)

    def split(self, labels, speakers, groups, seed):
        from sklearn.model_selection import train_test_split

        labels = np.asarray(labels)
        index = np.arange(len(labels))
        try:
            train, test = train_test_split(index, test_size=self.test_size, random_state=seed,
                                           stratify=labels if self.stratify else None)
        except ValueError as exc:
            raise ConfigError(f"protocol sd-random cannot split {len(labels)} utterances: {exc} "
                              f"(use -o protocol.stratify=false or more data)") from None
        return [Fold(f"split-seed{seed}", np.sort(train), np.sort(test))]


class _LeaveOneOut(Protocol):
    speaker_independent = True
    key: ClassVar[str]

    def split(self, labels, speakers, groups, seed):
        keys = np.asarray(groups if self.key == "group" else speakers)
        values = sorted(set(keys.tolist()))
        if len(values) < 2:
            raise ConfigError(f"protocol {self.name} needs at least 2 {self.key}s, the dataset has "
                              f"{len(values)}: {values}")
        return [Fold(f"{self.key}-{v}", np.flatnonzero(keys != v), np.flatnonzero(keys == v)) for v in values]


class LeaveOneGroupOut(_LeaveOneOut):
    name = "loso"
    description = "leave one group (IEMOCAP: session) out; one fold per group"
    key = "group"


class LeaveOneSpeakerOut(_LeaveOneOut):
    name = "loso-speaker"
    description = "leave one speaker out; one fold per speaker"
    key = "speaker"


class KFold(Protocol):
    name = "kfold"
    description = "k-fold cross-validation over utterances, stratified by label by default"
    speaker_independent = False

    def __init__(self, n_splits: int = 5, stratify: bool = True) -> None:
        if int(n_splits) < 2:
            raise ConfigError(f"protocol kfold: n_splits must be at least 2, got {n_splits!r}")
        self.n_splits = int(n_splits)
        self.stratify = bool(stratify)

    def split(self, labels, speakers, groups, seed):
        from sklearn.model_selection import KFold as SkKFold
        from sklearn.model_selection import StratifiedKFold

        labels = np.asarray(labels)
        splitter = (StratifiedKFold if self.stratify else SkKFold)(self.n_splits, shuffle=True, random_state=seed)
        try:
            return [Fold(f"fold-{i}", np.sort(tr), np.sort(te))
                    for i, (tr, te) in enumerate(splitter.split(np.zeros(len(labels)), labels))]
        except ValueError as exc:
            raise ConfigError(f"protocol kfold cannot split {len(labels)} utterances: {exc}") from None


PROTOCOLS: dict[str, type[Protocol]] = {p.name: p for p in (RandomSplit, LeaveOneGroupOut, LeaveOneSpeakerOut,
                                                             KFold)}


def get_protocol(name: str, options: dict[str, Any] | None = None) -> Protocol:
    """Build a protocol by name; an unknown name or option is an error that lists what is known."""
    import inspect

    try:
        cls = PROTOCOLS[name]
    except KeyError:
        raise UnknownComponentError(f"unknown protocol {name!r}; known protocols: {', '.join(PROTOCOLS)}") from None
    options = dict(options or {})
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"protocol {name!r} has no option {', '.join(map(repr, unknown))}; "
                          f"its options are: {', '.join(accepted) or '(none)'}")
    return cls(**options)


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
