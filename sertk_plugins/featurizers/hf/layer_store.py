"""The per-model layer store: every layer's pooled statistics of each file, so a layer sweep runs the model once.

A forward pass yields all hidden states anyway; pooling them all costs little next to the model. So for every file
the featurizer computes one row holding, for each view (each hidden state and their mean), the mean and the
standard deviation over frames (:func:`.pooling.all_views_row`), and keeps it here, keyed by the file's content
(:func:`sertk.featurization.cache.audio_key`) and a fingerprint of everything *but* the layer and the pooling (model,
revision, weights digest, dtype, window rule, normalisation). Another ``layer`` or ``pooling`` for the same model and
files is then a slice of stored rows, not a forward pass; the host's embedding cache keeps the selected vectors as
usual.

It is an :class:`sertk.featurization.cache.EmbeddingCache` of its own, under ``<sertk cache folder>/hf-layers`` by
default (``layer_store=DIR`` elsewhere, ``layer_store="none"`` for none): ``sertk cache info --cache-dir …/hf-layers``
shows it (featurizer ``hf-layers``) and ``sertk cache clear --cache-dir …/hf-layers`` empties it. Rows are large
(``(layers + 2) × 2 × hidden`` float32: 80 KiB per file for a base model, 200 KiB for a large one), the price of
never running a model twice over the same files. The store is written from inside the featurizer, one transaction
per batch (SQLite WAL, safe across processes): a killed run loses at most one batch here too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sertk.errors import AudioError
from sertk.featurization.cache import EmbeddingCache, default_cache_dir, fingerprint_key

logger = logging.getLogger(__name__)

__all__ = ["STORE_NAME", "LayerStore", "store_folder"]

#: the ``name`` of the store's fingerprint (what ``sertk cache info`` lists)
STORE_NAME = "hf-layers"


def store_folder(option: str | None) -> Path | None:
    """The store's folder for the ``layer_store`` option: ``"auto"`` → ``<cache folder>/hf-layers``, ``"none"``
    → ``None`` (no store), anything else a folder."""
    if option is None or option == "none":
        return None
    if option == "auto":
        return default_cache_dir() / STORE_NAME
    return Path(option).expanduser()


class LayerStore:
    """All-views rows keyed by audio content under one model fingerprint (see the module docstring)."""

    def __init__(self, folder: Path, fingerprint: Mapping[str, Any]) -> None:
        self.folder = folder
        self.fingerprint = {"name": STORE_NAME, **{k: v for k, v in fingerprint.items() if k != "name"}}
        self.fp_key = fingerprint_key(self.fingerprint)
        self._cache: EmbeddingCache | None = None

    def _db(self) -> EmbeddingCache:
        if self._cache is None:
            self._cache = EmbeddingCache(self.folder)
        return self._cache

    def keys(self, paths: Sequence[Path]) -> list[str]:
        """The content key of each file (an unreadable one raises :class:`AudioError` naming it)."""
        keys = []
        for path, key in zip(paths, self._db().audio_keys(paths)):
            if isinstance(key, OSError):
                raise AudioError(path, key.strerror or str(key))
            keys.append(key)
        return keys

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return self._db().get_many(self.fp_key, keys)

    def put(self, rows: Mapping[str, np.ndarray]) -> None:
        """Store finite rows (a non-finite one is the host's per-file failure, never stored)."""
        finite = [(key, row) for key, row in rows.items() if np.isfinite(row).all()]
        if finite:
            self._db().put_many(self.fp_key, self.fingerprint, finite)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None
