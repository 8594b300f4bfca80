"""Bad input gets a ValueError naming the problem; non-convergence is a warning, never a hang."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from sertk.svm import NuSVC


@pytest.fixture
def Xy(datasets):
    return datasets["iris"]


@pytest.mark.parametrize("bad, match", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_non_finite_values(Xy, bad, match):
    X, y = Xy
    X = X.copy()
    X[3, 1] = bad
    with pytest.raises(ValueError, match=match):
        NuSVC().fit(X, y)
    m = NuSVC().fit(Xy[0], y)
    with pytest.raises(ValueError, match=match):
        m.predict(X)


def test_wrong_shapes(Xy):
    X, y = Xy
    with pytest.raises(ValueError, match="2D array"):
        NuSVC().fit(X[:, 0], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        NuSVC().fit(X, y[:-1])
    with pytest.raises(ValueError, match="dim 3"):
        NuSVC().fit(X.reshape(len(X), 2, 2), y)
    m = NuSVC().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        m.predict(X[:, :3])


def test_wrong_dtypes(Xy):
    X, y = Xy
    with pytest.raises(ValueError, match="[Cc]omplex"):
        NuSVC().fit(X + 1j, y)
    with pytest.raises(ValueError, match="could not convert|convert"):
        NuSVC().fit(np.array([["a", "b"]] * len(y)), y)
    with pytest.raises(ValueError, match="Unknown label type|continuous"):
        NuSVC().fit(X, y + 0.5)
    with pytest.raises(TypeError, match="[Ss]parse"):
        from scipy import sparse

        NuSVC().fit(sparse.csr_matrix(X), y)


def test_single_class_and_empty_input(Xy):
    X, y = Xy
    with pytest.raises(ValueError, match="number of classes has to be greater than one; got 1 class"):
        NuSVC().fit(X[y == 0], y[y == 0])
    with pytest.raises(ValueError, match="0 sample"):
        NuSVC().fit(np.empty((0, 4)), np.empty(0))
    with pytest.raises(ValueError, match="0 feature"):
        NuSVC().fit(np.empty((10, 0)), np.arange(10) % 2)


@pytest.mark.parametrize("nu", [0, -0.1, 1.5, np.nan, "0.5", True])
def test_nu_out_of_range(Xy, nu):
    with pytest.raises(ValueError, match=r"nu must be a number in \(0, 1\]"):
        NuSVC(nu=nu).fit(*Xy)


def test_infeasible_nu_names_the_largest_feasible_value():
    X = np.random.default_rng(0).standard_normal((80, 3))
    y = np.array(["a"] * 50 + ["b"] * 20 + ["c"] * 10)
    largest = 2 * 10 / 60  # the pair (a, c)
    with pytest.raises(ValueError, match=r"nu=0\.4 is infeasible.*'a' and 'c'.*largest feasible nu .* is 0\.333333"):
        NuSVC(nu=0.4).fit(X, y)
    NuSVC(nu=largest).fit(X, y)  # exactly at the bound is feasible


@pytest.mark.parametrize("kernel", ["poly", "sigmoid", "RBF", None, len])
def test_unknown_kernel(Xy, kernel):
    with pytest.raises(ValueError, match="kernel=.* is not supported; choose one of 'linear', 'rbf', 'precomputed'"):
        NuSVC(kernel=kernel).fit(*Xy)


@pytest.mark.parametrize("gamma", ["scal", -1.0, np.inf, None])
def test_unknown_gamma(Xy, gamma):
    with pytest.raises(ValueError, match="gamma"):
        NuSVC(gamma=gamma).fit(*Xy)


@pytest.mark.parametrize("params, match", [
    ({"tol": 0}, "tol"),
    ({"cache_size": -5}, "cache_size"),
    ({"max_iter": -2}, "max_iter"),
    ({"max_iter": 2.5}, "max_iter"),
    ({"decision_function_shape": "ovx"}, "decision_function_shape"),
    ({"shrinking": "yes"}, "shrinking"),
    ({"n_jobs": 0}, "n_jobs"),
    ({"class_weight": "heavy"}, "class_weight"),
])
def test_other_bad_parameters(Xy, params, match):
    with pytest.raises(ValueError, match=match):
        NuSVC(**params).fit(*Xy)


def test_break_ties_with_ovo_fits_and_only_predict_refuses(Xy):
    """As scikit-learn: the combination is a valid estimator (clone, grid search); predicting with it is not."""
    from sklearn.svm import NuSVC as SkNuSVC

    for cls in (NuSVC, SkNuSVC):
        model = cls(decision_function_shape="ovo", break_ties=True).fit(*Xy)
        model.decision_function(Xy[0])
        with pytest.raises(ValueError, match="break_ties must be False when decision_function_shape is 'ovo'"):
            model.predict(Xy[0])


def test_linear_coef_is_read_only_as_in_scikit_learn(Xy):
    coef = NuSVC(kernel="linear").fit(*Xy).coef_
    with pytest.raises(ValueError, match="read-only"):
        coef[0, 0] = 1.0


def test_bad_sample_weights(Xy):
    X, y = Xy
    with pytest.raises(ValueError, match="non-negative"):
        NuSVC().fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="shape"):
        NuSVC().fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        NuSVC().fit(X, y, sample_weight=np.full(len(y), np.nan))
    with pytest.raises(ValueError, match="weights are zero"):
        NuSVC().fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="class 0 has no sample with positive weight"):
        NuSVC().fit(X, y, sample_weight=(y != 0).astype(float))


def test_precomputed_kernel_shapes(Xy):
    X, y = Xy
    with pytest.raises(ValueError, match="square"):
        NuSVC(kernel="precomputed").fit(X, y)
    K = X @ X.T
    m = NuSVC(kernel="precomputed", nu=0.2).fit(K, y)
    with pytest.raises(ValueError, match="150 features|number of samples at training time"):
        m.predict(K[:, :10])


def test_not_fitted(Xy):
    with pytest.raises(NotFittedError):
        NuSVC().predict(Xy[0])


def test_max_iter_warns_and_returns_promptly(datasets):
    X, y = datasets["emb_4class"]
    start = time.perf_counter()
    with pytest.warns(ConvergenceWarning, match=r"max_iter=5"):
        m = NuSVC(nu=0.3, max_iter=5).fit(X, y)
    assert time.perf_counter() - start < 10
    assert m.fit_status_ == 1
    assert np.all(m.n_iter_ <= 5)
    assert m.predict(X).shape == y.shape  # still a usable (non-optimal) model
