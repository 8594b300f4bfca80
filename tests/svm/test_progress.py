"""A fit reports how far it is: the core's counters (sub-problems, kernel values, SMO iterations) reach the caller
while it runs, end at what the fit did, never change the model, and become a progress bar where bars are on."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_embeddings

from sertk import progress
from sertk.svm import NuSVC, _classes, _nusvm


def _fit(X, y, *, cache_mb=1024.0, kernel="rbf", prob_perm=None, **kw):
    k = int(y.max()) + 1
    return _nusvm.fit(X, y.astype(np.int32), np.ones(len(y)), k, kernel=kernel, gamma=1.0 / X.shape[1], nu=0.3,
                      cache_bytes=cache_mb * 2**20, prob_perm=prob_perm, **kw)


def _budget_for(mode: str, counts: np.ndarray) -> float:
    """A cache size in MiB that the core's plan sends to ``mode`` for these class sizes."""
    for mb in (64.0, 2.5, 1.6, 1.0, 0.6, 0.3, 0.1):
        plan = _nusvm.plan_kernel(counts.astype(np.int32), cache_bytes=mb * 2**20)
        if plan["fits"] and plan["kernel_mode"] == mode and (mode != "pair" or not plan["chained"]):
            return mb
    raise AssertionError(f"no budget in the list gives {mode!r} for {counts.tolist()}")


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, np.ndarray]:
    return make_embeddings(n=700, d=32, k=4, seed=5)


@pytest.mark.parametrize("mode", ["gram", "pair", "cache"])
def test_the_last_report_is_what_the_fit_did(problem, mode):
    X, y = problem
    n = len(y)
    seen: list[dict[str, int]] = []
    result = _fit(X, y, cache_mb=_budget_for(mode, np.bincount(y)), progress=seen.append)
    assert result["kernel_mode"] == mode
    last = seen[-1]
    assert last["subproblems_total"] == last["subproblems_done"] == 6
    assert last["iterations"] == int(result["n_iter"].sum())
    if mode == "cache":
        assert last["kernel_values"] > 0
    else:
        # the whole matrix, or each class block once and each cross block once: every value of one triangle
        assert last["kernel_values"] == n * (n + 1) // 2


def test_a_precomputed_kernel_counts_the_values_it_copies(problem):
    X, y = problem
    K = np.ascontiguousarray(np.exp(-((X[:, None, :] - X[None, :, :]) ** 2).sum(-1) / X.shape[1]))
    seen: list[dict[str, int]] = []
    _fit(K, y, kernel="precomputed", progress=seen.append)
    assert seen[-1]["kernel_values"] == len(y) ** 2


def test_probability_counts_the_cross_validation_folds(problem):
    X, y = problem
    counts = np.bincount(y)
    rng = np.random.default_rng(0)
    perm = np.concatenate([rng.permutation(int(counts[i] + counts[j])) for i in range(4) for j in range(i + 1, 4)])
    seen: list[dict[str, int]] = []
    _fit(X, y, prob_perm=perm.astype(np.int32), progress=seen.append)
    assert seen[-1]["subproblems_total"] == seen[-1]["subproblems_done"] == 6 * 6


def test_reports_arrive_while_the_core_runs_and_only_grow(monkeypatch):
    X, y = make_embeddings(n=4000, d=64, k=4, seed=3)  # the row cache with a tiny budget: a second or more
    monkeypatch.setattr(_nusvm, "_PROGRESS_S", 0.0)  # every 50 ms poll
    seen: list[dict[str, int]] = []
    _fit(X, y, cache_mb=0.5, progress=seen.append)
    assert len(seen) >= 2
    for key in ("subproblems_done", "kernel_values", "iterations"):
        values = [r[key] for r in seen]
        assert values == sorted(values), key


def test_an_error_in_the_callback_cancels_the_fit(problem):
    X, y = problem

    def stop(report):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        _fit(X, y, cache_mb=0.1, progress=stop)


class _RecordingBar:
    def __init__(self, total, desc="", unit="it", delay=0.0):
        self.total, self.desc, self.delay = total, desc, delay
        self.n, self.postfix, self.closed = 0, "", False

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, s="", refresh=True):
        self.postfix = s

    def close(self):
        self.closed = True


def test_the_bar_follows_the_core_where_bars_are_on_and_changes_nothing(problem, monkeypatch, capsys):
    X, y = problem
    bars: list[_RecordingBar] = []
    monkeypatch.setattr(progress, "bar", lambda *a, **kw: bars.append(_RecordingBar(*a, **kw)) or bars[-1])
    monkeypatch.setattr(progress, "_enabled", False)
    quiet = NuSVC(nu=0.3).fit(X, y)
    assert bars == [] and capsys.readouterr().err == ""
    monkeypatch.setattr(progress, "_enabled", True)
    shown = NuSVC(nu=0.3).fit(X, y)
    (bar,) = bars
    assert (bar.desc, bar.total, bar.n, bar.closed) == ("ν-SVM fit", 6, 6, True)
    assert bar.delay == _classes._PROGRESS_DELAY_S > 0  # short fits draw nothing
    assert f"{int(shown.n_iter_.sum()):,} SMO iterations" in bar.postfix
    # the counters are only written by the core, never read by it: the same model, bit for bit
    for name in ("support_", "dual_coef_", "intercept_", "n_iter_"):
        np.testing.assert_array_equal(getattr(shown, name), getattr(quiet, name))


def test_a_real_bar_draws_on_stderr(problem, monkeypatch, capsys):
    X, y = problem
    monkeypatch.setattr(progress, "_enabled", True)
    monkeypatch.setattr(_classes, "_PROGRESS_DELAY_S", 0.0)
    NuSVC(nu=0.3).fit(X, y)
    assert "ν-SVM fit" in capsys.readouterr().err
