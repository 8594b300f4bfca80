"""Classification metrics as the field reports them: WA, UA, macro-F1, per-class scores, confusion matrices.

WA (weighted accuracy) is plain accuracy; UA (unweighted accuracy) is the mean of per-class recalls, which does
not reward predicting the majority class. Computed in NumPy so the numbers do not depend on a library's
zero-division conventions: a class with no predictions has precision 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: labels as a list or a NumPy array of strings
Labels = Sequence[str] | npt.NDArray[Any]


def confusion_matrix(y_true: Labels, y_pred: Labels, labels: Sequence[str]) -> np.ndarray:
    """Counts ``C[i, j]`` of true label ``labels[i]`` predicted as ``labels[j]``; shape (k, k), int64."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        matrix[index[t], index[p]] += 1
    return matrix


def scores_from_confusion(matrix: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """WA, UA, macro-F1 and per-class precision/recall/F1/support from a confusion matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = matrix.sum()
    present = support > 0
    per_class = {
        label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])}
        for i, label in enumerate(labels)
    }
    weights = support / total if total else support
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "unweighted_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * weights).sum()),
        "weighted_precision": float((precision * weights).sum()),
        "weighted_recall": float((recall * weights).sum()),
        "per_class": per_class,
    }


def classification_metrics(y_true: Labels, y_pred: Labels, labels: Sequence[str]) -> dict[str, Any]:
    """All report metrics for one set of predictions, including raw and row-normalised confusion matrices."""
    matrix = confusion_matrix(y_true, y_pred, labels)
    result = scores_from_confusion(matrix, labels)
    rows = matrix.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = np.where(rows > 0, matrix / np.maximum(rows, 1), 0.0)
    result["confusion_matrix"] = matrix.tolist()
    result["confusion_matrix_normalized"] = normalised.round(6).tolist()
    result["n"] = int(matrix.sum())
    return result


def breakdown(y_true: Labels, y_pred: Labels, keys: Labels, labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """WA and UA of the predictions of each key (speaker, group), sorted by key: how much the numbers depend on
    who speaks. UA averages the recalls of the classes that key has test utterances of."""
    t, p, k = np.asarray(y_true), np.asarray(y_pred), np.asarray(keys)
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(k.tolist())):
        mask = k == key
        scores = scores_from_confusion(confusion_matrix(t[mask], p[mask], labels), labels)
        out[str(key)] = {"n": int(mask.sum()), "accuracy": scores["accuracy"],
                         "unweighted_accuracy": scores["unweighted_accuracy"]}
    return out


def bootstrap_ci(y_true: Labels, y_pred: Labels, labels: Sequence[str], *, n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> dict[str, list[float]]:
    """Percentile bootstrap confidence intervals of WA, UA and macro-F1 over test utterances."""
    index = {label: i for i, label in enumerate(labels)}
    t = np.array([index[v] for v in y_true])
    p = np.array([index[v] for v in y_pred])
    k = len(labels)
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(t), size=(n_boot, len(t)))
    stats = np.empty((n_boot, 3))
    for b, sample in enumerate(samples):
        matrix = np.bincount(t[sample] * k + p[sample], minlength=k * k).reshape(k, k)
        s = scores_from_confusion(matrix, labels)
        stats[b] = (s["accuracy"], s["unweighted_accuracy"], s["macro_f1"])
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    bounds = np.percentile(stats, [lo, hi], axis=0)
    return {name: [float(bounds[0, i]), float(bounds[1, i])]
            for i, name in enumerate(("accuracy", "unweighted_accuracy", "macro_f1"))}
