"""predict's float32 screen (``csrc/sertk_vote_screen.c``): every label equals the float64 path's.

The screen settles a sample's vote from a float32 product only where a proven error bound allows, and sends the
rest to the float64 path.  These tests compare its labels with ``vote(decision_function(...))`` on ordinary
samples, on samples placed on a decision boundary (where only the float64 path may decide), on values the bound
does not cover, and on every path that skips the screen.

On a boundary the float64 path itself is not one number: a decision value within ~1e-13 of 0 can change sign with
the BLAS's blocking, so with the batch a sample is in or the number of threads (as libsvm's and ours differ there,
docs/svm.md).  There the label must be one that some sign of those near-zero pairs gives.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_embeddings

from sertk.svm import NuSVC, _nusvm


def _fit(n=500, d=128, k=4, seed=0, **params):
    X, y = make_embeddings(n=n, d=d, k=k, seed=seed)
    return NuSVC(nu=0.2, **params).fit(X, y), X


def _labels(model, X, **kw):
    args, base = model._model_args(np.ascontiguousarray(X, dtype=np.float64))
    return _nusvm.predict(*args, **{**base, **kw})


def _float64_labels(model, X):
    args, kw = model._model_args(np.ascontiguousarray(X, dtype=np.float64))
    return _nusvm.vote(_nusvm.decision_function(*args, **kw), len(model.classes_))


def _assert_float64_labels(model, X, labels, noise=1e-11):
    """labels equal the float64 path's vote, up to pairs whose float64 decision value is within noise of 0
    (relative to the pair's largest absolute value over X), which may count either way: there the float64 path's
    own sign depends on the BLAS's blocking, so on the batch the samples that took it were in.  Returns which rows
    had such a pair (every other row was compared exactly)."""
    args, kw = model._model_args(np.ascontiguousarray(X, dtype=np.float64))
    dec = _nusvm.decision_function(*args, **kw)
    k = len(model.classes_)
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    loose = np.abs(dec) <= noise * np.abs(dec).max(axis=0)
    exact = _nusvm.vote(dec, k)
    for r in range(len(X)):
        if not loose[r].any():
            assert labels[r] == exact[r], r
            continue
        possible = set()
        for flips in range(1 << int(loose[r].sum())):
            v = np.zeros(k, int)
            open_ = iter(range(64))
            for p, (i, j) in enumerate(pairs):
                win = dec[r, p] > 0
                if loose[r, p]:
                    win = bool(flips >> next(open_) & 1)
                v[i if win else j] += 1
            possible.add(int(np.argmax(v)))
        assert labels[r] in possible, (r, labels[r], possible)
    return loose.any(axis=1)


def _boundary_points(model, X, count, seed=0):
    """Points within ~1e-13 of where one pair's decision value changes sign: bisection between two samples the
    model labels differently, on the decision value of the pair their labels form."""
    rng = np.random.default_rng(seed)
    lab = _float64_labels(model, X)
    k = len(model.classes_)
    pair = {(i, j): p for p, (i, j) in enumerate((i, j) for i in range(k) for j in range(i + 1, k))}
    out = []
    while len(out) < count:
        a, b = rng.integers(len(X), size=2)
        if lab[a] == lab[b]:
            continue
        i, j = sorted((int(lab[a]), int(lab[b])))
        p = pair[(i, j)]

        def dec(t):
            args, kw = model._model_args(((1 - t) * X[a] + t * X[b])[None, :])
            return _nusvm.decision_function(*args, **kw)[0, p]

        lo, hi = 0.0, 1.0
        if np.sign(dec(lo)) == np.sign(dec(hi)):
            continue
        for _ in range(60):
            mid = (lo + hi) / 2
            if np.sign(dec(mid)) == np.sign(dec(lo)):
                lo = mid
            else:
                hi = mid
        out.append((1 - lo) * X[a] + lo * X[b])
    return np.array(out)


@pytest.mark.parametrize("d,k", [(20, 2), (128, 4), (300, 3), (1000, 4), (1000, 6)],
                         ids=["d20-2", "d128-4", "d300-3", "d1000-4", "d1000-6"])
def test_labels_equal_the_float64_path(d, k):
    model, _ = _fit(n=600, d=d, k=k, seed=d + k)
    X = make_embeddings(n=400, d=d, k=k, seed=99)[0]
    labels, n_float64 = _labels(model, X)
    _assert_float64_labels(model, X, labels)
    assert n_float64 < len(X) // 4  # the screen settles most samples (else it would be no faster)
    _assert_float64_labels(model, X, np.searchsorted(model.classes_, model.predict(X)))


def test_samples_on_a_boundary_go_to_the_float64_path():
    model, X = _fit(n=500, d=256, k=4, seed=3)
    edge = _boundary_points(model, X, 40)
    rest = make_embeddings(n=200, d=256, k=4, seed=5)[0]
    both = np.vstack([edge, rest])
    labels, n_float64 = _labels(model, both)
    assert _assert_float64_labels(model, both, labels).sum() >= len(edge)
    # a decision value within 1e-13 of 0 is far inside any float32 bound, so each of these needed the float64
    # path unless its pair could not change the vote's winner
    only_edge = _labels(model, np.vstack([edge] * 2))[1]  # twice: at least SERTK_SCREEN_MIN_ROWS samples
    assert only_edge > 0 and n_float64 >= only_edge // 2


def test_two_threads_give_the_same_labels():
    model, X = _fit(n=600, d=300, k=4, seed=7)
    T = np.vstack([make_embeddings(n=500, d=300, k=4, seed=8)[0], _boundary_points(model, X, 10)])
    one, _ = _labels(model, T, n_threads=1)
    two, _ = _labels(model, T, n_threads=2)
    _assert_float64_labels(model, T, one)
    clear = ~_assert_float64_labels(model, T, two)  # rows with no pair's decision value near 0
    np.testing.assert_array_equal(one[clear], two[clear])


def test_values_beyond_the_bound_take_the_float64_path():
    model, X = _fit(n=400, d=64, k=3, seed=11)
    T = make_embeddings(n=100, d=64, k=3, seed=12)[0]
    T[:10, 0] = 1e13  # above 2^40: float32 sums could overflow
    labels, n_float64 = _labels(model, T)
    assert n_float64 >= 10
    _assert_float64_labels(model, T, labels)


def test_vectors_not_proven_within_the_bound_take_the_float64_path():
    """The screen proves every value within 2^40 from the squared norm (at most 2^79): a sample with a value that is
    not finite, or a support vector whose norm passes that although each of its values is below 2^40, goes to the
    float64 path (the sample alone; every sample for a support vector)."""
    model, X = _fit(n=400, d=64, k=3, seed=11)
    T = make_embeddings(n=100, d=64, k=3, seed=12)[0]
    T[0, 3], T[1, 5], T[2, 7] = np.inf, -np.inf, np.nan
    labels, n_float64 = _labels(model, T)
    assert 3 <= n_float64 < len(T)
    # exact: one non-finite value makes the row's squared norm and each of its dot products infinite or NaN in any
    # order of summation, so its kernel values, decision values and vote do not depend on the batch or the BLAS
    np.testing.assert_array_equal(labels[:3], _float64_labels(model, T[:3]))
    _assert_float64_labels(model, T[3:], labels[3:])
    (Xk, sv, n_support, coef, rho), kw = model._model_args(np.ascontiguousarray(T[3:], dtype=np.float64))
    sv = sv.copy()
    sv[0] = 2.0**37  # 64 values of 2^37: each below 2^40, the squared norm 2^80
    labels, n_float64 = _nusvm.predict(Xk, sv, n_support, coef, rho, **kw)
    assert n_float64 == len(Xk)
    # exact: the whole batch took the float64 path in one call, the same call as decision_function's
    np.testing.assert_array_equal(labels, _nusvm.vote(_nusvm.decision_function(Xk, sv, n_support, coef, rho, **kw),
                                                      len(model.classes_)))


def test_tiny_and_huge_scales_keep_the_labels():
    # tiny values: float32 underflows (subnormals, or zero under flush-to-zero), which the bound's absolute
    # terms cover; the model is the same problem scaled, with gamma scaled to match
    X, y = make_embeddings(n=400, d=64, k=3, seed=13)
    T = make_embeddings(n=100, d=64, k=3, seed=14)[0]
    for scale in (1e-30, 1e-20, 1e10):
        model = NuSVC(nu=0.2, gamma=1.0 / scale**2).fit(X * scale, y)
        labels, _ = _labels(model, T * scale)
        _assert_float64_labels(model, T * scale, labels)


def test_paths_without_the_screen():
    model, X = _fit(n=300, d=32, k=3, seed=15)
    T = make_embeddings(n=100, d=32, k=3, seed=16)[0]
    assert _labels(model, T, screen=False)[1] == len(T)
    assert _labels(model, T[:63])[1] == 63  # fewer than SERTK_SCREEN_MIN_ROWS samples
    linear = NuSVC(nu=0.2, kernel="linear").fit(X, model.predict(X))
    labels, n_float64 = _labels(linear, T)
    assert n_float64 == len(T)  # the whole batch in one float64 call, as _float64_labels: exact by construction
    np.testing.assert_array_equal(labels, _float64_labels(linear, T))
    sq = (X * X).sum(1)
    pre = NuSVC(nu=0.2, kernel="precomputed").fit(np.exp(-(sq[:, None] + sq[None, :] - 2 * X @ X.T)),
                                                  model.predict(X))
    K = np.exp(-((T * T).sum(1)[:, None] + sq[None, :] - 2 * T @ X.T))
    labels, n_float64 = _labels(pre, K)
    assert n_float64 == len(T)  # as above
    np.testing.assert_array_equal(labels, _float64_labels(pre, K))


def test_batches_small_for_the_model_take_the_float64_path():
    """fewer samples than one per 32 support vectors: the screen's fixed costs would not be repaid"""
    X, y = make_embeddings(n=3000, d=16, k=3, seed=21)
    model = NuSVC(nu=0.7).fit(X, y)
    n_sv = len(model.support_)
    T = make_embeddings(n=n_sv // 32 + 40, d=16, k=3, seed=22)[0]
    few = n_sv // 32 - 1
    assert few >= 64, n_sv
    assert _labels(model, T[:few])[1] == few
    labels, n_float64 = _labels(model, T)
    assert n_float64 < len(T)
    _assert_float64_labels(model, T, labels)


def test_many_classes_take_the_float64_path():
    X, y = make_embeddings(n=850, d=24, k=17, seed=17)  # above SERTK_SCREEN_MAX_CLASSES
    model = NuSVC(nu=0.05).fit(X, y)
    T = make_embeddings(n=64, d=24, k=17, seed=18)[0]
    labels, n_float64 = _labels(model, T)
    assert n_float64 == len(T)  # the whole batch in one float64 call, as _float64_labels: exact by construction
    np.testing.assert_array_equal(labels, _float64_labels(model, T))


def test_scalar_code_gives_the_same_labels():
    """SERTK_NUSVM_SCALAR=1: the decision sums' plain C loops, which CPUs without AVX2 and FMA take."""
    script = (
        "import numpy as np, sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from conftest import make_embeddings\n"
        "from test_vote_screen import _fit, _labels, _assert_float64_labels\n"
        "model, X = _fit(n=500, d=300, k=4, seed=19)\n"
        "T = make_embeddings(n=300, d=300, k=4, seed=20)[0]\n"
        "labels, n64 = _labels(model, T)\n"
        "assert n64 < len(T) // 4, n64\n"
        "_assert_float64_labels(model, T, labels)\n"
    )
    env = {**os.environ, "SERTK_NUSVM_SCALAR": "1"}
    subprocess.run([sys.executable, "-c", script, "", os.path.dirname(__file__)], check=True, env=env)
