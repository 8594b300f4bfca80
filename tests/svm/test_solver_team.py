"""Threads inside one solver (csrc/sertk_team.c): libsvm's model, bit for bit the one-thread model.

When fewer pairs run at once than there are threads (a two-class problem; pair mode with one pair in the budget),
each solver splits its loops over the variables (gradient update, working-set choice, G_bar, gradient
reconstruction) into parts.  Split loops write each element on their own or are max/min searches combined in
position order with libsvm's tie rule, so the model must not change by a single bit.  Loops split only from 2048
variables on, so these problems have sub-problems of 2600 or more samples (low dimension keeps libsvm quick).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_embeddings
from sklearn.svm import NuSVC as SkNuSVC
from test_parity import assert_same_model
from threadpoolctl import threadpool_limits

from sertk.svm import NuSVC

BIG = 2600  # above the solver's split threshold (SERTK_TEAM_MIN = 2048 variables)


def _one_thread(X: np.ndarray, y: np.ndarray, **params) -> NuSVC:
    """The one-thread model, with BLAS held to one thread as a fit with n_jobs > 1 holds it.

    Then both fits make the same single-threaded BLAS calls on the same shapes and differ only in the solver's
    split loops, so bit for bit is exact by construction on any CPU; without the limit a multithreaded BLAS could
    round a product differently from the single-threaded one.
    """
    with threadpool_limits(limits=1):
        return NuSVC(n_jobs=1, **params).fit(X, y)


def _bitwise_equal(a: NuSVC, b: NuSVC) -> None:
    for name in ("support_", "n_iter_", "dual_coef_", "intercept_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.fixture(scope="module")
def two_class():
    return make_embeddings(n=BIG, d=24, k=2, sep=0.2, seed=5)


@pytest.fixture(scope="module")
def four_class():
    return make_embeddings(n=int(BIG / 0.6) + 1, d=24, k=4, sep=0.25, seed=6)


@pytest.fixture(scope="module")
def four_class_ref(four_class):
    return SkNuSVC(nu=0.1).fit(*four_class)


@pytest.mark.golden
@pytest.mark.parametrize("shrinking", [True, False])
def test_two_class_gram_with_a_team_is_libsvms_model(two_class, shrinking):
    X, y = two_class
    ref = SkNuSVC(nu=0.1, shrinking=shrinking).fit(X, y)
    one = _one_thread(X, y, nu=0.1, shrinking=shrinking)
    team = NuSVC(nu=0.1, shrinking=shrinking, n_jobs=2).fit(X, y)
    assert team.kernel_mode_ == "gram"
    assert_same_model(team, ref, X[:300])
    _bitwise_equal(team, one)


@pytest.mark.golden
@pytest.mark.parametrize("class_blocks", [False, True])
def test_pair_mode_one_pair_at_a_time_with_a_team_is_libsvms_model(four_class, four_class_ref, class_blocks):
    X, y = four_class
    counts = np.bincount(y)
    l_max = int(np.sort(counts)[-1] + np.sort(counts)[-2])
    assert l_max >= 2048
    pair_mb, blocks_mb = 4 * l_max**2 / 2**20, 4 * float(np.sum(counts.astype(float) ** 2)) / 2**20
    # one pair's matrix fits, two do not; with class_blocks the classes' own matrices fit beside it
    cache_mb = (blocks_mb if class_blocks else 0) + 1.5 * pair_mb
    assert (blocks_mb + pair_mb <= cache_mb) == class_blocks
    ref = four_class_ref
    one = _one_thread(X, y, nu=0.1, cache_size=cache_mb)
    team = NuSVC(nu=0.1, cache_size=cache_mb, n_jobs=2).fit(X, y)
    assert team.kernel_mode_ == "pair"
    assert_same_model(team, ref, X[:300])
    _bitwise_equal(team, one)


def test_more_threads_than_parts_need_is_the_same_model(two_class):
    # 7 threads for one pair: a team of 7 (of as many as the process may use: spinning parts beyond the CPUs
    # would only wait for each other), each part a few hundred variables; still the one-thread model
    X, y = two_class
    _bitwise_equal(NuSVC(nu=0.3, n_jobs=7).fit(X, y), _one_thread(X, y, nu=0.3))
