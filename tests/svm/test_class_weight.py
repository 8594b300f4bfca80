"""class_weight acts on the solution (unlike scikit-learn's NuSVC, whose libsvm solver ignores it).

Intended behaviour: the class weight multiplies the per-sample upper bounds of that class, exactly like a sample
weight, so ``NuSVC(class_weight=w).fit(X, y)`` is ``sklearn.svm.NuSVC().fit(X, y, sample_weight=w[y])``.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.svm import NuSVC as SkNuSVC
from sklearn.utils.class_weight import compute_class_weight
from tolerances import SVM_SAME_MODEL, assert_close

from sertk.svm import NuSVC


def _assert_same(ours, ref, X):
    assert_array_equal(ours.support_, ref.support_)
    assert_array_equal(ours.n_iter_, ref.n_iter_)
    assert_close(ours.dual_coef_, ref.dual_coef_, SVM_SAME_MODEL, what="dual_coef_, class weights")
    assert_close(ours.intercept_, ref.intercept_, SVM_SAME_MODEL, what="intercept_, class weights")
    assert_array_equal(ours.predict(X), ref.predict(X))


def test_class_weight_equals_sample_weight_in_libsvm(datasets):
    X, y = datasets["emb_4class"]
    cw = {0: 1.0, 1: 0.6, 2: 1.7, 3: 2.5}
    ours = NuSVC(nu=0.2, class_weight=cw).fit(X, y)
    ref = SkNuSVC(nu=0.2).fit(X, y, sample_weight=np.array([cw[c] for c in y]))
    _assert_same(ours, ref, X)
    assert_array_equal(ours.class_weight_, [1.0, 0.6, 1.7, 2.5])


def test_balanced_class_weight_equals_balanced_sample_weight(datasets):
    X, y = datasets["wine"]
    ours = NuSVC(nu=0.3, class_weight="balanced").fit(X, y)
    w = compute_class_weight("balanced", classes=np.unique(y), y=y)
    ref = SkNuSVC(nu=0.3).fit(X, y, sample_weight=w[y])
    _assert_same(ours, ref, X)


def test_class_weight_and_sample_weight_multiply(datasets):
    X, y = datasets["breast_cancer"]
    sw = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    ours = NuSVC(nu=0.3, class_weight={0: 2.0}).fit(X, y, sample_weight=sw)
    ref = SkNuSVC(nu=0.3).fit(X, y, sample_weight=sw * np.where(y == 0, 2.0, 1.0))
    _assert_same(ours, ref, X)


def test_class_weight_changes_the_model_where_sklearn_ignores_it(datasets):
    X, y = datasets["breast_cancer"]
    plain = NuSVC(nu=0.3).fit(X, y)
    weighted = NuSVC(nu=0.3, class_weight={1: 3.0}).fit(X, y)
    assert not np.array_equal(plain.support_, weighted.support_) or not np.allclose(plain.dual_coef_,
                                                                                   weighted.dual_coef_)
    # scikit-learn's NuSVC: the same model with and without class_weight (scikit-learn issue #30332)
    sk_plain = SkNuSVC(nu=0.3).fit(X, y)
    sk_weighted = SkNuSVC(nu=0.3, class_weight={1: 3.0}).fit(X, y)
    assert_array_equal(sk_plain.dual_coef_, sk_weighted.dual_coef_)


def test_upweighting_a_class_raises_its_recall():
    # imbalanced, overlapping 2-D classes (600 vs 150); held-out recall of the minority class grows with its weight
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (600, 2)), rng.normal(1.5, 1, (150, 2))]
    y = np.r_[np.zeros(600, int), np.ones(150, int)]
    X_test = np.r_[rng.normal(0, 1, (3000, 2)), rng.normal(1.5, 1, (3000, 2))]
    y_test = np.r_[np.zeros(3000, int), np.ones(3000, int)]
    recall1, recall0 = [], []
    for w in (1.0, 2.0, 3.0):
        pred = NuSVC(nu=0.3, class_weight={1: w}).fit(X, y).predict(X_test)
        recall1.append(np.mean(pred[y_test == 1] == 1))
        recall0.append(np.mean(pred[y_test == 0] == 0))
    assert recall1[0] < recall1[1] < recall1[2]
    assert recall0[0] > recall0[1] > recall0[2]
    assert recall1[2] - recall1[0] > 0.1


def test_class_weight_is_part_of_feasibility(datasets):
    X, y = datasets["breast_cancer"]
    NuSVC(nu=0.6).fit(X, y)  # 212 vs 357 samples: feasible up to 0.745
    with pytest.raises(ValueError, match=r"infeasible.*largest feasible nu for this training set is 0\.4"):
        NuSVC(nu=0.6, class_weight={0: 0.5}).fit(X, y)  # 106 vs 357 weighted: at most 0.459


def test_unknown_class_in_class_weight(datasets):
    X, y = datasets["iris"]
    with pytest.raises(ValueError, match="not in y"):
        NuSVC(class_weight={0: 1.0, 7: 2.0}).fit(X, y)
