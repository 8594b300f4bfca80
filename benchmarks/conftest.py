"""Benchmark options.  ``--full`` (or ``SERTK_BENCH_FULL=1``) runs the full-size benchmarks; the default is sized
for a 2-core machine.  ``--full`` also sets ``SERTK_BENCH_FULL=1`` for benchmarks that read the variable."""

from __future__ import annotations

import os


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        default=os.environ.get("SERTK_BENCH_FULL", "0") == "1",
        help="full-size benchmarks (same as SERTK_BENCH_FULL=1); the default is sized for a 2-core machine",
    )


def pytest_configure(config):
    if config.getoption("--full"):
        os.environ["SERTK_BENCH_FULL"] = "1"


def pytest_report_header(config):
    """The machine every number below came from (CPU, instruction sets, BLAS kernel, torch's CPU path)."""
    from sertk.machine import describe

    return [f"sertk machine: {describe()}"]


def pytest_benchmark_update_machine_info(config, machine_info):
    """--benchmark-json files carry sertk's machine record next to pytest-benchmark's own: CPU model and vendor,
    AMX/AVX512-BF16/AVX-512/AVX2, the BLAS libraries and the kernel each chose (threadpoolctl), any
    OPENBLAS_CORETYPE pin, torch's CPU capability. Benchmarks that compare with a reference run with the pin
    unset in their own command (see the RESULTS files), so that both sides use the CPU's best kernels."""
    import numpy  # noqa: F401  (loads OpenBLAS, so that threadpoolctl sees it)
    import scipy.linalg  # noqa: F401  (SciPy's own OpenBLAS, which sertk's ν-SVM calls)

    from sertk.machine import machine_info as sertk_machine_info

    machine_info["sertk"] = sertk_machine_info(torch=True)
