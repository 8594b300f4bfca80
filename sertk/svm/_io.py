"""Save and load a fitted :class:`~sertk.svm.NuSVC` without pickle.

File format ``sertk.nusvm``, version 1: a ZIP archive (any file name; ``.nusvm`` is customary) holding

``header.json``
    UTF-8 JSON object::

        {"format": "sertk.nusvm", "format_version": 1, "created_by": "sertk <version>",
         "estimator": "<class name>",
         "params": {...},                 # get_params(); class_weight as [[label, weight], ...]
         "fitted": {"n_features_in": int, "feature_names_in": [str, ...] | null, "gamma": float,
                    "fit_status": int, "shape_fit": [int, ...], "kernel_mode": "gram" | "cache"},
         "arrays": {"<name>": {"dtype": "<numpy dtype str>", "shape": [int, ...]}, ...}}

``arrays/<name>.npy``
    One NumPy ``.npy`` file per array, written and read with ``allow_pickle=False``:
    ``classes`` (numeric, bool or unicode), ``support`` (int32), ``support_vectors`` (float64, (n_SV, d) or
    (0, 0) for a precomputed kernel), ``n_support`` (int32), ``dual_coef`` (float64, (k-1, n_SV), libsvm's sign
    convention), ``rho`` (float64, pairs), ``n_iter`` (int32), ``class_weight`` (float64), ``prob_a`` /
    ``prob_b`` (float64, empty without probability).

A reader rejects other formats, newer versions and inconsistent shapes with :class:`sertk.errors.ModelError`.
The file is written to a temporary sibling and moved into place, so a reader never sees half of one.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from sertk.atomic import atomic_open
from sertk.errors import ModelError

FORMAT = "sertk.nusvm"
FORMAT_VERSION = 1

_ARRAYS = ("classes", "support", "support_vectors", "n_support", "dual_coef", "rho", "n_iter", "class_weight",
           "prob_a", "prob_b")


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ModelError(f"cannot store {value!r} ({type(value).__name__}) in a model file")


def _params_to_json(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in params.items():
        if key == "class_weight" and isinstance(value, dict):
            out[key] = [[_json_scalar(k), float(v)] for k, v in value.items()]
        elif key == "checkpoint" and value is not None:
            out[key] = os.fspath(value)
        elif key == "random_state" and not (value is None or isinstance(value, (int, np.integer))):
            out[key] = None
            notes.append(f"random_state {type(value).__name__} not stored; saved as None")
        else:
            out[key] = _json_scalar(value)
    return out, notes


def _params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    if isinstance(out.get("class_weight"), list):
        out["class_weight"] = {k: v for k, v in out["class_weight"]}
    return out


def _classes_array(classes: np.ndarray) -> np.ndarray:
    if classes.dtype.kind in "biufU":
        return classes
    if classes.dtype == object and all(isinstance(c, str) for c in classes):
        return classes.astype(str)
    raise ModelError(f"cannot store class labels of dtype {classes.dtype} (only numbers, booleans and strings)")


def save_model(model: Any, path: Path) -> None:
    """Write a fitted model (a :class:`~sertk.svm.NuSVC`) to ``path``."""
    from sklearn.utils.validation import check_is_fitted

    from sertk import __version__

    check_is_fitted(model)
    arrays = {
        "classes": _classes_array(np.asarray(model.classes_)),
        "support": np.asarray(model.support_, dtype=np.int32),
        "support_vectors": np.asarray(model.support_vectors_, dtype=np.float64),
        "n_support": np.asarray(model.n_support_, dtype=np.int32),
        "dual_coef": np.asarray(model._dual_coef_, dtype=np.float64),
        "rho": np.asarray(model._rho, dtype=np.float64),
        "n_iter": np.asarray(model.n_iter_, dtype=np.int32),
        "class_weight": np.asarray(model.class_weight_, dtype=np.float64),
        "prob_a": np.asarray(model.probA_, dtype=np.float64),
        "prob_b": np.asarray(model.probB_, dtype=np.float64),
    }
    params, notes = _params_to_json(model.get_params(deep=False))
    names = getattr(model, "feature_names_in_", None)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_by": f"sertk {__version__}",
        "estimator": type(model).__name__,
        "params": params,
        "notes": notes,
        "fitted": {
            "n_features_in": int(model.n_features_in_),
            "feature_names_in": None if names is None else [str(n) for n in names],
            "gamma": float(model._gamma),
            "fit_status": int(model.fit_status_),
            "shape_fit": [int(s) for s in model.shape_fit_],
            "kernel_mode": str(getattr(model, "kernel_mode_", "gram")),
        },
        "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in arrays.items()},
    }
    with atomic_open(path, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("header.json", json.dumps(header, indent=2, sort_keys=True))
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
            zf.writestr(f"arrays/{name}.npy", buf.getvalue())


def load_model(path: Path, cls: type) -> Any:
    """Read a model written by :func:`save_model` into a new instance of ``cls``."""
    try:
        zf = zipfile.ZipFile(path, "r")
    except FileNotFoundError:
        raise ModelError(f"model file {path} does not exist") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{path} is not a sertk ν-SVM model file: {exc}") from None
    with zf:
        try:
            header = json.loads(zf.read("header.json").decode("utf-8"))
        except KeyError:
            raise ModelError(f"{path} is not a sertk ν-SVM model file: no header.json") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: header.json is not valid JSON: {exc}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ModelError(f"{path} is not a sertk ν-SVM model file (format {header.get('format')!r})")
        version = header.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            raise ModelError(f"{path} has format version {version!r}; this sertk reads versions 1..{FORMAT_VERSION}")
        arrays: dict[str, np.ndarray] = {}
        for name in _ARRAYS:
            try:
                raw = zf.read(f"arrays/{name}.npy")
            except KeyError:
                raise ModelError(f"{path}: array {name!r} is missing") from None
            try:
                a = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
            except ValueError as exc:
                raise ModelError(f"{path}: array {name!r} cannot be read: {exc}") from None
            spec = header.get("arrays", {}).get(name, {})
            if spec and (a.dtype.str != spec.get("dtype") or list(a.shape) != spec.get("shape")):
                raise ModelError(f"{path}: array {name!r} has {a.dtype.str} {list(a.shape)}, header says {spec}")
            arrays[name] = a

    try:
        model = cls(**_params_from_json(header["params"]))
        fitted = header["fitted"]
        _check_consistent(arrays, fitted)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: inconsistent model file: {exc}") from None
    k = arrays["classes"].shape[0]
    model.classes_ = arrays["classes"]
    model.class_weight_ = arrays["class_weight"]
    model.support_ = arrays["support"]
    model.support_vectors_ = arrays["support_vectors"]
    model.n_support_ = arrays["n_support"]
    model._dual_coef_ = arrays["dual_coef"]
    model._rho = arrays["rho"]
    model._intercept_ = -model._rho
    model.dual_coef_ = -model._dual_coef_ if k == 2 else model._dual_coef_
    model.intercept_ = model._rho.copy() if k == 2 else model._intercept_.copy()
    model.n_iter_ = arrays["n_iter"]
    model.probA_ = arrays["prob_a"]
    model.probB_ = arrays["prob_b"]
    model._gamma = float(fitted["gamma"])
    model.fit_status_ = int(fitted["fit_status"])
    model.shape_fit_ = tuple(fitted["shape_fit"])
    model.kernel_mode_ = str(fitted.get("kernel_mode", "gram"))
    model.n_features_in_ = int(fitted["n_features_in"])
    if fitted.get("feature_names_in") is not None:
        model.feature_names_in_ = np.asarray(fitted["feature_names_in"], dtype=object)
    return model


def _check_consistent(a: dict[str, np.ndarray], fitted: dict[str, Any]) -> None:
    k = a["classes"].shape[0]
    pairs = k * (k - 1) // 2
    nsv = a["support"].shape[0]
    if k < 2 or a["classes"].ndim != 1:
        raise ValueError("need at least two classes")
    if a["n_support"].shape != (k,) or int(a["n_support"].sum()) != nsv:
        raise ValueError("n_support does not match the classes and support vectors")
    if a["dual_coef"].shape != (k - 1, nsv):
        raise ValueError(f"dual_coef has shape {a['dual_coef'].shape}, expected {(k - 1, nsv)}")
    for name in ("rho", "n_iter"):
        if a[name].shape != (pairs,):
            raise ValueError(f"{name} has shape {a[name].shape}, expected {(pairs,)}")
    for name in ("prob_a", "prob_b"):
        if a[name].shape not in ((0,), (pairs,)):
            raise ValueError(f"{name} has shape {a[name].shape}")
    sv = a["support_vectors"]
    d = int(fitted["n_features_in"])
    if sv.shape not in ((nsv, d), (0, 0)):
        raise ValueError(f"support_vectors has shape {sv.shape}, expected {(nsv, d)}")
    if not all(np.all(np.isfinite(a[n])) for n in ("support_vectors", "dual_coef", "rho", "prob_a", "prob_b")):
        raise ValueError("non-finite values")
