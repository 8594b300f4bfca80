"""One ν-SVM fit at corpus scale, for the scaling rows of RESULTS-nusvm.md.

    python benchmarks/scale_nusvm.py IMPL N JOBS

``IMPL`` is ``sklearn`` or any label for sertk (the build that is installed); the data are
``bench_nusvm.make_embeddings(N, seed=1)``, ν = 0.1, RBF ``gamma="scale"``, ``cache_size=1024`` for both, BLAS held
to one thread. Prints one JSON line — fit time, kernel mode, ``n_iter_``, a hash of ``support_`` and the summed
``|dual_coef_|`` — so that runs of different builds, in separate processes, show that they fit the same model.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_nusvm import make_embeddings  # noqa: E402


def main(impl: str, n: int, jobs: int) -> dict:
    X, y = make_embeddings(n, seed=1)
    if impl == "sklearn":
        from sklearn.svm import NuSVC

        model = NuSVC(nu=0.1, cache_size=1024)
    else:
        from sertk.svm import NuSVC

        model = NuSVC(nu=0.1, cache_size=1024, n_jobs=jobs)
    with threadpool_limits(limits=1):
        start = time.perf_counter()
        model.fit(X, y)
        elapsed = time.perf_counter() - start
    return {"impl": impl, "n": n, "jobs": jobs, "fit_s": round(elapsed, 3),
            "mode": getattr(model, "kernel_mode_", "libsvm"), "n_iter": [int(v) for v in model.n_iter_],
            "n_sv": int(model.support_.size),
            "support_sha": hashlib.sha256(np.asarray(model.support_, np.int64).tobytes()).hexdigest()[:16],
            "dual_coef_sum": float(np.abs(model.dual_coef_).sum())}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))), flush=True)
