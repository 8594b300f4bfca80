"""Built-in classifier plugin ``nusvm-tuned``: sertk's ν-SVM with ν and γ chosen by inner cross-validation.

:class:`TunedNuSVC` runs :class:`sklearn.model_selection.GridSearchCV` over :class:`sertk.svm.NuSVC` on the training
split it is given, and nothing else: every ν in ``nu`` times every multiplier in ``gamma_scale`` of the "scale"
gamma 1 / (n_features · X.var()) (computed once from the whole training X), scored on ``cv`` stratified, shuffled
inner folds (seeded by ``random_state``), then the best combination is refitted on the whole training split.
Combinations that fail (a ν infeasible for the class sizes of an inner training fold: NuSVC raises ``ValueError``)
score NaN and are skipped. Cost: ``len(nu) · len(gamma_scale) · cv`` fits plus one refit.

Honest limit: the inner folds are drawn over utterances, not speakers. Under a speaker-independent outer protocol
the outer test speakers are never seen, but every training speaker appears in both the inner training and the
inner validation folds, so the choice may favour parameters that fit speaker-dependent detail.

File format (``save`` / ``load``, no pickle): a ZIP archive, format ``sertk.nusvm-tuned`` version 1, holding
``tuned.json`` (constructor params, best params, best score, the cross-validation summary) and ``best.nusvm``, the
refitted :class:`~sertk.svm.NuSVC` in its own format (``docs/svm.md``). Written to a temporary sibling and renamed;
anything wrong on load is a :class:`~sertk.errors.ModelError` naming the file.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import FitFailedWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_X_y

from sertk import hookimpl
from sertk.errors import ConfigError, ModelError
from sertk.svm import NuSVC

logger = logging.getLogger(__name__)

FORMAT = "sertk.nusvm-tuned"
FORMAT_VERSION = 1
HEADER = "tuned.json"
INNER = "best.nusvm"

DEFAULT_NU = (0.05, 0.1, 0.2, 0.3, 0.5)
DEFAULT_GAMMA_SCALE = (0.25, 0.5, 1.0, 2.0, 4.0)
SCORINGS = {"unweighted_accuracy": "balanced_accuracy", "accuracy": "accuracy"}
_ROW_KEYS = ("nu", "gamma_scale", "gamma", "mean_score", "std_score", "rank")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _grid(name: str, value: Any, low_open: float, high: float | None) -> list[float]:
    """An option that lists numbers: a list/tuple (or one number) of distinct finite values in (low, high]."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    bound = f"in ({low_open:g}, {high:g}]" if high is not None else f"> {low_open:g}"
    if not values:
        raise ConfigError(f"option {name!r} is empty; give a list of numbers {bound}, e.g. {name}=[0.1, 0.2]")
    for v in values:
        if not _is_real(v) or not math.isfinite(v) or v <= low_open or (high is not None and v > high):
            raise ConfigError(f"option {name!r} must list numbers {bound}, got {value!r} (bad value {v!r})")
    floats = [float(v) for v in values]
    if len(set(floats)) != len(floats):
        raise ConfigError(f"option {name!r} lists a value twice: {value!r}")
    return floats


def _check_options(est: TunedNuSVC) -> tuple[list[float], list[float]]:
    """The ν and γ-scale grids, or a ConfigError that names this classifier, the option and what it allows."""
    try:
        return _options(est)
    except ConfigError as exc:
        raise ConfigError(f"classifier 'nusvm-tuned': {exc}") from None


def _options(est: TunedNuSVC) -> tuple[list[float], list[float]]:
    nus = _grid("nu", est.nu, 0.0, 1.0)
    scales = _grid("gamma_scale", est.gamma_scale, 0.0, None)
    if not _is_int(est.cv) or est.cv < 2:
        raise ConfigError(f"option 'cv' (inner folds) must be an integer >= 2, got {est.cv!r}")
    if est.scoring not in SCORINGS:
        raise ConfigError(f"option 'scoring' must be one of {', '.join(map(repr, SCORINGS))}, got {est.scoring!r}")
    rs: Any = est.random_state
    if not (rs is None or (_is_int(rs) and rs >= 0) or isinstance(rs, np.random.RandomState)):
        raise ConfigError(f"option 'random_state' must be None or an integer >= 0, got {rs!r}")
    if not (est.n_jobs is None or (_is_int(est.n_jobs) and est.n_jobs != 0)):
        raise ConfigError(f"option 'n_jobs' must be None or a non-zero integer (-1 = all CPUs), got {est.n_jobs!r}")
    if not _is_real(est.cache_size) or not math.isfinite(est.cache_size) or est.cache_size <= 0:
        raise ConfigError(f"option 'cache_size' must be a number of MiB > 0, got {est.cache_size!r}")
    return nus, scales


def scale_gamma(X: np.ndarray) -> float:
    """NuSVC's ``gamma="scale"``: 1 / (n_features · X.var()), or 1 when X is constant."""
    var = float(X.var())
    return 1.0 / (X.shape[1] * var) if var != 0 else 1.0


def _largest_feasible_nu(y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The largest ν feasible for every pair of classes in every inner training fold: ν (n_i + n_j) / 2 <= min."""
    best = 1.0
    for train, _ in folds:
        _, counts = np.unique(y[train], return_counts=True)
        counts = np.sort(counts)
        if len(counts) >= 2:  # the tightest pair is the smallest class with the largest one
            best = min(best, 2.0 * counts[0] / (counts[0] + counts[-1]))
    return best


class TunedNuSVC(ClassifierMixin, BaseEstimator):
    """ν-SVM whose ν and RBF γ are chosen by stratified inner cross-validation on the training split.

    Parameters
    ----------
    nu : list of float, default=[0.05, 0.1, 0.2, 0.3, 0.5]
        Candidate ν values, each in (0, 1].  Values infeasible for the class sizes of an inner training fold are
        skipped (their fits fail and score NaN).
    gamma_scale : list of float, default=[0.25, 0.5, 1.0, 2.0, 4.0]
        Candidate multipliers (> 0) of the "scale" gamma 1 / (n_features · X.var()) of the training X.
    cv : int, default=5
        Inner folds (stratified, shuffled with ``random_state``).
    scoring : {"unweighted_accuracy", "accuracy"}, default="unweighted_accuracy"
        Inner score: unweighted accuracy (balanced accuracy, the SER convention) or plain accuracy.
    random_state : int or None, default=None
        Seeds the inner folds (and is passed to NuSVC); the host passes the run's seed.
    n_jobs : int or None, default=None
        Threads of each NuSVC fit (not parallel grid points).
    cache_size : float, default=1024
        NuSVC's kernel memory budget in MiB.

    Cost: ``len(nu) · len(gamma_scale) · cv`` NuSVC fits plus one refit.  Limit: the inner folds are over
    utterances, so with a speaker-independent outer protocol every training speaker is in both the inner training
    and validation folds; the choice may favour speaker-dependent fit (the outer test speakers are never seen).

    Attributes
    ----------
    best_params_ : dict
        ``{"nu": float, "gamma_scale": float, "gamma": float}``.
    best_score_ : float
        Mean inner validation score of the chosen combination.
    cv_results_ : list of dict
        One row per combination, in grid order (ν outer, gamma_scale inner): ``nu``, ``gamma_scale``, ``gamma``,
        ``mean_score``, ``std_score`` (None when its fits failed), ``rank`` (GridSearchCV's).
    best_estimator_ : sertk.svm.NuSVC
        Refitted on the whole training split with the chosen parameters.
    classes_, n_features_in_
    """

    name = "nusvm-tuned"
    description = "ν-SVM (nusvm) with ν and γ chosen by stratified inner cross-validation on the training split"

    def __init__(
        self,
        *,
        nu: list[float] | tuple[float, ...] | float = list(DEFAULT_NU),
        gamma_scale: list[float] | tuple[float, ...] | float = list(DEFAULT_GAMMA_SCALE),
        cv: int = 5,
        scoring: str = "unweighted_accuracy",
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
        cache_size: float = 1024,
    ) -> None:
        self.nu = nu
        self.gamma_scale = gamma_scale
        self.cv = cv
        self.scoring = scoring
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.cache_size = cache_size
        _check_options(self)  # fail early (the host builds the classifier before featurizing); values kept as given

    # -- fit -------------------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> TunedNuSVC:
        nus, scales = _check_options(self)
        X, y = check_X_y(X, y, dtype=np.float64, order="C")
        check_classification_targets(y)
        labels, counts = np.unique(y, return_counts=True)
        if len(labels) < 2:
            raise ValueError(f"nusvm-tuned needs at least two classes, got {len(labels)}")
        if counts.min() < self.cv:
            small = labels[int(np.argmin(counts))].item()
            raise ValueError(f"class {small!r} has only {int(counts.min())} training samples, fewer than cv={self.cv} "
                             f"inner folds; lower the option 'cv'")
        base = scale_gamma(X)
        gammas = [s * base for s in scales]
        combos = [(nu, s, g) for nu in nus for s, g in zip(scales, gammas)]
        folds = list(StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.random_state).split(X, y))
        estimator = NuSVC(cache_size=self.cache_size, n_jobs=self.n_jobs, random_state=self.random_state)
        search = GridSearchCV(estimator, [{"nu": [nu], "gamma": [g]} for nu, _, g in combos],
                              scoring=SCORINGS[self.scoring], cv=folds, refit=True, error_score=np.nan)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FitFailedWarning)  # reported below, per combination
                warnings.filterwarnings("ignore", "One or more of the test scores are non-finite", UserWarning)
                search.fit(X, y)
        except ValueError as exc:
            if "fits failed" not in str(exc):
                raise
            limit = _largest_feasible_nu(y, folds)
            bad = [nu for nu in nus if nu > limit]
            reason = (f"nu {bad} {'is' if len(bad) == 1 else 'are'} infeasible for the class sizes of the inner "
                      f"training folds (the largest feasible nu is {limit:.4g})" if bad else
                      f"the fits raised: {str(exc).strip().splitlines()[-1]}")
            raise ValueError(f"nusvm-tuned: every (nu, gamma_scale) combination failed in the {self.cv}-fold inner "
                             f"cross-validation: {reason}; try option 'nu' with values at most {limit:.4g} "
                             f"(e.g. nu=[{min(0.1, limit / 2):.3g}])") from exc

        res = search.cv_results_
        rows: list[dict[str, Any]] = []
        for i, (nu, s, g) in enumerate(combos):
            mean, std = float(res["mean_test_score"][i]), float(res["std_test_score"][i])
            ok = math.isfinite(mean)
            rows.append({"nu": nu, "gamma_scale": s, "gamma": g, "mean_score": mean if ok else None,
                         "std_score": std if ok else None, "rank": int(res["rank_test_score"][i])})
        skipped = sorted({r["nu"] for r in rows if r["mean_score"] is None})
        if skipped:
            logger.warning("nusvm-tuned: skipped nu %s: infeasible (or failing) in some inner training fold", skipped)
        best = int(search.best_index_)
        self.best_params_ = {"nu": combos[best][0], "gamma_scale": combos[best][1], "gamma": combos[best][2]}
        self.best_score_ = float(search.best_score_)
        self.cv_results_ = rows
        self.best_estimator_ = search.best_estimator_
        self.classes_ = self.best_estimator_.classes_
        self.n_features_in_ = int(self.best_estimator_.n_features_in_)
        logger.info("nusvm-tuned: chose nu=%g, gamma_scale=%g (gamma=%.6g), inner %d-fold %s %.4f, %d combinations",
                    self.best_params_["nu"], self.best_params_["gamma_scale"], self.best_params_["gamma"], self.cv,
                    self.scoring, self.best_score_, len(combos))
        return self

    # -- delegation ------------------------------------------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.decision_function(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        check_is_fitted(self, "best_estimator_")
        return float(self.best_estimator_.score(X, y, sample_weight=sample_weight))

    # -- persistence -----------------------------------------------------------------------------------------------
    def _params_json(self) -> dict[str, Any]:
        params = self.get_params(deep=False)
        for key in ("nu", "gamma_scale"):
            value = params[key]
            params[key] = [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)
        if not (params["random_state"] is None or _is_int(params["random_state"])):
            params["random_state"] = None  # a RandomState instance is not stored
        for key in ("cv", "n_jobs", "random_state"):
            if params[key] is not None:
                params[key] = int(params[key])
        params["cache_size"] = float(params["cache_size"])
        return params

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path``: a ZIP with ``tuned.json`` and the best NuSVC's own file."""
        from sertk import __version__
        from sertk.atomic import atomic_open

        try:
            check_is_fitted(self, "best_estimator_")
        except NotFittedError:
            raise ModelError(f"cannot save an unfitted 'nusvm-tuned' classifier to {path}: fit it first") from None
        header = {"format": FORMAT, "format_version": FORMAT_VERSION, "created_by": f"sertk {__version__}",
                  "estimator": type(self).__name__, "params": self._params_json(),
                  "best_params": dict(self.best_params_), "best_score": self.best_score_,
                  "cv_results": self.cv_results_}
        with tempfile.TemporaryDirectory() as tmp:
            inner = Path(tmp) / INNER
            self.best_estimator_.save(inner)
            inner_bytes = inner.read_bytes()
        with atomic_open(path, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(HEADER, json.dumps(header, indent=2, allow_nan=False) + "\n")
            zf.writestr(INNER, inner_bytes)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TunedNuSVC:
        """Read a model written by :meth:`save`; every problem is a :class:`ModelError` naming ``path``."""
        path = Path(path)
        redo = "re-run `sertk run` to train and save it again"
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist; point at the `model` folder of a `sertk run`")
        try:
            with zipfile.ZipFile(path, "r") as zf:
                header = json.loads(zf.read(HEADER).decode("utf-8"))
                inner_bytes = zf.read(INNER)
        except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError, OSError) as exc:
            raise ModelError(f"{path} is not a 'nusvm-tuned' model file ({type(exc).__name__}: {exc}); "
                             f"{redo}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            found = header.get("format") if isinstance(header, dict) else None
            raise ModelError(f"{path} is not a 'nusvm-tuned' model file (format {found!r}); {redo}")
        version: Any = header.get("format_version")
        if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
            raise ModelError(f"{path} has format version {version!r}; this sertk reads 1..{FORMAT_VERSION}")
        with tempfile.TemporaryDirectory() as tmp:
            inner = Path(tmp) / INNER
            inner.write_bytes(inner_bytes)
            try:
                best = NuSVC.load(inner)
            except ModelError as exc:
                raise ModelError(f"{path}: its {INNER} is damaged ({exc}); {redo}") from None
        try:
            model = cls(**header["params"])
            model.best_params_, model.best_score_, model.cv_results_ = _check_fitted(header, best)
        except (KeyError, TypeError, ValueError) as exc:  # ConfigError is a ValueError
            raise ModelError(f"{path}: inconsistent 'nusvm-tuned' model file ({type(exc).__name__}: {exc}); "
                             f"{redo}") from None
        model.best_estimator_ = best
        model.classes_ = best.classes_
        model.n_features_in_ = int(best.n_features_in_)
        return model


def _finite(value: Any, what: str) -> float:
    if not _is_real(value) or not math.isfinite(value):
        raise ValueError(f"{what} is {value!r}, not a finite number")
    return float(value)


def _check_fitted(header: dict[str, Any], best: NuSVC) -> tuple[dict[str, float], float, list[dict[str, Any]]]:
    bp = header["best_params"]
    if not isinstance(bp, dict) or set(bp) != {"nu", "gamma_scale", "gamma"}:
        raise ValueError(f"best_params is {bp!r}")
    best_params = {key: _finite(bp[key], f"best_params[{key!r}]") for key in ("nu", "gamma_scale", "gamma")}
    if best_params["nu"] != float(best.nu) or best_params["gamma"] != float(best._gamma):
        raise ValueError(f"best_params {best_params} do not match the stored NuSVC (nu={best.nu}, gamma={best._gamma})")
    score = _finite(header["best_score"], "best_score")
    rows = header["cv_results"]
    if not isinstance(rows, list) or not rows:
        raise ValueError("cv_results is not a non-empty list")
    out = []
    for row in rows:
        if not isinstance(row, dict) or set(row) != set(_ROW_KEYS):
            raise ValueError(f"cv_results row {row!r} does not have the keys {', '.join(_ROW_KEYS)}")
        clean: dict[str, Any] = {k: _finite(row[k], f"cv_results {k}") for k in ("nu", "gamma_scale", "gamma")}
        for k in ("mean_score", "std_score"):
            clean[k] = None if row[k] is None else _finite(row[k], f"cv_results {k}")
        if not _is_int(row["rank"]) or row["rank"] < 1:
            raise ValueError(f"cv_results rank is {row['rank']!r}")
        clean["rank"] = int(row["rank"])
        out.append(clean)
    return best_params, score, out


@hookimpl
def sertk_register_classifiers(register) -> None:
    register(TunedNuSVC)
