"""The experiment behind ``sertk run``: dataset → embeddings (cached) → protocol splits → fit → predict →
metrics → report. One pass, left to right; each component sees only its own input.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import inspect
import io
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from sertk import __version__
from sertk.contracts import Utterance
from sertk.errors import ConfigError, DatasetError, SertkError
from sertk.experiment.config import RunConfig, dump_config, is_paper_configuration
from sertk.experiment.report import PAPER_ACCURACY
from sertk.plugins import Component, get_component, instantiate

logger = logging.getLogger(__name__)

#: training sets from this size keep their ν-SVM fit in the cache's fits folder (a fit of seconds to hours there;
#: below it, hashing the data and saving would cost a few % of a sub-second fit and buy little)
FIT_CHECKPOINT_FROM = 10_000

#: every file a run may write, relative to its folder; ``--overwrite`` replaces only these, and only sertk's own
RUN_FILES = ("config.toml", "predictions.csv", "report.json", "report.md", "confusion_matrix.png",
             "tsne_emotion.png", "tsne_speaker.png")


def run_files() -> list[str]:
    from sertk.experiment.model import MODEL_FILES

    return [*RUN_FILES, *(f"model/{name}" for name in MODEL_FILES)]


@dataclasses.dataclass
class Experiment:
    """A resolved run: the components built from a configuration, before any work is done."""

    config: RunConfig
    dataset: Any
    featurizer: Any
    classifier: Component
    protocol: Any
    out: Path
    #: the resolved normalisation mode (:mod:`sertk.experiment.normalize`) and whether the run or the featurizer chose
    #: it
    normalize: str = "none"
    normalize_source: str = "featurizer default"

    @classmethod
    def from_config(cls, config: RunConfig) -> "Experiment":
        from sertk.protocols import get_protocol

        dataset_component = get_component("dataset", config.dataset.name)
        if config.data_root is None and getattr(dataset_component.cls, "requires_root", False):
            raise ConfigError(f"dataset {config.dataset.name!r} needs its files: pass --data-root DIR")
        dataset = instantiate(dataset_component, config.dataset.options, root=config.data_root)
        featurizer = instantiate(get_component("featurizer", config.featurizer.name), config.featurizer.options)
        classifier = get_component("classifier", config.classifier.name)
        _check_classifier_options(classifier, config)
        protocol = get_protocol(config.protocol.name, config.protocol.options)
        out = Path(config.out or config.default_out())
        from sertk.experiment.normalize import featurizer_default

        chosen = config.normalize is not None or config.standardize is not None
        return cls(config, dataset, featurizer, classifier, protocol, out,
                   config.normalization(featurizer_default(featurizer)),
                   "configuration" if chosen else "featurizer default")


def _check_classifier_options(component: Component, config: RunConfig) -> None:
    """Build the classifier once and let it check its hyperparameters (``check_params()``, when it has one), so a
    bad value fails now rather than in ``fit`` after featurizing."""
    options = _classifier_options(component, config)
    model = instantiate(component, options)
    check = getattr(model, "check_params", None)
    if callable(check):
        try:
            check()
        except (TypeError, ValueError) as exc:
            given = ", ".join(f"{k}={v!r}" for k, v in config.classifier.options.items()) or "defaults"
            raise ConfigError(f"classifier {component.name!r}: {exc} (options: {given})") from None


def _cache_directory(config: RunConfig) -> Path:
    """The folder of the embedding cache and the kept fits: ``--cache-dir``, else the default."""
    from sertk.featurization.cache import default_cache_dir

    return Path(config.cache_dir) if config.cache_dir else default_cache_dir()


def _check_cache(config: RunConfig) -> None:
    """Open the embedding cache once before any work: a cache folder that is a file, read-only or damaged fails
    here, with its way out, not after the dataset is loaded."""
    if config.cache:
        from sertk.featurization.cache import EmbeddingCache

        EmbeddingCache(_cache_directory(config)).close()


def _check_protocol(experiment: Experiment, utterances: list[Utterance]) -> None:
    """Split the loaded utterances once before featurizing: protocol options that only the data can refute (a
    group that does not exist, too few utterances to stratify) fail now. The real split, after embedding, runs on
    the utterances whose audio could be read."""
    from sertk.protocols import check_folds

    labels = np.array([u.label for u in utterances])
    speakers = np.array([u.speaker for u in utterances])
    groups = np.array([u.group for u in utterances])
    protocol = experiment.protocol
    for fold in check_folds(protocol, protocol.split(labels, speakers, groups, experiment.config.seed), len(labels)):
        if len(set(labels[fold.train].tolist())) < 2:
            raise ConfigError(f"fold {fold.name} of protocol {protocol.name!r} has a single class in its training "
                              f"set; choose another protocol")


def _classifier_options(component: Component, config: RunConfig) -> dict[str, Any]:
    from sertk.plugins import component_options

    options = dict(config.classifier.options)
    if "random_state" in component_options(component.cls) and "random_state" not in options:
        options["random_state"] = config.seed
    return options


@dataclasses.dataclass
class RunResult:
    report: dict[str, Any]
    paths: dict[str, Path]


def load_utterances(dataset: Any, name: str) -> list[Utterance]:
    utterances = list(dataset.utterances())
    if not utterances:
        raise DatasetError(f"dataset {name!r} yielded no utterances; check --data-root and the dataset options")
    for u in utterances:
        if not isinstance(u, Utterance):
            raise DatasetError(f"dataset {name!r} yielded {type(u).__name__}, not sertk.Utterance")
    ids = Counter(u.id for u in utterances)
    dup = [i for i, c in ids.items() if c > 1]
    if dup:
        raise DatasetError(f"dataset {name!r} has duplicate utterance ids, e.g. {dup[:3]}")
    labels = Counter(u.label for u in utterances)
    if len(labels) < 2:
        raise DatasetError(f"dataset {name!r} has a single class {list(labels)}: a classifier needs at least two")
    return utterances


def embed_utterances(experiment: Experiment, utterances: list[Utterance]):
    """Embeddings for all utterances through the cache.

    Returns ``(X, kept, failures, audio_keys, result)``: the float32 embeddings of the utterances that could be
    read, those utterances, unreadable path → reason, the kept utterances' audio content keys (for the leakage
    check), and the featurizer's :class:`~sertk.featurization.embed.EmbedResult` (cache statistics).
    """
    from sertk.executors import make_executor
    from sertk.featurization.cache import EmbeddingCache
    from sertk.featurization.embed import embed_paths

    config = experiment.config
    cache = EmbeddingCache(_cache_directory(config)) if config.cache else None
    executor = make_executor(config.executor, address=config.ray_address, workers=config.workers,
                             gpus_per_worker=config.gpus_per_worker)
    try:
        result = embed_paths(experiment.featurizer, [u.path for u in utterances], cache=cache,
                             batch_size=config.batch_size, desc=f"embedding ({experiment.featurizer.name})",
                             executor=executor)
    finally:
        executor.close()
        if cache is not None:
            cache.close()
    failures = {str(utterances[i].path): reason for i, reason in sorted(result.failures.items())}
    if failures and not config.skip_bad_audio:
        first = next(iter(failures.items()))
        raise DatasetError(f"{len(failures)} audio file(s) could not be read, e.g. {first[0]}: {first[1]}; fix "
                           f"or remove them, or pass --skip-bad-audio to leave them out")
    kept = [u for u, ok in zip(utterances, result.ok) if ok]
    keys = [k for k, ok in zip(result.audio_keys, result.ok) if ok]
    return np.asarray(result.embeddings, dtype=np.float32), kept, failures, keys, result


def run_experiment(config: RunConfig, *, overwrite: bool = False, fresh_out: bool | None = None) -> RunResult:
    """Run the configured experiment and write its reports; returns the report and the written paths.

    Everything that can be checked without featurizing is checked first: the components and their options, the
    output folder, the cache, the protocol on the loaded utterances. The output folder follows
    :mod:`sertk.experiment.outputs`: with ``fresh_out`` (default: when ``config.out`` is unset) a taken folder gives
    way to a fresh sibling; otherwise it must be empty, or ``overwrite`` replaces an earlier run's files (only those).
    """
    from sertk.experiment.outputs import claim_run_folder

    t0 = time.perf_counter()
    experiment = Experiment.from_config(config)
    folder = claim_run_folder(experiment.out, run_files(), overwrite=overwrite,
                              fresh=config.out is None if fresh_out is None else fresh_out)
    try:
        experiment.out = folder.path
        # the run card says which normalisation ran, even when the featurizer chose it
        experiment.config = config = dataclasses.replace(config, out=str(folder.path),
                                                         normalize=experiment.normalize, standardize=None)
        return _run(experiment, folder, t0)
    except BaseException:
        folder.discard()
        raise


def _run(experiment: Experiment, folder: Any, t0: float) -> RunResult:
    from sertk.experiment.metrics import bootstrap_ci, breakdown, classification_metrics
    from sertk.experiment.normalize import describe, featurizer_blocks, fit_fold, fit_normalization
    from sertk.featurization.cache import fingerprint_key
    from sertk.progress import progress
    from sertk.protocols import check_folds, class_warnings, kind_of, leakage_warnings

    config = experiment.config
    timings: dict[str, float] = {}
    _check_cache(config)
    utterances = load_utterances(experiment.dataset, config.dataset.name)
    _check_protocol(experiment, utterances)
    timings["load_dataset_s"] = time.perf_counter() - t0
    logger.info("dataset %s: %d utterances", config.dataset.name, len(utterances))

    t = time.perf_counter()
    X, utterances, failures, audio_keys, embed_result = embed_utterances(experiment, utterances)
    timings["embed_s"] = time.perf_counter() - t
    labels_all = np.array([u.label for u in utterances])
    speakers = np.array([u.speaker for u in utterances])
    groups = np.array([u.group for u in utterances])
    labels = sorted(set(labels_all.tolist()))

    protocol = experiment.protocol
    folds = []
    for repeat in range(config.repeats):
        seed = config.seed + repeat
        folds += [(seed, fold) for fold in check_folds(protocol, protocol.split(labels_all, speakers, groups, seed),
                                                      len(labels_all))]
    warnings = [f"dataset left out {path}: {reason}"
                for path, reason in dict(getattr(experiment.dataset, "skipped", None) or {}).items()]
    warnings += [f"left out audio that cannot be embedded: {path}: {reason}" for path, reason in failures.items()]
    normalize = experiment.normalize
    blocks = featurizer_blocks(experiment.featurizer, X.shape[1])
    speakers_on_both_sides = False

    t = time.perf_counter()
    fold_reports = []
    y_true_all: list[str] = []
    y_pred_all: list[str] = []
    test_speakers: list[str] = []
    test_groups: list[str] = []
    predictions: list[tuple] = []
    last_model: tuple[Any, Any] | None = None
    for seed, fold in progress(folds, total=len(folds), desc="train and test", unit="fold"):
        for problem in (leakage_warnings(fold, speakers, audio_keys, protocol.speaker_independent)
                        + class_warnings(fold, labels_all)):
            logger.warning(problem)
            warnings.append(problem)
        if len(set(labels_all[fold.train].tolist())) < 2:
            raise SertkError(f"fold {fold.name} has a single class in its training set; choose another protocol")
        name = fold.name if config.repeats == 1 else f"{fold.name}/seed{seed}"
        normalization = fit_fold(normalize, X, speakers, fold, blocks)  # features and speakers only, no labels
        if normalization.small_speakers:
            warnings.append(f"fold {name}: speaker(s) {normalization.small_speakers} have fewer than 2 utterances "
                            f"in the fold, so their features were z-scored with the training side's statistics")
        speakers_on_both_sides |= bool(set(speakers[fold.train].tolist()) & set(speakers[fold.test].tolist()))
        model = _fit(experiment, config, normalization.transform(X[fold.train], speakers[fold.train]),
                     labels_all[fold.train], seed)
        X_test = normalization.transform(X[fold.test], speakers[fold.test])
        y_pred = np.asarray(model.predict(X_test)).astype(str)
        y_true = labels_all[fold.test]
        fold_reports.append({"name": name, "seed": seed, "n_train": int(len(fold.train)),
                             "n_test": int(len(fold.test)), **classification_metrics(y_true, y_pred, labels)})
        y_true_all += y_true.tolist()
        y_pred_all += y_pred.tolist()
        test_speakers += speakers[fold.test].tolist()
        test_groups += groups[fold.test].tolist()
        predictions += [(utterances[i].id, name, utterances[i].speaker, t_, p_)
                        for i, t_, p_ in zip(fold.test, y_true, y_pred)]
        last_model = (model, normalization)
    timings["fit_predict_s"] = time.perf_counter() - t

    pooled = classification_metrics(y_true_all, y_pred_all, labels)
    report: dict[str, Any] = {
        "sertk_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "labels": labels,
        **pooled,
        "n_train": int(sum(len(f.train) for _, f in folds)),
        "n_test": int(sum(len(f.test) for _, f in folds)),
        "confidence_intervals": bootstrap_ci(y_true_all, y_pred_all, labels, seed=config.seed),
        "protocol": {"name": protocol.name, "kind": kind_of(protocol), "n_folds": len(folds),
                     "speaker_independent": protocol.speaker_independent, "repeats": config.repeats},
        "dataset": {"name": config.dataset.name, "n_utterances": len(utterances),
                    "n_speakers": len(set(speakers.tolist())), "n_groups": len(set(groups.tolist())),
                    "label_counts": dict(sorted(Counter(labels_all.tolist()).items()))},
        "featurizer": {"name": config.featurizer.name, "dim": int(X.shape[1]),
                       "fingerprint": dict(experiment.featurizer.fingerprint()),
                       "fingerprint_key": fingerprint_key(experiment.featurizer.fingerprint()),
                       "n_cached": int(embed_result.n_cached), "n_computed": int(embed_result.n_computed),
                       "options": _featurizer_options(config), "blocks": [[b, d] for b, d in blocks] or None},
        "classifier": {"name": config.classifier.name,
                       "options": _jsonable(_classifier_options(experiment.classifier, config)),
                       "standardize": normalize == "global"},
        "normalization": {**describe(normalize, speaker_independent=not speakers_on_both_sides, blocks=blocks,
                                     source=experiment.normalize_source),
                          "speakers_on_both_sides": speakers_on_both_sides},
        "folds": fold_reports,
        "per_speaker": breakdown(y_true_all, y_pred_all, test_speakers, labels),
        "per_group": breakdown(y_true_all, y_pred_all, test_groups, labels),
        "warnings": warnings,
        "timings": timings,
        "config": config.to_dict(),
    }
    if len(folds) > 1:
        report["fold_summary"] = {
            k: {"mean": float(np.mean([f[k] for f in fold_reports])),
                "std": float(np.std([f[k] for f in fold_reports]))}
            for k in ("accuracy", "unweighted_accuracy", "macro_f1")}
    if is_paper_configuration(config):
        report["paper_comparison"] = (
            f"The paper reports {100 * PAPER_ACCURACY:.2f} % accuracy in this configuration (one random 80/20 split); "
            f"this run: {100 * report['accuracy']:.2f} % ({100 * (report['accuracy'] - PAPER_ACCURACY):+.2f} points)")
    out = experiment.out
    folder.remove_previous()  # an earlier run's files (--overwrite): never left beside this run's
    folder.record(run_files())  # before writing, so a run killed while writing still owns what it wrote

    extra_paths: dict[str, Path] = {}
    if config.save_model:
        t = time.perf_counter()
        if len(folds) == 1 and last_model is not None:
            model, normalization = last_model
        else:
            normalization = fit_normalization(normalize, X, speakers, blocks=blocks)
            model = _fit(experiment, config, normalization.transform(X, speakers), labels_all, config.seed)
        extra_paths.update(_save_model(out, experiment, config, labels, model, normalization, len(folds), report))
        timings["save_model_s"] = time.perf_counter() - t
    if config.plots:
        t = time.perf_counter()
        _, first = folds[0]
        from sertk.experiment.plots import write_tsne_figures

        logger.info("drawing 3-D t-SNE figures of %d train and %d test embeddings (--no-plots skips this)",
                    len(first.train), len(first.test))
        extra_paths.update(write_tsne_figures(
            out, X[first.train], X[first.test], labels_all[first.train], labels_all[first.test],
            speakers[first.train], speakers[first.test], config.seed,
            f"{config.dataset.name} · {config.featurizer.name} · {first.name}"))
        timings["plots_s"] = time.perf_counter() - t
    report["timings"] = {k: round(v, 3) for k, v in timings.items()}
    paths = write_outputs(out, config, report, predictions)
    paths.update(extra_paths)
    folder.record_written()
    return RunResult(report, paths)


def _fit(experiment: Experiment, config: RunConfig, X: np.ndarray, y: np.ndarray, seed: int):
    """One classifier fitted on the (already normalised) features ``X``."""
    options = _classifier_options(experiment.classifier, config)
    if "random_state" in options and "random_state" not in config.classifier.options:
        options["random_state"] = seed
    kept = _fit_checkpoint(experiment.classifier, config, options, len(X))
    if kept is not None:
        options["checkpoint"] = kept
    model = instantiate(experiment.classifier, options)
    model.fit(X, y)
    if kept is not None:
        model.set_params(checkpoint=None)  # the saved model names no folder of this machine
    return model


def _fit_checkpoint(component: Component, config: RunConfig, options: dict[str, Any], n: int) -> str | None:
    """The cache's fits folder, for a ν-SVM fit of at least FIT_CHECKPOINT_FROM samples that has no checkpoint of
    its own, when the cache is on: a stopped run then resumes inside its fit (see docs/svm.md)."""
    if not config.cache or "checkpoint" in options or n < FIT_CHECKPOINT_FROM:
        return None
    from sertk.svm import NuSVC

    if not issubclass(component.cls, NuSVC):  # another classifier's `checkpoint` may mean something else
        return None
    from sertk.featurization.cache import fits_dir

    folder = fits_dir(_cache_directory(config))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SertkError(f"cannot make the folder for fit checkpoints {str(folder)!r} ({exc.strerror}); give "
                         "--cache-dir a writable folder, or --no-cache") from None
    return str(folder)


def _save_model(out: Path, experiment: Experiment, config: RunConfig, labels, model, normalization, n_folds: int,
                report: dict[str, Any]) -> dict[str, Path]:
    from sertk.experiment.model import can_save, save_model

    if not can_save(model):
        report["warnings"].append(f"classifier {config.classifier.name!r} cannot be saved without pickle (no "
                                  f"save()/load()); no model was written for `sertk predict`")
        return {}
    directory = save_model(
        out / "model", labels=labels,
        featurizer={"name": config.featurizer.name, "options": dict(config.featurizer.options),
                    "fingerprint": dict(experiment.featurizer.fingerprint())},
        classifier={"name": config.classifier.name, "options": _jsonable(_classifier_options(experiment.classifier,
                                                                                           config))},
        model=model, normalization=normalization)
    report["model"] = {"path": "model", "trained_on": "the training split of the evaluated fold" if n_folds == 1
                       else "all utterances (refit after cross-validation)"}
    return {"model": directory}


def write_outputs(out: Path, config: RunConfig, report: dict[str, Any], predictions) -> dict[str, Path]:
    from sertk.atomic import atomic_write_text
    from sertk.experiment.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.toml", dump_config(config))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "fold", "speaker", "label", "predicted"])
    writer.writerows(predictions)
    atomic_write_text(out / "predictions.csv", buffer.getvalue())
    paths = write_report(out, report)
    paths.update(config=out / "config.toml", predictions=out / "predictions.csv")
    return paths


def _featurizer_options(config: RunConfig) -> dict[str, Any]:
    """The featurizer's options as it was built: its constructor's defaults overlaid with the configured ones, so
    reports of runs that left an option at its default still say which value it had."""
    from sertk.plugins import component_options

    cls = get_component("featurizer", config.featurizer.name).cls
    defaults = {k: v for k, v in component_options(cls).items() if v is not inspect.Parameter.empty}
    return _jsonable({**defaults, **config.featurizer.options})


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    import json

    out = {}
    for k, v in options.items():
        try:
            json.dumps(v)
            out[k] = v
        except TypeError:
            out[k] = repr(v)
    return out
