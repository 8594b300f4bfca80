"""The local executor: the misses embedded in this process, batch by batch, with the caller's featurizer instance.

A shard is one batch, so the driver commits every batch before the next is embedded and an interrupted run loses
at most one batch; the featurizer's ``prefetch`` hint names each next batch
(:func:`~sertk.featurization.embed.embed_batches`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sertk.executors import EmbedJob, ShardResult

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Embeds in the calling process (the default)."""

    name = "local"

    def embed(self, featurizer: Any, job: EmbedJob, misses: Sequence[tuple[str, Path]]) -> Iterator[ShardResult]:
        from sertk.featurization.embed import embed_batches

        shards = [misses[start:start + job.batch_size] for start in range(0, len(misses), job.batch_size)]
        results = embed_batches(featurizer, [[path for _, path in shard] for shard in shards], job.dim)
        for shard, (vectors, reasons) in zip(shards, results):
            yield ShardResult([key for key, _ in shard], vectors, reasons)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def close(self) -> None:
        pass
