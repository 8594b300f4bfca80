"""sertk's NuSVC against scikit-learn's NuSVC (libsvm): the same model, path and predictions.

The bar (docs/svm.md): the same support set, support-vector counts and SMO iteration counts per one-vs-one pair,
``dual_coef_``, ``intercept_`` and decision values within 1e-9, identical predictions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.svm import NuSVC as SkNuSVC
from tolerances import SVM_SAME_MODEL, assert_close

from sertk.svm import NuSVC

ATOL = SVM_SAME_MODEL.atol  # see tests/tolerances.py


def assert_same_model(ours: NuSVC, ref: SkNuSVC, X_test: np.ndarray, *, precomputed: bool = False) -> None:
    assert_array_equal(ours.classes_, ref.classes_)
    assert_array_equal(ours.support_, ref.support_)
    assert_array_equal(ours.n_support_, ref.n_support_)
    assert_array_equal(ours.n_iter_, ref.n_iter_)
    assert ours.fit_status_ == ref.fit_status_
    if not precomputed:
        assert_array_equal(ours.support_vectors_, ref.support_vectors_)
    assert ours.dual_coef_.shape == ref.dual_coef_.shape
    assert_close(ours.dual_coef_, ref.dual_coef_, SVM_SAME_MODEL, what="dual_coef_")
    assert_close(ours.intercept_, ref.intercept_, SVM_SAME_MODEL, what="intercept_")
    for shape in ("ovo", "ovr"):
        ours.set_params(decision_function_shape=shape)
        ref.set_params(decision_function_shape=shape)
        assert_close(ours.decision_function(X_test), ref.decision_function(X_test), SVM_SAME_MODEL,
                     what=f"decision_function {shape}")
    assert_array_equal(ours.predict(X_test), ref.predict(X_test))


@pytest.mark.golden
@pytest.mark.parametrize("shrinking", [True, False])
@pytest.mark.parametrize("nu", [0.1, 0.5])
@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits", "emb_binary", "emb_4class"])
def test_rbf_matches_sklearn(datasets, name, nu, shrinking):
    X, y = datasets[name]
    n_test = len(X) // 4
    X_train, y_train, X_test = X[n_test:], y[n_test:], X[:n_test]
    ref = SkNuSVC(nu=nu, shrinking=shrinking).fit(X_train, y_train)
    ours = NuSVC(nu=nu, shrinking=shrinking).fit(X_train, y_train)
    assert ours.kernel_mode_ == "gram"
    assert_same_model(ours, ref, X_test)
    assert ours.score(X_test, y[:n_test]) == pytest.approx(ref.score(X_test, y[:n_test]))


@pytest.mark.parametrize("name", ["iris", "breast_cancer", "emb_4class"])
def test_linear_kernel_matches_sklearn(datasets, name):
    X, y = datasets[name]
    ref = SkNuSVC(nu=0.3, kernel="linear").fit(X, y)
    ours = NuSVC(nu=0.3, kernel="linear").fit(X, y)
    assert_same_model(ours, ref, X)
    assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=1e-8)


def test_precomputed_kernel_matches_sklearn(datasets):
    X, y = datasets["emb_4class"]
    K_train = rbf_kernel(X[200:], X[200:], gamma=2.0)
    K_test = rbf_kernel(X[:200], X[200:], gamma=2.0)
    ref = SkNuSVC(nu=0.2, kernel="precomputed").fit(K_train, y[200:])
    ours = NuSVC(nu=0.2, kernel="precomputed").fit(K_train, y[200:])
    assert ours.support_vectors_.shape == (0, 0)
    assert_same_model(ours, ref, K_test, precomputed=True)


@pytest.mark.parametrize("gamma", ["auto", 0.7, 5.0])
def test_gamma_options_match_sklearn(datasets, gamma):
    X, y = datasets["wine"]
    ref = SkNuSVC(nu=0.25, gamma=gamma).fit(X, y)
    ours = NuSVC(nu=0.25, gamma=gamma).fit(X, y)
    assert_same_model(ours, ref, X)


def test_tolerance_matches_sklearn(datasets):
    X, y = datasets["emb_4class"]
    ref = SkNuSVC(nu=0.2, tol=1e-5).fit(X, y)
    ours = NuSVC(nu=0.2, tol=1e-5).fit(X, y)
    assert_same_model(ours, ref, X)


def test_sample_weight_matches_sklearn(datasets):
    X, y = datasets["emb_4class"]
    rng = np.random.default_rng(0)
    w = rng.uniform(0.2, 3.0, size=len(y))
    w[rng.choice(len(y), size=40, replace=False)] = 0.0  # left out, as libsvm does
    ref = SkNuSVC(nu=0.2).fit(X, y, sample_weight=w)
    ours = NuSVC(nu=0.2).fit(X, y, sample_weight=w)
    # scikit-learn's support_ counts only the samples left after dropping zero weights; ours indexes X
    kept = np.flatnonzero(w > 0)
    assert_array_equal(ours.support_, kept[ref.support_])
    assert_array_equal(X[ours.support_], ref.support_vectors_)
    ref.support_ = kept[ref.support_].astype(np.int32)
    assert_same_model(ours, ref, X)


def test_string_labels_and_binary_sign_convention(datasets):
    X, y = datasets["breast_cancer"]
    labels = np.array(["malignant", "benign"])[y]
    ref = SkNuSVC(nu=0.3).fit(X, labels)
    ours = NuSVC(nu=0.3).fit(X, labels)
    assert_same_model(ours, ref, X)
    dec = ours.decision_function(X)
    assert dec.shape == (len(X),)
    assert_array_equal(ours.predict(X), np.where(dec > 0, ours.classes_[1], ours.classes_[0]))


@pytest.mark.parametrize("max_iter", [40, 1020])
@pytest.mark.parametrize("shrinking", [True, False])
def test_max_iter_matches_sklearn(datasets, max_iter, shrinking):
    # 1020 > 1000: the cap is reached after shrinking has started (this problem converges in 1044 iterations)
    X, y = datasets["emb_binary"]
    with pytest.warns(ConvergenceWarning):
        ref = SkNuSVC(nu=0.5, max_iter=max_iter, shrinking=shrinking).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        ours = NuSVC(nu=0.5, max_iter=max_iter, shrinking=shrinking).fit(X, y)
    assert ours.fit_status_ == 1
    assert_array_equal(ours.n_iter_, [max_iter])
    assert_same_model(ours, ref, X)


def test_row_cache_path_matches_sklearn(datasets):
    # a budget far below the Gram matrix (900^2 floats): kernel rows through the LRU cache, in BLAS blocks
    X, y = datasets["emb_4class"]
    ref = SkNuSVC(nu=0.2).fit(X, y)
    for cache_size in (0.5, 0.02):
        ours = NuSVC(nu=0.2, cache_size=cache_size).fit(X, y)
        assert ours.kernel_mode_ == "cache"
        assert_same_model(ours, ref, X)


def test_threads_give_the_same_model(datasets):
    X, y = datasets["digits"]
    ref = SkNuSVC(nu=0.1).fit(X, y)
    ours = NuSVC(nu=0.1, n_jobs=2).fit(X, y)
    assert_same_model(ours, ref, X)


def test_break_ties_matches_sklearn(datasets):
    X, y = datasets["emb_4class"]
    ref = SkNuSVC(nu=0.6, break_ties=True).fit(X, y)
    ours = NuSVC(nu=0.6, break_ties=True).fit(X, y)
    assert_array_equal(ours.predict(X), ref.predict(X))
    assert_array_equal(ours.predict(X), ours.classes_[np.argmax(ours.decision_function(X), axis=1)])


def test_no_warning_on_a_normal_fit(datasets):
    X, y = datasets["iris"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NuSVC(nu=0.2).fit(X, y)
