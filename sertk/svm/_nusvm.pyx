# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Thin wrapper over the C core in ``csrc/`` (``sertk_nusvm.h``): typed memoryviews in, NumPy arrays out.

Each function checks shapes, hands SciPy's BLAS (``scipy.linalg.cython_blas``) to the core as function pointers,
runs the core without the GIL and turns its status codes into ``MemoryError`` / ``ValueError``.  Validation of
user input (NaN, labels, parameters) belongs to the estimator in ``_classes.py``; this layer only guards the C
contract.

``fit`` can be interrupted: the core runs on a worker thread while the calling thread waits in short, interruptible
steps; on KeyboardInterrupt (or when the optional ``cancel`` event is set) it sets the core's cancellation flag,
waits for the core to free its memory and return (within about 64 SMO iterations, one Gram block or one kernel
row), and re-raises (or raises ``FitCancelledError``).  The same waiting thread reads the core's progress counters
(sub-problems solved, kernel values computed, SMO iterations) and hands them to an optional ``progress`` callback.
"""

import threading
import time

import numpy as np

from scipy.linalg.cython_blas cimport ddot, dgemm, sgemm
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset


cdef extern from "sertk_nusvm.h" nogil:
    ctypedef void (*sertk_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *, int *, double *,
                                    int *, double *, double *, int *) noexcept nogil
    ctypedef double (*sertk_ddot_fn)(int *, double *, int *, double *, int *) noexcept nogil
    ctypedef void (*sertk_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *, int *, float *,
                                    int *, float *, float *, int *) noexcept nogil

    ctypedef struct sertk_blas:
        sertk_dgemm_fn dgemm
        sertk_ddot_fn ddot
        sertk_sgemm_fn sgemm

    ctypedef struct sertk_nusvm_progress:
        int subproblems_total
        int subproblems_done
        long long kernel_values
        long long iterations

    void sertk_nusvm_progress_read(const sertk_nusvm_progress *p, sertk_nusvm_progress *out)

    ctypedef struct sertk_nusvm_state:
        long long version
        int iter
        int counter
        int active_size
        int unshrink
        int max_valid
        int ip
        int in_ "in"
        double Gmaxp
        double Gmaxn
        double *alpha
        double *G
        double *Gbar
        int *aset

    ctypedef struct sertk_nusvm_pairs:
        int *done
        double **coef
        double *rho
        int *n_iter
        int *timed_out
        double *prob_a
        double *prob_b
        sertk_nusvm_state *states
        double state_every_s

    int sertk_nusvm_pair_done(const sertk_nusvm_pairs *r, int p)
    void sertk_nusvm_states_lock()
    void sertk_nusvm_states_unlock()

    ctypedef struct sertk_nusvm_params:
        int kernel
        double gamma
        double nu
        double tol
        int shrinking
        int max_iter
        double cache_bytes
        int n_threads
        int probability
        const int *cancel  # const volatile int * in C; the core only reads it
        sertk_nusvm_progress *progress
        sertk_nusvm_pairs *pairs


    ctypedef struct sertk_nusvm_problem:
        int n
        int d
        const double *X
        const int *y
        const double *weight
        int n_classes
        const int *prob_perm

    ctypedef struct sertk_nusvm_model:
        int n_classes
        int n_pairs
        int n_sv
        int fit_status
        int kernel_mode
        int *n_support
        int *support
        double *dual_coef
        double *rho
        int *n_iter
        double *prob_a
        double *prob_b

    int SERTK_OK
    int SERTK_ENOMEM
    int SERTK_EINFEASIBLE
    int SERTK_ECANCELLED
    int SERTK_EBUDGET
    int SERTK_MIN_CACHE_ROWS
    int SERTK_KERNEL_LINEAR
    int SERTK_KERNEL_RBF
    int SERTK_KERNEL_PRECOMPUTED
    int SERTK_KMODE_GRAM
    int SERTK_KMODE_PAIR
    int SERTK_KMODE_CACHE
    int SERTK_NUSVM_ABI_VERSION

    int sertk_nusvm_fit(const sertk_nusvm_problem *problem, const sertk_nusvm_params *params,
                        const sertk_blas *blas, sertk_nusvm_model *model)
    void sertk_nusvm_model_free(sertk_nusvm_model *model)
    double sertk_nusvm_min_cache_bytes(int n, const int *y, int n_classes, int n_threads)

    ctypedef struct sertk_nusvm_plan:
        int kernel_mode
        int n_work
        int inner_threads
        int team_parts
        int reuse_diag
        int chained
        int kept_class
        double kept_bytes
        int max_pair
        double gram_bytes
        double pair_bytes
        double min_cache_bytes

    int sertk_nusvm_plan_kernel(int n_classes, const int *count, const sertk_nusvm_params *params,
                                sertk_nusvm_plan *plan)
    double sertk_nusvm_max_feasible_nu(int n, const int *y, const double *weight, int n_classes, int *worst_i,
                                       int *worst_j)
    int sertk_nusvm_decision(const double *X, int m, int d, const double *sv, int n_sv, int kernel, double gamma,
                             int n_classes, const int *n_support, const double *dual_coef, const double *rho,
                             const sertk_blas *blas, int n_threads, double *dec)
    int sertk_nusvm_predict(const double *X, int m, int d, const double *sv, int n_sv, int kernel, double gamma,
                            int n_classes, const int *n_support, const double *dual_coef, const double *rho,
                            const sertk_blas *blas, int n_threads, int *out, int *n_float64)
    int sertk_nusvm_vote(const double *dec, int m, int n_classes, int *out)
    int sertk_nusvm_proba(const double *dec, int m, int n_classes, const double *prob_a, const double *prob_b,
                          double *out)
    void sertk_nusvm_sigmoid_train(int l, const double *dec, const signed char *label, double *A, double *B)
    const char *sertk_nusvm_strerror(int status)

cdef extern from "sertk_kernel.h" nogil:
    void sertk_rbf_row(int n, const double *dot, const double *sq, double sqi, double gamma, float *out)
    void sertk_rbf_row_scalar(int n, const double *dot, const double *sq, double sqi, double gamma, float *out)
    void sertk_rbf_row_f64(int n, double *dot, const double *sq, double sqi, double gamma)
    void sertk_rbf_row_f64_scalar(int n, double *dot, const double *sq, double sqi, double gamma)
    int sertk_vexp_enabled()
    size_t sertk_panel_bytes(int nc, int d, int f32)
    void sertk_panel_pack(void *P, int f32, const double *X, const int *rows, int nc, int d)
    void sertk_rowdot(int nb, const double *const *a, int d, const void *P, int f32, int nc, double *out, int ldo)
    int sertk_all_float32(const double *x, size_t n)


KERNELS = {"linear": SERTK_KERNEL_LINEAR, "rbf": SERTK_KERNEL_RBF, "precomputed": SERTK_KERNEL_PRECOMPUTED}
ABI_VERSION = SERTK_NUSVM_ABI_VERSION
#: kernel rows of the largest class pair each worker needs at least in the row-cache path
MIN_CACHE_ROWS = SERTK_MIN_CACHE_ROWS
#: a pair's solver state as ``fit(pairs=)`` takes and ``on_state`` gives it (``sertk_nusvm_state``): these arrays,
#: with their dtypes and lengths (None: the pair's sample count); ``ints`` holds STATE_INTS's fields in that order
STATE_INTS = ("version", "iter", "counter", "active_size", "unshrink", "max_valid", "ip", "in")
STATE_ARRAYS = {"ints": (np.int64, len(STATE_INTS)), "gmax": (np.float64, 2), "alpha": (np.float64, None),
                "G": (np.float64, None), "Gbar": (np.float64, None), "aset": (np.int32, None)}


cdef sertk_blas _blas() noexcept nogil:
    cdef sertk_blas b
    b.dgemm = <sertk_dgemm_fn>dgemm
    b.ddot = <sertk_ddot_fn>ddot
    b.sgemm = <sertk_sgemm_fn>sgemm
    return b


class InfeasibleNuError(ValueError):
    """ν is infeasible for the (weighted) class sizes of some pair: ν (W_i + W_j) / 2 > min(W_i, W_j)."""


class KernelBudgetError(ValueError):
    """``cache_bytes`` is below what the row cache needs (:func:`min_cache_bytes`); the core never exceeds it."""


class FitCancelledError(RuntimeError):
    """``fit`` stopped early because its ``cancel`` event was set (no model was produced)."""


# how long the waiting thread sleeps between checks; KeyboardInterrupt interrupts the wait itself
_POLL_S = 0.05
# how often fit's ``progress`` callback hears from the core while it runs
_PROGRESS_S = 0.25


cdef int _check(int rc) except -1:
    if rc == SERTK_OK:
        return 0
    message = "sertk ν-SVM core: " + sertk_nusvm_strerror(rc).decode()
    if rc == SERTK_ENOMEM:
        raise MemoryError(message)
    if rc == SERTK_EINFEASIBLE:
        raise InfeasibleNuError(message)
    if rc == SERTK_ECANCELLED:
        raise FitCancelledError(message)
    if rc == SERTK_EBUDGET:
        raise KernelBudgetError(message)
    raise ValueError(message)


def min_cache_bytes(const int[::1] y, int n_classes, int n_threads=1):
    """The least ``cache_bytes`` a fit of labels ``y`` runs in when the Gram matrix does not fit: a few kernel rows
    of the largest one-vs-one sub-problem, whatever ``n_threads`` (the row cache's threads share one cache)."""
    if y.shape[0] < 1:
        raise ValueError("y is empty")
    cdef double need = sertk_nusvm_min_cache_bytes(<int>y.shape[0], &y[0], n_classes, n_threads)
    if need < 0:
        raise ValueError("invalid labels or thread count")
    return need


cdef str _mode_name(int mode):
    return {SERTK_KMODE_GRAM: "gram", SERTK_KMODE_PAIR: "pair", SERTK_KMODE_CACHE: "cache"}[mode]


def plan_kernel(const int[::1] counts, *, str kernel="rbf", double cache_bytes=1024.0 * 2**20, int n_threads=1):
    """How a fit with these class sizes holds its kernel values within ``cache_bytes`` — the core's own decision
    (``sertk_nusvm_plan_kernel``, which ``fit`` follows), so that a caller can warn or explain before a long fit.

    Returns a dict: ``kernel_mode`` ("gram", "pair" or "cache"), ``n_work`` (sub-problems at once),
    ``inner_threads``, ``team_parts``, ``reuse_diag``, ``chained``, ``kept_class`` (chained: the class whose own
    block is kept beside the buffer, or -1) and ``kept_bytes``, ``max_pair`` (samples in the largest pair),
    ``gram_bytes``, ``pair_bytes``, ``min_cache_bytes`` and ``fits`` (False: ``fit`` would raise
    ``KernelBudgetError``).
    """
    cdef sertk_nusvm_params par
    cdef sertk_nusvm_plan plan
    if counts.shape[0] < 2:
        raise ValueError(f"need at least 2 classes, got {counts.shape[0]}")
    par.kernel = _kernel_code(kernel)
    par.cache_bytes = cache_bytes
    par.n_threads = n_threads
    cdef int rc = sertk_nusvm_plan_kernel(<int>counts.shape[0], &counts[0], &par, &plan)
    if rc != SERTK_OK and rc != SERTK_EBUDGET:
        raise ValueError(f"invalid class sizes or thread count: counts={np.asarray(counts).tolist()}, "
                         f"n_threads={n_threads}")
    return {
        "kernel_mode": _mode_name(plan.kernel_mode), "n_work": plan.n_work, "inner_threads": plan.inner_threads,
        "team_parts": plan.team_parts, "reuse_diag": bool(plan.reuse_diag), "chained": bool(plan.chained),
        "kept_class": plan.kept_class, "kept_bytes": plan.kept_bytes,
        "max_pair": plan.max_pair, "gram_bytes": plan.gram_bytes, "pair_bytes": plan.pair_bytes,
        "min_cache_bytes": plan.min_cache_bytes, "fits": rc == SERTK_OK,
    }


def _kernel_code(kernel):
    try:
        return KERNELS[kernel]
    except KeyError:
        raise ValueError(f"unknown kernel {kernel!r}; the core knows {sorted(KERNELS)}") from None


cdef class _FitJob:
    """One call of the core: its arguments, its model and its cancellation flag, shared with the worker thread."""
    cdef sertk_nusvm_problem prob
    cdef sertk_nusvm_params par
    cdef sertk_nusvm_model model
    cdef sertk_blas blas
    cdef sertk_nusvm_progress progress
    cdef sertk_nusvm_pairs pairs
    cdef double **coef_ptrs  # pairs.coef: into the caller's arrays
    cdef sertk_nusvm_state *states  # pairs.states: arrays in state_arrays
    cdef object state_arrays  # per pair: (alpha, G, Gbar, aset), where the core writes each state
    cdef int n_pairs
    cdef int cancel
    cdef int rc
    cdef bint has_model
    cdef object keep  # the arrays prob points into
    cdef object done

    def __cinit__(self):
        self.cancel = 0
        memset(&self.progress, 0, sizeof(self.progress))
        memset(&self.pairs, 0, sizeof(self.pairs))
        self.coef_ptrs = NULL
        self.states = NULL
        self.state_arrays = []
        self.n_pairs = 0
        self.rc = -1
        self.has_model = False
        self.done = threading.Event()

    def run(self):
        try:
            with nogil:
                self.rc = sertk_nusvm_fit(&self.prob, &self.par, &self.blas, &self.model)
            self.has_model = self.rc == SERTK_OK
        finally:
            self.done.set()

    def solved(self):
        """The pairs whose solutions the core has written so far (all of them once it has returned)."""
        if self.coef_ptrs == NULL:
            return []
        return [p for p in range(self.n_pairs) if sertk_nusvm_pair_done(&self.pairs, p)]

    def state_versions(self):
        """pair -> the version of the state the core holds for it now (0: none), without copying any state."""
        if self.states == NULL:
            return {}
        with nogil:
            sertk_nusvm_states_lock()
        try:
            return {p: self.states[p].version for p in range(self.n_pairs)}
        finally:
            sertk_nusvm_states_unlock()

    def changed_states(self, dict versions):
        """The states the core has written or cleared since ``versions`` (pair -> version; updated): pair -> a
        copy of its state (the dict ``fit``'s ``on_state`` describes), or None once the pair has none."""
        cdef int p
        cdef sertk_nusvm_state *st
        out = {}
        if self.states == NULL:
            return out
        with nogil:
            sertk_nusvm_states_lock()
        try:
            for p in range(self.n_pairs):
                st = &self.states[p]
                if st.version == versions.get(p, 0):
                    continue
                versions[p] = st.version
                if st.version == 0:
                    out[p] = None
                    continue
                alpha, G, Gbar, aset = self.state_arrays[p]
                ints = {"version": st.version, "iter": st.iter, "counter": st.counter,
                        "active_size": st.active_size, "unshrink": st.unshrink, "max_valid": st.max_valid,
                        "ip": st.ip, "in": st.in_}
                out[p] = {"ints": np.array([ints[key] for key in STATE_INTS], dtype=np.int64),
                          "gmax": np.array([st.Gmaxp, st.Gmaxn]), "alpha": alpha.copy(), "G": G.copy(),
                          "Gbar": Gbar.copy(), "aset": aset.copy()}
        finally:
            sertk_nusvm_states_unlock()
        return out

    def __dealloc__(self):
        free(self.coef_ptrs)
        self.coef_ptrs = NULL
        free(self.states)
        self.states = NULL
        if self.has_model:
            sertk_nusvm_model_free(&self.model)
            self.has_model = False


    def report(self):
        """How far the core is: a snapshot of its progress counters."""
        cdef sertk_nusvm_progress now
        sertk_nusvm_progress_read(&self.progress, &now)
        return {"subproblems_done": now.subproblems_done, "subproblems_total": now.subproblems_total,
                "kernel_values": now.kernel_values, "iterations": now.iterations}


cdef set _tell_solved(_FitJob job, set told, object on_solved):
    new = [p for p in job.solved() if p not in told]
    if new:
        on_solved(new)
    return told.union(new)


cdef _wait_uninterrupted(_FitJob job, worker):
    """Wait for the worker to return, ignoring further KeyboardInterrupts, so that the cancelled core has freed its
    memory and stopped its threads before fit returns (the job itself keeps the input arrays alive regardless)."""
    while True:
        try:
            job.done.wait()
            worker.join()
            return
        except BaseException:
            continue


cdef _tell_states(_FitJob job, dict versions, object on_state):
    changed = job.changed_states(versions)
    if changed:
        on_state(changed)


cdef _run_job(_FitJob job, object cancel, object progress, object on_solved, object on_state):
    """Run the core on a worker thread; the calling thread waits interruptibly, cancels the core on demand, hands
    its progress to ``progress``, each newly solved pair to ``on_solved`` and each unfinished pair's newly written
    state to ``on_state`` (an exception raised in any of them cancels the fit and propagates)."""
    worker = threading.Thread(target=job.run, name="sertk-nusvm-fit", daemon=True)
    started = False
    if cancel is not None and cancel.is_set():
        job.cancel = 1
    told = set(job.solved())  # given by the caller
    versions = job.state_versions()  # the states given by the caller are not news
    try:
        worker.start()
        started = True
        last = time.monotonic()
        while not job.done.wait(_POLL_S):
            if cancel is not None and cancel.is_set():
                job.cancel = 1
            if on_solved is not None:
                told = _tell_solved(job, told, on_solved)
            if on_state is not None:
                _tell_states(job, versions, on_state)
            if progress is not None and time.monotonic() - last >= _PROGRESS_S:
                last = time.monotonic()
                progress(job.report())
        if on_solved is not None:
            _tell_solved(job, told, on_solved)  # also after a failed fit: what was solved is kept
        if on_state is not None:
            _tell_states(job, versions, on_state)  # a cancelled core's last states
        if progress is not None and job.rc == SERTK_OK:
            progress(job.report())  # the final counts, once
    except BaseException:  # KeyboardInterrupt (or any asynchronous exception): stop the core, then re-raise
        job.cancel = 1
        if started:  # (if start() itself was interrupted, a worker that did start stops at its first poll)
            _wait_uninterrupted(job, worker)
            if on_state is not None:  # the states the core kept as it stopped, so that the fit resumes there
                try:
                    _tell_states(job, versions, on_state)
                except BaseException:
                    pass
        raise
    worker.join()
    if job.rc == SERTK_ECANCELLED and cancel is not None and cancel.is_set():
        raise FitCancelledError("sertk ν-SVM core: fit cancelled")
    _check(job.rc)


def fit(const double[:, ::1] X, const int[::1] y, const double[::1] weight, int n_classes, *, str kernel="rbf",
        double gamma=1.0, double nu=0.5, double tol=1e-3, bint shrinking=True, int max_iter=-1,
        double cache_bytes=1024.0 * 2**20, int n_threads=1, const int[::1] prob_perm=None, cancel=None,
        progress=None, dict pairs=None, on_solved=None, on_state=None):
    """Train a one-vs-one ν-SVC.

    Parameters
    ----------
    X : float64 array (n, d), C-contiguous
        Training samples (for ``kernel="precomputed"``: the (n, n) training kernel).
    y : int32 array (n,)
        Class indices 0 .. n_classes-1, every class present.
    weight : float64 array (n,)
        Per-sample upper bounds (> 0).
    prob_perm : int32 array (sum over pairs of n_i + n_j,), optional
        When given, Platt scaling is fitted on 5-fold cross-validation; for each pair (0,1), (0,2), …, (1,2), …
        a permutation of 0 .. n_i+n_j-1, concatenated: the fold assignment.
    cancel : threading.Event, optional
        Checked every 50 ms while the core runs; once set, the core stops (it polls a flag every 64 SMO
        iterations, every Gram block and every pair) and ``FitCancelledError`` is raised.
    progress : callable, optional
        Called on the calling thread about every 0.25 s while the core runs, and once more with the final counts
        after a fit that succeeded, with a dict: ``subproblems_done`` / ``subproblems_total`` (one-vs-one pairs,
        and with ``prob_perm`` their cross-validation folds too), ``kernel_values`` (computed so far, each stored
        value counted once) and ``iterations`` (SMO iterations so far, counted every 64).  An exception it raises
        cancels the core and propagates.
    pairs : dict, optional
        Each one-vs-one pair's solution, kept in the caller's arrays (``sertk_nusvm_pairs``), so that an
        interrupted fit can be resumed: ``done`` (int32, n_pairs), ``coef`` (a list of n_pairs float64 arrays of
        n_i + n_j), ``rho`` (float64), ``n_iter`` and ``timed_out`` (int32), ``prob_a`` and ``prob_b`` (float64).
        A pair whose ``done`` is 1 is taken as solved; the others are written as they are solved.  Optional
        ``states`` (a list of n_pairs entries, each None or a dict as ``on_state`` gives) and ``state_every_s``
        (default 60): an unfinished pair resumes from its state, and each pair's solver keeps its state every
        ``state_every_s`` seconds and when the fit is cancelled (``sertk_nusvm_pairs.states``).
    on_solved : callable, optional
        With ``pairs``: called on the calling thread with a list of pair indices each time pairs have been solved
        (also once the core has returned, after a fit that its ``cancel`` event stopped or that failed; after
        Ctrl-C, ``pairs["done"]`` says which were solved), so that they can be saved.
    on_state : callable, optional
        With ``pairs`` holding ``states``: called on the calling thread with a dict {pair: state or None} each time
        solvers have written their states (None: the pair has none any more, being solved); also after the core
        has returned, cancelled or interrupted.  A state is a dict of copies: ``ints`` (int64: the fields
        :data:`STATE_INTS` names, in that order), ``gmax`` (float64: Gmaxp, Gmaxn), ``alpha``, ``G``,
        ``Gbar`` (float64, n_i + n_j) and ``aset`` (int32, n_i + n_j).

    Returns
    -------
    dict
        ``support`` (int32, indices into X), ``n_support`` (int32, per class), ``dual_coef`` (float64,
        (n_classes-1, n_SV), libsvm's layout), ``rho``, ``n_iter`` (per pair), ``fit_status`` (0, or 1 when a
        sub-problem reached max_iter), ``prob_a``/``prob_b`` (or None), ``kernel_mode`` ("gram", "pair" or "cache").

    Raises
    ------
    KeyboardInterrupt
        Ctrl-C (SIGINT) while the core runs, when called from the main thread: the core is cancelled and has freed
        its memory before the exception propagates.
    FitCancelledError
        ``cancel`` was set.
    """
    cdef Py_ssize_t n = X.shape[0]
    if y.shape[0] != n or weight.shape[0] != n:
        raise ValueError(f"X has {n} rows but y has {y.shape[0]} and weight {weight.shape[0]}")
    if n < 2 or X.shape[1] < 1:
        raise ValueError(f"need at least 2 samples and 1 feature, got X of shape {(X.shape[0], X.shape[1])}")
    cdef _FitJob job = _FitJob()
    cdef sertk_nusvm_problem *prob = &job.prob
    cdef sertk_nusvm_params *par = &job.par
    job.blas = _blas()
    job.keep = (X, y, weight, prob_perm)
    cdef Py_ssize_t need = 0
    prob.n = <int>n
    prob.d = <int>X.shape[1]
    prob.X = &X[0, 0]
    prob.y = &y[0]
    prob.weight = &weight[0]
    prob.n_classes = n_classes
    prob.prob_perm = NULL
    par.kernel = _kernel_code(kernel)
    par.gamma = gamma
    par.nu = nu
    par.tol = tol
    par.shrinking = 1 if shrinking else 0
    par.max_iter = max_iter
    par.cache_bytes = cache_bytes
    par.n_threads = n_threads
    par.probability = 0
    par.cancel = &job.cancel
    par.progress = &job.progress
    par.pairs = NULL
    if pairs is not None:
        _bind_pairs(job, pairs, np.asarray(y), n_classes, prob_perm is not None)
        par.pairs = &job.pairs
    if prob_perm is not None:
        counts = np.bincount(np.asarray(y), minlength=n_classes)
        need = sum(int(counts[i] + counts[j]) for i in range(n_classes) for j in range(i + 1, n_classes))
        if prob_perm.shape[0] != need:
            raise ValueError(f"prob_perm has {prob_perm.shape[0]} entries, expected {need}")
        prob.prob_perm = &prob_perm[0]
        par.probability = 1
    _run_job(job, cancel, progress, on_solved if pairs is not None else None,
             on_state if pairs is not None and job.states != NULL else None)
    try:
        return _model_to_dict(&job.model)
    finally:
        sertk_nusvm_model_free(&job.model)
        job.has_model = False


cdef _bind_pairs(_FitJob job, dict pairs, object y, int n_classes, bint probability):
    """Point job.pairs into the caller's arrays, after checking their types and sizes (the core trusts them)."""
    P = n_classes * (n_classes - 1) // 2
    counts = np.bincount(y, minlength=n_classes)
    names = ("done", "coef", "rho", "n_iter", "timed_out", "prob_a", "prob_b")
    missing = [k for k in names if k not in pairs]
    if missing:
        raise ValueError(f"pairs lacks {missing}")
    typed = {"done": np.int32, "rho": np.float64, "n_iter": np.int32, "timed_out": np.int32,
             "prob_a": np.float64, "prob_b": np.float64}
    for key, dtype in typed.items():
        a = pairs[key]
        if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != (P,) or not a.flags.c_contiguous \
                or not a.flags.writeable:
            raise ValueError(f"pairs[{key!r}] must be a writeable, contiguous {np.dtype(dtype).name} array of "
                             f"{P} entries")
    coefs = pairs["coef"]
    if len(coefs) != P:
        raise ValueError(f"pairs['coef'] must hold {P} arrays, one per pair")
    cdef int p = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            a = coefs[p]
            l = int(counts[i] + counts[j])
            if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != (l,) \
                    or not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError(f"pairs['coef'][{p}] (classes {i} and {j}) must be a writeable, contiguous "
                                 f"float64 array of {l} entries")
            p += 1
    job.coef_ptrs = <double **>malloc(sizeof(double *) * P)
    if job.coef_ptrs == NULL:
        raise MemoryError()
    cdef double[::1] cv
    for p in range(P):
        cv = coefs[p]
        job.coef_ptrs[p] = &cv[0] if cv.shape[0] > 0 else NULL
    cdef int[::1] done = pairs["done"], n_iter = pairs["n_iter"], timed_out = pairs["timed_out"]
    cdef double[::1] rho = pairs["rho"], prob_a = pairs["prob_a"], prob_b = pairs["prob_b"]
    job.pairs.done = &done[0]
    job.pairs.coef = job.coef_ptrs
    job.pairs.rho = &rho[0]
    job.pairs.n_iter = &n_iter[0]
    job.pairs.timed_out = &timed_out[0]
    job.pairs.prob_a = &prob_a[0]
    job.pairs.prob_b = &prob_b[0]
    job.n_pairs = P
    job.keep = job.keep + (pairs, list(coefs))
    if pairs.get("states") is not None:
        _bind_states(job, pairs["states"], [int(counts[i] + counts[j]) for i in range(n_classes)
                                            for j in range(i + 1, n_classes)],
                     float(pairs.get("state_every_s", 60.0)))


cdef _bind_states(_FitJob job, list given, list sizes, double every_s):
    """job.pairs.states: one state per pair in arrays of this job, those given copied in (the core checks that
    each is a permutation and in range before it reads one; values are the caller's to check)."""
    cdef int P = len(sizes), p
    if len(given) != P:
        raise ValueError(f"pairs['states'] must hold {P} entries, one per pair (None for none)")
    if not every_s >= 0:
        raise ValueError(f"pairs['state_every_s'] must be >= 0, got {every_s}")
    job.states = <sertk_nusvm_state *>malloc(sizeof(sertk_nusvm_state) * P)
    if job.states == NULL:
        raise MemoryError()
    memset(job.states, 0, sizeof(sertk_nusvm_state) * P)
    cdef double[::1] a_v, g_v, gb_v
    cdef int[::1] s_v
    cdef sertk_nusvm_state *st
    for p in range(P):
        l = sizes[p]
        alpha, G, Gbar, aset = np.zeros(l), np.zeros(l), np.zeros(l), np.zeros(l, np.int32)
        st = &job.states[p]
        state = given[p]
        if state is not None:
            for key, (dtype, length) in STATE_ARRAYS.items():
                a, shape = state.get(key), (l if length is None else length,)
                if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape:
                    raise ValueError(f"pairs['states'][{p}][{key!r}] must be a {np.dtype(dtype).name} array of "
                                     f"shape {shape}")
            alpha[:], G[:], Gbar[:], aset[:] = state["alpha"], state["G"], state["Gbar"], state["aset"]
            ints, gmax = dict(zip(STATE_INTS, state["ints"].tolist())), state["gmax"]
            st.version = 1  # the core's own count starts again; only a change from it is news
            st.iter, st.counter, st.active_size = ints["iter"], ints["counter"], ints["active_size"]
            st.unshrink, st.max_valid, st.ip, st.in_ = ints["unshrink"], ints["max_valid"], ints["ip"], ints["in"]
            st.Gmaxp, st.Gmaxn = gmax[0], gmax[1]
        job.state_arrays.append((alpha, G, Gbar, aset))
        if l > 0:
            a_v, g_v, gb_v, s_v = alpha, G, Gbar, aset
            st.alpha, st.G, st.Gbar, st.aset = &a_v[0], &g_v[0], &gb_v[0], &s_v[0]
    job.pairs.states = job.states
    job.pairs.state_every_s = every_s


cdef dict _model_to_dict(sertk_nusvm_model *m):
    cdef Py_ssize_t k = m.n_classes, P = m.n_pairs, nsv = m.n_sv, i
    support = np.empty(nsv, dtype=np.int32)
    n_support = np.empty(k, dtype=np.int32)
    dual_coef = np.empty((k - 1, nsv), dtype=np.float64)
    rho = np.empty(P, dtype=np.float64)
    n_iter = np.empty(P, dtype=np.int32)
    cdef int[::1] sv_v = support, ns_v = n_support, it_v = n_iter
    cdef double[:, ::1] dc_v = dual_coef
    cdef double[::1] rho_v = rho
    for i in range(nsv):
        sv_v[i] = m.support[i]
    for i in range(k):
        ns_v[i] = m.n_support[i]
    if nsv > 0:
        memcpy(&dc_v[0, 0], m.dual_coef, sizeof(double) * (k - 1) * nsv)
    for i in range(P):
        rho_v[i] = m.rho[i]
        it_v[i] = m.n_iter[i]
    prob_a = prob_b = None
    if m.prob_a != NULL:
        prob_a = np.array([m.prob_a[i] for i in range(P)], dtype=np.float64)
        prob_b = np.array([m.prob_b[i] for i in range(P)], dtype=np.float64)
    return {
        "support": support,
        "n_support": n_support,
        "dual_coef": dual_coef,
        "rho": rho,
        "n_iter": n_iter,
        "fit_status": int(m.fit_status),
        "prob_a": prob_a,
        "prob_b": prob_b,
        "kernel_mode": _mode_name(m.kernel_mode),
    }


cdef int _check_model(int code, Py_ssize_t d, const double[:, ::1] support_vectors, const int[::1] n_support,
                      const double[:, ::1] dual_coef, const double[::1] rho) except -1:
    """ValueError unless the model's arrays fit together and the samples' d columns fit the kernel."""
    cdef Py_ssize_t k = n_support.shape[0], nsv = dual_coef.shape[1]
    if k < 2 or dual_coef.shape[0] != k - 1 or rho.shape[0] != k * (k - 1) // 2:
        raise ValueError("inconsistent model: n_support, dual_coef and rho do not fit together")
    if int(np.asarray(n_support).sum()) != nsv:
        raise ValueError("inconsistent model: n_support does not add up to the number of support vectors")
    if code == SERTK_KERNEL_PRECOMPUTED:
        if d != nsv:
            raise ValueError(f"precomputed kernel has {d} columns, expected {nsv} (one per support vector)")
    elif support_vectors.shape[0] != nsv or (nsv > 0 and support_vectors.shape[1] != d):
        raise ValueError(f"X has {d} features but the support vectors have shape "
                         f"{(support_vectors.shape[0], support_vectors.shape[1])}")
    return 0


def decision_function(const double[:, ::1] X, const double[:, ::1] support_vectors, const int[::1] n_support,
                      const double[:, ::1] dual_coef, const double[::1] rho, *, str kernel="rbf", double gamma=1.0,
                      int n_threads=1):
    """One-vs-one decision values, float64 array (n_samples, n_pairs), libsvm's sign convention.

    For ``kernel="precomputed"``, X is the (n_samples, n_SV) kernel between the samples and the support vectors
    and ``support_vectors`` is ignored.
    """
    cdef int code = _kernel_code(kernel)
    cdef Py_ssize_t k = n_support.shape[0], m = X.shape[0], d = X.shape[1], nsv = dual_coef.shape[1]
    _check_model(code, d, support_vectors, n_support, dual_coef, rho)
    dec = np.empty((m, k * (k - 1) // 2), dtype=np.float64)
    if m == 0:
        return dec
    cdef double[:, ::1] dec_v = dec
    cdef sertk_blas blas = _blas()
    cdef const double *svp = &support_vectors[0, 0] if (code != SERTK_KERNEL_PRECOMPUTED and nsv > 0) else NULL
    cdef const double *dcp = &dual_coef[0, 0] if nsv > 0 else NULL
    cdef int rc
    with nogil:
        rc = sertk_nusvm_decision(&X[0, 0], <int>m, <int>d, svp, <int>nsv, code, gamma, <int>k, &n_support[0],
                                  dcp, &rho[0], &blas, n_threads, &dec_v[0, 0])
    _check(rc)
    return dec


def predict(const double[:, ::1] X, const double[:, ::1] support_vectors, const int[::1] n_support,
            const double[:, ::1] dual_coef, const double[::1] rho, *, str kernel="rbf", double gamma=1.0,
            int n_threads=1, bint screen=True):
    """libsvm's one-vs-one vote as int32 class indices (n_samples,), and how many samples took the float64 path.

    The labels are :func:`vote` of :func:`decision_function`'s values.  For the RBF kernel most samples are
    settled by a float32 product with a proven error bound (``sertk_vote_screen.c``); ``screen=False`` sends
    every sample to the float64 path (for comparisons).
    """
    cdef int code = _kernel_code(kernel)
    cdef Py_ssize_t k = n_support.shape[0], m = X.shape[0], d = X.shape[1], nsv = dual_coef.shape[1]
    _check_model(code, d, support_vectors, n_support, dual_coef, rho)
    out = np.empty(m, dtype=np.int32)
    if m == 0:
        return out, 0
    cdef int[::1] out_v = out
    cdef sertk_blas blas = _blas()
    if not screen:
        blas.sgemm = NULL
    cdef const double *svp = &support_vectors[0, 0] if (code != SERTK_KERNEL_PRECOMPUTED and nsv > 0) else NULL
    cdef const double *dcp = &dual_coef[0, 0] if nsv > 0 else NULL
    cdef int rc, n_float64 = 0
    with nogil:
        rc = sertk_nusvm_predict(&X[0, 0], <int>m, <int>d, svp, <int>nsv, code, gamma, <int>k, &n_support[0],
                                 dcp, &rho[0], &blas, n_threads, &out_v[0], &n_float64)
    _check(rc)
    return out, n_float64


def vote(const double[:, ::1] dec, int n_classes):
    """libsvm's one-vs-one vote: int32 class indices (n_samples,); ties go to the lower index."""
    cdef Py_ssize_t m = dec.shape[0]
    if n_classes < 2 or dec.shape[1] != n_classes * (n_classes - 1) // 2:
        raise ValueError(f"decision values of shape {(dec.shape[0], dec.shape[1])} do not fit {n_classes} classes")
    out = np.empty(m, dtype=np.int32)
    if m == 0:
        return out
    cdef int[::1] out_v = out
    cdef int rc
    with nogil:
        rc = sertk_nusvm_vote(&dec[0, 0], <int>m, n_classes, &out_v[0])
    _check(rc)
    return out


def proba(const double[:, ::1] dec, int n_classes, const double[::1] prob_a, const double[::1] prob_b):
    """Class probabilities (n_samples, n_classes): Platt sigmoids per pair, then pairwise coupling."""
    cdef Py_ssize_t m = dec.shape[0], P = n_classes * (n_classes - 1) // 2
    if n_classes < 2 or dec.shape[1] != P or prob_a.shape[0] != P or prob_b.shape[0] != P:
        raise ValueError("decision values and sigmoid parameters do not fit the number of classes")
    out = np.empty((m, n_classes), dtype=np.float64)
    if m == 0:
        return out
    cdef double[:, ::1] out_v = out
    cdef int rc
    with nogil:
        rc = sertk_nusvm_proba(&dec[0, 0], <int>m, n_classes, &prob_a[0], &prob_b[0], &out_v[0, 0])
    _check(rc)
    return out


def max_feasible_nu(const int[::1] y, const double[::1] weight, int n_classes):
    """(largest feasible ν, (i, j) the limiting pair of class indices), with class weights summed in order."""
    if y.shape[0] != weight.shape[0] or y.shape[0] == 0 or n_classes < 2:
        raise ValueError("y and weight must be non-empty and of equal length, with at least 2 classes")
    cdef int wi = -1, wj = -1
    cdef double v
    with nogil:
        v = sertk_nusvm_max_feasible_nu(<int>y.shape[0], &y[0], &weight[0], n_classes, &wi, &wj)
    return v, (wi, wj)


def sigmoid_train(const double[::1] dec, const signed char[::1] label):
    """Platt's sigmoid (A, B) for decision values and ±1 labels, as libsvm's sigmoid_train."""
    if dec.shape[0] != label.shape[0] or dec.shape[0] == 0:
        raise ValueError("dec and label must be non-empty and of equal length")
    cdef double A = 0, B = 0
    with nogil:
        sertk_nusvm_sigmoid_train(<int>dec.shape[0], &dec[0], &label[0], &A, &B)
    return A, B


def _rbf_values(const double[::1] dot, const double[::1] sq, double sqi, double gamma, *, bint reference=False,
                bint f64=False):
    """Kernel values exp(-gamma (sqi + sq - 2 dot)) as the Gram and pair paths (float32) or prediction (float64)
    compute them (``csrc/sertk_vexp.c``); ``reference``: with glibc's exp, as libsvm.  For the tests."""
    cdef Py_ssize_t n = dot.shape[0]
    if sq.shape[0] != n or n == 0:
        raise ValueError("dot and sq must be non-empty and of equal length")
    out = np.empty(n, dtype=np.float64 if f64 else np.float32)
    cdef float[::1] o32
    cdef double[::1] o64
    if f64:
        o64 = out
        o64[:] = dot
        if reference:
            sertk_rbf_row_f64_scalar(<int>n, &o64[0], &sq[0], sqi, gamma)
        else:
            sertk_rbf_row_f64(<int>n, &o64[0], &sq[0], sqi, gamma)
        return out
    o32 = out
    if reference:
        sertk_rbf_row_scalar(<int>n, &dot[0], &sq[0], sqi, gamma, &o32[0])
    else:
        sertk_rbf_row(<int>n, &dot[0], &sq[0], sqi, gamma, &o32[0])
    return out


def _rowdot(const double[:, ::1] A, const double[:, ::1] X, bint f32=False):
    """``A @ X.T`` as the row cache computes it (``csrc/sertk_rowdot.c``): each value libsvm's dot product, a
    float64 sum in k order of separate products, from X packed in float64 or (``f32``, X's values must be float32
    values) float32 panels, all rows of A in passes of four.  For the tests."""
    cdef int nb = <int>A.shape[0], nc = <int>X.shape[0], d = <int>A.shape[1]
    if X.shape[1] != d or nb == 0 or nc == 0 or d == 0:
        raise ValueError("A and X must be non-empty with the same number of columns")
    if f32 and not sertk_all_float32(&X[0, 0], <size_t>nc * d):
        raise ValueError("f32=True packs X in float32: every value of X must be a float32 value")
    panel = np.zeros(sertk_panel_bytes(nc, d, f32), dtype=np.uint8)
    cdef unsigned char[::1] P = panel
    rows = np.empty(nb, dtype=np.uintp)
    cdef size_t[::1] rp = rows
    cdef Py_ssize_t r
    for r in range(nb):
        rp[r] = <size_t>&A[r, 0]
    out = np.empty((nb, nc), dtype=np.float64)
    cdef double[:, ::1] o = out
    with nogil:
        sertk_panel_pack(&P[0], f32, &X[0, 0], NULL, nc, d)
        sertk_rowdot(nb, <const double *const *>&rp[0], d, &P[0], f32, nc, &o[0, 0], nc)
    return out


def _vexp_enabled():
    """Whether kernel values take the AVX2 + FMA exp on this CPU (not under SERTK_NUSVM_SCALAR=1)."""
    return bool(sertk_vexp_enabled())
