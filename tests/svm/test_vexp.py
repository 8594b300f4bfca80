"""The vectorised exp of the Gram, pair and predict paths (``csrc/sertk_vexp.c``) against glibc's, which libsvm
uses: float32 kernel values equal but for values within a float64 ulp of a float32 rounding boundary, float64
values within an ulp or two, arguments outside its range handed to glibc itself.

The vector exp is one fixed sequence of IEEE operations (explicit FMAs, no contraction elsewhere), so its own
result is the same on every CPU with AVX2 and FMA; glibc's may differ by an ulp between its FMA and non-FMA
variants, hence a bound of 2 ulps in float64 rather than 1 (measured here: at most 1, 94 % equal).
"""

from __future__ import annotations

import numpy as np
import pytest

from sertk.svm import _nusvm

needs_vexp = pytest.mark.skipif(not _nusvm._vexp_enabled(), reason="no AVX2 + FMA: both paths are glibc's exp")


def _args(n: int, lo: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    # exp(-gamma (sqi + sq - 2 dot)) with gamma = 1, sqi = 0, sq = 0: the argument is 2 dot, spread over [lo, 0]
    rng = np.random.default_rng(seed)
    dot = rng.uniform(lo / 2, 0, n)
    dot[:8] = [0.0, -1e-300, -1e-17, -0.25, lo / 2, -0.3465, -0.3466, -0.5]  # 0, tiny, reduction boundaries
    return dot, np.zeros(n)


@needs_vexp
def test_float32_kernel_values_are_glibcs_but_at_rounding_boundaries():
    dot, sq = _args(4_000_000, -110.0)
    ours = _nusvm._rbf_values(dot, sq, 0.0, 1.0)
    ref = _nusvm._rbf_values(dot, sq, 0.0, 1.0, reference=True)
    differ = np.flatnonzero(ours != ref)
    # a difference needs exp(x) within ~1 float64 ulp of a float32 rounding boundary: ~4e-9 of the values
    assert differ.size <= 4, differ.size
    steps = np.abs(ours[differ].view(np.int32).astype(np.int64) - ref[differ].view(np.int32).astype(np.int64))
    assert np.all(steps == 1)  # never more than the neighbouring float


@needs_vexp
def test_float64_values_are_within_two_ulps_of_glibcs():
    dot, sq = _args(1_000_000, -1400.0, seed=1)  # arguments to -1400: below -700 glibc's exp takes over
    ours = _nusvm._rbf_values(dot, sq, 0.0, 1.0, f64=True)
    ref = _nusvm._rbf_values(dot, sq, 0.0, 1.0, reference=True, f64=True)
    ulps = np.abs(ours.view(np.int64) - ref.view(np.int64))
    assert ulps.max() <= 2
    outside = 2 * dot < -700
    assert outside.any() and np.array_equal(ours[outside], ref[outside])  # glibc's own values there


def test_arguments_outside_the_range_and_short_tails_take_glibcs_exp():
    # arguments 2·dot: above 1 (an exp(+2) could only come from bad input; a rounding error of |x|^2 + |z|^2 -
    # 2 <x,z> for x = z gives a tiny positive one), below -700, and lengths that leave a tail after the 12-value
    # steps: equal to glibc's, bit for bit (also where no AVX2 path exists)
    dot = np.array([1.0, 0.5, -400.0, 0.25, 3.0, -0.1, -0.2, -0.3, -0.4, -0.5, -0.6, -0.7, -0.8])
    sq = np.zeros(dot.size)
    for n in (1, 5, 12, 13):  # 12 and 13: a step with arguments outside the range (1.0, -400) goes to glibc whole
        for f64 in (False, True):
            ours = _nusvm._rbf_values(dot[:n], sq[:n], 0.0, 1.0, f64=f64)
            ref = _nusvm._rbf_values(dot[:n], sq[:n], 0.0, 1.0, reference=True, f64=f64)
            assert np.array_equal(ours, ref)
