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
    with pytest.raises(ValueError, match="does not exist: give an existing folder .* or a file path ending in .npz"):
        NuSVC(checkpoint=tmp_path / "fits", **FAST).fit(X, y)
    assert not (tmp_path / "fits").exists()


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


# --- an unfinished pair resumes from its solver's state -------------------------------------------------------------

@pytest.fixture
def states_often(monkeypatch):
    """The core keeps each pair's state every 64 SMO iterations and the waiting thread looks every 2 ms, so that
    fits of a few milliseconds a pair still hand several states over (the default is one a minute)."""
    monkeypatch.setattr(_checkpoint, "STATE_EVERY_S", 0.0)
    monkeypatch.setattr(_nusvm, "_POLL_S", 0.002)


def _fit_keeping_states(params, X, y, path, cancel_at=None):
    """A fit with a checkpoint, and every solver state its core handed over; ``cancel_at(p, state)`` may stop it."""
    states: list[tuple[int, dict]] = []
    cancel = threading.Event()
    real = _nusvm.fit

    def fit(*args, on_state=None, **kw):
        def seen(changed):
            on_state(changed)
            for p, st in changed.items():
                if st is not None:
                    states.append((p, st))
                    if cancel_at is not None and cancel_at(p, st):
                        cancel.set()
        return real(*args, on_state=seen, cancel=cancel, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_nusvm, "fit", fit)
        try:
            model = NuSVC(checkpoint=path, **params).fit(X, y)
        except _nusvm.FitCancelledError:
            model = None
    return model, states


def _int(ints, name: str) -> int:
    """The integer field ``name`` of a state's ``ints`` array (its layout: ``_nusvm.STATE_INTS``)."""
    return int(ints[_nusvm.STATE_INTS.index(name)])


def _pick(states, counts_l):
    """A few states to resume from: the first and last handed over, and the first after a shrinking (active set
    below the pair's size) and after the unshrinking (libsvm's reconstruction of the whole gradient), if any."""
    picks = {0: states[0], 1: states[-1]}
    for p, st in states:
        if _int(st["ints"], "active_size") < counts_l[p] and 2 not in picks:
            picks[2] = (p, st)
        if _int(st["ints"], "unshrink") == 1 and 3 not in picks:
            picks[3] = (p, st)
    return list(picks.values())


@pytest.fixture(scope="module")
def larger() -> tuple[np.ndarray, np.ndarray]:
    """Pairs of 1 000 to 1 500 samples: the Gram and pair paths' solvers then take tens of milliseconds a pair,
    time for the waiting thread to be handed several states (the row cache is slow enough at 900 samples)."""
    return make_embeddings(n=2500, d=32, k=4, seed=11)


@pytest.mark.parametrize(("data", "params", "mode"), [
    ("problem", SLOW, "cache"), ("problem", {**SLOW, "n_jobs": 2}, "cache"),
    ("larger", {**FAST, "cache_size": 10}, "pair"), ("larger", FAST, "gram"), ("larger", {**FAST, "n_jobs": 2}, "gram"),
    ("problem", {**SLOW, "probability": True, "random_state": 0}, "cache"),
], ids=["cache", "cache-2-threads", "pair", "gram", "gram-2-threads", "probability"])
def test_a_pair_resumed_from_a_kept_solver_state_gives_the_uninterrupted_model(request, tmp_path, data, params,
                                                                               mode, states_often):
    X, y = request.getfixturevalue(data)
    path = tmp_path / "fit.npz"
    whole, states = _fit_keeping_states(params, X, y, path)
    assert whole.kernel_mode_ == mode
    _same(whole, NuSVC(**params).fit(X, y))
    assert states, "no solver state was handed over"
    counts = np.bincount(np.searchsorted(whole.classes_, y))
    sizes = [int(counts[i] + counts[j]) for i in range(4) for j in range(i + 1, 4)]
    with np.load(path) as f:
        finished = {k: f[k] for k in f.files}
    assert not any(k.startswith("state") for k in finished), "a solved pair's state was kept"
    for p, st in _pick(states, sizes):
        # the file an interruption at this state leaves: pair p unfinished, its solver kept
        saved = dict(finished, done=finished["done"].copy(), **{f"state{p}_{k}": v for k, v in st.items()})
        saved["done"][p] = 0
        np.savez(path, **saved)
        resumed, seen = _fit_seen({**params, "checkpoint": path}, X, y)
        _same(resumed, whole)
        if params.get("probability"):
            np.testing.assert_array_equal(resumed.probA_, whole.probA_)
            np.testing.assert_array_equal(resumed.probB_, whole.probB_)
        else:  # the pair went on from the state's iteration, not from its start
            assert seen[-1]["iterations"] == int(whole.n_iter_[p]) - _int(st["ints"], "iter")


def test_a_real_interruption_mid_pair_resumes_there(tmp_path, states_often):
    X, y = make_embeddings(n=4000, d=64, k=4, seed=3)  # the row cache with a tiny budget: about a second a pair
    params = {"nu": 0.3, "cache_size": 0.5}
    path = tmp_path / "fit.npz"
    # stopped twice, each time deep inside a pair (its solver has run 300 iterations more than at its last start)
    for _ in range(2):
        start = _kept_iterations(path)
        model, _ = _fit_keeping_states(params, X, y, path,
                                       cancel_at=lambda p, st: _int(st["ints"], "iter") >= start.get(p, 0) + 300)
        assert model is None
        with np.load(path) as f:
            kept = [p for p in range(6) if f"state{p}_ints" in f.files]
            assert kept and not f["done"][kept].any()
            assert max(_int(f[f"state{p}_ints"], "iter") for p in kept) >= 300
    resumed, seen = _fit_seen({**params, "checkpoint": path}, X, y)
    whole = NuSVC(**params).fit(X, y)
    _same(resumed, whole)
    assert seen[-1]["iterations"] < int(whole.n_iter_.sum())
    with np.load(path) as f:
        assert f["done"].tolist() == [1] * 6 and not any(k.startswith("state") for k in f.files)


def _kept_iterations(path) -> dict[int, int]:
    """Pair -> the SMO iterations of its solver state in the checkpoint at ``path`` (none before the first fit)."""
    if not path.exists():
        return {}
    with np.load(path) as f:
        return {p: _int(f[f"state{p}_ints"], "iter") for p in range(6) if f"state{p}_ints" in f.files}


def test_a_damaged_solver_state_is_refused_and_kept(problem, tmp_path, states_often):
    X, y = problem
    path = tmp_path / "fit.npz"
    _, states = _fit_keeping_states(SLOW, X, y, path)
    p, st = states[-1]
    with np.load(path) as f:
        saved = {k: f[k] for k in f.files}
    saved["done"][p] = 0
    bad = dict(st, aset=st["aset"].copy())
    bad["aset"][0] = bad["aset"][1]  # a position twice: not a permutation
    np.savez(path, **saved, **{f"state{p}_{k}": v for k, v in bad.items()})
    before = path.read_bytes()
    with pytest.raises(ValueError, match=f"is damaged .*unfinished pair {p}.*remove it"):
        NuSVC(checkpoint=path, **SLOW).fit(X, y)
    assert path.read_bytes() == before


def test_the_core_refuses_a_state_that_is_not_its_pairs(problem):
    """The core's own check, under the Python one: a state whose positions are not a permutation is refused before
    the solver reads through them."""
    X, y = problem
    y32 = np.searchsorted(np.unique(y), y).astype(np.int32)
    pairs = _checkpoint.empty_pairs(np.bincount(y32))
    size = len(pairs["coef"][0])
    ints = {"version": 1, "iter": 64, "counter": 5, "active_size": size, "unshrink": 0, "max_valid": 0, "ip": -1,
            "in": -1}
    pairs["states"][0] = {"ints": np.array([ints[k] for k in _nusvm.STATE_INTS], np.int64), "gmax": np.zeros(2),
                          "alpha": np.zeros(size), "G": np.zeros(size), "Gbar": np.zeros(size),
                          "aset": np.zeros(size, np.int32)}
    with pytest.raises(ValueError, match="invalid"):
        _nusvm.fit(np.ascontiguousarray(X), y32, np.ones(len(y)), 4, nu=0.3, gamma=1.0, pairs=pairs)


def test_a_fit_stopped_at_many_moments_still_gives_the_uninterrupted_model(tmp_path, states_often):
    """Stops spread over a whole fit, each resumed from what the last one kept: some land in a first gradient, some
    in a gradient reconstruction (which stops at once and keeps nothing: its state is half rebuilt), most between
    iterations; none may leave a state that leads elsewhere."""
    X, y = make_embeddings(n=4000, d=64, k=4, seed=3)  # the row cache with a tiny budget: about a second a pair
    params = {"nu": 0.3, "cache_size": 0.5}
    path = tmp_path / "fit.npz"
    whole = NuSVC(**params).fit(X, y)
    stops = 0
    for delay in np.linspace(0.1, 0.45, 10):
        cancel = threading.Event()
        timer = threading.Timer(delay, cancel.set)
        real = _nusvm.fit
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_nusvm, "fit", lambda *a, **kw: real(*a, **{**kw, "cancel": cancel}))
            timer.start()
            try:
                NuSVC(checkpoint=path, **params).fit(X, y)
            except _nusvm.FitCancelledError:
                stops += 1
            finally:
                timer.cancel()
    assert stops >= 5
    _same(NuSVC(checkpoint=path, **params).fit(X, y), whole)
