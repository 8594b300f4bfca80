"""Probabilities follow libsvm's method: Platt sigmoids on 5-fold cross-validated decision values, coupled
pairwise (Wu, Lin & Weng, method 2).

libsvm draws the folds at random, and scikit-learn's generator cannot be reproduced, so the sigmoids cannot be
compared value by value.  Instead: (1) given scikit-learn's sigmoids, our coupling reproduces its probabilities
to 1e-9; (2) over 20 fold seeds each, our sigmoid parameters have the same mean as scikit-learn's (a two-sample
z-test, |z| < 4; seed-to-seed spread is the only source of difference); (3) per sample, our probabilities are
within 0.02 on average of scikit-learn's, about five times scikit-learn's own seed-to-seed difference (0.001 to
0.004 on these data).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.svm import NuSVC as SkNuSVC
from tolerances import SVM_SAME_MODEL, assert_close

from sertk.svm import NuSVC, _nusvm


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer"])
def test_coupling_reproduces_libsvm_given_its_sigmoids(datasets, name):
    X, y = datasets[name]
    ref = SkNuSVC(nu=0.3, probability=True, random_state=0).fit(X, y)
    ours = NuSVC(nu=0.3, probability=True, random_state=0).fit(X, y)
    dec = ours._ovo_decision(X)
    proba = _nusvm.proba(dec, len(ours.classes_), np.asarray(ref.probA_), np.asarray(ref.probB_))
    assert_close(proba, ref.predict_proba(X), SVM_SAME_MODEL, what="coupled probabilities")


@pytest.mark.parametrize("name", ["iris", "breast_cancer"])
def test_sigmoids_have_sklearns_distribution_over_fold_seeds(datasets, name):
    X, y = datasets[name]
    seeds = range(20)
    ref = np.array([np.r_[m.probA_, m.probB_]
                    for m in (SkNuSVC(nu=0.3, probability=True, random_state=s).fit(X, y) for s in seeds)])
    ours = np.array([np.r_[m.probA_, m.probB_]
                     for m in (NuSVC(nu=0.3, probability=True, random_state=s).fit(X, y) for s in seeds)])
    se = np.sqrt(ref.var(axis=0, ddof=1) / len(seeds) + ours.var(axis=0, ddof=1) / len(seeds))
    z = (ours.mean(axis=0) - ref.mean(axis=0)) / se
    assert np.all(np.abs(z) < 4), z
    assert np.all(ours.std(axis=0) > 0)  # the folds do vary with the seed


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "emb_4class"])
def test_probabilities_close_to_sklearn(datasets, name):
    X, y = datasets[name]
    ref = SkNuSVC(nu=0.3, probability=True, random_state=0).fit(X, y).predict_proba(X)
    ours = NuSVC(nu=0.3, probability=True, random_state=0).fit(X, y).predict_proba(X)
    assert np.mean(np.abs(ours - ref)) < 0.02
    assert np.max(np.abs(ours - ref)) < 0.2


def test_reproducible_with_random_state(datasets):
    X, y = datasets["wine"]
    a = NuSVC(nu=0.3, probability=True, random_state=3).fit(X, y)
    b = NuSVC(nu=0.3, probability=True, random_state=3).fit(X, y)
    c = NuSVC(nu=0.3, probability=True, random_state=4).fit(X, y)
    assert_array_equal(a.probA_, b.probA_)
    assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.probA_, c.probA_)
    # the model itself does not depend on the folds
    assert_array_equal(a.dual_coef_, c.dual_coef_)
    assert_array_equal(a.predict(X), NuSVC(nu=0.3).fit(X, y).predict(X))


def test_probability_shape_and_normalisation(datasets):
    X, y = datasets["emb_4class"]
    m = NuSVC(nu=0.3, probability=True, random_state=0).fit(X, y)
    p = m.predict_proba(X[:50])
    assert p.shape == (50, 4)
    assert np.all((p >= 0) & (p <= 1))
    assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert_allclose(m.predict_log_proba(X[:50]), np.log(p))


def test_predict_proba_needs_probability(datasets):
    X, y = datasets["iris"]
    m = NuSVC(nu=0.3).fit(X, y)
    assert not hasattr(m, "predict_proba")
    with pytest.raises(AttributeError, match="predict_proba"):
        m.predict_proba(X)
