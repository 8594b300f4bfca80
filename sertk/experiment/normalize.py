"""Feature normalisation inside a fold: ``none``, ``global`` or ``speaker`` z-scoring, then block scaling.

One small fitted object per fold (:class:`FittedNormalization`), pure numpy, that never sees a label: it is fitted
on the fold's training features and, for ``speaker``, on the test side's features as unlabelled data.

- ``global``: z-score every vector with the mean and standard deviation of the fold's training side (a dimension
  constant there is divided by 1). This is ``--standardize``, bit for bit.
- ``speaker``: z-score each speaker's vectors with that speaker's own statistics, pooled over that speaker's
  utterances in the fold: a training speaker's from its training utterances, a test speaker's from its test
  utterances' features (unlabelled; the standard practice in speech emotion recognition, which reports must say).
  A speaker on both sides of a speaker-dependent split gets one set of statistics over both sides. Two rules
  keep small speakers sane:

  * a speaker with fewer than :data:`MIN_SPEAKER_UTTERANCES` utterances in the fold is z-scored with the training
    side's (global) statistics: the mean of one vector is that vector, and z-scoring would turn it into zeros;
  * a dimension whose standard deviation within a speaker is at most :data:`MIN_STD_RATIO` times the training
    side's is constant for that speaker: it is centred on the speaker's mean but divided by the training side's
    standard deviation (so it is about 0), instead of blowing rounding noise up to unit variance.

- Block scaling: a featurizer that declares ``blocks`` (``[(label, dim), ...]`` in column order, as a composite of
  several featurizers does) has each block multiplied by ``1 / sqrt(dim)`` after z-scoring, so every block carries
  the same total variance (1) and one part's dimension count does not drown another's. It is applied with
  ``global`` and ``speaker``; ``none`` leaves the features as the featurizer made them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sertk.errors import ConfigError, FeaturizerError

#: the normalisation modes, as ``--normalize`` and the ``normalize`` configuration key spell them
MODES = ("none", "global", "speaker")
#: a speaker with fewer utterances in a fold is z-scored with the training side's statistics
MIN_SPEAKER_UTTERANCES = 2
#: a speaker's dimension whose std is at most this fraction of the training side's is constant for that speaker
MIN_STD_RATIO = 1e-3

Blocks = tuple[tuple[str, int], ...]


def check_mode(mode: Any, source: str = "normalize") -> str:
    """``mode`` if it is one of :data:`MODES`, else a :class:`ConfigError` listing them."""
    if mode not in MODES:
        raise ConfigError(f"{source}: unknown normalisation {mode!r}; choose one of {', '.join(MODES)}")
    return str(mode)


def featurizer_default(featurizer: Any) -> str:
    """What a featurizer asks for when the run says nothing: ``global`` if its ``standardize`` is true, else
    ``none``."""
    return "global" if getattr(featurizer, "standardize", False) else "none"


def featurizer_blocks(featurizer: Any, dim: int) -> Blocks:
    """The featurizer's ``blocks`` checked against the embedding dimension; ``()`` when it declares none."""
    blocks = getattr(featurizer, "blocks", None)
    if not blocks:
        return ()
    return check_blocks(blocks, dim, f"featurizer {getattr(featurizer, 'name', type(featurizer).__name__)!r}")


def check_blocks(blocks: Sequence[Sequence[Any]], dim: int, owner: str = "blocks") -> Blocks:
    """``blocks`` as a tuple of ``(label, dim)``; they must be named, positive and add up to ``dim``."""
    checked: list[tuple[str, int]] = []
    for block in blocks:
        if (not isinstance(block, Sequence) or isinstance(block, str) or len(block) != 2
                or not isinstance(block[0], str) or isinstance(block[1], bool) or not isinstance(block[1], int)
                or block[1] < 1):
            raise FeaturizerError(f"{owner}: each of its blocks must be (label, dim) with a positive dim, got "
                                  f"{block!r}")
        checked.append((block[0], int(block[1])))
    total = sum(d for _, d in checked)
    if total != dim:
        raise FeaturizerError(f"{owner}: its blocks {checked} add up to {total} dimensions, but its embeddings have "
                              f"{dim}")
    return tuple(checked)


def block_scale(blocks: Blocks, dim: int) -> np.ndarray:
    """Per-column factors ``1 / sqrt(block dim)``, float64 ``(dim,)``; all ones without blocks."""
    scale = np.ones(dim)
    start = 0
    for _, size in blocks:
        scale[start:start + size] = 1.0 / math.sqrt(size)
        start += size
    return scale


@dataclasses.dataclass(frozen=True)
class Statistics:
    """A mean and a positive standard deviation per dimension, each ``(d,)``."""

    mean: np.ndarray
    std: np.ndarray
    #: utterances they were computed from
    n: int


def global_statistics(X: np.ndarray) -> Statistics:
    """Mean and std of ``X`` ``(n, d)`` in its own dtype (as ``--standardize`` always did); a constant dimension's
    std is 1."""
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[std == 0] = 1.0
    return Statistics(mean, std, len(X))


def speaker_statistics(X: np.ndarray, reference: Statistics) -> Statistics:
    """One speaker's statistics from its vectors ``X`` ``(n, d)``, with the module's rules for small speakers:
    fewer than :data:`MIN_SPEAKER_UTTERANCES` vectors give ``reference``; a dimension constant for the speaker
    keeps the speaker's mean and takes ``reference``'s std."""
    if len(X) < MIN_SPEAKER_UTTERANCES:
        return Statistics(reference.mean, reference.std, len(X))
    X64 = np.asarray(X, dtype=np.float64)
    mean = X64.mean(axis=0)
    std = X64.std(axis=0)
    reference_std = np.asarray(reference.std, dtype=np.float64)
    constant = std <= MIN_STD_RATIO * reference_std
    std[constant] = reference_std[constant]
    return Statistics(mean, std, len(X))


@dataclasses.dataclass(frozen=True)
class FittedNormalization:
    """The normalisation of one fold, ready to apply to its training and test vectors.

    ``reference`` is the training side's statistics (``global``: the ones applied; ``speaker``: the fallback of
    small speakers and constant dimensions); ``speakers`` holds each fold speaker's statistics (``speaker`` only);
    ``scale`` the block factors.
    """

    mode: str
    reference: Statistics | None
    speakers: Mapping[str, Statistics]
    scale: np.ndarray | None

    @property
    def small_speakers(self) -> list[str]:
        """Speakers z-scored with the training side's statistics for having too few utterances in the fold."""
        return sorted(s for s, stats in self.speakers.items() if stats.n < MIN_SPEAKER_UTTERANCES)

    def transform(self, X: np.ndarray, speakers: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
        """Normalise ``X`` ``(n, d)``; ``speakers`` (one per row) is needed by ``speaker`` and must name speakers
        the normalisation was fitted on. Returns an array of ``X``'s dtype."""
        if self.mode == "none":
            return X
        if self.mode == "global":
            assert self.reference is not None
            return self._z(X, self.reference)
        if speakers is None or len(speakers) != len(X):
            raise ValueError("speaker normalisation needs the speaker of every row")
        speaker_array = np.asarray(speakers).astype(str)
        unknown = sorted(set(speaker_array.tolist()) - set(self.speakers))
        if unknown:
            raise ValueError(f"no statistics for speaker(s) {unknown[:3]}: fit the normalisation on their features")
        out = np.empty_like(X)
        for speaker in dict.fromkeys(speaker_array.tolist()):
            rows = speaker_array == speaker
            out[rows] = self._z(X[rows], self.speakers[speaker])
        return out

    def _z(self, X: np.ndarray, stats: Statistics) -> np.ndarray:
        std = stats.std if self.scale is None else stats.std / self.scale  # scaling folded into the divisor
        return ((X - stats.mean) / std).astype(X.dtype, copy=False)

    def with_speaker(self, speaker: str, X: np.ndarray) -> "FittedNormalization":
        """This normalisation plus a new speaker's statistics from its unlabelled vectors ``X`` (``speaker`` mode:
        how ``sertk predict`` treats the files of one new speaker)."""
        if self.mode != "speaker" or self.reference is None:
            raise ValueError(f"only speaker normalisation has per-speaker statistics (this one is {self.mode!r})")
        return dataclasses.replace(self, speakers={**self.speakers,
                                                   speaker: speaker_statistics(X, self.reference)})


def fit_normalization(mode: str, X_train: np.ndarray, speakers_train: Sequence[str] | np.ndarray,
                      X_unlabelled: np.ndarray | None = None,
                      speakers_unlabelled: Sequence[str] | np.ndarray | None = None,
                      blocks: Blocks = ()) -> FittedNormalization:
    """Fit a normalisation on a fold's training vectors ``X_train`` ``(n, d)`` and, for ``speaker``, its test
    vectors ``X_unlabelled`` as unlabelled data. There is no label argument: nothing here can depend on one.

    ``speaker`` pools each speaker's rows of both arrays, so a speaker on both sides of a split gets one set of
    statistics.
    """
    check_mode(mode)
    dim = X_train.shape[1]
    scale = block_scale(blocks, dim) if blocks and mode != "none" else None
    if mode == "none":
        return FittedNormalization(mode, None, {}, None)
    reference = global_statistics(X_train)
    if mode == "global":
        return FittedNormalization(mode, reference, {}, scale)
    X_all = X_train
    speaker_all = np.asarray(speakers_train).astype(str)
    if X_unlabelled is not None and len(X_unlabelled):
        if speakers_unlabelled is None:
            raise ValueError("speaker normalisation needs the speaker of every unlabelled row")
        X_all = np.concatenate([X_train, X_unlabelled])
        speaker_all = np.concatenate([speaker_all, np.asarray(speakers_unlabelled).astype(str)])
    stats = {speaker: speaker_statistics(X_all[speaker_all == speaker], reference)
             for speaker in sorted(set(speaker_all.tolist()))}
    return FittedNormalization(mode, reference, stats, scale)


def fit_fold(mode: str, X: np.ndarray, speakers: Sequence[str] | np.ndarray, fold: Any,
             blocks: Blocks = ()) -> FittedNormalization:
    """:func:`fit_normalization` on the rows of one fold (``fold.train``, ``fold.test`` index arrays into ``X``):
    rows outside the fold are never read."""
    speaker_array = np.asarray(speakers)
    return fit_normalization(mode, X[fold.train], speaker_array[fold.train], X[fold.test], speaker_array[fold.test],
                             blocks)


def describe(mode: str, *, speaker_independent: bool, blocks: Blocks = (), source: str = "configuration"
             ) -> dict[str, Any]:
    """The normalisation as a report states it: mode, where its statistics come from, whether test-speaker
    statistics were used, block scaling."""
    statistics = {
        "none": "none: features as the featurizer made them",
        "global": "the mean and standard deviation of each fold's training side",
        "speaker": ("each speaker's own mean and standard deviation within each fold: training speakers' from their "
                    "training utterances, test speakers' from their test utterances' features (unlabelled)"
                    + ("" if speaker_independent else "; a speaker on both sides of a split (speaker-dependent "
                       "protocol) gets one set of statistics over both sides")
                    + f"; speakers with fewer than {MIN_SPEAKER_UTTERANCES} utterances in a fold use the training "
                      f"side's statistics, and dimensions constant for a speaker (std at most {MIN_STD_RATIO:g} of "
                      f"the training side's) its standard deviation"),
    }[mode]
    return {
        "mode": mode,
        "source": source,
        "statistics": statistics,
        "uses_test_speaker_statistics": mode == "speaker",
        "min_speaker_utterances": MIN_SPEAKER_UTTERANCES if mode == "speaker" else None,
        "min_std_ratio": MIN_STD_RATIO if mode == "speaker" else None,
        "blocks": [[label, size] for label, size in blocks] or None,
        "block_scaling": bool(blocks) and mode != "none",
    }
