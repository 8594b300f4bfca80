"""scikit-learn classifiers as reference plugins: libsvm's ν-SVC and C-SVC, and logistic regression.

They are the yardstick our own ν-SVM (``nusvm``) is checked against, and honest baselines in their own right.
``sklearn-nusvc`` defaults to the paper's ν = 0.1 (scikit-learn's own default is 0.5). Note that scikit-learn's
NuSVC accepts ``class_weight`` but its solver ignores it (scikit-learn issue #30332).

All three can be saved for ``sertk predict`` without pickle: ``save(path)`` writes a `skops <https://skops.rtfd.io>`_
file (a ZIP archive: ``schema.json``, NumPy arrays, plus our note ``sertk-sklearn.json`` with the versions it was
written with), and ``load(path)`` reads it back trusting exactly one type beyond skops' defaults (builtins, NumPy,
SciPy, scikit-learn's own estimators): the class itself. A fitted model of each class holds nothing else that skops
does not already trust (checked with ``skops.io.get_untrusted_types`` in ``tests/test_sklearn_reference.py``).
The loaded object must be an instance of that class, hold no callable attribute and nothing that shadows a class
attribute, and have the array shapes and dtypes libsvm relies on (a crafted file must not make libsvm's C code read
out of bounds). Every failure is a :class:`~sertk.errors.ModelError` naming the file.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC, NuSVC

from sertk import hookimpl
from sertk.errors import ModelError

logger = logging.getLogger(__name__)

# scikit-learn 1.9 deprecated `probability` (default "deprecated"); keep whatever the installed version uses
_PROBABILITY_DEFAULT = inspect.signature(NuSVC.__init__).parameters["probability"].default

NOTE = "sertk-sklearn.json"  # our side note inside the skops archive; skops ignores members it does not list
NOTE_FORMAT = "sertk-sklearn/1"
_LIBSVM_KERNELS = ("linear", "poly", "rbf", "sigmoid")


def _type_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class _SkopsPersistence:
    """``save(path)`` / classmethod ``load(path)`` through ``skops.io``, trusting only the class itself."""

    name: str

    @classmethod
    def trusted_types(cls) -> list[str]:
        """The types trusted on load beyond skops' defaults: what a fitted model of ``cls`` holds that skops
        does not trust by itself (only ``cls``; everything else in it is NumPy arrays and builtins)."""
        return [_type_path(cls)]

    def check_params(self) -> None:
        """scikit-learn's own parameter constraints, checked without fitting (sertk checks options before work)."""
        self._validate_params()  # type: ignore[attr-defined]  # BaseEstimator's, on the scikit-learn class

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` (temporary sibling, then rename: never half a file)."""
        import sklearn
        import skops
        import skops.io as sio
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        from sertk import __version__
        from sertk.atomic import atomic_open

        try:
            check_is_fitted(self)
        except NotFittedError:
            raise ModelError(f"cannot save an unfitted {self.name!r} classifier to {path}: fit it first") from None
        note = {"format": NOTE_FORMAT, "estimator": _type_path(type(self)), "sklearn_version": sklearn.__version__,
                "skops_version": skops.__version__, "numpy_version": np.__version__, "sertk_version": __version__}
        with atomic_open(path, "w+b") as fh:
            sio.dump(self, fh)
            with zipfile.ZipFile(fh, "a") as zf:
                zf.writestr(NOTE, json.dumps(note, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Any:
        """Read a model written by :meth:`save`; nothing but skops' trusted types and ``cls`` is ever built."""
        import sklearn
        import skops.io as sio
        from skops.io.exceptions import UntrustedTypesFoundException

        path = Path(path)
        expected = _type_path(cls)
        redo = "re-run `sertk run` to train and save the model again"
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist; point at the `model` folder of a `sertk run`, or "
                             f"{redo}")
        note: dict[str, Any] = {}
        try:
            with zipfile.ZipFile(path, "r") as zf:
                schema = json.loads(zf.read("schema.json").decode("utf-8"))
                if NOTE in zf.namelist():
                    note = json.loads(zf.read(NOTE).decode("utf-8"))
        except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError, OSError) as exc:
            raise ModelError(f"{path} is not a scikit-learn model file written by sertk (not a skops archive: "
                             f"{exc}); {redo}") from None
        found = f"{schema.get('__module__')}.{schema.get('__class__')}" if isinstance(schema, dict) else "?"
        if found != expected:
            raise ModelError(f"{path} holds a {found}, not a {expected} ({cls.name!r}); load it with the "
                             f"classifier that saved it, or {redo}")
        then = note.get("sklearn_version") if isinstance(note, dict) else None
        now = sklearn.__version__
        try:
            model = sio.load(path, trusted=cls.trusted_types())
        except UntrustedTypesFoundException as exc:
            raise ModelError(f"{path} holds types sertk does not trust, so it was not loaded ({exc}); only load "
                             f"models that `sertk run` saved, or {redo}") from None
        except Exception as exc:  # anything a file from another scikit-learn/skops may trip over
            written = f"scikit-learn {then}" if then else "an unknown scikit-learn version"
            raise ModelError(f"{path} could not be loaded ({type(exc).__name__}: {exc}); it was written with "
                             f"{written} and this is scikit-learn {now}: install the version it was written with, "
                             f"or {redo}") from exc
        if type(model) is not cls:
            raise ModelError(f"{path} holds a {_type_path(type(model))}, not a {expected}; {redo}")
        problem = _attribute_problem(model)
        if problem is None:
            try:
                model._check_fitted_state()
            except (_Bad, AttributeError, TypeError, ValueError) as exc:
                problem = str(exc) if isinstance(exc, _Bad) else f"{type(exc).__name__}: {exc}"
        if problem:
            raise ModelError(f"{path} is damaged or was not written by sertk ({problem}); not loaded; {redo}")
        if then != now:
            logger.warning("%s was written with scikit-learn %s and is loaded with %s; its predictions may differ: "
                           "re-run `sertk run` with this installation to be sure", path, then or "(unknown version)",
                           now)
        return model

    def _check_fitted_state(self) -> None:
        """Raise :class:`_Bad` when the loaded attributes are not what predicting with this class relies on."""
        raise NotImplementedError


class _Bad(Exception):
    """A loaded model's attributes are inconsistent; the message says which."""


def _attribute_problem(model: Any) -> str | None:
    """A loaded estimator's instance attributes must be data: nothing callable, nothing hiding a class attribute
    (``_impl``, ``predict`` …)."""
    for key, value in vars(model).items():
        if callable(value):
            return f"attribute {key!r} is callable ({type(value).__name__})"
        if hasattr(type(model), key):
            return f"attribute {key!r} shadows the class's own"
    return None


def _array(model: Any, key: str, shape: tuple[int | None, ...], kinds: str, dtype: Any = None) -> np.ndarray:
    """``getattr(model, key)`` if it is an ndarray of that shape (``None``: any length) and kind, else :class:`_Bad`."""
    value = getattr(model, key, None)
    if (not isinstance(value, np.ndarray) or value.dtype.kind not in kinds
            or (dtype is not None and value.dtype != dtype) or value.ndim != len(shape)
            or any(n is not None and n != m for n, m in zip(shape, value.shape))):
        dims = ", ".join("n" if n is None else str(n) for n in shape) + ("," if len(shape) == 1 else "")
        want = f"{np.dtype(dtype) if dtype is not None else 'kind ' + repr(kinds)} ({dims})"
        got = f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise _Bad(f"{key} is {got}, expected {want}")
    return value


def _check_classes(model: Any) -> tuple[int, int]:
    """Number of classes and of features."""
    classes = getattr(model, "classes_", None)
    if not (isinstance(classes, np.ndarray) and classes.dtype == object and classes.ndim == 1
            and all(isinstance(c, str) for c in classes)):
        classes = _array(model, "classes_", (None,), "biufU")
    if len(classes) < 2:
        raise _Bad(f"classes_ holds {len(classes)} class(es)")
    n_features = getattr(model, "n_features_in_", None)
    if not isinstance(n_features, (int, np.integer)) or isinstance(n_features, bool) or n_features < 1:
        raise _Bad(f"n_features_in_ is {n_features!r}")
    return len(classes), int(n_features)


class _LibSVMPersistence(_SkopsPersistence):
    """Also checks the shapes and dtypes libsvm's C code indexes with before it ever runs."""

    def _check_fitted_state(self) -> None:
        model: Any = self
        k, d = _check_classes(model)
        pairs = k * (k - 1) // 2
        kernel = getattr(model, "kernel", None)
        if not isinstance(kernel, str) or kernel not in _LIBSVM_KERNELS:
            raise _Bad(f"kernel is {kernel!r}, not one of {', '.join(_LIBSVM_KERNELS)}")
        if getattr(model, "_sparse", None) is not False:
            raise _Bad("the model claims sparse training data")
        sv = _array(model, "support_vectors_", (None, d), "f", np.float64)
        n_sv = sv.shape[0]
        if not sv.flags.c_contiguous:
            raise _Bad("support_vectors_ is not C-contiguous")
        n_support = _array(model, "_n_support", (k,), "i", np.int32)
        if (n_support < 0).any() or int(n_support.sum()) != n_sv:
            raise _Bad(f"_n_support {n_support.tolist()} does not add up to {n_sv} support vectors")
        shape_fit = getattr(model, "shape_fit_", None)
        if not (isinstance(shape_fit, tuple) and len(shape_fit) == 2
                and all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape_fit)):
            raise _Bad(f"shape_fit_ is {shape_fit!r}")
        support = _array(model, "support_", (n_sv,), "i", np.int32)
        if n_sv and (support.min() < 0 or support.max() >= shape_fit[0]):
            raise _Bad(f"support_ does not index the {shape_fit[0]} training rows")
        for key, shape in (("_dual_coef_", (k - 1, n_sv)), ("dual_coef_", (k - 1, n_sv)), ("_intercept_", (pairs,)),
                           ("intercept_", (pairs,)), ("class_weight_", (k,))):
            _array(model, key, shape, "f", np.float64)
        for key in ("_probA", "_probB"):
            if _array(model, key, (None,), "f", np.float64).shape[0] not in (0, pairs):
                raise _Bad(f"{key} has neither 0 nor {pairs} entries")
        gamma = getattr(model, "_gamma", None)
        if not isinstance(gamma, (float, np.floating)) or not np.isfinite(gamma):
            raise _Bad(f"_gamma is {gamma!r}")
        degree = getattr(model, "degree", None)
        if not isinstance(degree, (int, np.integer)) or isinstance(degree, bool) or degree < 0:
            raise _Bad(f"degree is {degree!r}")


class SklearnNuSVC(_LibSVMPersistence, NuSVC):
    """scikit-learn's NuSVC (libsvm), with the paper's ν = 0.1 as the default."""

    name = "sklearn-nusvc"
    description = "scikit-learn NuSVC (libsvm ν-SVC), default nu=0.1, RBF kernel"

    def __init__(self, *, nu=0.1, kernel="rbf", degree=3, gamma="scale", coef0=0.0, shrinking=True,
                 probability=_PROBABILITY_DEFAULT, tol=1e-3, cache_size=200, class_weight=None, verbose=False,
                 max_iter=-1,
                 decision_function_shape="ovr", break_ties=False, random_state=None):
        super().__init__(nu=nu, kernel=kernel, degree=degree, gamma=gamma, coef0=coef0, shrinking=shrinking,
                         probability=probability, tol=tol, cache_size=cache_size, class_weight=class_weight,
                         verbose=verbose, max_iter=max_iter, decision_function_shape=decision_function_shape,
                         break_ties=break_ties, random_state=random_state)


class SklearnSVC(_LibSVMPersistence, SVC):
    """scikit-learn's C-SVC (libsvm)."""

    name = "sklearn-svc"
    description = "scikit-learn SVC (libsvm C-SVC), RBF kernel"


class SklearnLogisticRegression(_SkopsPersistence, LogisticRegression):
    """Multinomial logistic regression: a linear baseline."""

    name = "logreg"
    description = "scikit-learn LogisticRegression (linear baseline)"

    def __init__(self, *, C=1.0, max_iter=2000, class_weight=None, tol=1e-4, random_state=None):
        super().__init__(C=C, max_iter=max_iter, class_weight=class_weight, tol=tol, random_state=random_state)

    def _check_fitted_state(self) -> None:
        k, d = _check_classes(self)
        rows = 1 if k == 2 else k
        _array(self, "coef_", (rows, d), "f")
        _array(self, "intercept_", (rows,), "f")


@hookimpl
def sertk_register_classifiers(register):
    register(SklearnNuSVC)
    register(SklearnSVC)
    register(SklearnLogisticRegression)
