"""The kernel-memory budget (``cache_size``): every budget that runs gives libsvm's model, none is exceeded, and
one too small to run says so with the size it needs.

Below the whole Gram matrix, each pair's own Gram matrix is used when the largest pair's (4 l_max^2 bytes) fits,
as many pairs at a time as fit; below that, the row cache holds ``floor(budget / (4 bytes * l_max))`` rows of the
largest class pair (``l_max`` samples), at least ``MIN_CACHE_ROWS``, one pair at a time whatever ``n_jobs`` (its
threads share each pass over the samples); libsvm takes a few rows whatever its budget, we refuse instead.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import NuSVC as SkNuSVC
from test_parity import assert_same_model

from sertk.svm import NuSVC, _nusvm


def _codes(y: np.ndarray) -> np.ndarray:
    return np.unique(y, return_inverse=True)[1].astype(np.int32)


def test_min_cache_bytes_is_min_rows_of_the_largest_pair_whatever_the_threads():
    y = np.array([0] * 5 + [1] * 7 + [2] * 3 + [3] * 2, dtype=np.int32)
    row = 4 * (7 + 5)  # float32 values in a row of the largest pair (classes 1 and 0)
    for n_threads in (1, 2, 64):  # the row cache's threads share one cache and each pass over the samples
        assert _nusvm.min_cache_bytes(y, 4, n_threads) == _nusvm.MIN_CACHE_ROWS * row
    with pytest.raises(ValueError):
        _nusvm.min_cache_bytes(np.array([0, 5], dtype=np.int32), 2, 1)


def test_the_kernel_plan_follows_the_budget():
    # 5 classes of 50, 70, 30, 20 and 40 samples: Gram 4·210² bytes, largest pair (70 + 50) 4·120², class blocks
    # 4·(50² + 70² + 30² + 20² + 40²)
    counts = np.array([50, 70, 30, 20, 40], dtype=np.int32)
    gram, pair, blocks = 4 * 210**2, 4 * 120**2, 4 * 10300

    def plan(budget, n_threads=2, kernel="rbf"):
        return _nusvm.plan_kernel(counts, kernel=kernel, cache_bytes=budget, n_threads=n_threads)

    assert plan(gram)["kernel_mode"] == "gram" and plan(gram)["team_parts"] == 1  # 10 pairs over 2 threads
    assert plan(gram, n_threads=1)["n_work"] == 1
    both = plan(pair + blocks)  # one pair and every class's own block: the blocks are kept
    assert (both["kernel_mode"], both["reuse_diag"], both["chained"], both["n_work"]) == ("pair", True, False, 1)
    assert both["team_parts"] == 2 and both["inner_threads"] == 2  # one pair at a time: both threads on it
    one = plan(pair + blocks - 1)  # one pair only: pairs chained through one buffer
    assert (one["kernel_mode"], one["reuse_diag"], one["chained"], one["n_work"]) == ("pair", False, True, 1)
    # beside the chain's buffer, the block that saves most among those that fit, packed: every one fits here, and
    # the largest class (70 samples) is in 4 of the 10 pairs
    assert one["kept_class"] == 1 and one["kept_bytes"] == 4 * 70 * 71 / 2
    assert plan(pair + 4 * 20 * 21 / 2)["kept_class"] in (-1, 3)  # only the smallest class (20) fits, if it helps
    assert plan(pair)["kept_class"] == -1
    assert not plan(pair + blocks - 1, kernel="precomputed")["chained"]  # a given kernel has nothing to move
    two = plan(2 * pair + blocks)  # the blocks first, then as many pairs at a time as fit: a thread each
    assert (two["kernel_mode"], two["n_work"], two["team_parts"], two["reuse_diag"]) == ("pair", 2, 1, True)
    assert plan(2 * pair + blocks - 1)["n_work"] == 1
    assert plan(2 * pair, kernel="precomputed")["n_work"] == 2  # no blocks to keep for a given kernel
    rows = plan(pair - 1)
    assert rows["kernel_mode"] == "cache" and rows["fits"] and rows["max_pair"] == 120
    assert (rows["n_work"], rows["team_parts"]) == (1, 2)  # one pair at a time, both threads on each pass
    assert rows["min_cache_bytes"] == _nusvm.min_cache_bytes(np.repeat(np.arange(5), counts).astype(np.int32), 5, 2)
    assert not plan(rows["min_cache_bytes"] - 1)["fits"]
    with pytest.raises(ValueError, match="invalid class sizes"):
        _nusvm.plan_kernel(np.array([3, 0], dtype=np.int32))


def test_one_thread_above_128_mib_of_gram_matrix_takes_the_class_blocks_when_they_fit():
    # 4 classes of 25/35/20/20 % (IEMOCAP-like): class blocks 0.2725 n^2 and the largest pair 0.36 n^2 floats, so
    # the blocks need 0.63 of the whole matrix; on one thread, from 128 MiB of Gram matrix on, they come first
    def counts(n):
        return np.array([n // 4, 35 * n // 100, n // 5, n - n // 4 - 35 * n // 100 - n // 5], dtype=np.int32)

    small, large = counts(5700), counts(5900)  # 124 and 133 MiB of Gram matrix
    for c in (small, large):
        assert 4 * float(c.sum()) ** 2 == _nusvm.plan_kernel(c, n_threads=1)["gram_bytes"]
    assert _nusvm.plan_kernel(small, n_threads=1)["kernel_mode"] == "gram"
    blocks = _nusvm.plan_kernel(large, n_threads=1)
    assert (blocks["kernel_mode"], blocks["reuse_diag"], blocks["n_work"]) == ("pair", True, 1)
    assert _nusvm.plan_kernel(large, n_threads=2)["kernel_mode"] == "gram"  # a matrix per running pair: no saving
    need = 4 * float((large.astype(np.float64) ** 2).sum()) + blocks["pair_bytes"]
    assert _nusvm.plan_kernel(large, cache_bytes=need, n_threads=1)["reuse_diag"]
    tight = _nusvm.plan_kernel(large, cache_bytes=need - 1, n_threads=1)  # no room for the blocks: chained
    assert (tight["kernel_mode"], tight["reuse_diag"], tight["chained"]) == ("pair", False, True)
    two = np.array([2950, 2950], dtype=np.int32)  # one pair: its matrix is the whole Gram matrix
    assert _nusvm.plan_kernel(two, n_threads=1)["kernel_mode"] == "gram"
    assert _nusvm.plan_kernel(large, kernel="precomputed", n_threads=1)["kernel_mode"] == "gram"


@pytest.mark.golden
def test_the_class_blocks_chosen_over_a_gram_matrix_that_fits_give_libsvms_model():
    # 5900 samples (133 MiB of Gram matrix), 16 features so that libsvm's fit stays short
    rng = np.random.default_rng(5)
    n = 6000
    y = rng.choice(4, size=n, p=[0.25, 0.35, 0.2, 0.2])
    X = rng.normal(size=(n, 16)) + 0.8 * y[:, None] * rng.normal(size=(1, 16))
    ours = NuSVC(nu=0.1).fit(X[:5900], y[:5900])
    ref = SkNuSVC(nu=0.1, cache_size=1024).fit(X[:5900], y[:5900])
    assert ours.kernel_mode_ == "pair"
    assert_same_model(ours, ref, X[5900:])


@pytest.mark.golden
@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("probability", [False, True])
def test_float32_samples_on_the_row_cache_give_libsvms_model(datasets, n_jobs, probability):
    # embeddings are float32 values: the row cache then packs the samples in float32 and widens each exactly before
    # its product, so every kernel value is still libsvm's own dot product, bit for bit
    X, y = datasets["emb_4class"]
    X = X.astype(np.float32).astype(np.float64)
    n_test = len(X) // 4
    kw = {"nu": 0.2, "probability": probability, "random_state": 0}
    ours = NuSVC(cache_size=0.05, n_jobs=n_jobs, **kw).fit(X[n_test:], y[n_test:])
    ref = SkNuSVC(**kw).fit(X[n_test:], y[n_test:])
    assert ours.kernel_mode_ == "cache"
    assert_same_model(ours, ref, X[:n_test])  # with probability, the folds' rows come from the same panels


@pytest.mark.golden
@pytest.mark.parametrize("float32", [False, True])
def test_row_cache_threads_share_each_pass_and_give_libsvms_model(float32):
    # two threads on the row cache: one pair at a time, each pass over the samples split by columns (from 512) and
    # the solver's loops by positions (from 2048 active variables); every value is computed by one thread in the
    # same order, so the model is the one-thread model bit for bit, and libsvm's
    from conftest import make_embeddings

    X, y = make_embeddings(n=3000, d=16, k=2, seed=5)
    if float32:
        X = X.astype(np.float32).astype(np.float64)
    cache_mb = 0.2 * 4 * len(y) ** 2 / 2**20  # a fifth of the pair's rows
    one = NuSVC(nu=0.2, cache_size=cache_mb, n_jobs=1).fit(X, y)
    two = NuSVC(nu=0.2, cache_size=cache_mb, n_jobs=2).fit(X, y)
    assert one.kernel_mode_ == two.kernel_mode_ == "cache"
    for attr in ("support_", "n_iter_", "dual_coef_", "intercept_"):
        np.testing.assert_array_equal(getattr(two, attr), getattr(one, attr), err_msg=attr)
    assert_same_model(two, SkNuSVC(nu=0.2).fit(X, y), X[:200])


@pytest.mark.golden
@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("k, nu, float32", [(2, 0.2, False), (2, 0.3, True), (4, 0.2, False)])
def test_rows_over_the_gathered_prefix_completed_later_give_libsvms_model(k, nu, float32, n_jobs):
    # after shrinking, rows are computed over the gathered prefix of the packed samples only (the active variables
    # first); a later whole-row read of such a row (G_bar) computes only the columns after the prefix.  These
    # problems narrow and complete rows that way (each fit on a build that skipped those columns differed from
    # libsvm: 4886 iterations against 2293 in the first); the model must be libsvm's
    from conftest import make_embeddings

    X, y = make_embeddings(n=1500, d=32, k=k, seed=5)
    if float32:
        X = X.astype(np.float32).astype(np.float64)
    l_max = len(y) if k == 2 else int(np.sort(np.bincount(y))[-2:].sum())
    ours = NuSVC(nu=nu, cache_size=0.1 * 4 * l_max**2 / 2**20, n_jobs=n_jobs).fit(X, y)
    assert ours.kernel_mode_ == "cache"
    assert_same_model(ours, SkNuSVC(nu=nu).fit(X, y), X[:200])


@pytest.mark.parametrize("budget", ["gram", "two pairs", "pair", "rows"])
def test_the_fit_takes_the_path_the_plan_names(datasets, budget):
    # the estimator warns and explains from plan_kernel; the core must follow that same plan
    X, y = datasets["emb_4class"]
    counts = np.bincount(_codes(y)).astype(np.int32)
    l_max = int(np.sort(counts)[-2:].sum())
    blocks = 4 * float(np.sum(counts.astype(float) ** 2))
    cache_mb = {"gram": 4 * len(y) ** 2, "two pairs": 8 * l_max**2 + blocks, "pair": 4 * l_max**2,
                "rows": 4 * l_max**2 - 1}[budget] / 2**20
    planned = _nusvm.plan_kernel(counts, cache_bytes=cache_mb * 2**20, n_threads=2)
    assert NuSVC(nu=0.2, cache_size=cache_mb, n_jobs=2).fit(X, y).kernel_mode_ == planned["kernel_mode"]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_budget_too_small_names_the_size_needed(datasets, n_jobs):
    X, y = datasets["emb_4class"]
    need_mb = _nusvm.min_cache_bytes(_codes(y), 4, n_jobs) / 2**20
    with pytest.raises(ValueError, match=r"cache_size=.* MiB is too small .* at least [0-9.]+ MiB") as info:
        NuSVC(nu=0.2, cache_size=need_mb * 0.999, n_jobs=n_jobs).fit(X, y)
    suggested = float(str(info.value).rsplit("at least ", 1)[1].split()[0].rstrip(","))
    assert suggested >= need_mb  # the number in the message is large enough to run
    assert "fewer n_jobs" not in str(info.value)  # threads share the row cache: fewer would not need less
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
    # the budget in rows of the largest pair (one row cache, whatever n_jobs)
    n_rows = {"minimum": _nusvm.MIN_CACHE_ROWS, "a tenth of the pair": l_max // 10,
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
@pytest.mark.parametrize("spare", [1.0001, 1.2])
def test_chained_pairs_give_libsvms_model(k, n_jobs, spare):
    # one pair's matrix fits, the classes' own matrices beside it do not: pairs follow each other in one buffer,
    # each reusing the block of the class it shares with the pair before (5 classes: some pairs share none); with
    # room to spare (1.2 pairs), one class's block is also kept beside the buffer and unpacked where needed
    from conftest import make_embeddings

    X, y = make_embeddings(n=700, d=64, k=k, seed=11)
    counts = np.bincount(y)
    l_max = int(np.sort(counts)[-1] + np.sort(counts)[-2])
    pair_mb, blocks_mb = 4 * l_max**2 / 2**20, 4 * float(np.sum(counts.astype(float) ** 2)) / 2**20
    cache_mb = spare * pair_mb
    assert cache_mb < pair_mb + blocks_mb and cache_mb < 2 * pair_mb
    plan = _nusvm.plan_kernel(counts.astype(np.int32), cache_bytes=cache_mb * 2**20, n_threads=n_jobs)
    assert plan["chained"] and (plan["kept_class"] >= 0) == (spare > 1.1)
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
def test_a_large_fit_sent_to_the_row_cache_says_which_budget_would_not(tmp_path):
    # 8200 samples of 2 classes: the pair's matrix is 257 MiB; 64 MiB runs, from the row cache, and says so first
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 4100)
    X = rng.standard_normal((len(y), 2)) + y[:, None]
    from sertk.svm import RowCacheWarning

    with pytest.warns(RowCacheWarning, match=r"cache_size=64 MiB cannot hold .* \(257 MiB, 8200 samples\).*"
                                             r"cache_size=257 or more.*checkpoint=PATH"):
        model = NuSVC(nu=0.5, cache_size=64, max_iter=1).fit(X, y)
    assert model.kernel_mode_ == "cache"
    with pytest.warns(RowCacheWarning) as seen:  # a fit that keeps a checkpoint is not told to
        NuSVC(nu=0.5, cache_size=64, max_iter=1, checkpoint=tmp_path / "fit.npz").fit(X, y)
    assert not any("checkpoint" in str(w.message) for w in seen if w.category is RowCacheWarning)


def test_no_row_cache_warning_when_a_pair_fits_or_the_problem_is_small(datasets):
    import warnings

    from sertk.svm import RowCacheWarning

    X, y = datasets["emb_4class"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RowCacheWarning)
        NuSVC(nu=0.2, cache_size=0.5).fit(X, y)  # row cache, but a small problem: nothing to say


@pytest.mark.parametrize("kernel, cache_mb, mode", [("rbf", 0.05, "cache"), ("precomputed", 1024, "gram"),
                                                    ("precomputed", 1.0, "pair"), ("linear", 1024, "gram"),
                                                    ("linear", 1.8, "pair"), ("rbf32", 0.05, "cache")])
def test_vector_and_scalar_paths_give_the_same_bits(tmp_path, kernel, cache_mb, mode):
    # the AVX2 code (row-cache dot products, csrc/sertk_rowdot.c; the solver's two loops per iteration,
    # csrc/sertk_smo.c; the mirrors' 8 x 8 transposes, sertk_transpose) against the scalar code, which CPUs
    # without AVX2 take: each value is the same sequence of IEEE operations (no FMA on either side), each maximum
    # and minimum the same element, each mirrored value the same bits, so the whole model must be equal bit for
    # bit on any CPU; exact by construction.  Everything else is shared by both processes: the row cache's exp is
    # glibc's on both paths, and a precomputed kernel (made by the same NumPy) isolates the solver on the Gram
    # and pair paths (whose RBF values take the vector exp, which may round a rare value differently from
    # glibc's, tests/svm/test_vexp.py); the linear kernel has no exp, so its Gram and cross blocks are the same
    # BLAS products on both sides and only their mirrors differ in code (pair: class blocks plus cross blocks);
    # float32-valued samples take the row cache's float32 panels
    import os
    import subprocess
    import sys

    script = (
        "import numpy as np, sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from conftest import make_embeddings\n"
        "from sertk.svm import NuSVC\n"
        "X, y = make_embeddings(n=700, d=50, k=3, seed=4)\n"
        "if sys.argv[3] == 'rbf32':  # float32 values: the row cache's float32 panels\n"
        "    X, sys.argv[3] = X.astype(np.float32).astype(np.float64), 'rbf'\n"
        "if sys.argv[3] == 'precomputed':\n"
        "    sq = (X * X).sum(1)\n"
        "    X = np.exp(-0.02 * (sq[:, None] + sq[None, :] - 2 * X @ X.T))\n"
        "m = NuSVC(nu=0.2, kernel=sys.argv[3], cache_size=float(sys.argv[4]), probability=True, random_state=0)\n"
        "m.fit(X, y)\n"
        "assert m.kernel_mode_ == sys.argv[5], m.kernel_mode_\n"
        "np.savez(sys.argv[1], d=m.dual_coef_, i=m.intercept_, n=m.n_iter_, s=m.support_, a=m.probA_, b=m.probB_)\n"
    )
    here = os.path.dirname(__file__)
    out = {}
    for name, scalar in (("avx2", "0"), ("scalar", "1")):
        path = tmp_path / f"{name}.npz"
        env = {**os.environ, "SERTK_NUSVM_SCALAR": scalar}
        subprocess.run([sys.executable, "-c", script, str(path), here, kernel, str(cache_mb), mode], check=True,
                       env=env)
        out[name] = np.load(path)
    for key in "dinsab":
        np.testing.assert_array_equal(out["avx2"][key], out["scalar"][key], err_msg=key)
