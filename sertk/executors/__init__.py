"""Executors: where the featurizer runs on the files the embedding cache does not hold.

:func:`sertk.featurization.embed.embed_paths` (the driver) hashes every file, serves what the cache holds and hands the
misses — ``(content key, path)`` pairs, each distinct content once — to an executor. The executor embeds them in
*shards* and yields one :class:`ShardResult` per shard, in whatever order shards finish; the driver commits each
shard to the cache as it arrives (it is the cache's only writer) and assembles the output in input order, so the
executor changes where the work happens, never the result.

- ``local`` (:mod:`sertk.executors.local`, the default): in this process, with the featurizer instance the caller
  built; a shard is one batch.
- ``ray`` (:mod:`sertk.executors.ray`, ``pip install sertk[ray]``): Ray actors on a cluster, each building the
  featurizer once from its registry name and options (:class:`sertk.plugins.Recipe`); see ``docs/distributed.md``.

Both embed a shard with :func:`sertk.featurization.embed.embed_batches`, so a file that cannot be read, or whose
embedding is not finite, fails alone and is reported by name alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sertk.errors import ConfigError
from sertk.plugins import Recipe

__all__ = ["EXECUTORS", "EmbedJob", "Executor", "ShardResult", "make_executor", "resolve_executor"]

#: the executors ``--executor`` accepts, with one line each for ``sertk list``
EXECUTORS: dict[str, str] = {
    "local": "in this process (default)",
    "ray": "Ray actors on a local or remote cluster, one featurizer per worker (docs/distributed.md)",
}


@dataclasses.dataclass(frozen=True)
class EmbedJob:
    """What every shard of one :func:`~sertk.featurization.embed.embed_paths` call shares.

    Attributes
    ----------
    recipe
        How to build the featurizer elsewhere (registry name and options); ``None`` when it was built by hand.
    name
        The featurizer's name (for messages).
    dim, batch_size
        Embedding dimension; files per ``featurizer.embed`` call.
    fp_key
        The driver's fingerprint key: a worker whose featurizer has another one would poison the cache.
    """

    recipe: Recipe | None
    name: str
    dim: int
    batch_size: int
    fp_key: str


@dataclasses.dataclass
class ShardResult:
    """One embedded shard: per file, a float32 ``(dim,)`` vector, or ``None`` and the reason it has none."""

    keys: list[str]
    vectors: list[np.ndarray | None]
    reasons: list[str | None]
    #: who computed it ("local", or a Ray worker's node, process and GPUs)
    worker: str = "local"


class Executor(Protocol):
    """Runs a featurizer over cache misses, shard by shard."""

    name: str

    def embed(self, featurizer: Any, job: EmbedJob, misses: Sequence[tuple[str, Path]]) -> Iterator[ShardResult]:
        """Yield one :class:`ShardResult` per shard until every miss is in one (any order)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What a report records about where the work ran."""
        ...

    def close(self) -> None:
        """Release what the executor holds (workers, a cluster it started)."""
        ...


def make_executor(name: str = "local", *, address: str | None = None, workers: int | None = None,
                  gpus_per_worker: float | None = None) -> Executor:
    """The executor called ``name``; the Ray options are ignored by ``local``.

    Raises
    ------
    ConfigError
        For an unknown name, or ``ray`` when Ray is not installed (the message says ``pip install sertk[ray]``).
    """
    if name == "local":
        from sertk.executors.local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from sertk.executors.ray import RayExecutor

        return RayExecutor(address=address, workers=workers, gpus_per_worker=gpus_per_worker)
    raise ConfigError(f"unknown executor {name!r}; known executors: {', '.join(EXECUTORS)}")


def resolve_executor(executor: Executor | str | None) -> tuple[Executor, bool]:
    """``(executor, owned)``: an instance as given, or one built from a name (``None`` = local) that the caller
    then owns and closes."""
    if executor is None or isinstance(executor, str):
        return make_executor(executor or "local"), True
    return executor, False
