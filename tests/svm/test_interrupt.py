"""A long fit can be interrupted: Ctrl-C (SIGINT) and the low-level ``cancel`` event stop the C core promptly.

No absolute timing thresholds: the timed tests first measure the uninterrupted fit on the same problem and assert
that the interrupted one returns in less than half of that time.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from sertk.svm import NuSVC, _nusvm


def make_embeddings(n: int, d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping, L2-normalised classes (like conftest's embeddings), so the SMO needs many iterations."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    X = 0.25 * rng.standard_normal((k, d))[y] + rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, y

# the row-cache path with a tiny cache: every few SMO iterations compute kernel rows with BLAS (about 2 s here)
CACHE_MB = 0.5

needs_sigint = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                  reason="SIGINT must raise KeyboardInterrupt in the main thread")


@pytest.fixture(autouse=True)
def _python_sigint_handler():
    """Python's own SIGINT handler for each test: a process started in the background (CI) may ignore SIGINT."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def slow_problem() -> tuple[np.ndarray, np.ndarray]:
    return make_embeddings(n=4000, d=64, k=4, seed=3)


@pytest.fixture(scope="module")
def reference(slow_problem) -> tuple[NuSVC, float]:
    """The uninterrupted fit and how long it took."""
    X, y = slow_problem
    t0 = time.perf_counter()
    est = NuSVC(cache_size=CACHE_MB).fit(X, y)
    elapsed = time.perf_counter() - t0
    assert est.kernel_mode_ == "cache"
    return est, elapsed


def _assert_same_model(a: NuSVC, b: NuSVC) -> None:
    for name in ("support_", "n_support_", "dual_coef_", "intercept_", "n_iter_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@needs_sigint
def test_ctrl_c_interrupts_fit_promptly_and_leaves_estimator_unfitted(slow_problem, reference):
    X, y = slow_problem
    ref, t_full = reference
    delay = 0.1 * t_full  # well inside the fit
    est = NuSVC(cache_size=CACHE_MB)
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            est.fit(X, y)
        elapsed = time.perf_counter() - t0
    finally:
        timer.cancel()
        timer.join()
    assert elapsed < 0.5 * t_full, f"interrupted fit took {elapsed:.3f} s, the whole fit {t_full:.3f} s"
    # the core has returned: no solver thread is left running
    assert not [t for t in threading.enumerate() if t.name == "sertk-nusvm-fit"]
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    # a later fit works and equals the uninterrupted one, bit for bit
    est.fit(X, y)
    _assert_same_model(est, ref)


@needs_sigint
def test_ctrl_c_keeps_a_previous_model(slow_problem, reference):
    """Interrupting a refit leaves the previously fitted model as it was."""
    X, y = slow_problem
    _, t_full = reference
    Xs, ys = make_embeddings(n=200, d=64, k=4, seed=4)
    est = NuSVC(cache_size=CACHE_MB).fit(Xs, ys)
    before = est.dual_coef_.copy()
    timer = threading.Timer(0.1 * t_full, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            est.fit(X, y)
    finally:
        timer.cancel()
        timer.join()
    np.testing.assert_array_equal(est.dual_coef_, before)
    np.testing.assert_array_equal(est.predict(Xs), NuSVC(cache_size=CACHE_MB).fit(Xs, ys).predict(Xs))


def _lowlevel_args(X, y):
    return (np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(y, dtype=np.int32),
            np.ones(len(y)), int(y.max()) + 1)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_cancel_event_stops_the_core(slow_problem, reference, n_threads):
    X, y = slow_problem
    ref, t_full = reference
    args = _lowlevel_args(X, y)
    kw = {"kernel": "rbf", "gamma": ref._gamma, "nu": 0.5, "cache_bytes": CACHE_MB * 2**20, "n_threads": n_threads}
    cancel = threading.Event()
    timer = threading.Timer(0.1 * t_full, cancel.set)
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(_nusvm.FitCancelledError):
            _nusvm.fit(*args, cancel=cancel, **kw)
        elapsed = time.perf_counter() - t0
    finally:
        timer.cancel()
        timer.join()
    assert elapsed < 0.5 * t_full, f"cancelled fit took {elapsed:.3f} s, the whole fit {t_full:.3f} s"


@pytest.mark.parametrize("cache_mb", [0.05, 100.0], ids=["row_cache", "gram"])
@pytest.mark.parametrize("probability", [False, True])
def test_preset_cancel_flag_returns_cancelled_then_fit_still_works(cache_mb, probability):
    X, y = make_embeddings(n=300, d=32, k=3, seed=5)
    args = _lowlevel_args(X, y)
    prob_perm = None
    if probability:
        counts = np.bincount(y)
        rng = np.random.default_rng(0)
        prob_perm = np.concatenate([rng.permutation(int(counts[i] + counts[j]))
                                    for i in range(3) for j in range(i + 1, 3)]).astype(np.int32)
    kw = {"kernel": "rbf", "gamma": 0.5, "nu": 0.3, "cache_bytes": cache_mb * 2**20, "prob_perm": prob_perm}
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(_nusvm.FitCancelledError):
        _nusvm.fit(*args, cancel=cancel, **kw)
    a = _nusvm.fit(*args, cancel=threading.Event(), **kw)
    b = _nusvm.fit(*args, **kw)
    assert a["kernel_mode"] == ("gram" if cache_mb > 1 else "cache")
    for key in ("support", "dual_coef", "rho", "n_iter", "prob_a", "prob_b"):
        if a[key] is None:
            assert b[key] is None
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
