"""A trained pipeline on disk, without pickle: what ``sertk run`` saves and ``sertk predict`` loads.

Layout of ``MODEL_DIR`` (format ``sertk-model/1``; ``sertk-model/2`` for per-speaker normalisation)::

    model.json        format, sertk version, labels, featurizer name/options/fingerprint, classifier name/options,
                      normalisation (mode, blocks)
    scaler.npz        global: mean and std of the training features (block scaling folded into std); speaker: the
                      training features' mean and std (the fallback of small speakers) and the block scale
    classifier.model  the classifier's own non-pickle file, written by its ``save(path)``
    digests.json      the sha256 of each file above; written last

``load_model`` refuses a folder whose ``digests.json`` is missing or whose files are missing or differ from their
digests (a damaged copy, a hand-edited label list), naming the file: a model that predicts must be the one saved.

Only classifiers with ``save(path)`` and a classmethod ``load(path)`` can be saved: ``nusvm`` (its own format) and
the scikit-learn references ``sklearn-nusvc``, ``sklearn-svc`` and ``logreg`` (skops files, loaded trusting only
their own class) can; for others ``sertk run`` says so in its report. ``sertk predict`` refuses a model whose
featurizer fingerprint differs from the featurizer it would build now (other weights, options or preprocessing),
because its embeddings would not be the ones the classifier was trained on.

A model trained with ``--normalize speaker`` expects each speaker's features z-scored with that speaker's own
statistics, which no training data can give for a new speaker: :meth:`TrainedModel.scores` refuses it unless told
that the files are one speaker's (``sertk predict --one-speaker``), whose statistics then come from those files
(unlabelled), as ``sertk run`` did for each test speaker. Such models are written as ``sertk-model/2``, so an older
sertk refuses them instead of predicting from wrongly normalised features.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sertk import __version__
from sertk.atomic import atomic_path, atomic_write_text
from sertk.errors import ModelError

if TYPE_CHECKING:
    from sertk.experiment.normalize import FittedNormalization

FORMAT = "sertk-model/1"
#: the format of models that need per-speaker statistics at prediction time (``--normalize speaker``)
FORMAT_SPEAKER = "sertk-model/2"
READABLE_FORMATS = (FORMAT, FORMAT_SPEAKER)
CLASSIFIER_FILE = "classifier.model"
DIGESTS_FILE = "digests.json"
DIGESTS_FORMAT = "sertk-model-digests/1"
#: every file a model folder may hold
MODEL_FILES = ("model.json", CLASSIFIER_FILE, "scaler.npz", DIGESTS_FILE)
_REQUIRED = ("model.json", CLASSIFIER_FILE)


def can_save(model: Any) -> bool:
    return callable(getattr(model, "save", None)) and callable(getattr(type(model), "load", None))


def save_model(directory: Path, *, labels: Sequence[str], featurizer: dict[str, Any], classifier: dict[str, Any],
               model: Any, scaler: tuple[np.ndarray, np.ndarray] | None = None,
               normalization: FittedNormalization | None = None) -> Path:
    """Write a trained pipeline; ``digests.json`` is written last, so its presence means the folder is complete.

    The features' normalisation is either a global ``scaler`` (mean, std) or a fitted ``normalization``.
    """
    if not can_save(model):
        raise ModelError(f"classifier {classifier['name']!r} has no save()/load(): it cannot be saved without pickle")
    mode = normalization.mode if normalization is not None else ("global" if scaler is not None else "none")
    arrays: dict[str, Any] = {}
    if normalization is not None and normalization.reference is not None:
        reference, scale = normalization.reference, normalization.scale
        if mode == "global":  # (x - mean) / std * scale, as one divisor: the layout every sertk-model/1 has
            arrays = {"mean": reference.mean, "std": reference.std if scale is None else reference.std / scale}
        else:
            arrays = {"mean": reference.mean, "std": reference.std, **({} if scale is None else {"scale": scale})}
    elif scaler is not None:
        arrays = {"mean": scaler[0], "std": scaler[1]}
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / CLASSIFIER_FILE) as tmp:
        model.save(tmp)
    if arrays:
        with atomic_path(directory / "scaler.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    elif (directory / "scaler.npz").exists():
        (directory / "scaler.npz").unlink()
    meta = {"format": FORMAT_SPEAKER if mode == "speaker" else FORMAT, "sertk_version": __version__,
            "labels": list(labels), "featurizer": featurizer, "classifier": classifier,
            "standardize": mode == "global", "normalization": {"mode": mode}}
    atomic_write_text(directory / "model.json", json.dumps(meta, indent=2) + "\n")
    write_digests(directory)
    return directory


def write_digests(directory: Path) -> None:
    """Record the sha256 of the model files present in ``directory`` (:data:`MODEL_FILES`) in ``digests.json``."""
    from sertk.download import sha256_of

    files = {name: sha256_of(directory / name) for name in MODEL_FILES
             if name != DIGESTS_FILE and (directory / name).is_file()}
    atomic_write_text(directory / DIGESTS_FILE, json.dumps({"format": DIGESTS_FORMAT, "files": files}, indent=2)
                      + "\n")


def verify_digests(directory: Path) -> None:
    """Raise :class:`ModelError` naming the first model file that is missing or differs from its recorded digest."""
    from sertk.download import sha256_of

    again = "restore the folder from a good copy, or save the model again with `sertk run`"
    record = directory / DIGESTS_FILE
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{record} is missing, so the model folder cannot be verified (incomplete, or saved by an "
                         f"older sertk); {again}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {record}: {exc}; {again}") from None
    files = data.get("files") if isinstance(data, dict) and data.get("format") == DIGESTS_FORMAT else None
    if not isinstance(files, dict) or any(name not in files for name in _REQUIRED):
        raise ModelError(f"{record} is not a digest record of a sertk model folder; {again}")
    strange = sorted(str(name) for name in files if str(name) not in MODEL_FILES)
    if strange:
        raise ModelError(f"{record} names {strange[0]!r}, which is not a model file; {again}")
    for name, digest in sorted(files.items()):
        path = directory / str(name)
        if not path.is_file():
            raise ModelError(f"{path} is missing; the model folder is incomplete; {again}")
        if sha256_of(path) != digest:
            raise ModelError(f"{path} differs from the file that was saved (its sha256 does not match {record}): "
                             f"it was edited or damaged; {again}")


@dataclasses.dataclass
class TrainedModel:
    """A loaded pipeline: featurizer description, scaler and classifier.

    ``scaler`` is the global normalisation's (mean, std); a model trained with per-speaker normalisation has
    ``normalization`` instead (the training statistics small speakers fall back on, and the block scale).
    """

    directory: Path
    meta: dict[str, Any]
    classifier: Any
    scaler: tuple[np.ndarray, np.ndarray] | None
    normalization: FittedNormalization | None = None

    @property
    def normalize(self) -> str:
        """The normalisation mode the classifier was trained behind: ``none``, ``global`` or ``speaker``."""
        return self.normalization.mode if self.normalization is not None else (
            "global" if self.scaler is not None else "none")

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    def build_featurizer(self, **overrides: Any) -> Any:
        """The featurizer the model was trained with; its fingerprint must match the saved one."""
        from sertk.featurization.cache import canonical_json
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

    def check_input(self, n: int, *, one_speaker: bool) -> None:
        """Refuse, saying why and what to do, to normalise ``n`` recordings that a per-speaker model cannot: ones
        not said to be one speaker's, or too few to estimate that speaker's statistics."""
        if self.normalize != "speaker":
            return
        from sertk.experiment.normalize import MIN_SPEAKER_UTTERANCES

        if not one_speaker:
            raise ModelError(
                f"model {self.directory} was trained with per-speaker normalisation (--normalize speaker): its "
                f"classifier expects each speaker's features z-scored with that speaker's own statistics, which a "
                f"saved model cannot know for a new speaker; pass at least {MIN_SPEAKER_UTTERANCES} recordings of "
                f"ONE speaker with --one-speaker (they are normalised with their own statistics), or train with "
                f"--normalize global to predict single files")
        if n < MIN_SPEAKER_UTTERANCES:
            raise ModelError(f"per-speaker normalisation needs at least {MIN_SPEAKER_UTTERANCES} recordings of the "
                             f"speaker to estimate its statistics, got {n}")

    def transform(self, X: np.ndarray, *, one_speaker: bool = False) -> np.ndarray:
        """Normalise embeddings ``(n, d)`` as the classifier was trained. A per-speaker model needs
        ``one_speaker=True``, which says the rows are one speaker's: their own statistics (unlabelled) are used."""
        if self.normalization is not None and self.normalization.mode == "speaker":
            self.check_input(len(X), one_speaker=one_speaker)
            return self.normalization.with_speaker("new", X).transform(X, ["new"] * len(X))
        if self.scaler is None:
            return X
        mean, std = self.scaler
        return (X - mean) / std

    def scores(self, X: np.ndarray, *, one_speaker: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
        """Predicted labels and per-class scores ``(n, k)``: probabilities when the classifier has them, else
        one-vs-rest decision values. ``one_speaker``: see :meth:`transform`."""
        X = self.transform(X, one_speaker=one_speaker)
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
    if not isinstance(meta, dict) or meta.get("format") not in READABLE_FORMATS:
        found = meta.get("format") if isinstance(meta, dict) else None
        readable = " and ".join(map(repr, READABLE_FORMATS))
        raise ModelError(f"{meta_path} has format {found!r}; this sertk reads {readable}")
    verify_digests(directory)
    from sertk.plugins import get_component

    cls: Any = get_component("classifier", meta["classifier"]["name"]).cls
    if not callable(getattr(cls, "load", None)):
        raise ModelError(f"classifier {meta['classifier']['name']!r} has no load(); it cannot read {directory}")
    try:
        classifier = cls.load(directory / CLASSIFIER_FILE)
    except FileNotFoundError:
        raise ModelError(f"{directory / CLASSIFIER_FILE} is missing; the model folder is incomplete") from None
    _check_labels(directory, meta, classifier)
    scaler = normalization = None
    speaker = (meta.get("normalization") or {}).get("mode") == "speaker"
    if speaker != (meta["format"] == FORMAT_SPEAKER):
        raise ModelError(f"{meta_path}: per-speaker normalisation and format {meta['format']!r} disagree; save the "
                         f"model again with `sertk run`")
    if meta.get("standardize") or speaker:
        try:
            with np.load(directory / "scaler.npz", allow_pickle=False) as data:
                arrays = {key: data[key] for key in ("mean", "std")}
                scale = data["scale"] if speaker and "scale" in data.files else None
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"cannot read {directory / 'scaler.npz'}: {exc}") from None
        if speaker:
            from sertk.experiment.normalize import FittedNormalization, Statistics

            normalization = FittedNormalization("speaker", Statistics(arrays["mean"], arrays["std"], 0), {}, scale)
        else:
            scaler = (arrays["mean"], arrays["std"])
    return TrainedModel(directory, meta, classifier, scaler, normalization)


def _check_labels(directory: Path, meta: dict[str, Any], classifier: Any) -> None:
    """The label list in model.json must be the classifier's classes, in its order: scores are printed by it."""
    labels = meta.get("labels")
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
        raise ModelError(f"{directory / 'model.json'}: `labels` must be a list of at least two class names")
    classes = getattr(classifier, "classes_", None)
    if classes is None:
        return
    known = [str(c) for c in np.asarray(classes).tolist()]
    if [x for x in labels if x in set(known)] != known or not set(known) <= set(labels):
        raise ModelError(f"{directory / 'model.json'}: labels {labels} disagree with the classifier's classes "
                         f"{known}; the folder was edited: save the model again with `sertk run`")
