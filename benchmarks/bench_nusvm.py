"""sertk's NuSVC against scikit-learn's NuSVC (libsvm), side by side, one thread each.

Data: embedding-like vectors (L2-normalised, low rank plus noise, 4 unbalanced overlapping classes, about 77 % of
the training points end up support vectors), ν = 0.1, RBF kernel with gamma="scale".

Groups
  nusvm-fit-<n>x1024        fit on n training vectors (n = 4425, the paper's training split, with --full)
  nusvm-predict-<m>x1024    predict m held-out vectors with the fitted models
  nusvm-scaling-fit-n<n>    fit time over n (1k ... 20k with --full); extra_info["peak_mb"] is the peak resident
                            memory added by one fit, measured in a fresh process (Linux /proc, data excluded)

Run (record the output in benchmarks/RESULTS-nusvm.md):
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python -m pytest benchmarks/bench_nusvm.py --benchmark-only \
      --benchmark-columns=min,median,max,rounds [--full]

Default sizes fit a 2-core machine (about a minute); --full takes much longer (scikit-learn at n = 20000 alone runs
for minutes).  ``test_same_model`` checks that both libraries produced the same model on the benchmark data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from sertk.svm import NuSVC

SkNuSVC = pytest.importorskip("sklearn.svm").NuSVC

NU = 0.1
DIM = 1024
CACHE_MB = 1024  # the same kernel-memory budget for both libraries


def make_embeddings(n: int, d: int = DIM, k: int = 4, sep: float = 0.24, seed: int = 0,
                    rank: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=[0.25, 0.35, 0.2, 0.2])
    basis = rng.standard_normal((rank, d)) / np.sqrt(rank)
    X = (rng.standard_normal((k, rank))[y] * sep + rng.standard_normal((n, rank))) @ basis
    X += 0.5 * np.sqrt(rank / d) * rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, y


IMPLS: dict[str, Callable[[], object]] = {
    "sertk": lambda: NuSVC(nu=NU, cache_size=CACHE_MB),
    "sklearn": lambda: SkNuSVC(nu=NU, cache_size=CACHE_MB),
}


@pytest.fixture(scope="session")
def full(request) -> bool:
    return bool(request.config.getoption("--full"))


@pytest.fixture(scope="session")
def sizes(full):
    if full:
        return {"train": 4425, "test": 1106}
    return {"train": 2000, "test": 500}


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def data(sizes):
    X, y = make_embeddings(sizes["train"] + sizes["test"])
    n = sizes["train"]
    return X[:n], y[:n], X[n:], y[n:]


@pytest.fixture(scope="session")
def fitted(data):
    X, y, _, _ = data
    with threadpool_limits(limits=1):
        return {name: make().fit(X, y) for name, make in IMPLS.items()}


def _rounds(full: bool, impl: str) -> int:
    return (3 if full else 1) if impl == "sklearn" else 5


@pytest.mark.parametrize("impl", list(IMPLS))
def test_fit(benchmark, impl, data, full):
    X, y, _, _ = data
    benchmark.group = f"nusvm-fit-{len(X)}x{X.shape[1]}"
    model = benchmark.pedantic(lambda: IMPLS[impl]().fit(X, y), rounds=_rounds(full, impl), iterations=1)
    benchmark.extra_info.update(n_sv=int(model.support_.size), n_iter=[int(i) for i in model.n_iter_])


@pytest.mark.parametrize("impl", list(IMPLS))
def test_predict(benchmark, impl, data, fitted, full):
    _, _, X_test, y_test = data
    benchmark.group = f"nusvm-predict-{len(X_test)}x{X_test.shape[1]}"
    pred = benchmark.pedantic(lambda: fitted[impl].predict(X_test), rounds=_rounds(full, impl) * 2, iterations=1)
    benchmark.extra_info["accuracy"] = float(np.mean(pred == y_test))


def test_same_model(data, fitted):
    """The benchmark compares equal models: same support set and iterations, coefficients within 1e-9."""
    _, _, X_test, _ = data
    ours, ref = fitted["sertk"], fitted["sklearn"]
    np.testing.assert_array_equal(ours.support_, ref.support_)
    np.testing.assert_array_equal(ours.n_iter_, ref.n_iter_)
    np.testing.assert_allclose(ours.dual_coef_, ref.dual_coef_, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours.predict(X_test), ref.predict(X_test))


def status_bytes(key: str) -> int:
    """A size line of /proc/self/status (``VmRSS:``, ``VmHWM:``) in bytes (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> int:
    """Give freed heap back and reset the peak (VmHWM) to the current resident size; return that size."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)  # so that a fit's allocations show up as new pages
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return status_bytes("VmRSS:")


_MEMORY_SCRIPT = r"""
import json, sys
sys.path[:0] = [sys.argv[3], sys.argv[4]]
from threadpoolctl import threadpool_limits
import bench_nusvm as b

X, y = b.make_embeddings(int(sys.argv[2]), seed=1)
model = b.SCALING_IMPLS[sys.argv[1]]()
base = b.reset_peak()
with threadpool_limits(limits=1):
    model.fit(X, y)
print(json.dumps({"peak_mb": (b.status_bytes("VmHWM:") - base) / 2**20}))
"""


def peak_fit_memory_mb(impl: str, n: int) -> float:
    """Peak resident memory added by one fit, measured in a fresh process (the data excluded)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, impl, str(n), str(here), str(here.parent)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


SCALING_IMPLS: dict[str, Callable[[], object]] = {
    **IMPLS,
    # the Gram path at n = 20000 needs 1.6 GB of kernel memory, more than the common 1 GiB budget
    "sertk-cache4096": lambda: NuSVC(nu=NU, cache_size=4096),
}


def _scaling_cases() -> list[tuple[str, int, bool]]:
    cases = []
    for n in (1000, 2000, 4425, 10000, 20000):
        for impl in IMPLS:
            needs_full = n > (4425 if impl == "sertk" else 2000)
            cases.append((impl, n, needs_full))
    cases.append(("sertk-cache4096", 20000, True))
    return cases


@pytest.mark.parametrize("impl, n, needs_full", _scaling_cases(), ids=lambda v: str(v))
def test_scaling_fit(benchmark, impl, n, needs_full, full):
    if needs_full and not full:
        pytest.skip("full-size case: run with --full")
    X, y = make_embeddings(n, seed=1)
    benchmark.group = f"nusvm-scaling-fit-n{n}"
    model = benchmark.pedantic(lambda: SCALING_IMPLS[impl]().fit(X, y), rounds=1, iterations=1)
    benchmark.extra_info.update(peak_mb=round(peak_fit_memory_mb(impl, n), 1), n_sv=int(model.support_.size),
                                kernel_mode=getattr(model, "kernel_mode_", "libsvm cache"))
