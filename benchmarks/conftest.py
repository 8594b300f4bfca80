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
