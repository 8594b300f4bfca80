"""The ν-support-vector classifier: scikit-learn's estimator API over the compiled core.

This module owns everything between the user and :mod:`sertk.svm._nusvm`: parameter and input validation,
``gamma="scale"``, label encoding, sample and class weights, the random fold assignment for probabilities, the
``"ovr"`` decision shape and the fitted attributes.  The algorithm itself (libsvm's ν-SMO, one-vs-one) lives in
the C core, ``csrc/``.
"""

from __future__ import annotations

import logging
import numbers
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import _nusvm

logger = logging.getLogger(__name__)

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

__all__ = ["NuSVC"]

KERNELS = ("linear", "rbf", "precomputed")
DECISION_SHAPES = ("ovo", "ovr")


_NO_Y = object()


def _validate_data(est: BaseEstimator, X: Any, y: Any = _NO_Y, *, reset: bool) -> Any:
    """scikit-learn's input validation: float64, C order, finite, 2-D, not sparse; ``y`` is passed on (a ``None``
    target gets scikit-learn's "requires y to be passed" error)."""
    kwargs = {"dtype": np.float64, "order": "C", "accept_sparse": False, "reset": reset}
    if _sk_validate_data is not None:
        if y is _NO_Y:
            return _sk_validate_data(est, X, **kwargs)
        return _sk_validate_data(est, X, y, **kwargs)
    if y is _NO_Y:  # pragma: no cover - older scikit-learn
        return est._validate_data(X, **kwargs)
    return est._validate_data(X, y, **kwargs)  # pragma: no cover


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _ovr_from_ovo(dec: np.ndarray, n_classes: int) -> np.ndarray:
    """One-vs-rest scores from one-vs-one decision values (libsvm sign: > 0 favours the first class).

    Votes plus the summed confidences squashed into (-1/3, 1/3) by x / (3 (|x| + 1)), so the confidences only
    break ties between equal vote counts (scikit-learn's ``decision_function_shape="ovr"``).
    """
    m = dec.shape[0]
    votes = np.zeros((m, n_classes))
    conf = np.zeros((m, n_classes))
    p = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            d = dec[:, p]
            conf[:, i] += d
            conf[:, j] -= d
            to_j = d < 0
            votes[~to_j, i] += 1
            votes[to_j, j] += 1
            p += 1
    return votes + conf / (3 * (np.abs(conf) + 1))


def _label(value: Any) -> str:
    """A class label as users wrote it: 'a', 3 (not np.str_('a'), np.int64(3))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


_VALIDATION_ATTRS = ("n_features_in_", "feature_names_in_")


class RowCacheWarning(UserWarning):
    """A fit is about to take the row-cache path for a large problem (many times slower than a larger budget)."""


# below this size of the largest pair's matrix the row cache costs seconds at most, so nothing is said
_ROW_CACHE_WARN_BYTES = 256 * 2**20
# a fit's progress bar is drawn only once the fit has run this long (most fits are over before it)
_PROGRESS_DELAY_S = 2.0


def _round_up(value: float, digits: int = 3) -> float:
    """``value`` rounded up to ``digits`` significant digits (a size the user can type that is large enough)."""
    if value <= 0:
        return value
    scale = 10.0 ** (digits - 1 - int(np.floor(np.log10(value))))
    return float(np.ceil(value * scale * (1 - 1e-12)) / scale)


def _resolve_n_jobs(n_jobs: int | None) -> int:
    cpus = os.cpu_count() or 1
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, cpus + 1 + n_jobs)
    return n_jobs


class NuSVC(ClassifierMixin, BaseEstimator):
    """ν-support-vector classifier with libsvm's solver, compiled and fast.

    The same model as :class:`sklearn.svm.NuSVC` (same support vectors, iteration counts, dual coefficients and
    intercepts up to rounding, same predictions), trained by a C implementation of libsvm's ν-SMO that computes
    kernel values with BLAS: the float32 Gram matrix in one float64 product when it fits ``cache_size``, kernel
    rows in BLAS blocks through an LRU cache when it does not.  Multiclass problems are one-vs-one.  ``predict``
    settles most votes from a float32 product whose error is bounded, and the rest in float64, so its labels are
    those of the float64 decision values (docs/svm.md, 'Prediction').

    Parameters
    ----------
    nu : float, default=0.5
        Upper bound on the fraction of margin errors and lower bound on the fraction of support vectors, in
        (0, 1].  Must be feasible for every pair of classes: ν (n_i + n_j) / 2 <= min(n_i, n_j) with n the
        (weighted) class sizes.
    kernel : {"rbf", "linear", "precomputed"}, default="rbf"
        ``"precomputed"``: ``X`` is the (n_samples, n_samples) training kernel in ``fit`` and the
        (n_test, n_train) kernel in ``predict``.
    gamma : {"scale", "auto"} or float, default="scale"
        RBF width: K(x, z) = exp(-gamma |x - z|^2).  ``"scale"`` is 1 / (n_features * X.var()), ``"auto"`` is
        1 / n_features.
    tol : float, default=1e-3
        Stopping tolerance on the maximal violation of the optimality conditions.
    shrinking : bool, default=True
        Use libsvm's shrinking heuristic.
    probability : bool, default=False
        Fit Platt sigmoids on 5-fold cross-validated decision values and couple them pairwise (libsvm's method),
        enabling :meth:`predict_proba`.  The folds are drawn from ``random_state``.
    cache_size : float, default=1024
        Memory budget for kernel values, in MiB, never exceeded.  The whole training Gram matrix (4 n^2 bytes) is
        used when it fits, else each one-vs-one pair's own matrix, as many pairs at a time as fit; below one pair's
        matrix, one LRU cache of kernel rows of this size serves one pair at a time, its ``n_jobs`` threads sharing
        each pass over the samples (docs/svm.md, 'Kernel values').  A budget below a few rows of the largest class pair
        raises ``ValueError`` with the size needed (libsvm silently takes more).
    class_weight : dict, "balanced" or None, default=None
        Multiplies the per-sample upper bounds of class c by ``class_weight[c]``, exactly like a sample weight.
        Unlike :class:`sklearn.svm.NuSVC`, which accepts the parameter but whose solver ignores it, this acts on
        the solution: ``NuSVC(class_weight=w).fit(X, y)`` equals ``NuSVC().fit(X, y, sample_weight=w[y])``.
    max_iter : int, default=-1
        SMO iterations per one-vs-one sub-problem; -1 means libsvm's own cap, max(10^7, 100 n_sub).  Reaching it
        sets ``fit_status_ = 1`` and emits a :class:`~sklearn.exceptions.ConvergenceWarning`.
    decision_function_shape : {"ovr", "ovo"}, default="ovr"
        Shape of :meth:`decision_function` for more than two classes.
    break_ties : bool, default=False
        With ``decision_function_shape="ovr"`` and more than two classes, predict the argmax of
        :meth:`decision_function` instead of libsvm's vote.
    random_state : int, RandomState instance or None, default=None
        Seeds the fold assignment of ``probability=True``.
    n_jobs : int or None, default=None
        Threads for the one-vs-one sub-problems, the kernel blocks and prediction; None means 1, -1 all CPUs.
        When above 1, BLAS is limited to one thread inside the calls.
    checkpoint : str, path or None, default=None
        A file where ``fit`` keeps each one-vs-one sub-problem as soon as it is solved, and the solver of each
        unfinished one every minute and when interrupted.  A fit that is interrupted (Ctrl-C, a killed job) and
        started again with the same data and parameters solves only the pairs still missing, each from where its
        solver was kept, and gives the same model bit for bit; a finished checkpoint makes a repeated fit
        instant.  A file written for other data or parameters is refused with an error, never overwritten.
        Threads and ``cache_size`` may differ between the two fits.  An existing folder holds one file per
        training set and parameters (``nusvm-<fingerprint>.npz``), so that the folds of a protocol or a sweep can
        share it; a path that does not exist yet must end in ``.npz``.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
    support_ : int32 ndarray (n_SV,)
        Indices of the support vectors in the training set, class by class, ascending.
    support_vectors_ : float64 ndarray (n_SV, n_features)
        Empty (0, 0) for ``kernel="precomputed"``.
    n_support_ : int32 ndarray (n_classes,)
    dual_coef_ : float64 ndarray (n_classes - 1, n_SV)
        libsvm's layout; for two classes the sign is flipped so that positive decision values mean
        ``classes_[1]`` (as scikit-learn).
    intercept_ : float64 ndarray (n_classes (n_classes - 1) / 2,)
    n_iter_ : int32 ndarray (n_classes (n_classes - 1) / 2,)
    fit_status_ : int
        0, or 1 when a sub-problem reached ``max_iter``.
    probA_, probB_ : float64 ndarray (n_pairs,) or empty
    class_weight_ : float64 ndarray (n_classes,)
    shape_fit_ : tuple
    n_features_in_ : int
    kernel_mode_ : str
        ``"gram"`` (the whole Gram matrix), ``"pair"`` (each one-vs-one pair's own Gram matrix) or ``"cache"`` (one
        row cache, one pair at a time): how the training kernel was held within ``cache_size``.
    """

    def __init__(
        self,
        *,
        nu: float = 0.5,
        kernel: str = "rbf",
        gamma: str | float = "scale",
        tol: float = 1e-3,
        shrinking: bool = True,
        probability: bool = False,
        cache_size: float = 1024,
        class_weight: Mapping[Any, float] | str | None = None,
        max_iter: int = -1,
        decision_function_shape: str = "ovr",
        break_ties: bool = False,
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
    ) -> None:
        self.nu = nu
        self.kernel = kernel
        self.gamma = gamma
        self.tol = tol
        self.shrinking = shrinking
        self.probability = probability
        self.cache_size = cache_size
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.decision_function_shape = decision_function_shape
        self.break_ties = break_ties
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.checkpoint = checkpoint

    # -- parameters ----------------------------------------------------------------------------------------------
    def check_params(self) -> None:
        """Raise ``ValueError`` naming a bad hyperparameter, without fitting: sertk checks options before work."""
        self._check_params()

    def _check_params(self) -> None:
        nu = self.nu
        if not _is_real(nu) or not np.isfinite(nu) or not 0 < nu <= 1:
            raise ValueError(f"nu must be a number in (0, 1], got {nu!r}")
        if not isinstance(self.kernel, str) or self.kernel not in KERNELS:
            raise ValueError(f"kernel={self.kernel!r} is not supported; choose one of {', '.join(map(repr, KERNELS))}")
        gamma = self.gamma
        if isinstance(gamma, str):
            if gamma not in ("scale", "auto"):
                raise ValueError(f"gamma={gamma!r} is not understood; use 'scale', 'auto' or a float >= 0")
        elif not _is_real(gamma) or not np.isfinite(gamma) or gamma < 0:
            raise ValueError(f"gamma must be 'scale', 'auto' or a finite float >= 0, got {gamma!r}")
        if not _is_real(self.tol) or not np.isfinite(self.tol) or self.tol <= 0:
            raise ValueError(f"tol must be a positive number, got {self.tol!r}")
        if not _is_real(self.cache_size) or not np.isfinite(self.cache_size) or self.cache_size <= 0:
            raise ValueError(f"cache_size must be a positive number of MiB, got {self.cache_size!r}")
        if not _is_int(self.max_iter) or self.max_iter < -1 or self.max_iter > np.iinfo(np.int32).max:
            raise ValueError(f"max_iter must be -1 (no limit of our own) or a non-negative int, got {self.max_iter!r}")
        for flag in ("shrinking", "probability", "break_ties"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        if self.decision_function_shape not in DECISION_SHAPES:
            raise ValueError(f"decision_function_shape must be 'ovr' or 'ovo', got {self.decision_function_shape!r}")
        if self.n_jobs is not None and (not _is_int(self.n_jobs) or self.n_jobs == 0):
            raise ValueError(f"n_jobs must be None, a positive int or a negative int (-1: all CPUs), "
                             f"got {self.n_jobs!r}")
        if self.checkpoint is not None:
            if not isinstance(self.checkpoint, (str, os.PathLike)) or not os.fspath(self.checkpoint):
                raise ValueError(f"checkpoint must be a file path or None, got {self.checkpoint!r}")
            path = Path(self.checkpoint)
            if not path.parent.is_dir():
                raise ValueError(f"checkpoint {os.fspath(self.checkpoint)!r}: its folder {str(path.parent)!r} does "
                                 "not exist; create it or give another path")
            if not path.exists() and path.suffix != ".npz":
                # a folder not made yet would otherwise become one file, and the next fold's fit would be refused
                raise ValueError(f"checkpoint {os.fspath(self.checkpoint)!r} does not exist: give an existing folder "
                                 "(one file per training set, as the folds of a protocol need) or a file path "
                                 "ending in .npz")
        cw = self.class_weight
        if cw is not None and cw != "balanced" and not isinstance(cw, Mapping):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict {{class: weight}}, got {cw!r}")

    def _gamma_for(self, X: np.ndarray) -> float:
        if self.kernel != "rbf":
            return 0.0
        if self.gamma == "scale":
            var = X.var()
            return 1.0 / (X.shape[1] * var) if var != 0 else 1.0
        if self.gamma == "auto":
            return 1.0 / X.shape[1]
        return float(self.gamma)

    # -- fit -------------------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NuSVC:
        """Train on X (n_samples, n_features) and labels y (n_samples,).

        ``sample_weight`` (n_samples,), non-negative, scales each sample's upper bound; samples of weight 0 are
        left out, as libsvm does.
        """
        self._check_params()
        # what _validate_data(reset=True) overwrites, restored if the fit is interrupted (Ctrl-C)
        before = {a: self.__dict__[a] for a in _VALIDATION_ATTRS if a in self.__dict__}
        X, y = _validate_data(self, X, y, reset=True)
        if self.kernel == "precomputed" and X.shape[0] != X.shape[1]:
            raise ValueError(f"a precomputed kernel must be a square matrix; X has shape {X.shape}")
        check_classification_targets(y)
        classes, y_enc = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"The number of classes has to be greater than one; got {len(classes)} class")
        n = X.shape[0]
        sw = self._sample_weight(sample_weight, n)
        if isinstance(self.class_weight, Mapping):
            unknown = [c for c in self.class_weight if c not in set(classes.tolist())]
            if unknown:
                raise ValueError(f"class_weight names classes {unknown!r} that are not in y "
                                 f"(classes: {classes.tolist()!r})")
        cw = compute_class_weight(self.class_weight, classes=classes, y=y)
        if np.any(~np.isfinite(cw)) or np.any(cw < 0):
            raise ValueError(f"class weights must be finite and non-negative, got {cw.tolist()!r}")
        weight = sw * cw[y_enc]
        keep = weight > 0
        present = np.bincount(y_enc[keep], minlength=len(classes))
        if np.any(present == 0):
            empty = [classes[c] for c in np.flatnonzero(present == 0)]
            raise ValueError(
                f"class {_label(empty[0])} has no sample with positive weight; the ν-SVC needs at least two classes "
                "with positive (sample_weight × class_weight) weight, and every class of y must keep one"
            )
        keep_idx = np.flatnonzero(keep)
        if keep_idx.size < n:
            X_fit = X[keep_idx][:, keep_idx] if self.kernel == "precomputed" else X[keep_idx]
        else:
            X_fit = X
        X_fit = np.ascontiguousarray(X_fit, dtype=np.float64)
        y_fit = np.ascontiguousarray(y_enc[keep_idx], dtype=np.int32)
        w_fit = np.ascontiguousarray(weight[keep_idx], dtype=np.float64)
        k = len(classes)
        gamma = self._gamma_for(X)

        max_nu, (ci, cj) = _nusvm.max_feasible_nu(y_fit, w_fit, k)
        counts = np.bincount(y_fit, minlength=k)
        prob_perm = None
        if self.probability:
            rng = check_random_state(self.random_state)
            perms = [rng.permutation(int(counts[i] + counts[j])) for i in range(k) for j in range(i + 1, k)]
            prob_perm = np.ascontiguousarray(np.concatenate(perms), dtype=np.int32)
        n_threads = _resolve_n_jobs(self.n_jobs)
        # the core's own choice of kernel path for this budget (the fit below follows it)
        plan = _nusvm.plan_kernel(counts.astype(np.int32), kernel=self.kernel,
                                  cache_bytes=float(self.cache_size) * 2**20, n_threads=n_threads)
        self._warn_if_row_cache(plan)
        resume = _Resume.open(self.checkpoint, X_fit, y_fit, w_fit, classes, prob_perm, counts, {
            "kernel": self.kernel, "gamma": float(gamma), "nu": float(self.nu), "tol": float(self.tol),
            "shrinking": bool(self.shrinking), "max_iter": int(self.max_iter), "n_classes": k})
        try:
            subproblems = k * (k - 1) // 2 * (6 if self.probability else 1)  # pairs, and 5 folds each for Platt
            with _blas_threads(n_threads), _FitProgress(subproblems) as report, resume:
                result = _nusvm.fit(
                    X_fit, y_fit, w_fit, k, kernel=self.kernel, gamma=gamma, nu=float(self.nu), tol=float(self.tol),
                    shrinking=bool(self.shrinking), max_iter=int(self.max_iter),
                    cache_bytes=float(self.cache_size) * 2**20, n_threads=n_threads, prob_perm=prob_perm,
                    progress=report, pairs=resume.pairs, on_solved=resume.solved, on_state=resume.states,
                )
        except KeyboardInterrupt:
            # the core has been cancelled and has freed its memory; leave the estimator as it was (unfitted, or
            # with its previous model) and let the interrupt propagate
            for a in _VALIDATION_ATTRS:
                self.__dict__.pop(a, None)
            self.__dict__.update(before)
            raise
        except _nusvm.KernelBudgetError:
            need_mb = _round_up(plan["min_cache_bytes"] / 2**20)
            raise ValueError(
                f"cache_size={self.cache_size!r} MiB is too small for this training set: the whole Gram matrix "
                f"needs {plan['gram_bytes'] / 2**20:.1f} MiB and the kernel-row cache at least {need_mb:g} MiB "
                f"({_nusvm.MIN_CACHE_ROWS} rows of the largest class pair, {plan['max_pair']} samples); raise "
                f"cache_size to at least {need_mb:g}"
            ) from None
        except _nusvm.InfeasibleNuError:
            wsum = np.zeros(k)
            np.add.at(wsum, y_fit, w_fit)
            raise ValueError(
                f"nu={self.nu!r} is infeasible for the class sizes: classes {_label(classes[ci])} and "
                f"{_label(classes[cj])} "
                f"(weighted sizes {wsum[ci]:g} and {wsum[cj]:g}) allow at most nu = 2·min/sum = {max_nu:.6g}; "
                f"the largest feasible nu for this training set is {max_nu:.6g}"
            ) from None

        self.classes_ = classes
        self.class_weight_ = cw
        self._gamma = gamma
        self.shape_fit_ = X.shape
        self.support_ = keep_idx[result["support"]].astype(np.int32)
        if self.kernel == "precomputed":
            self.support_vectors_ = np.empty((0, 0), dtype=np.float64)
        else:
            self.support_vectors_ = X[self.support_]
        self.n_support_ = result["n_support"]
        self._dual_coef_ = result["dual_coef"]
        self._rho = result["rho"]
        self._intercept_ = -self._rho
        if k == 2:  # scikit-learn's convention: positive decision values mean classes_[1]
            self.dual_coef_ = -self._dual_coef_
            self.intercept_ = self._rho.copy()
        else:
            self.dual_coef_ = self._dual_coef_
            self.intercept_ = self._intercept_.copy()
        self.n_iter_ = result["n_iter"]
        self.fit_status_ = result["fit_status"]
        self.kernel_mode_ = result["kernel_mode"]
        if self.probability:
            self.probA_, self.probB_ = result["prob_a"], result["prob_b"]
        else:
            self.probA_ = self.probB_ = np.empty(0, dtype=np.float64)
        if self.fit_status_:
            warnings.warn(
                f"Solver terminated early (max_iter={self.max_iter}); the model is not optimal. Increase max_iter, "
                "or scale the features.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _warn_if_row_cache(self, plan: dict[str, Any]) -> None:
        """Say, before a long fit starts, that the budget sends it to the row cache and what budget would not."""
        pair_bytes = plan["pair_bytes"]
        if plan["kernel_mode"] != "cache" or not plan["fits"] or pair_bytes < _ROW_CACHE_WARN_BYTES:
            return
        resumable = "" if self.checkpoint is not None else (
            "; checkpoint=PATH (sertk run: -o classifier.checkpoint=DIR) keeps the fit as it goes, so that an "
            "interrupted one resumes where it stopped")
        warnings.warn(
            f"cache_size={self.cache_size!r} MiB cannot hold the largest class pair's kernel matrix "
            f"({pair_bytes / 2**20:.0f} MiB, {plan['max_pair']} samples), so this fit recomputes kernel rows from a "
            f"row cache, many times slower; cache_size={_round_up(pair_bytes / 2**20):g} or more holds one pair at "
            f"a time (docs/svm.md, 'Kernel values'){resumable}",
            RowCacheWarning,
            stacklevel=3,
        )

    @staticmethod
    def _sample_weight(sample_weight: Any, n: int) -> np.ndarray:
        if sample_weight is None:
            return np.ones(n, dtype=np.float64)
        if np.isscalar(sample_weight):
            sw = np.full(n, sample_weight, dtype=np.float64)
        else:
            try:
                sw = np.asarray(sample_weight, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"sample_weight must be numeric: {exc}") from None
        if sw.ndim != 1 or sw.shape[0] != n:
            raise ValueError(f"sample_weight.shape == {sw.shape}, expected {(n,)}!")
        if not np.all(np.isfinite(sw)):
            raise ValueError("sample_weight contains NaN or infinity")
        if np.any(sw < 0):
            raise ValueError("sample_weight must be non-negative (0 leaves a sample out)")
        if not np.any(sw > 0):
            raise ValueError("all sample weights are zero; at least two classes need samples of positive weight")
        return sw

    # -- predict ---------------------------------------------------------------------------------------------------
    def _validate_for_predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        self._check_params()
        X = _validate_data(self, X, reset=False)
        if self.kernel == "precomputed" and X.shape[1] != self.shape_fit_[0]:
            raise ValueError(
                f"X.shape[1] = {X.shape[1]} should be equal to {self.shape_fit_[0]}, the number of samples at "
                "training time"
            )
        return X

    def _model_args(self, X: np.ndarray) -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
        """The arguments ``_nusvm.decision_function`` and ``_nusvm.predict`` take for samples X."""
        if self.kernel == "precomputed":
            Xk = np.ascontiguousarray(X[:, self.support_])
            sv = np.empty((0, 0), dtype=np.float64)
        else:
            Xk = X
            sv = np.ascontiguousarray(self.support_vectors_, dtype=np.float64)
        args = (Xk, sv, np.ascontiguousarray(self.n_support_, dtype=np.int32),
                np.ascontiguousarray(self._dual_coef_, dtype=np.float64),
                np.ascontiguousarray(self._rho, dtype=np.float64))
        return args, {"kernel": self.kernel, "gamma": float(self._gamma), "n_threads": _resolve_n_jobs(self.n_jobs)}

    def _ovo_decision(self, X: np.ndarray) -> np.ndarray:
        args, kw = self._model_args(X)
        with _blas_threads(kw["n_threads"]):
            return _nusvm.decision_function(*args, **kw)

    def decision_function(self, X: Any) -> np.ndarray:
        """Decision values: (n_samples,) for two classes (> 0 means ``classes_[1]``), else (n_samples, n_classes)
        for ``"ovr"`` or (n_samples, n_classes (n_classes - 1) / 2) for ``"ovo"``."""
        X = self._validate_for_predict(X)
        dec = self._ovo_decision(X)
        k = len(self.classes_)
        if k == 2:
            return -dec.ravel()
        if self.decision_function_shape == "ovr":
            return _ovr_from_ovo(dec, k)
        return dec

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (n_samples,) by libsvm's one-vs-one vote (ties to the first class)."""
        if self.break_ties and self.decision_function_shape == "ovo":  # as scikit-learn: fit accepts it
            raise ValueError("break_ties must be False when decision_function_shape is 'ovo'")
        X = self._validate_for_predict(X)
        k = len(self.classes_)
        if self.break_ties and self.decision_function_shape == "ovr" and k > 2:
            idx = np.argmax(_ovr_from_ovo(self._ovo_decision(X), k), axis=1)
        else:  # the vote of the float64 decision values, most samples settled in float32 (docs/svm.md)
            args, kw = self._model_args(X)
            with _blas_threads(kw["n_threads"]):
                idx, _ = _nusvm.predict(*args, **kw)
        return self.classes_.take(np.asarray(idx, dtype=np.intp))

    def _check_proba(self) -> bool:
        if not self.probability:
            raise AttributeError("predict_proba is not available when probability=False")
        return True

    @available_if(_check_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes): Platt sigmoids per pair coupled by Wu, Lin & Weng's method 2.

        As in libsvm, ``argmax(predict_proba)`` need not equal :meth:`predict`.
        """
        X = self._validate_for_predict(X)
        if getattr(self, "probA_", np.empty(0)).size == 0:
            raise NotFittedError("predict_proba is not available: the model was fitted with probability=False")
        dec = self._ovo_decision(X)
        return _nusvm.proba(dec, len(self.classes_), self.probA_, self.probB_)

    @available_if(_check_proba)
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))

    @property
    def coef_(self) -> np.ndarray:
        """Primal weights (n_pairs, n_features) of the linear kernel; positive means the first class of a pair
        (for two classes: ``classes_[1]``, as ``dual_coef_``)."""
        check_is_fitted(self)
        if self.kernel != "linear":
            raise AttributeError("coef_ is only available when using a linear kernel")
        k = len(self.classes_)
        sv, dc, ns = self.support_vectors_, self._dual_coef_, self.n_support_
        start = np.concatenate([[0], np.cumsum(ns)])
        rows = []
        for i in range(k):
            for j in range(i + 1, k):
                si, sj = slice(start[i], start[i + 1]), slice(start[j], start[j + 1])
                rows.append(dc[j - 1, si] @ sv[si] + dc[i, sj] @ sv[sj])
        coef = np.vstack(rows)
        coef = -coef if k == 2 else coef
        coef.flags.writeable = False  # as scikit-learn's: it is derived, so writing to it would be lost silently
        return coef

    # -- persistence -----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` in sertk's non-pickle format (see :mod:`sertk.svm._io`)."""
        from ._io import save_model

        save_model(self, Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike) -> NuSVC:
        """Read a model written by :meth:`save`; no code is executed (no pickle)."""
        from ._io import load_model

        return load_model(Path(path), cls)

    # -- scikit-learn tags -----------------------------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.kernel == "precomputed"
        return tags

    def _more_tags(self) -> dict[str, Any]:  # pragma: no cover - scikit-learn < 1.6
        return {"pairwise": self.kernel == "precomputed"}


class _blas_threads:
    """Limit BLAS to one thread while our own threads run (no-op for a single thread)."""

    def __init__(self, n_threads: int) -> None:
        self.n_threads = n_threads
        self._limits = None

    def __enter__(self) -> None:
        if self.n_threads > 1:
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(limits=1, user_api="blas")

    def __exit__(self, *exc: object) -> None:
        if self._limits is not None:
            self._limits.restore_original_limits()
            self._limits = None


class _FitProgress:
    """The core's progress as a bar (sub-problems solved, kernel values, SMO iterations), where sertk.progress shows
    bars (the CLI, or a terminal) and only once a fit has run for ``_PROGRESS_DELAY_S``: a 100k fit takes minutes.

    Entering gives the callback for ``_nusvm.fit`` (None when bars are off, so the core is not even polled).
    """

    def __init__(self, total: int) -> None:
        self._total = total
        self._bar: Any = None
        self._done = 0

    def __enter__(self):
        from sertk import progress

        if not progress.enabled():
            return None
        self._bar = progress.bar(self._total, desc="ν-SVM fit", unit="sub-problem", delay=_PROGRESS_DELAY_S)
        return self._report

    def _report(self, now: dict[str, int]) -> None:
        bar = self._bar
        bar.set_postfix_str(f"{now['kernel_values']:.3g} kernel values, {now['iterations']:,} SMO iterations",
                            refresh=False)
        bar.update(now["subproblems_done"] - self._done)
        self._done = now["subproblems_done"]

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _Resume:
    """A fit's checkpoint (``NuSVC(checkpoint=)``, :mod:`sertk.svm._checkpoint`): the pairs an earlier fit
    solved and the solver states of those it left unfinished, given to the core; each pair this fit solves and
    each state its solvers keep, saved as the core reports them and once more when the fit ends, however it ends.
    Without a checkpoint it gives the core nothing and saves nothing."""

    def __init__(self, path: Path | None = None, print_: str = "", pairs: dict[str, Any] | None = None) -> None:
        self.path, self._print, self.pairs = path, print_, pairs
        self._solved: set[int] = set()
        self._saved: set[int] | None = None  # what the file holds, once this fit has written it
        self._new_state = False  # a state arrived that the file lacks

    @classmethod
    def open(cls, checkpoint: Any, X: np.ndarray, y: np.ndarray, w: np.ndarray, classes: np.ndarray,
             prob_perm: np.ndarray | None, counts: np.ndarray, params: dict[str, Any]) -> _Resume:
        if checkpoint is None:
            return cls()
        from . import _checkpoint

        path = Path(checkpoint)
        print_ = _checkpoint.fingerprint(X, y, w, classes, params, prob_perm)
        if path.is_dir():  # one file per training set and parameters: folds and sweeps share the folder
            path = path / f"nusvm-{print_}.npz"
        pairs = _checkpoint.load(path, print_, counts)
        resume = cls(path, print_, pairs)
        resume._solved = set(np.flatnonzero(pairs["done"]).tolist())
        going = sum(state is not None for state in pairs["states"])
        if resume._solved or going:
            logger.info("ν-SVM fit resumed from %s: %d of %d pairs solved, %d taken up where they stopped", path,
                        len(resume._solved), len(pairs["done"]), going)
        return resume

    def solved(self, new: list[int]) -> None:
        self._solved.update(new)
        self._save()

    def states(self, changed: dict[int, dict[str, np.ndarray] | None]) -> None:
        if self.pairs is None:
            return
        for p, state in changed.items():
            self.pairs["states"][p] = state
        self._new_state = self._new_state or any(state is not None for state in changed.values())
        self._save()

    def _save(self) -> None:
        from . import _checkpoint

        if self.path is not None and self.pairs is not None and (self._saved != self._solved or self._new_state):
            _checkpoint.save(self.path, self._print, self.pairs, sorted(self._solved))
            self._saved = set(self._solved)
            self._new_state = False

    def __enter__(self) -> _Resume:
        return self

    def __exit__(self, *exc: object) -> None:
        # after the core has returned (also when interrupted): every pair it flagged is complete
        if self.pairs is not None:
            self._solved.update(np.flatnonzero(self.pairs["done"]).tolist())
            self._save()
