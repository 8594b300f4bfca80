"""The kernel-memory budget (``cache_size``): every budget that runs gives libsvm's model, none is exceeded, and
one too small to run says so with the size it needs.

Below the whole Gram matrix, each pair's own Gram matrix is used when the largest pair's (4 l_max^2 bytes) fits,
as many pairs at a time as fit; below that, the row cache holds ``floor(budget / workers / (4 bytes * l_max))``
rows of the largest class pair (``l_max`` samples), at least ``MIN_CACHE_ROWS``; libsvm takes a few rows whatever
its budget, we refuse instead.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import NuSVC as SkNuSVC
from test_parity import assert_same_model

from sertk.svm import NuSVC, _nusvm


def _codes(y: np.ndarray) -> np.ndarray:
    return np.unique(y, return_inverse=True)[1].astype(np.int32)


def test_min_cache_bytes_is_min_rows_of_the_largest_pair_per_worker():
    y = np.array([0] * 5 + [1] * 7 + [2] * 3 + [3] * 2, dtype=np.int32)
    row = 4 * (7 + 5)  # float32 values in a row of the largest pair (classes 1 and 0)
    assert _nusvm.min_cache_bytes(y, 4, 1) == _nusvm.MIN_CACHE_ROWS * row
    assert _nusvm.min_cache_bytes(y, 4, 2) == 2 * _nusvm.MIN_CACHE_ROWS * row
    assert _nusvm.min_cache_bytes(y, 4, 64) == 6 * _nusvm.MIN_CACHE_ROWS * row  # never more workers than pairs
    with pytest.raises(ValueError):
        _nusvm.min_cache_bytes(np.array([0, 5], dtype=np.int32), 2, 1)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_budget_too_small_names_the_size_needed(datasets, n_jobs):
    X, y = datasets["emb_4class"]
    need_mb = _nusvm.min_cache_bytes(_codes(y), 4, n_jobs) / 2**20
    with pytest.raises(ValueError, match=r"cache_size=.* MiB is too small .* at least [0-9.]+ MiB") as info:
        NuSVC(nu=0.2, cache_size=need_mb * 0.999, n_jobs=n_jobs).fit(X, y)
    suggested = float(str(info.value).rsplit("at least ", 1)[1].split()[0].rstrip(","))
    assert suggested >= need_mb  # the number in the message is large enough to run
    assert ("fewer n_jobs" in str(info.value)) == (n_jobs > 1)
    NuSVC(nu=0.2, cache_size=suggested, n_jobs=n_jobs).fit(X, y)


@pytest.mark.golden
@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("rows, mode", [("minimum", "cache"), ("a tenth of the pair", "cache"),
                                        ("all but one", "cache"), ("whole pair", "pair"),
                                        ("one pair, two workers' worth", "pair")])
def test_every_budget_that_runs_gives_libsvms_model(datasets, rows, mode, n_jobs):
    # from the least budget (4 rows per worker: almost every kernel row recomputed, evicted at once) through row
    # caches of every size to each pair's own Gram matrix (one pair at a time per worker, as many workers as fit):
    # one model, libsvm's
    X, y = datasets["emb_4class"]
    codes = _codes(y)
    counts = np.sort(np.bincount(codes))[::-1]
    l_max = int(counts[0] + counts[1])
    workers = min(n_jobs, 6)
    # the budget in rows of the largest pair, all workers together (a row cache gets its share of it)
    n_rows = {"minimum": workers * _nusvm.MIN_CACHE_ROWS, "a tenth of the pair": l_max // 10,
              "all but one": l_max - 1, "whole pair": l_max, "one pair, two workers' worth": 2 * l_max - 1}[rows]
    cache_mb = n_rows * 4 * l_max / 2**20
    assert cache_mb < 4 * len(y) ** 2 / 2**20  # below the Gram matrix: the row-cache path
    ref = SkNuSVC(nu=0.2).fit(X, y)
    ours = NuSVC(nu=0.2, cache_size=cache_mb, n_jobs=n_jobs).fit(X, y)
    assert ours.kernel_mode_ == mode
    assert_same_model(ours, ref, X[:200])


@pytest.mark.golden
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_chained_pairs_give_libsvms_model(k, n_jobs):
    # one pair's matrix fits, the classes' own matrices beside it do not: pairs follow each other in one buffer,
    # each reusing the block of the class it shares with the pair before (5 classes: some pairs share none)
    from conftest import make_embeddings

    X, y = make_embeddings(n=700, d=64, k=k, seed=11)
    counts = np.bincount(y)
    l_max = int(np.sort(counts)[-1] + np.sort(counts)[-2])
    pair_mb, blocks_mb = 4 * l_max**2 / 2**20, 4 * float(np.sum(counts.astype(float) ** 2)) / 2**20
    cache_mb = 1.2 * pair_mb
    assert cache_mb < pair_mb + blocks_mb and cache_mb < 2 * pair_mb
    ours = NuSVC(nu=0.2, cache_size=cache_mb, n_jobs=n_jobs).fit(X, y)
    assert ours.kernel_mode_ == "pair"
    assert_same_model(ours, SkNuSVC(nu=0.2).fit(X, y), X[:200])


@pytest.mark.golden
@pytest.mark.parametrize("seed", range(6))
def test_chained_pairs_with_random_class_sizes_give_libsvms_model(seed):
    # random class sizes, so the shared block moves up, down or stays; a value moved wrong would change the model.
    # Compared with libsvm at the usual tolerance, not bit for bit with our Gram path: the two paths call BLAS on
    # different shapes, and a BLAS may round one dot product differently by shape (small-matrix kernels)
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 6))
    sizes = rng.integers(40, 160, size=k)
    y = np.repeat(np.arange(k), sizes)
    rng.shuffle(y)
    X = rng.standard_normal((len(y), 16)) + 0.7 * rng.standard_normal((k, 16))[y]
    counts = np.bincount(y)
    l_max = int(np.sort(counts)[-1] + np.sort(counts)[-2])
    chained = NuSVC(nu=0.1, cache_size=1.2 * 4 * l_max**2 / 2**20).fit(X, y)
    assert chained.kernel_mode_ == "pair"
    assert_same_model(chained, SkNuSVC(nu=0.1).fit(X, y), X[:100])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=1 keeps the fit short
def test_a_large_fit_sent_to_the_row_cache_says_which_budget_would_not():
    # 8200 samples of 2 classes: the pair's matrix is 257 MiB; 64 MiB runs, from the row cache, and says so first
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 4100)
    X = rng.standard_normal((len(y), 2)) + y[:, None]
    from sertk.svm import RowCacheWarning

    with pytest.warns(RowCacheWarning, match=r"cache_size=64 MiB cannot hold .* \(257 MiB, 8200 samples\).*"
                                             r"cache_size=257 or more"):
        model = NuSVC(nu=0.5, cache_size=64, max_iter=1).fit(X, y)
    assert model.kernel_mode_ == "cache"


def test_no_row_cache_warning_when_a_pair_fits_or_the_problem_is_small(datasets):
    import warnings

    from sertk.svm import RowCacheWarning

    X, y = datasets["emb_4class"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RowCacheWarning)
        NuSVC(nu=0.2, cache_size=0.5).fit(X, y)  # row cache, but a small problem: nothing to say


def test_row_cache_rows_are_the_same_bits_on_the_scalar_path(tmp_path):
    # the row cache's dot products (csrc/sertk_rowdot.c) on the AVX2 path and on the scalar one, which CPUs without
    # AVX2 take: each lane is one sequential sum, so the whole model must be equal bit for bit
    import os
    import subprocess
    import sys

    script = (
        "import numpy as np, sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from conftest import make_embeddings\n"
        "from sertk.svm import NuSVC\n"
        "X, y = make_embeddings(n=700, d=50, k=3, seed=4)\n"
        "m = NuSVC(nu=0.2, cache_size=0.05, probability=True, random_state=0).fit(X, y)\n"
        "assert m.kernel_mode_ == 'cache'\n"
        "np.savez(sys.argv[1], d=m.dual_coef_, i=m.intercept_, n=m.n_iter_, s=m.support_, a=m.probA_, b=m.probB_)\n"
    )
    here = os.path.dirname(__file__)
    out = {}
    for name, scalar in (("avx2", "0"), ("scalar", "1")):
        path = tmp_path / f"{name}.npz"
        env = {**os.environ, "SERTK_NUSVM_SCALAR": scalar}
        subprocess.run([sys.executable, "-c", script, str(path), here], check=True, env=env)
        out[name] = np.load(path)
    for key in "dinsab":
        np.testing.assert_array_equal(out["avx2"][key], out["scalar"][key], err_msg=key)
