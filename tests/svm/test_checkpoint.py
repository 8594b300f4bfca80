"""An interrupted fit resumes: ``NuSVC(checkpoint=)`` keeps each solved one-vs-one pair, a later fit of the same data
and parameters solves only the rest and gives the model of an uninterrupted fit bit for bit, and a file of
another fit is refused, never overwritten."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import make_embeddings

from sertk.svm import NuSVC, _checkpoint, _nusvm

# the row cache (a tiny budget) and the Gram path
FAST = {"nu": 0.3}
SLOW = {"nu": 0.3, "cache_size": 0.3}
MODEL = ("support_", "dual_coef_", "intercept_", "n_iter_", "n_support_")


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, np.ndarray]:
    return make_embeddings(n=900, d=32, k=4, seed=11)


def _same(a: NuSVC, b: NuSVC) -> None:
    """Exact: the pairs taken from a file are the bits an earlier fit in this process wrote, and the pairs solved
    afresh run the same code on the same kernel path and machine as the reference fit."""
    for name in MODEL:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def _interrupted_fit(X, y, path, keep: list[int], **params) -> None:
    """The checkpoint an interrupted fit leaves: a whole fit's file with only the pairs ``keep`` marked solved
    (an interruption by Ctrl-C itself is test_a_real_interruption_resumes)."""
    NuSVC(checkpoint=path, **params).fit(X, y)
    with np.load(path) as f:
        saved = {k: f[k] for k in f.files}
    saved["done"][:] = 0
    saved["done"][keep] = 1
    np.savez(path, **saved)


def _fit_seen(params, X, y) -> tuple[NuSVC, list[dict]]:
    """A fit, and the progress reports its core made."""
    seen: list[dict] = []
    real = _nusvm.fit
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_nusvm, "fit", lambda *a, **kw: real(*a, **{**kw, "progress": seen.append}))
        model = NuSVC(**params).fit(X, y)
    return model, seen


@pytest.mark.parametrize("params", [SLOW, {**SLOW, "n_jobs": 2}, {**FAST, "cache_size": 2}, FAST],
                         ids=["cache", "cache-2-threads", "pair", "gram"])
@pytest.mark.parametrize("keep", [[0, 1], [1, 4, 5], [3]])
def test_a_resumed_fit_gives_the_uninterrupted_model(problem, tmp_path, params, keep):
    X, y = problem
    path = tmp_path / "fit.npz"
    _interrupted_fit(X, y, path, keep, **params)
    resumed, seen = _fit_seen({**params, "checkpoint": path}, X, y)
    _same(resumed, NuSVC(**params).fit(X, y))
    # the pairs taken from the file were not solved again
    assert seen[-1]["iterations"] == int(resumed.n_iter_.sum()) - int(resumed.n_iter_[keep].sum())
    with np.load(path) as f:
        assert f["done"].tolist() == [1] * 6


def test_a_real_interruption_resumes(tmp_path):
    X, y = make_embeddings(n=4000, d=64, k=4, seed=3)  # the row cache with a tiny budget: about a second a pair
    path = tmp_path / "fit.npz"
    cancel = threading.Event()
    real = _nusvm.fit

    def fit(*args, on_solved=None, **kw):
        def solved(new):
            on_solved(new)
            cancel.set()  # as Ctrl-C would, once the first pair is saved
        return real(*args, on_solved=solved, cancel=cancel, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_nusvm, "fit", fit)
        with pytest.raises(_nusvm.FitCancelledError):
            NuSVC(checkpoint=path, nu=0.3, cache_size=0.5).fit(X, y)
    with np.load(path) as f:
        assert 1 <= int(f["done"].sum()) < 6
    resumed = NuSVC(checkpoint=path, nu=0.3, cache_size=0.5).fit(X, y)
    _same(resumed, NuSVC(nu=0.3, cache_size=0.5).fit(X, y))


def test_a_finished_checkpoint_makes_the_fit_instant_and_the_same(problem, tmp_path):
    X, y = problem
    path = tmp_path / "fit.npz"
    first = NuSVC(checkpoint=path, **FAST).fit(X, y)
    again, seen = _fit_seen({**FAST, "checkpoint": path}, X, y)
    _same(first, again)
    assert seen[-1]["kernel_values"] == 0 and seen[-1]["iterations"] == 0


def test_probability_resumes_too(problem, tmp_path):
    X, y = problem
    params = {**SLOW, "probability": True, "random_state": 0}
    path = tmp_path / "fit.npz"
    _interrupted_fit(X, y, path, [2, 3], **params)
    resumed = NuSVC(checkpoint=path, **params).fit(X, y)
    whole = NuSVC(**params).fit(X, y)
    _same(resumed, whole)
    np.testing.assert_array_equal(resumed.probA_, whole.probA_)
    np.testing.assert_array_equal(resumed.probB_, whole.probB_)


def test_threads_and_budget_may_change_between_the_two_fits(problem, tmp_path):
    X, y = problem
    path = tmp_path / "fit.npz"
    _interrupted_fit(X, y, path, [0, 2, 4], **SLOW)
    # still the row cache, whose values are libsvm's own dot products (sertk_rowdot: the same bits on any CPU,
    # any budget, any thread count), so the pairs solved now are exactly those of the one-thread fit; a change of
    # kernel path is left out, since the Gram path's BLAS products may round a rare value the other way
    resumed = NuSVC(checkpoint=path, nu=0.3, cache_size=0.4, n_jobs=2).fit(X, y)
    _same(resumed, NuSVC(**SLOW).fit(X, y))


@pytest.mark.parametrize("change", [{"nu": 0.25}, {"tol": 1e-4}, {"gamma": 0.5}, {"shrinking": False},
                                    "data", "labels", "weights"])
def test_a_checkpoint_of_another_fit_is_refused_and_kept(problem, tmp_path, change):
    X, y = problem
    path = tmp_path / "fit.npz"
    NuSVC(checkpoint=path, **FAST).fit(X, y)
    before = path.read_bytes()
    params, fit_kw = dict(FAST), {}
    if change == "data":
        X = X.copy()
        X[0, 0] += 1e-12
    elif change == "labels":
        y = np.where(y == 0, 7, y)  # same partition, other names: the model's classes_ differ
    elif change == "weights":
        fit_kw["sample_weight"] = np.r_[2.0, np.ones(len(y) - 1)]
    else:
        params.update(change)
    with pytest.raises(ValueError, match="holds a fit of other data or other parameters"):
        NuSVC(checkpoint=path, **params).fit(X, y, **fit_kw)
    assert path.read_bytes() == before


def test_a_folder_keeps_one_file_per_fit(problem, tmp_path):
    X, y = problem
    NuSVC(checkpoint=tmp_path, **FAST).fit(X, y)
    NuSVC(checkpoint=tmp_path, **FAST).fit(X[:800], y[:800])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(f.startswith("nusvm-") and f.endswith(".npz") for f in files)


def test_bad_files_and_paths_say_what_to_do(problem, tmp_path):
    X, y = problem
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read as a sertk ν-SVM checkpoint.*remove it"):
        NuSVC(checkpoint=junk, **FAST).fit(X, y)
    assert junk.read_bytes() == b"not a checkpoint"
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="is not a sertk ν-SVM checkpoint"):
        NuSVC(checkpoint=other, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="does not exist; create it"):
        NuSVC(checkpoint=tmp_path / "missing" / "fit.npz", **FAST).fit(X, y)
    with pytest.raises(ValueError, match="checkpoint must be a file path or None"):
        NuSVC(checkpoint=3, **FAST).fit(X, y)


def test_no_temporary_file_is_left_behind(problem, tmp_path):
    X, y = problem
    path = tmp_path / "fit.npz"
    _interrupted_fit(X, y, path, [1], **SLOW)
    NuSVC(checkpoint=path, **SLOW).fit(X, y)
    assert [p.name for p in tmp_path.iterdir()] == ["fit.npz"]


def test_a_model_file_keeps_the_checkpoint_option(problem, tmp_path):
    X, y = problem
    m = NuSVC(checkpoint=tmp_path / "fit.npz", **FAST).fit(X, y)
    m.save(tmp_path / "model")
    assert NuSVC.load(tmp_path / "model").checkpoint == str(tmp_path / "fit.npz")


def test_the_fingerprint_leaves_out_threads_and_budget():
    X, y = np.ones((4, 2)), np.array([0, 0, 1, 1], np.int32)
    params = {"nu": 0.5, "kernel": "rbf"}
    a = _checkpoint.fingerprint(X, y, np.ones(4), np.array([0, 1]), params, None)
    assert a == _checkpoint.fingerprint(X.copy(), y.copy(), np.ones(4), np.array([0, 1]), dict(params), None)
    assert a != _checkpoint.fingerprint(X, y, np.ones(4), np.array([0, 1]), {**params, "nu": 0.4}, None)
