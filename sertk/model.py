"""A trained pipeline on disk, without pickle: what ``sertk run`` saves and ``sertk predict`` loads.

Layout of ``MODEL_DIR`` (format ``sertk-model/1``)::

    model.json        format, sertk version, labels, featurizer name/options/fingerprint, classifier name/options
    scaler.npz        mean and std of the training features (only when the run standardised them)
    classifier.model  the classifier's own non-pickle file, written by its ``save(path)``

Only classifiers with ``save(path)`` and a classmethod ``load(path)`` can be saved: ``nusvm`` (its own format) and
the scikit-learn references ``sklearn-nusvc``, ``sklearn-svc`` and ``logreg`` (skops files, loaded trusting only
their own class) can; for others ``sertk run`` says so in its report. ``sertk predict`` refuses a model whose
featurizer fingerprint differs from the featurizer it would build now (other weights, options or preprocessing),
because its embeddings would not be the ones the classifier was trained on.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sertk import __version__
from sertk.atomic import atomic_path, atomic_write_text
from sertk.errors import ModelError

FORMAT = "sertk-model/1"
CLASSIFIER_FILE = "classifier.model"


def can_save(model: Any) -> bool:
    return callable(getattr(model, "save", None)) and callable(getattr(type(model), "load", None))


def save_model(directory: Path, *, labels: Sequence[str], featurizer: dict[str, Any], classifier: dict[str, Any],
               model: Any, scaler: tuple[np.ndarray, np.ndarray] | None) -> Path:
    """Write a trained pipeline; ``model.json`` is written last, so its presence means the folder is complete."""
    if not can_save(model):
        raise ModelError(f"classifier {classifier['name']!r} has no save()/load(): it cannot be saved without pickle")
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / CLASSIFIER_FILE) as tmp:
        model.save(tmp)
    if scaler is not None:
        with atomic_path(directory / "scaler.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, mean=scaler[0], std=scaler[1])
    elif (directory / "scaler.npz").exists():
        (directory / "scaler.npz").unlink()
    meta = {"format": FORMAT, "sertk_version": __version__, "labels": list(labels), "featurizer": featurizer,
            "classifier": classifier, "standardize": scaler is not None}
    atomic_write_text(directory / "model.json", json.dumps(meta, indent=2) + "\n")
    return directory


@dataclasses.dataclass
class TrainedModel:
    """A loaded pipeline: featurizer description, scaler and classifier."""

    directory: Path
    meta: dict[str, Any]
    classifier: Any
    scaler: tuple[np.ndarray, np.ndarray] | None

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    def build_featurizer(self, **overrides: Any) -> Any:
        """The featurizer the model was trained with; its fingerprint must match the saved one."""
        from sertk.cache import canonical_json
        from sertk.plugins import get_component, instantiate

        saved = self.meta["featurizer"]
        options = {**saved.get("options", {}), **overrides}
        featurizer = instantiate(get_component("featurizer", saved["name"]), options)
        now = json.loads(canonical_json(featurizer.fingerprint()))
        then = json.loads(canonical_json(saved["fingerprint"]))
        if now != then:
            keys = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
            raise ModelError(f"model {self.directory} was trained on featurizer {saved['name']!r} with a different "
                             f"fingerprint (differs in: {', '.join(keys)}); use the same weights and options")
        return featurizer

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.scaler is None:
            return X
        mean, std = self.scaler
        return (X - mean) / std

    def scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """Predicted labels and per-class scores ``(n, k)``: probabilities when the classifier has them, else
        one-vs-rest decision values."""
        X = self.transform(X)
        predicted = np.asarray(self.classifier.predict(X)).astype(str)
        clf = self.classifier
        if getattr(clf, "probability", False) is True and hasattr(clf, "predict_proba"):
            return predicted, np.asarray(clf.predict_proba(X)), "probability"
        if hasattr(clf, "decision_function"):
            values = np.asarray(clf.decision_function(X))
            if values.ndim == 1:  # binary: positive means the second class
                values = np.column_stack([-values, values])
            if values.shape[1] == len(self.labels):
                return predicted, values, "decision"
        onehot = (predicted[:, None] == np.asarray(self.labels)[None, :]).astype(float)
        return predicted, onehot, "vote"


def load_model(directory: str | Path) -> TrainedModel:
    directory = Path(directory)
    meta_path = directory / "model.json"
    if not meta_path.is_file():
        raise ModelError(f"{directory} holds no saved model (no model.json); point at a run's `model` folder")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {meta_path}: {exc}") from None
    if meta.get("format") != FORMAT:
        raise ModelError(f"{meta_path} has format {meta.get('format')!r}; this sertk reads {FORMAT!r}")
    from sertk.plugins import get_component

    cls: Any = get_component("classifier", meta["classifier"]["name"]).cls
    if not callable(getattr(cls, "load", None)):
        raise ModelError(f"classifier {meta['classifier']['name']!r} has no load(); it cannot read {directory}")
    try:
        classifier = cls.load(directory / CLASSIFIER_FILE)
    except FileNotFoundError:
        raise ModelError(f"{directory / CLASSIFIER_FILE} is missing; the model folder is incomplete") from None
    scaler = None
    if meta.get("standardize"):
        with np.load(directory / "scaler.npz", allow_pickle=False) as data:
            scaler = (data["mean"], data["std"])
    return TrainedModel(directory, meta, classifier, scaler)
