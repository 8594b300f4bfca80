"""Composite featurizers (``concat``): each part embedded through the cache on its own, then side by side.

A featurizer with a non-empty ``parts`` attribute (its part featurizers, in column order) is a composite:
:func:`sertk.featurization.embed.embed_paths` hands it to :func:`embed_parts`, which calls ``embed_paths`` once per
part, so each part's embeddings are cached under that part's own fingerprint. Changing one part, or adding one,
recomputes only that part; the composite's own ``embed`` is never called by the host. A file has a row when every part
embedded it; otherwise its failure reason names each part that failed it (``part 'opensmile': …``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from sertk.featurization.cache import EmbeddingCache, fingerprint_key
from sertk.featurization.embed import EmbedResult, embed_paths

__all__ = ["embed_parts", "is_composite"]

logger = logging.getLogger(__name__)


def is_composite(featurizer: Any) -> bool:
    return bool(getattr(featurizer, "parts", None))


def _labels(featurizer: Any, parts: Sequence[Any]) -> list[str]:
    blocks = getattr(featurizer, "blocks", None)
    if blocks and len(blocks) == len(parts):
        return [str(label) for label, _ in blocks]
    return [str(getattr(part, "name", type(part).__name__)) for part in parts]


def embed_parts(featurizer: Any, paths: Sequence[str | os.PathLike], *, cache: EmbeddingCache | None,
                batch_size: int | None = None, desc: str = "embedding", **options: Any) -> EmbedResult:
    """:func:`sertk.featurization.embed.embed_paths` for a composite: each part through it (with ``cache``,
    ``batch_size`` and any other keyword ``options``, such as an executor), the rows side by side.

    Returns
    -------
    EmbedResult
        ``embeddings`` ``(n_ok, sum of part dims)`` in part order; a file is ``ok`` when every part embedded it.
        ``fp_key`` is the composite's (its fingerprint holds the parts'). A file counts as computed when the part
        that computed most files did: ``n_computed`` is that part's count among the files that succeeded, so a
        second run with one part changed reports that part's work.
    """
    parts = list(featurizer.parts)
    labels = _labels(featurizer, parts)
    results = [embed_paths(part, paths, cache=cache, batch_size=batch_size, desc=f"{desc} [{label}]", **options)
               for label, part in zip(labels, parts)]
    for label, result in zip(labels, results):
        logger.info("part %r: %d from the cache, %d computed, %d failed", label, result.n_cached,
                    result.n_computed, len(result.failures))

    ok = np.logical_and.reduce([result.ok for result in results])
    failures: dict[int, str] = {}
    for index in sorted({i for result in results for i in result.failures}):
        failures[index] = "; ".join(f"part {label!r}: {result.failures[index]}"
                                    for label, result in zip(labels, results) if index in result.failures)
    columns = []
    for result in results:
        row_of = np.cumsum(result.ok) - 1  # each input's row in this part's embeddings (where it has one)
        columns.append(result.embeddings[row_of[ok]])
    embeddings = np.hstack(columns).astype(np.float32, copy=False)
    n_ok = int(ok.sum())
    n_computed = min(n_ok, max(result.n_computed for result in results))
    merged = dataclasses.replace(results[0], embeddings=embeddings, ok=ok, failures=failures,
                                 n_cached=n_ok - n_computed, n_computed=n_computed,
                                 fp_key=fingerprint_key(featurizer.fingerprint()))
    if "computed_by" in {field.name for field in dataclasses.fields(EmbedResult)}:  # who computed what: summed
        counts: dict[str, int] = {}
        for result in results:
            for worker, count in getattr(result, "computed_by", {}).items():
                counts[worker] = counts.get(worker, 0) + count
        summed: dict[str, Any] = {"computed_by": counts}  # (a field of newer EmbedResults: by keyword)
        merged = dataclasses.replace(merged, **summed)
    return merged
