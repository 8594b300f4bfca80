"""Shared data for the ν-SVM tests: scikit-learn's real data sets and embedding-like synthetic data.

Everything is small enough that the whole ``tests/svm`` directory runs in well under two minutes on 2 cores;
the full-size comparison (4425 x 1024) lives in ``benchmarks/bench_nusvm.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.preprocessing import StandardScaler


def make_embeddings(n: int = 600, d: int = 128, k: int = 4, sep: float = 0.25, seed: int = 0,
                    rank: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised, low-rank-plus-noise vectors with overlapping classes, like audio embeddings.

    Class sizes are unbalanced (as emotion corpora); ``sep`` sets how far apart the class centres are.
    """
    rng = np.random.default_rng(seed)
    p = np.array([0.25, 0.35, 0.2, 0.2])[:k] if k <= 4 else np.full(k, 1.0 / k)
    y = rng.choice(k, size=n, p=p / p.sum())
    basis = rng.standard_normal((rank, d)) / np.sqrt(rank)
    centres = rng.standard_normal((k, rank)) * sep
    X = (centres[y] + rng.standard_normal((n, rank))) @ basis
    X += 0.5 * np.sqrt(rank / d) * rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, y


def _scaled(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


DATASETS = {
    "iris": lambda: _scaled(load_iris),
    "wine": lambda: _scaled(load_wine),
    "breast_cancer": lambda: _scaled(load_breast_cancer),
    "digits": lambda: (load_digits(return_X_y=True)[0] / 16.0, load_digits(return_X_y=True)[1]),
    "emb_binary": lambda: make_embeddings(n=700, d=96, k=2, sep=0.2, seed=1),
    "emb_4class": lambda: make_embeddings(n=900, d=128, k=4, sep=0.25, seed=2),
}


def _shuffled(X: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(y))  # the loaders sort by class
    return np.ascontiguousarray(X[order]), y[order]


@pytest.fixture(scope="session")
def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: _shuffled(*make()) for name, make in DATASETS.items()}


@pytest.fixture(autouse=True)
def _quiet_sklearn_deprecations():
    # scikit-learn 1.9 deprecates probability=True / probA_ on its own SVMs; the reference still works.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"sklearn\..*")
        yield
