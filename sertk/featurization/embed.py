"""Host-side batched featurization: audio files in, one embedding per file out, through the embedding cache.

:func:`embed_paths` is what ``sertk run`` and ``sertk embed`` call. It hashes each file's content, serves what
the cache holds, embeds only the misses (each distinct content once) in batches with a progress bar, and
commits every batch to the cache as soon as it is done, so an interrupted run loses at most one batch.
A file the featurizer cannot decode fails alone: the batch it was in is retried file by file. A file whose
embedding comes back NaN or infinite (any featurizer's, third-party ones too) fails alone as well and is never
cached: the callers treat both alike (``--skip-bad-audio``, ``--skip-bad``). A featurizer with
an optional ``prefetch(paths)`` method is told the next batch before the current one is embedded, so it can
decode ahead (the ImageBind featurizer does, in worker threads, while its model runs).

Where the misses are embedded is the executor's business (:mod:`sertk.executors`: in this process, or on Ray
workers); each runs :func:`embed_batches`, and the driver here stays the cache's only writer, committing each
shard as it comes back.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sertk import progress
from sertk.errors import AudioError, ConfigError, FeaturizerError
from sertk.executors import EmbedJob, Executor, resolve_executor
from sertk.featurization.cache import EmbeddingCache, audio_key, fingerprint_key
from sertk.plugins import recipe_of

__all__ = ["NON_FINITE", "EmbedResult", "embed_batches", "embed_paths"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class EmbedResult:
    """What :func:`embed_paths` returns.

    Attributes
    ----------
    embeddings
        ``(n_ok, dim)`` float32: one row per file that succeeded, in input order.
    ok
        ``(n_paths,)`` bool: which input paths have a row in ``embeddings``.
    failures
        Input index → why that file has no embedding.
    n_cached, n_computed
        How many input files were served from the cache / embedded by this call (a file whose content
        repeats an earlier input counts like that input); ``n_cached + n_computed + len(failures)`` is the
        number of input paths.
    audio_keys
        The content key (:func:`sertk.featurization.cache.audio_key`) of each input path; ``None`` where the file could
        not be read at all.
    fp_key
        The featurizer's fingerprint key (:func:`sertk.featurization.cache.fingerprint_key`).
    """

    embeddings: np.ndarray
    ok: np.ndarray
    failures: dict[int, str]
    n_cached: int
    n_computed: int
    audio_keys: list[str | None] = dataclasses.field(default_factory=list)
    fp_key: str = ""
    #: who computed the embedded files → how many ("local", or each Ray worker)
    computed_by: dict[str, int] = dataclasses.field(default_factory=dict)


def _featurizer_name(featurizer: Any) -> str:
    return str(getattr(featurizer, "name", type(featurizer).__name__))


#: why a file whose embedding came back non-finite has none (what the user reads, next to the file's name)
NON_FINITE = ("the featurizer's output for this file is not finite (NaN or infinity): the audio cannot give a "
              "meaningful embedding (silent, clipped, or samples far outside the usual range?)")


def _check_output(featurizer: Any, out: Any, batch: Sequence[Path], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The featurizer's output as float32 ``(len(batch), dim)`` and which rows are finite, or
    :class:`FeaturizerError` when the output as a whole breaks the contract."""
    name = _featurizer_name(featurizer)
    try:
        array = np.asarray(out)
    except Exception as exc:  # noqa: BLE001 - whatever it returned, it is not an array
        raise FeaturizerError(f"featurizer {name!r} returned {type(out).__name__}, not an array: {exc}") from exc
    if array.shape != (len(batch), dim):
        raise FeaturizerError(f"featurizer {name!r} returned shape {array.shape} for {len(batch)} files; "
                              f"expected ({len(batch)}, {dim}) (first file: {batch[0]})")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise FeaturizerError(f"featurizer {name!r} returned dtype {array.dtype}; expected float32")
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32's range becomes inf: caught next
        array = array.astype(np.float32, copy=False)
    return array, np.isfinite(array).all(axis=1)


def _embed_batch(featurizer: Any, batch: Sequence[Path], dim: int) -> tuple[list[np.ndarray | None], list[str | None]]:
    """Embed one batch; on :class:`AudioError`, file by file. Returns (vectors, reasons), one of each per file: a
    file that cannot be read, or whose embedding is not finite, has no vector and a reason."""
    try:
        rows, finite = _check_output(featurizer, featurizer.embed(list(batch)), batch, dim)
        return ([row if ok else None for row, ok in zip(rows, finite)],
                [None if ok else NON_FINITE for ok in finite])
    except AudioError as exc:
        if len(batch) == 1:
            return [None], [exc.reason]
        logger.info("featurizer %r cannot read %s (%s); retrying its batch file by file",
                    _featurizer_name(featurizer), exc.path, exc.reason)
    vectors: list[np.ndarray | None] = []
    reasons: list[str | None] = []
    for path in batch:
        try:
            rows, finite = _check_output(featurizer, featurizer.embed([path]), [path], dim)
            vectors.append(rows[0] if finite[0] else None)
            reasons.append(None if finite[0] else NON_FINITE)
        except AudioError as exc:
            vectors.append(None)
            reasons.append(exc.reason)
    return vectors, reasons


def embed_batches(featurizer: Any, batches: Sequence[Sequence[Path]], dim: int
                  ) -> Iterator[tuple[list[np.ndarray | None], list[str | None]]]:
    """Embed ``batches`` in order, yielding ``(vectors, reasons)`` per batch as :func:`_embed_batch` does, and
    naming each next batch to the featurizer's optional ``prefetch`` before the current one is embedded. Every
    executor embeds its shards with this, so failures read the same wherever the work ran."""
    prefetch = getattr(featurizer, "prefetch", None)
    if callable(prefetch) and batches:
        prefetch(list(batches[0]))
    for number, batch in enumerate(batches):
        if callable(prefetch) and number + 1 < len(batches):  # prepared while this batch is embedded
            prefetch(list(batches[number + 1]))
        yield _embed_batch(featurizer, batch, dim)


def embed_paths(
    featurizer: Any,
    paths: Sequence[str | os.PathLike],
    *,
    cache: EmbeddingCache | None,
    batch_size: int | None = None,
    desc: str = "embedding",
    executor: Executor | str | None = None,
) -> EmbedResult:
    """Embed audio files with ``featurizer``, through ``cache`` when one is given.

    Parameters
    ----------
    featurizer
        A featurizer instance (see :class:`sertk.contracts.Featurizer`).
    paths
        Audio files; the same content under several paths (or the same path twice) is embedded once.
    cache
        Where finished embeddings are looked up and stored, one transaction per batch; ``None`` computes all.
    batch_size
        Files per ``featurizer.embed`` call; default ``featurizer.batch_size`` (16 if it has none).
    desc
        Label of the progress bar (it advances per shard).
    executor
        Where the misses are embedded: ``None`` or ``"local"`` in this process, ``"ray"`` on a Ray cluster with
        its defaults, or an executor instance (:func:`sertk.executors.make_executor`; the caller closes it).
        The output is the same whichever runs them.

    Returns
    -------
    EmbedResult
        ``embeddings`` is ``(n_ok, dim)`` float32 in input order; failed files are in ``failures`` (logged at
        INFO only: reporting them, and deciding whether they are fatal, is the caller's job). A file whose
        embedding is not finite is a failure too (:data:`NON_FINITE`), and is not cached.

    Raises
    ------
    FeaturizerError
        If the featurizer returns the wrong shape or dtype (nothing of that batch is cached).
    ConfigError
        If ``batch_size`` is not a positive integer.
    """
    if getattr(featurizer, "parts", None):  # a composite (concat): each part cached under its own fingerprint
        from sertk.featurization.composite import embed_parts

        return embed_parts(featurizer, paths, cache=cache, batch_size=batch_size, desc=desc, executor=executor)
    name = _featurizer_name(featurizer)
    files: list[Path] = [Path(p) for p in paths]
    size = batch_size if batch_size is not None else getattr(featurizer, "batch_size", 16)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"batch size must be a positive integer, got {size!r}")
    dim = featurizer.dim
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise FeaturizerError(f"featurizer {name!r} has dim {dim!r}; expected a positive integer")
    dim = int(dim)
    fingerprint: Mapping[str, Any] = featurizer.fingerprint()
    fp_key = fingerprint_key(fingerprint)

    # 1. content keys (a file that cannot be read at all fails here)
    failures: dict[int, str] = {}
    raw_keys: list[str | OSError] = (cache.audio_keys(files) if cache is not None
                                     else [_safe_audio_key(p) for p in files])
    keys: list[str | None] = []
    for index, raw in enumerate(raw_keys):
        if isinstance(raw, OSError):
            failures[index] = raw.strerror or str(raw)
            keys.append(None)
        else:
            keys.append(raw)

    # 2. each distinct content once, in order of first appearance
    first_path: dict[str, Path] = {}
    for key, path in zip(keys, files):
        if key is not None and key not in first_path:
            first_path[key] = path
    vectors: dict[str, np.ndarray] = cache.get_many(fp_key, list(first_path)) if cache is not None else {}
    cached_keys = set(vectors)
    misses = [key for key in first_path if key not in vectors]

    # 3. the misses, shard by shard (the executor's), each shard committed as it comes back
    failed_keys: dict[str, str] = {}
    computed_by: dict[str, int] = {}
    if misses:
        logger.debug("featurizer %r: %d distinct files to embed in batches of %d", name, len(misses), size)
        job = EmbedJob(recipe=recipe_of(featurizer), name=name, dim=dim, batch_size=size, fp_key=fp_key)
        runner, owned = resolve_executor(executor)
        bar = progress.bar(total=len(misses), desc=desc, unit="file")
        try:
            for shard in runner.embed(featurizer, job, [(k, first_path[k]) for k in misses]):
                done = []
                for key, row, reason in zip(shard.keys, shard.vectors, shard.reasons):
                    if row is None:
                        failed_keys[key] = reason or "cannot be decoded"
                    else:
                        vectors[key] = row
                        done.append((key, row))
                if cache is not None and done:
                    cache.put_many(fp_key, fingerprint, done)
                computed_by[shard.worker] = computed_by.get(shard.worker, 0) + len(done)
                bar.update(len(shard.keys))
        finally:
            bar.close()
            if owned:
                runner.close()

    # 4. assemble in input order
    ok = np.zeros(len(files), dtype=bool)
    rows_out: list[np.ndarray] = []
    n_cached = n_computed = 0
    for index, key in enumerate(keys):
        if key is None:
            continue
        if key in failed_keys:
            failures[index] = failed_keys[key]
            continue
        ok[index] = True
        rows_out.append(vectors[key])
        if key in cached_keys:
            n_cached += 1
        else:
            n_computed += 1
    embeddings = np.stack(rows_out).astype(np.float32, copy=False) if rows_out else np.zeros((0, dim), np.float32)
    failures = dict(sorted(failures.items()))
    for index, reason in failures.items():
        logger.info("featurizer %r: no embedding for %s: %s", name, files[index], reason)
    logger.info("featurizer %r: %d files: %d from the cache, %d computed (%d distinct), %d failed",
                name, len(files), n_cached, n_computed, len(misses) - len(failed_keys), len(failures))
    return EmbedResult(embeddings=embeddings, ok=ok, failures=failures, n_cached=n_cached, n_computed=n_computed,
                       audio_keys=keys, fp_key=fp_key, computed_by=computed_by)


def _safe_audio_key(path: Path) -> str | OSError:
    try:
        return audio_key(path)
    except OSError as exc:
        return exc
