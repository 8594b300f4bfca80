"""The compiled wrapper :mod:`sertk.svm._nusvm`, called directly: pinned dual coefficients on tiny problems,
the one-vs-one layout, voting, feasibility and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from tolerances import FLOAT64_REORDERED, SVM_PINNED, assert_close

from sertk.svm import _nusvm

X8 = np.array([[0.0, 0.0], [1.0, 0.2], [0.3, 1.0], [1.2, 1.1], [2.0, 2.0], [2.5, 1.4], [1.6, 2.6], [0.9, 1.7]])


def _fit(y, **kw):
    y = np.asarray(y, dtype=np.int32)
    k = int(y.max()) + 1
    return _nusvm.fit(X8, y, np.ones(len(y)), k, kernel="rbf", gamma=0.5, nu=0.5, **kw)


@pytest.mark.golden
def test_binary_pinned_coefficients():
    # golden values from libsvm (scikit-learn 1.9.1):
    #   m = sklearn.svm.NuSVC(nu=0.5, gamma=0.5).fit(X8, [0,0,0,0,1,1,1,1])
    #   m.support_, m.n_support_, m.n_iter_, m._dual_coef_, m._intercept_
    r = _fit([0, 0, 0, 0, 1, 1, 1, 1])
    assert_array_equal(r["support"], [0, 1, 2, 3, 5, 6, 7])
    assert_array_equal(r["n_support"], [4, 3])
    assert_array_equal(r["n_iter"], [12])
    expected = [0.38734585785971887, 0.04578882045384493, 0.9816372077471042, 1.4147718860606682,
                -1.0706513719982105, -0.34412051406245786, -1.4147718860606682]
    assert_close(r["dual_coef"].ravel(), expected, SVM_PINNED, what="binary dual_coef")
    assert_close(-r["rho"], [-0.11676357074986449], SVM_PINNED, what="binary intercept")
    assert r["fit_status"] == 0 and r["kernel_mode"] == "gram" and r["prob_a"] is None


@pytest.mark.golden
def test_three_class_pinned_layout():
    # golden values from libsvm (scikit-learn 1.9.1):
    #   m = sklearn.svm.NuSVC(nu=0.5, gamma=0.5).fit(X8, [0,0,0,1,1,2,2,2]); m._dual_coef_, m._intercept_
    r = _fit([0, 0, 0, 1, 1, 2, 2, 2])
    assert_array_equal(r["support"], [1, 2, 3, 4, 5, 6, 7])
    assert_array_equal(r["n_support"], [2, 2, 3])
    assert_array_equal(r["n_iter"], [2, 5, 21])
    expected = [[1.4144374288293322, 1.4987716747692208, -2.3305672828788424, -0.5826418207197106,
                 -0.7282599302092464, -0.07520103856201181, -1.6069219375425168],
                [0.8034609687712584, 1.6069219375425168, 6.272865618932977, 12.53219376189768,
                 -7.731461494278516, -5.051960537438563, -6.021637349113577]]
    assert_close(r["dual_coef"], expected, SVM_PINNED, what="3-class dual_coef")
    assert_close(-r["rho"], [0.32731040777855086, -0.07907264150572525, -1.8387508528577015], SVM_PINNED,
                 what="3-class intercepts")


def test_decision_values_from_the_model_equal_a_direct_sum():
    r = _fit([0, 0, 0, 1, 1, 2, 2, 2])
    sv = X8[r["support"]]
    Xt = np.array([[0.5, 0.5], [2.0, 1.0], [1.0, 2.0]])
    dec = _nusvm.decision_function(Xt, np.ascontiguousarray(sv), r["n_support"], r["dual_coef"], r["rho"],
                                   kernel="rbf", gamma=0.5)
    K = np.exp(-0.5 * ((Xt[:, None, :] - sv[None, :, :]) ** 2).sum(-1))
    start = np.r_[0, np.cumsum(r["n_support"])]
    expected, p = np.zeros((3, 3)), 0
    for i in range(3):
        for j in range(i + 1, 3):
            si, sj = slice(start[i], start[i + 1]), slice(start[j], start[j + 1])
            expected[:, p] = K[:, si] @ r["dual_coef"][j - 1, si] + K[:, sj] @ r["dual_coef"][i, sj] - r["rho"][p]
            p += 1
    assert_close(dec, expected, FLOAT64_REORDERED, what="decision values vs direct sum")


def test_vote_follows_libsvm_tie_rules():
    # pairs (0,1), (0,2), (1,2); > 0 votes for the first class of the pair, else (also 0) for the second
    dec = np.array([[1.0, 1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, -1.0, 1.0], [0.0, 0.0, 0.0], [1.0, -1.0, -1.0]])
    # rows 2 and 3 give one vote to each class: the lowest index wins; row 4: zeros vote for the second class
    assert_array_equal(_nusvm.vote(dec, 3), [0, 0, 0, 2, 2])


def test_max_feasible_nu():
    y = np.array([0] * 30 + [1] * 10 + [2] * 20, dtype=np.int32)
    nu, pair = _nusvm.max_feasible_nu(y, np.ones(60), 3)
    assert pair == (0, 1) and nu == pytest.approx(2 * 10 / 40)
    with pytest.raises(_nusvm.InfeasibleNuError):
        X = np.random.default_rng(0).standard_normal((60, 3))
        _nusvm.fit(X, y, np.ones(60), 3, nu=0.51, gamma=1.0)


def test_argument_checks():
    y = np.array([0, 0, 1, 1], dtype=np.int32)
    X = X8[:4].copy()
    with pytest.raises(ValueError, match="rows"):
        _nusvm.fit(X, y[:3], np.ones(4), 2)
    with pytest.raises(ValueError, match="invalid argument"):  # a label outside 0..n_classes-1
        _nusvm.fit(X, np.array([0, 0, 1, 2], dtype=np.int32), np.ones(4), 2)
    with pytest.raises(ValueError, match="invalid argument"):  # a non-positive weight
        _nusvm.fit(X, y, np.array([1.0, 0.0, 1.0, 1.0]), 2)
    with pytest.raises(ValueError, match="unknown kernel"):
        _nusvm.fit(X, y, np.ones(4), 2, kernel="poly")
    with pytest.raises(ValueError, match="prob_perm"):
        _nusvm.fit(X, y, np.ones(4), 2, prob_perm=np.arange(3, dtype=np.int32))


def test_sigmoid_train_minimises_platts_objective():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    label = np.where(rng.random(300) < 0.4, 1, -1).astype(np.int8)
    dec = label * 0.8 + rng.standard_normal(300)
    A, B = _nusvm.sigmoid_train(dec, label)
    n_pos, n_neg = (label > 0).sum(), (label < 0).sum()
    t = np.where(label > 0, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def objective(ab):
        f = dec * ab[0] + ab[1]
        return np.sum(t * f + np.logaddexp(0, -f))

    best = scipy_optimize.minimize(objective, x0=[0.0, 0.0], method="BFGS", options={"gtol": 1e-10})
    assert A < 0  # larger decision values mean the positive class
    np.testing.assert_allclose([A, B], best.x, atol=1e-4)


def _libsvm_dot(A, X):
    # libsvm's dense dot for every pair: a float64 sum in k order, each term a product rounded on its own (NumPy
    # rounds A * X before adding it; the core is built with -ffp-contract=off and its vector code multiplies, then
    # adds): the same IEEE operations in the same order on both sides, so equality below is exact on any CPU
    out = np.zeros((A.shape[0], X.shape[0]))
    for kk in range(A.shape[1]):
        out += A[:, kk, None] * X[None, :, kk]
    return out


@pytest.mark.parametrize("f32", [False, True])
@pytest.mark.parametrize("nb", [1, 2, 3, 4, 5, 6, 7, 9])
def test_rowdot_is_libsvms_dot_for_every_tile_shape(nb, f32):
    # the row cache's kernel rows (csrc/sertk_rowdot.c): one, two, three or four rows per pass over the packed
    # samples, each shape with its own number of panels per step and the panels left over one at a time, and
    # column counts that leave part of the last four-column panel empty: every value must be libsvm's own sum, bit
    # for bit (the same sequence of IEEE operations whichever shape or vector width computes it)
    rng = np.random.default_rng(nb)
    for nc, d in [(1, 3), (5, 1), (31, 7), (36, 16), (37, 50), (70, 9)]:
        A = rng.standard_normal((nb, d))
        X = rng.standard_normal((nc, d))
        if f32:  # float32 panels take samples whose values are float32 values (the rows A stay float64)
            X = X.astype(np.float32).astype(np.float64)
        assert_array_equal(_nusvm._rowdot(A, X, f32), _libsvm_dot(A, X), err_msg=f"nc={nc} d={d}")


def test_rowdot_refuses_float32_panels_for_values_that_are_not_float32():
    # a float32 panel would round such values silently: the hook must say so, as fit only packs float32 values
    X = np.full((4, 3), 0.1)  # 0.1 is not a float32 value
    with pytest.raises(ValueError, match="float32 value"):
        _nusvm._rowdot(np.ones((1, 3)), X, True)


def test_readable_import_error_when_the_core_is_not_built(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import sertk

    src = Path(sertk.__file__).parent
    shutil.copytree(src, tmp_path / "sertk", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    out = subprocess.run([sys.executable, "-c", "import sertk.svm"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": ""}, check=False)
    assert out.returncode != 0
    assert "the compiled ν-SVM core is not built; run `pip install -e .`" in out.stderr
