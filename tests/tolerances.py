"""How close is close enough: every floating-point comparison the suite makes against a golden file or a
reference implementation, as a named tolerance with the reason the arithmetic can keep it on any x86-64 CPU.

The suite runs on whatever CPU the submitter has: Intel Xeon with AVX-512 and AMX, AMD EPYC with or without
AVX-512. MKL (torch's FFT and some matrix products), oneDNN, OpenBLAS and NumPy pick other kernels per
instruction set, so float32 results that were made on one family differ in their last bits on another. A
tolerance here is the size of that rounding, measured on both families, with headroom; it stays far below the
smallest real mistake each test must catch. Bit-equality is kept only where the result is deterministic by
construction (integer data, index logic, the same computation twice in one process) and says so where it is used.

To see the differences on your own machine (for instance to re-justify a tolerance on new hardware)::

    python -m pytest -m golden --tolerances -q

which runs the golden and reference comparisons and prints, per check, the largest difference seen next to what
is allowed (``tests/conftest.py`` adds the option; :func:`assert_close` records every comparison).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """``|actual - desired| <= atol + rtol·|desired|`` everywhere and, when ``bulk`` is set, the ``quantile``-th
    quantile of ``|actual - desired|`` at most ``bulk`` (rounding is rare and small; a real change moves many
    values)."""

    name: str
    atol: float
    why: str
    rtol: float = 0.0
    bulk: float | None = None
    quantile: float = 0.999


# -- ImageBind --------------------------------------------------------------------------------------------------
IMAGEBIND_FEATURES = Tolerance(
    "imagebind features vs upstream", atol=2e-4, bulk=2e-5,
    why="normalised log-mel (units of 9.138 in log energy) from a float32 FFT and float32 means: MKL and torch "
        "vectorise them per instruction set, and a quiet mel bin amplifies the FFT's absolute rounding by its "
        "distance below the frame's energy. Measured: bit-equal on the Intel Xeon that made the goldens; max "
        "3.8e-5, 99.9th percentile 5.2e-6 on AMD EPYC (AVX2 and AVX-512 alike). 2e-4 is 0.18 % of energy, "
        "1500x below upstream's in-place-mean quirk (0.3-0.56).")
IMAGEBIND_EMBEDDING = Tolerance(
    "imagebind embedding vs upstream", atol=1e-5,
    why="fp32 encoder, 12 blocks over norm-20 outputs: oneDNN/MKL GEMM blocking differs per CPU and per batch "
        "shape, and input features differ as IMAGEBIND_FEATURES says. Measured max 1.3e-6 (Intel), 1.2e-6 (AMD) "
        "against upstream's code on the same CPU; 3.2e-6 on AMD EPYC (AVX2) against goldens made on Intel.")
IMAGEBIND_BATCHING = Tolerance(
    "imagebind embedding, other batch composition", atol=5e-6,
    why="the same clips in other batches: oneDNN picks blocking by batch size, so float32 sums reorder; "
        "measured ~1e-6.")

# -- sertk.audio ------------------------------------------------------------------------------------------------
RESAMPLE_DEFINITION = Tolerance(
    "resampler vs float64 definition", atol=3e-5,
    why="torchaudio's kernel is float32: tap times reach 0.99·min(o, n) zero crossings before the clamp, so "
        "each tap is off by ~eps·c ≈ 4e-5 of a crossing; a wrong cut-off, window or phase is off by > 1e-2.")
FBANK_KALDI_NATIVE = Tolerance(
    "fbank vs kaldi-native-fbank", atol=2e-3, bulk=1e-4, quantile=0.99,
    why="two float32 implementations (log units): a bin 1e5 below its frame's loudest carries the FFT's absolute "
        "rounding amplified by that ratio. Measured max 7e-4 / 6.1e-4 and 99th percentile ~5e-6 / 4.3e-5 "
        "(Intel AVX-512 / AMD AVX2); a wrong window, mel scale or pre-emphasis is off by > 1e-2.")
FLOAT32_RESHAPED = Tolerance(
    "float32, same inputs, other batch shape", atol=1e-5,
    why="batched against one-by-one: the same float32 products, summed in another order when the library "
        "blocks by batch size: a few ulps of values up to ~16 (log-mel) or 1 (waveforms).")

# -- ν-SVM ------------------------------------------------------------------------------------------------------
SVM_PINNED = Tolerance(
    "nu-svm vs pinned libsvm values", atol=1e-12, rtol=1e-10,
    why="float64 SMO on float32-rounded kernel values: the same instructions on every x86-64 (built without "
        "-march=native); SERTK_NATIVE=1 (FMA contraction) or another BLAS kernel moves float64 results by "
        "~1e-15 relative; a changed SMO path moves them by > 1e-6.")
SVM_SAME_MODEL = Tolerance(
    "nu-svm vs libsvm, same process", atol=1e-9,
    why="the product promise (issue 10): both solvers walk the same iterations on the same float32 kernel "
        "values; only float64 sums in BLAS order differ (~1e-14).")
FLOAT64_REORDERED = Tolerance(
    "float64, summed in another order", atol=1e-12,
    why="float64 sums of O(10) terms of O(1): ~1e-15 per reordering.")

# -- demo corpus ------------------------------------------------------------------------------------------------
DEMO_SAMPLES = Tolerance(
    "demo corpus regenerated vs packaged (int16)", atol=1, bulk=0, quantile=0.999,
    why="espeak-ng's int16 output, resampled in float64 (scipy's polyphase filter) and rounded to int16: a "
        "last-bit float64 difference can flip a .5 rounding, so one LSB on a rare sample; 99.9 % are equal.")

ALL = [v for v in dict(globals()).values() if isinstance(v, Tolerance)]

#: every comparison made in this process: (test id, check, tolerance, max |diff|, bulk quantile, n values)
RECORDED: list[tuple[str, str, Tolerance, float, float, int]] = []


def assert_close(actual, desired, tol: Tolerance, what: str = "", err_msg: str = "") -> None:
    """``np.testing.assert_allclose`` under ``tol``, plus its bulk bound; the largest difference is recorded
    for ``pytest --tolerances``."""
    actual = np.asarray(actual)
    desired = np.broadcast_to(np.asarray(desired), actual.shape)
    diff = np.abs(actual.astype(np.float64) - desired.astype(np.float64))
    worst = float(diff.max()) if diff.size else 0.0
    bulk = float(np.quantile(diff, tol.quantile)) if diff.size else 0.0
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
    RECORDED.append((test, what or err_msg, tol, worst, bulk, int(diff.size)))
    np.testing.assert_allclose(actual, desired, atol=tol.atol, rtol=tol.rtol,
                               err_msg=f"{err_msg} [{tol.name}: {tol.why}]")
    if tol.bulk is not None:
        assert bulk <= tol.bulk, (f"{err_msg}: {tol.quantile:.1%} quantile of |diff| is {bulk:.3g} > {tol.bulk:.3g} "
                                  f"[{tol.name}: {tol.why}]")


def report_lines() -> list[str]:
    """The table ``pytest --tolerances`` prints: the largest difference per check, and its headroom."""
    if not RECORDED:
        return ["no tolerance checks ran (select tests with -m golden)"]
    # one row per tolerance and test function: the worst over its parameters and checks, which it names
    worst: dict[tuple[str, str], tuple[float, float, str, Tolerance, int]] = {}
    for test, what, tol, d, q, n in RECORDED:
        function = test.split("::")[-1].split("[")[0]
        case = test.split("::")[-1][len(function):] + (f" {what}" if what else "")
        old = worst.get((tol.name, function))
        count = (old[4] if old else 0) + 1
        if old is None or d > old[0]:
            worst[(tol.name, function)] = (d, q, case.strip(), tol, count)
        else:
            worst[(tol.name, function)] = old[:4] + (count,)
    lines = [f"{'tolerance':42s} {'test (worst case, checks)':64s} {'max |diff|':>10s} {'atol':>8s} {'headroom':>8s}"
             "  bulk (quantile)"]
    for (name, function), (d, q, case, tol, count) in sorted(worst.items()):
        check = f"{function} ({case}; {count})" if case else f"{function} ({count})"
        room = "exact" if d == 0 else f"{tol.atol / d:.1f}x"
        bulk = f"  {q:.3g} <= {tol.bulk:.3g} (q{tol.quantile:g})" if tol.bulk is not None else ""
        lines.append(f"{name:42s} {check[:64]:64s} {d:10.3g} {tol.atol:8.3g} {room:>8s}{bulk}")
    lines.append("why each tolerance holds: tests/tolerances.py")
    return lines
