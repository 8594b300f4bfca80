"""The public contracts between sertk and its plugins: what a dataset, featurizer and classifier are.

Plugins need not inherit from anything here: the host checks the duck-typed contract when a component is
registered. The base classes exist for convenience and documentation; :class:`Utterance` is the one concrete
type every dataset must produce.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

__all__ = ["Utterance", "Dataset", "Featurizer", "Classifier", "DatasetLike", "FeaturizerLike"]


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One labelled recording.

    Parameters
    ----------
    id
        Unique within the dataset; stable across runs (it goes into reports and split files).
    path
        An audio file that :mod:`soundfile` can read.
    label
        The emotion label, as the dataset names it after any class mapping.
    speaker
        Who speaks; speaker-independent protocols never put one speaker on both sides of a split.
    group
        The fold key for leave-one-group-out protocols (IEMOCAP: the session).
    meta
        Anything else a dataset wants to carry (transcript, gender, improvised/scripted, …).
    """

    id: str
    path: Path
    label: str
    speaker: str
    group: str
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        for field in ("id", "label", "speaker", "group"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ValueError(f"Utterance.{field} must be a non-empty string, got {value!r}")


@runtime_checkable
class DatasetLike(Protocol):
    """What the host requires of a dataset class: ``cls(root=..., **options).utterances()``."""

    name: ClassVar[str]

    def utterances(self) -> Iterator[Utterance]: ...


@runtime_checkable
class FeaturizerLike(Protocol):
    """What the host requires of a featurizer class: ``cls(**options)`` with these members."""

    name: ClassVar[str]

    @property
    def dim(self) -> int: ...

    def fingerprint(self) -> Mapping[str, Any]: ...

    def embed(self, paths: Sequence[Path]) -> np.ndarray: ...


class Dataset:
    """Convenience base class for datasets.

    A dataset is constructed as ``cls(root=..., **options)``; ``root`` is ``None`` for corpora that need no
    files (such as the embedded demo). :meth:`utterances` yields :class:`Utterance` records in a stable order.
    Raise :class:`sertk.errors.DatasetError` with a precise message when the corpus is missing or malformed.
    """

    name: ClassVar[str]
    #: one line shown by ``sertk list``
    description: ClassVar[str] = ""
    #: whether ``root`` must be given
    requires_root: ClassVar[bool] = True

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else None

    def utterances(self) -> Iterator[Utterance]:
        """The utterances in a stable order: :meth:`load` runs once, later calls are served from memory.

        Override :meth:`load` (reading a corpus is slow and may warn, so it should happen once), or override this
        method directly for a dataset that streams.
        """
        loaded: list[Utterance] | None = getattr(self, "_loaded", None)
        if loaded is None:
            loaded = self._loaded = list(self.load())
        return iter(loaded)

    def load(self) -> Iterable[Utterance]:
        raise NotImplementedError(f"{type(self).__name__} must implement load() or utterances()")


class Featurizer:
    """Convenience base class for featurizers: audio files in, one fixed-size embedding per file out.

    Contract
    --------
    - constructed as ``cls(**options)``; options are plain JSON/TOML values.
    - :attr:`dim` is the embedding dimension.
    - :meth:`fingerprint` returns a JSON-serialisable mapping of *everything that changes the output* (name,
      preprocessing options, a digest of the weights, dtype, …); the embedding cache keys on it, so a missing
      entry serves stale embeddings.
    - :meth:`embed` maps a batch of files to a float32 array of shape ``(len(paths), dim)``; it raises
      :class:`sertk.errors.AudioError` naming the file that cannot be decoded (the host then retries the
      batch file by file, so one bad file never fails the others).
    - :attr:`batch_size` is the batch the host uses by default; :attr:`standardize` says whether the pipeline
      should z-score the features on the training split by default (hand-crafted statistics need it, normalised
      embeddings do not).
    - optional ``prefetch(paths)``: the host names the next batch before embedding the current one, so the
      featurizer may decode it in the background (a hint: it must not fail, nor hold unused batches forever).
    - optional ``blocks``: ``[(label, dim), ...]`` in column order, summing to :attr:`dim`, for an embedding made
      of parts (``concat``); after z-scoring, the pipeline scales each block by 1/sqrt(its dim), so every part
      weighs alike whatever its number of columns. Optional ``parts`` (the part featurizers, in that order): the
      host embeds each through the cache under its own fingerprint and puts the rows side by side
      (:mod:`sertk.featurization.composite`), never calling the composite's :meth:`embed`.
    - optional ``extra``: the sertk extra (``pip install sertk[EXTRA]``) whose package the featurizer needs;
      ``sertk list`` says how to get it when missing, and the constructor should call
      :func:`sertk.extras.require_extra`.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    batch_size: int = 16
    standardize: ClassVar[bool] = False

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def fingerprint(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        raise NotImplementedError


class Classifier:
    """Documentation of the classifier contract; classifiers need not inherit from it.

    A classifier is a scikit-learn style estimator class with a stable lowercase ``name``: constructed as
    ``cls(**options)``, it has ``fit(X, y)``, ``predict(X)`` and ``get_params()``; ``decision_function`` and
    ``predict_proba`` are used when present. ``X`` is a float array ``(n_samples, n_features)``, ``y`` an array
    of string labels. If the constructor accepts ``random_state``, the host passes the run's seed unless the
    user set it. A classifier that implements ``save(path)`` and classmethod ``load(path)`` can be saved with a
    trained pipeline without pickle. An optional ``check_params()`` raises ``ValueError`` naming a bad
    hyperparameter without fitting; the host calls it before featurizing, so a bad option fails at once (a
    constructor that validates its options does as well).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
