"""The built-in evaluation protocols.

- ``sd-random`` — the paper's: one seeded random split (80/20 by default), stratified by label unless
  ``stratify=false``. Speaker-dependent: a speaker's utterances land on both sides.
- ``kfold`` — stratified k-fold over utterances. Speaker-dependent.
- ``loso`` — leave one group out (IEMOCAP: one session, i.e. two speakers, per fold). Speaker-independent.
- ``loso-speaker`` — leave one speaker out. Speaker-independent.
- ``speaker-kfold`` — k folds of whole speakers, label proportions kept as far as speakers allow.
  Speaker-independent; the usual protocol for corpora with many speakers (CREMA-D's 91), where one fold per
  speaker is too many.
- ``group-split`` — train on some groups, test on others: one fold, no seed. With the ``combined`` dataset the
  groups are its parts, so ``train = "iemocap"``, ``test = "ravdess"`` is a cross-corpus experiment.
  Speaker-independent when no speaker is in groups on both sides (the host's leakage check warns otherwise).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

import sertk
from sertk.errors import ConfigError
from sertk.protocols import Fold, Protocol

__all__ = ["GroupSplit", "KFold", "LeaveOneGroupOut", "LeaveOneSpeakerOut", "RandomSplit", "SpeakerKFold"]


def _flag(protocol: str, option: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"protocol {protocol}: {option} must be true or false, got {value!r}")
    return bool(value)


def _count(protocol: str, option: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"protocol {protocol}: {option} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


class RandomSplit(Protocol):
    name = "sd-random"
    description = "seeded random train/test split (the paper's 80/20), stratified by label by default"
    speaker_independent = False

    def __init__(self, test_size: float = 0.2, stratify: bool = True) -> None:
        if isinstance(test_size, bool) or not isinstance(test_size, (int, float)) or not 0.0 < test_size < 1.0:
            raise ConfigError(f"protocol sd-random: test_size must be a fraction in (0, 1), got {test_size!r}")
        self.test_size = float(test_size)
        self.stratify = _flag(self.name, "stratify", stratify)

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


class KFold(Protocol):
    name = "kfold"
    description = "k-fold cross-validation over utterances, stratified by label by default"
    speaker_independent = False

    def __init__(self, n_splits: int = 5, stratify: bool = True) -> None:
        self.n_splits = _count(self.name, "n_splits", n_splits, 2)
        self.stratify = _flag(self.name, "stratify", stratify)

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


class SpeakerKFold(Protocol):
    name = "speaker-kfold"
    description = "k folds of whole speakers (seeded), label proportions kept as far as speakers allow"
    speaker_independent = True

    def __init__(self, n_splits: int = 5, stratify: bool = True) -> None:
        self.n_splits = _count(self.name, "n_splits", n_splits, 2)
        self.stratify = _flag(self.name, "stratify", stratify)

    def split(self, labels, speakers, groups, seed):
        labels, speakers = np.asarray(labels), np.asarray(speakers)
        names, speaker_of = np.unique(speakers, return_inverse=True)
        if len(names) < self.n_splits:
            raise ConfigError(f"protocol speaker-kfold: {self.n_splits} folds need at least {self.n_splits} "
                              f"speakers, the dataset has {len(names)}; lower -o protocol.n_splits=N or use "
                              "loso-speaker")
        # counts[s, c]: utterances of speaker s in class c (one column, the size, without stratification)
        classes = np.unique(labels, return_inverse=True)[1] if self.stratify else np.zeros(len(labels), int)
        counts = np.zeros((len(names), classes.max() + 1))
        np.add.at(counts, (speaker_of, classes), 1)
        ideal = counts.sum(axis=0) / self.n_splits
        # Greedy in a seeded random speaker order: each speaker joins the fold whose counts it brings closest to
        # the ideal (least squares), ties to the smaller fold. scikit-learn's StratifiedGroupKFold orders speakers
        # by their label spread, so its seed only breaks ties and repeats would see the same partition.
        fold_counts = np.zeros((self.n_splits, counts.shape[1]))
        fold_of = np.empty(len(names), dtype=np.int64)
        for s in np.random.default_rng(seed).permutation(len(names)):
            gain = (fold_counts - ideal) @ counts[s]
            f = min(range(self.n_splits), key=lambda f: (gain[f], fold_counts[f].sum(), f))
            fold_of[s] = f
            fold_counts[f] += counts[s]
        utterance_fold = fold_of[speaker_of]
        return [Fold(f"speakers-{f}", np.flatnonzero(utterance_fold != f), np.flatnonzero(utterance_fold == f))
                for f in range(self.n_splits)]


def _group_names(protocol: str, option: str, value: Any) -> tuple[str, ...]:
    """A group option: one name, or a list of names (order kept, repeats dropped)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) and i for i in items):
        raise ConfigError(f"protocol {protocol}: {option} must be a group name or a list of group names, got "
                          f"{value!r}")
    if not items:
        raise ConfigError(f"protocol {protocol}: {option} is an empty list; name at least one group")
    return tuple(dict.fromkeys(items))


class GroupSplit(Protocol):
    """Train on the utterances of some groups, test on those of others: one fold, the same for every seed.

    ``test`` (required) and ``train`` are each a group name or a list of group names; ``train`` defaults to every
    group not in ``test``. With the ``combined`` dataset the groups are its parts' labels, so ``train =
    "iemocap"``, ``test = "ravdess"`` trains on one corpus and tests on another. The fold is named
    ``"<train>→<test>"``, several groups joined by ``+`` (``"iemocap→ravdess"``, ``"cremad+iemocap→ravdess"``).

    The protocol is speaker-independent when no speaker is in groups on both sides: true for the parts of
    ``combined`` (their speakers are prefixed with the part's label) and for corpora whose groups hold whole
    speakers (IEMOCAP's sessions). The class says ``speaker_independent = True`` and leaves the proof to the host:
    its leakage check (:func:`sertk.protocols.leakage_warnings`) warns, naming them, when a speaker is on both sides.
    """

    name = "group-split"
    description = ("train on some groups, test on others (with the combined dataset: train on one corpus, test "
                   "on another); one fold")
    speaker_independent = True

    def __init__(self, test: str | list[str] | None = None, train: str | list[str] | None = None) -> None:
        if test is None:
            raise ConfigError("protocol group-split needs the option test: the group (or list of groups) to test "
                              "on, e.g. -o protocol.test=ravdess; with the combined dataset the groups are its "
                              "parts' labels")
        self.test = _group_names(self.name, "test", test)
        self.train = None if train is None else _group_names(self.name, "train", train)
        both = [g for g in self.test if self.train is not None and g in self.train]
        if both:
            raise ConfigError(f"protocol group-split: group(s) {', '.join(map(repr, both))} are named in both train "
                              "and test; a group goes on one side only")

    def split(self, labels, speakers, groups, seed):
        groups = np.asarray(groups).astype(str)
        known = sorted(set(groups.tolist()))
        for option, names in (("test", self.test), ("train", self.train or ())):
            unknown = [g for g in names if g not in known]
            if unknown:
                raise ConfigError(f"protocol group-split: option {option}: no group {', '.join(map(repr, unknown))}"
                                  f"; the dataset's groups are: {', '.join(known)}")
        train = self.train if self.train is not None else tuple(g for g in known if g not in self.test)
        if not train:
            raise ConfigError(f"protocol group-split: nothing left to train on: test names every group of the "
                              f"dataset ({', '.join(known)}); leave one out of test or name train")
        return [Fold(f"{'+'.join(train)}→{'+'.join(self.test)}", np.flatnonzero(np.isin(groups, train)),
                     np.flatnonzero(np.isin(groups, self.test)))]


@sertk.hookimpl
def sertk_register_protocols(register) -> None:
    for protocol in (RandomSplit, KFold, LeaveOneGroupOut, LeaveOneSpeakerOut, SpeakerKFold, GroupSplit):
        register(protocol)
