"""One ν-SVM fit at corpus scale, for the scaling rows of RESULTS-nusvm.md.

    python benchmarks/scale_nusvm.py IMPL N JOBS [--cache MB] [--save NPZ] [--ref NPZ] [--predict M] [--twin]
        [--predict-reps R] [--warm] [--float32] [--log S] [--checkpoint PATH]

``IMPL`` is ``sklearn`` or any label for sertk (the build that is installed); the data are
``bench_nusvm.make_embeddings(N, seed=1)``, ν = 0.1, RBF ``gamma="scale"``, ``cache_size`` 1024 MiB unless
``--cache`` says otherwise (the same for both libraries), BLAS held to one thread. Prints one JSON line — fit time,
peak resident memory added by the fit, kernel mode, ``n_iter_``, a hash of ``support_`` and the summed
``|dual_coef_|`` — so that runs of different builds, in separate processes, show that they fit the same model.

``--save`` writes the fitted model's arrays; ``--ref`` compares this fit with such a file (support set and
``n_iter_`` equal, largest relative difference of ``dual_coef_`` and ``intercept_``), which is how a scikit-learn fit
that takes most of an hour is compared with ours without fitting it twice. ``--predict M`` also times ``predict`` on
M other vectors (``make_embeddings(M, seed=7)``: the same generator, the training set unchanged, so a fit row and
its predict row are one run; prediction cost does not depend on the values), on one thread whatever JOBS the fit
used. With ``--twin``, scikit-learn's
``predict`` is timed too, on a scikit-learn ``NuSVC`` given our fitted model's arrays (support vectors,
coefficients, intercepts: the same model, as the fit rows show), so that predict is compared at training sizes
where scikit-learn's own fit would take hours; the two predictions must be equal. Ours is also timed on the
float64 path alone (``_nusvm.predict(screen=False)``), with how many samples the float32 screen left to it.
``--predict-reps R`` then times both predicts R more times, alternating: the first call in a process pays page
faults and first-use costs that later calls do not.

``--warm`` fits 64 vectors with the same library first, untimed, so the timed fit leaves out what a fresh process pays
once (lazy imports; scikit-learn's first input check scans every installed package's entry points through
narwhals): the fit's own cost, which is what a process that fits more than once pays per fit.

``--float32`` rounds the training data to float32 values first (as an embedding model gives them; both libraries
still fit float64 arrays): the row cache then streams its samples in float32.

``--log S`` prints our fit's progress (sub-problems, kernel values, SMO iterations, resident memory) to stderr every
S seconds, so that a run stopped by a time limit still says how far it got. SIGINT and SIGTERM stop our fit as Ctrl-C
does. ``--checkpoint PATH`` gives our fit ``NuSVC(checkpoint=PATH)``: a run stopped and started again with the same
arguments goes on where it stopped (the fit time printed is then this process's share only; a fit's total is the sum
over its runs). Peak memory is VmHWM after resetting it where the kernel allows (``/proc/self/clear_refs``), else the
largest VmRSS sampled every 50 ms (gVisor, as on the device machines, has no clear_refs); the JSON line says which
(``peak_how``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_nusvm import make_embeddings, reset_peak, status_bytes  # noqa: E402


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = np.maximum(np.abs(b), 1e-300)
    return float(np.max(np.abs(a - b) / scale)) if a.size else 0.0


class PeakMemory:
    """Resident memory a block adds at its peak: VmHWM reset first where /proc/self/clear_refs exists, else VmRSS
    sampled by a thread every 50 ms (a sampled peak can miss a spike shorter than that)."""

    def __enter__(self) -> PeakMemory:
        try:
            self.base, self.how = reset_peak(), "VmHWM"
        except OSError:
            self.base, self.how = status_bytes("VmRSS:"), "VmRSS sampled"
        self._high, self._stop = self.base, threading.Event()
        self._thread = None
        if self.how != "VmHWM":
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self._high = max(self._high, status_bytes("VmRSS:"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        high = status_bytes("VmHWM:") if self.how == "VmHWM" else max(self._high, status_bytes("VmRSS:"))
        self.peak_mb = round((high - self.base) / 2**20, 1)


class _LogBar:
    """Stands in for sertk.progress.bar: one plain line per ``every`` seconds (a log file, not a terminal)."""

    def __init__(self, every: float, total: float | None = None, desc: str = "", **_: object) -> None:
        self.every, self.total, self.desc, self.n, self.postfix = every, total, desc, 0, ""
        self.t0 = self.last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            print(f"[{now - self.t0:7.1f} s] {self.desc}: {self.n}/{self.total} sub-problems, {self.postfix}, "
                  f"RSS {status_bytes('VmRSS:') / 2**30:.1f} GiB", file=sys.stderr, flush=True)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def close(self) -> None:
        self.last = -float("inf")
        self.update(0)


def log_progress(every: float) -> None:
    """Our fits report to stderr every ``every`` seconds from now on (through NuSVC's own progress hook)."""
    from sertk import progress
    from sertk.svm import _classes

    progress.configure(True)
    progress.bar = lambda total, desc="", unit="it", delay=0.0: _LogBar(every, total, desc)  # type: ignore[assignment]
    _classes._PROGRESS_DELAY_S = 0.0


def sklearn_twin(ours):
    """A fitted scikit-learn NuSVC holding our model's arrays (libsvm's layout is the same in both)."""
    from sklearn.svm import NuSVC

    X_sv = ours.support_vectors_
    sv_class = np.repeat(np.asarray(ours.classes_), ours.n_support_)  # support vectors are grouped by class
    twin = NuSVC(nu=ours.nu, gamma=ours._gamma, cache_size=ours.cache_size)
    # a small fit sets scikit-learn's bookkeeping (n_features_in_, _sparse, _impl, ...); its arrays are replaced
    picks = np.concatenate([np.flatnonzero(sv_class == c)[:5] for c in ours.classes_])
    twin.fit(X_sv[picks], sv_class[picks])
    for name in ("support_", "support_vectors_", "_dual_coef_", "dual_coef_", "_intercept_", "intercept_",
                 "classes_", "shape_fit_", "fit_status_", "n_iter_"):
        setattr(twin, name, np.asarray(getattr(ours, name)).copy() if name != "fit_status_" else ours.fit_status_)
    twin._n_support = np.asarray(ours.n_support_, dtype=np.int32).copy()
    twin._gamma = ours._gamma
    twin._probA = twin._probB = np.empty(0)
    return twin


def warm_up(model) -> None:
    """One small fit of the same library first, untimed: what a process pays once (lazy imports, the entry-point scan
    scikit-learn's input validation makes on its first call through narwhals, BLAS and thread start-up) then stays
    out of the timed fit, for either library alike."""
    from sklearn.base import clone

    X, y = make_embeddings(64, seed=3)
    with threadpool_limits(limits=1):
        clone(model).fit(X, y)


def main(impl: str, n: int, jobs: int, cache: float = 1024, save: str | None = None, ref: str | None = None,
         predict: int = 0, twin: bool = False, warm: bool = False, float32: bool = False,
         checkpoint: str | None = None, predict_reps: int = 0) -> dict:
    X, y = make_embeddings(n, seed=1)
    if float32:  # values an embedding model gives (float32), held as float64 as both libraries fit them
        X = X.astype(np.float32).astype(np.float64)
    X_test = make_embeddings(max(predict, 1), seed=7)[0]
    if impl == "sklearn":
        from sklearn.svm import NuSVC

        model = NuSVC(nu=0.1, cache_size=cache)
    else:
        from sertk.svm import NuSVC

        model = NuSVC(nu=0.1, cache_size=cache, n_jobs=jobs, checkpoint=checkpoint)
    if warm:
        warm_up(model)
    with PeakMemory() as mem, threadpool_limits(limits=1):
        start = time.perf_counter()
        model.fit(X, y)
        elapsed = time.perf_counter() - start
    out = {"impl": impl, "n": n, "jobs": jobs, "cache_mb": cache, "warm": warm, "float32": float32,
           "fit_s": round(elapsed, 3),
           "peak_mb": mem.peak_mb, "peak_how": mem.how,
           "mode": getattr(model, "kernel_mode_", "libsvm"), "n_iter": [int(v) for v in model.n_iter_],
           "n_sv": int(model.support_.size),
           "support_sha": hashlib.sha256(np.asarray(model.support_, np.int64).tobytes()).hexdigest()[:16],
           "dual_coef_sum": float(np.abs(model.dual_coef_).sum())}
    if predict:
        if impl != "sklearn":
            model.set_params(n_jobs=1)  # predict rows compare one thread with one thread, whatever the fit used
        with threadpool_limits(limits=1):
            start = time.perf_counter()
            pred = model.predict(X_test)
            out["predict_s"] = round(time.perf_counter() - start, 3)
        out["predict_m"] = predict
        out["predict_sha"] = hashlib.sha256(np.asarray(pred, np.int64).tobytes()).hexdigest()[:16]
        if impl != "sklearn":  # the float64 path alone, and how many samples the float32 screen left to it
            from sertk.svm import _nusvm

            args, kw = model._model_args(X_test)
            with threadpool_limits(limits=1):
                start = time.perf_counter()
                exact, _ = _nusvm.predict(*args, **kw, screen=False)
                out["predict_float64_s"] = round(time.perf_counter() - start, 3)
                screened, n_float64 = _nusvm.predict(*args, **kw)
            out["predict_float64_rows"] = int(n_float64)
            out["screen_same_labels"] = bool(np.array_equal(exact, screened))
        if twin and impl != "sklearn":
            sk = sklearn_twin(model)
            with threadpool_limits(limits=1):
                start = time.perf_counter()
                sk_pred = sk.predict(X_test)
                out["sklearn_predict_s"] = round(time.perf_counter() - start, 3)
            out["same_predictions"] = bool(np.array_equal(sk_pred, pred))
            if predict_reps:  # then both again, alternating: what a process that predicts more than once sees
                ours_t, sk_t = [], []
                with threadpool_limits(limits=1):
                    for _ in range(predict_reps):
                        start = time.perf_counter()
                        model.predict(X_test)
                        ours_t.append(round(time.perf_counter() - start, 4))
                        start = time.perf_counter()
                        sk.predict(X_test)
                        sk_t.append(round(time.perf_counter() - start, 4))
                out["predict_warm_s"], out["sklearn_predict_warm_s"] = ours_t, sk_t
            probe = X_test[: min(len(X_test), 200)]
            out["decision_max_abs_diff"] = float(np.max(np.abs(sk.decision_function(probe)
                                                                - model.decision_function(probe))))
    if save:
        tmp = Path(save).with_suffix(".tmp.npz")
        np.savez(tmp, support=model.support_, n_iter=model.n_iter_, dual_coef=model.dual_coef_,
                 intercept=model.intercept_)
        tmp.replace(save)
    if ref:
        with np.load(ref) as r:
            out["same_support"] = bool(np.array_equal(model.support_, r["support"]))
            out["same_n_iter"] = bool(np.array_equal(model.n_iter_, r["n_iter"]))
            if out["same_support"]:
                out["dual_coef_max_rel"] = _rel(model.dual_coef_, r["dual_coef"])
                out["intercept_max_rel"] = _rel(model.intercept_, r["intercept"])
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("impl")
    ap.add_argument("n", type=int)
    ap.add_argument("jobs", type=int)
    ap.add_argument("--cache", type=float, default=1024, help="cache_size in MiB, for both libraries")
    ap.add_argument("--save", help="write the model's arrays to this .npz")
    ap.add_argument("--ref", help="compare with a model saved by --save")
    ap.add_argument("--predict", type=int, default=0, help="also time predict on this many held-out vectors")
    ap.add_argument("--twin", action="store_true", help="with --predict: time scikit-learn's predict of our model")
    ap.add_argument("--predict-reps", type=int, default=0, metavar="R",
                    help="with --twin: both predicts R more times, alternating")
    ap.add_argument("--warm", action="store_true", help="an untimed small fit of the same library first")
    ap.add_argument("--float32", action="store_true", help="the training data rounded to float32 values first")
    ap.add_argument("--log", type=float, default=0, metavar="S", help="our fit's progress to stderr every S seconds")
    ap.add_argument("--checkpoint", help="our fit keeps its solved sub-problems here and resumes from them")
    a = ap.parse_args()
    # Ctrl-C, and a TERM from a job's end, stop the fit the way Ctrl-C does (with --checkpoint: its state is kept
    # first); SIGINT is restored because a shell starts background jobs with it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if a.log > 0 and a.impl != "sklearn":
        log_progress(a.log)
    print(json.dumps(main(a.impl, a.n, a.jobs, a.cache, a.save, a.ref, a.predict, a.twin, a.warm, a.float32,
                          a.checkpoint, a.predict_reps)),
          flush=True)
