"""Sweeps: many ``sertk run``s from one TOML file, each an ordinary run with its own folder and run card.

A sweep file is a ``sertk run`` configuration (the same tables: ``[dataset]``, ``[featurizer]``,
``[classifier]``, ``[protocol]``, ``seed``, …) plus an ``[axes]`` table, whose cartesian product gives the runs,
and an optional ``[sweep]`` table::

    plots = false                                  # the base: any `sertk run` configuration
    [classifier]
    name = "nusvm"

    [sweep]
    out = "sweeps/demo"                            # default: sweeps/<file name without .toml>

    [axes]                                         # each key: a list of values; the last key varies fastest
    protocol = ["sd-random", "loso"]               # a component: a name, or {name = …, option = …, …}
    featurizer = [{name = "handcrafted"}, {name = "handcrafted", n_mfcc = 13}]
    "classifier.nu" = [0.05, 0.1, 0.2]             # KIND.OPTION: one option of the base component
    seed = [0, 1, 2]                               # any other run key (seed, repeats, standardize, …)

Each run is written to ``<sweep out>/<name>``, its name made from its values in axis order
(``loso_nu-0.1_seed-2``). The driver embeds every distinct (dataset, featurizer) once, through the cache, before
the runs fan out to a local process pool (:func:`map_local`) or a Ray cluster (``sertk.executors.ray.map_runs``,
the same shape); so parallel runs only read the cache. ``sweep.json`` in the sweep folder records the plan and
each run's state, written atomically after every change. A run is finished when its ``report.json`` (written
last) holds this run's configuration; a rerun of the sweep skips finished runs and redoes the rest, replacing
only files sertk recorded in their folders (:mod:`sertk.experiment.outputs`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import dataclasses
import datetime
import hashlib
import itertools
import json
import logging
import os
import re
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sertk.errors import ConfigError, SertkError
from sertk.experiment.config import COMPONENT_KINDS, RunConfig

__all__ = ["MANIFEST", "SweepPlan", "PlannedRun", "RunTask", "RunOutcome", "SweepResult", "RunError",
           "load_sweep", "plan_sweep", "finished_report", "execute_run", "map_local", "run_sweep", "usable_cores"]

logger = logging.getLogger(__name__)

#: the sweep's manifest, inside its folder
MANIFEST = "sweep.json"
MANIFEST_FORMAT = "sertk-sweep/1"
#: what a sweep's runs use unless its file says otherwise: one t-SNE figure per run is rarely wanted
SWEEP_DEFAULTS: dict[str, Any] = {"plots": False}
#: run keys an axis may not vary: each run's folder is the sweep's to choose, all runs share one cache, and
#: where featurization runs is one choice for the sweep's embedding step (it does not change a number)
_NOT_AXES = ("out", "cache", "cache_dir", "executor", "ray_address", "workers", "gpus_per_worker")
_MAX_NAME = 96
#: the variables that size the BLAS / OpenMP thread pools of a worker process
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                     "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


# -- the plan -------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PlannedRun:
    """One cell of the axes: its folder name, the values that made it and its full configuration."""

    name: str
    cell: dict[str, Any]
    config: RunConfig

    @property
    def folder(self) -> Path:
        return Path(self.config.out or self.name)


@dataclasses.dataclass
class SweepPlan:
    """A sweep file, expanded: where it writes and every run, in axis order."""

    source: str
    folder: Path
    axes: dict[str, list[Any]]
    runs: list[PlannedRun]


def load_sweep(path: str | Path, out: str | Path | None = None) -> SweepPlan:
    """Read and expand a sweep file (errors name the file and the key); ``out`` overrides ``[sweep] out``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read sweep file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"sweep file {path} is not UTF-8 text; save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep file {path} is not valid TOML: {exc}") from None
    default_out = Path("sweeps") / path.stem
    return plan_sweep(data, source=str(path), out=out, default_out=default_out)


def plan_sweep(data: Mapping[str, Any], *, source: str = "sweep", out: str | Path | None = None,
               default_out: str | Path = "sweeps/sweep") -> SweepPlan:
    """Expand a sweep mapping (the file's layout) into runs; every value is checked before any work."""
    data = dict(data)
    settings = data.pop("sweep", {})
    axes_table = data.pop("axes", {})
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{source}: [sweep] must be a table (out = …), got {settings!r}")
    unknown = sorted(set(settings) - {"out"})
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in [sweep]; allowed: ['out']")
    if "out" in data:
        raise ConfigError(f"{source}: a sweep has no top-level `out`: put the sweep's folder in [sweep] out = …; "
                          f"each run is written to <that folder>/<run name>")
    if not isinstance(axes_table, Mapping):
        raise ConfigError(f"{source}: [axes] must be a table of lists, got {axes_table!r}")
    folder_value = out if out is not None else settings.get("out", default_out)
    if not isinstance(folder_value, (str, os.PathLike)) or not str(folder_value):
        raise ConfigError(f"{source}: [sweep] out must be a folder path, got {folder_value!r}")
    folder = Path(folder_value)

    base = RunConfig.from_dict({**SWEEP_DEFAULTS, **data}, source=f"{source} (base configuration)")
    axes = {key: _check_axis(key, values, source) for key, values in axes_table.items()}
    # components first, so that a KIND.OPTION axis refines the component the cell names
    order = sorted(axes, key=lambda key: 0 if key in COMPONENT_KINDS else 1)

    runs = []
    for values in itertools.product(*axes.values()):
        cell = dict(zip(axes, values))
        config = copy.deepcopy(base)
        for key in order:
            _apply(config, key, cell[key], f"{source} [axes] {key} = {_short(cell[key])}")
        runs.append(PlannedRun(name="", cell=cell, config=config))
    for run, name in zip(runs, _run_names([run.cell for run in runs])):
        run.name = name
        run.config.out = str(folder / name)
    return SweepPlan(source=source, folder=folder, axes=axes, runs=runs)


def _check_axis(key: str, values: Any, source: str) -> list[Any]:
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{source}: [axes] {key} must be a non-empty list of values, got {values!r}")
    kind, _, option = key.partition(".")
    scalars = {f.name for f in dataclasses.fields(RunConfig)} - set(COMPONENT_KINDS) - {"data_root"}
    if key in _NOT_AXES:
        raise ConfigError(f"{source}: [axes] {key} cannot vary in a sweep: the sweep chooses each run's folder "
                          f"and every run shares one embedding cache (set it once, outside [axes])")
    if option and kind not in COMPONENT_KINDS:
        raise ConfigError(f"{source}: [axes] {key}: {kind!r} is not a component; KIND.OPTION takes a kind of "
                          f"{', '.join(COMPONENT_KINDS)}")
    if not option and key not in COMPONENT_KINDS and key not in scalars:
        known = ", ".join([*COMPONENT_KINDS, *(f"{k}.OPTION" for k in COMPONENT_KINDS),
                           *sorted(scalars - set(_NOT_AXES))])
        raise ConfigError(f"{source}: [axes] {key} is not a run key; axes can be: {known}")
    seen: list[str] = []
    for value in values:
        text = json.dumps(value, sort_keys=True, default=str)
        if text in seen:
            raise ConfigError(f"{source}: [axes] {key} lists {_short(value)} twice")
        seen.append(text)
    return [_component_table(value, key, source) if key in COMPONENT_KINDS else value for value in values]


def _component_table(value: Any, kind: str, source: str) -> dict[str, Any]:
    """A component axis value as ``{name?, options?, root?}``: a name, ``{name = …, options = {…}}``, or
    ``{name = …, option = value, …}`` (keys other than name/options/root are options)."""
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: [axes] {kind}: each value is a name or a table {{name = …, option = …}}, "
                          f"got {value!r}")
    reserved = {"name", "options"} | ({"root"} if kind == "dataset" else set())
    table = {k: v for k, v in value.items() if k in reserved and k != "options"}
    options = dict(value.get("options", {})) if isinstance(value.get("options", {}), Mapping) else None
    if options is None:
        raise ConfigError(f"{source}: [axes] {kind}: options must be a table, got {value['options']!r}")
    options.update({k: v for k, v in value.items() if k not in reserved})
    if options:
        table["options"] = options
    return table


def _apply(config: RunConfig, key: str, value: Any, source: str) -> None:
    kind, _, option = key.partition(".")
    if key in COMPONENT_KINDS:
        config.update({kind: value}, source=source)
    elif option:
        config.update({kind: {"options": {option: copy.deepcopy(value)}}}, source=source)
    else:
        config.update({key: value}, source=source)


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        parts = [str(value["name"])] if "name" in value else []
        parts += [f"{k}-{_label(v)}" for k, v in dict(value.get("options", {})).items()]
        parts += [f"{k}-{_label(v)}" for k, v in value.items() if k not in ("name", "options")]
        return "-".join(parts) or "default"
    if isinstance(value, (list, tuple)):
        return "+".join(_label(v) for v in value)
    return str(value)


def _cell_label(key: str, value: Any) -> str:
    if key in COMPONENT_KINDS:
        return _label(value)
    return f"{key.partition('.')[2] or key}-{_label(value)}"


def _run_names(cells: Sequence[dict[str, Any]]) -> list[str]:
    """Stable, readable folder names: the cell's values in axis order; a hash is added only where names would be
    too long or collide after making them safe for file systems."""
    names = []
    for cell in cells:
        raw = "_".join(_cell_label(k, v) for k, v in cell.items()) or "base"
        names.append(re.sub(r"[^A-Za-z0-9._+=-]+", "-", raw).strip("-.") or "run")
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    out = []
    for name, cell in zip(names, cells):
        if counts[name] > 1 or len(name) > _MAX_NAME:
            digest = hashlib.sha256(json.dumps(cell, sort_keys=True, default=str).encode()).hexdigest()[:8]
            name = f"{name[:_MAX_NAME - 9]}-{digest}"
        out.append(name)
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# -- run cards ------------------------------------------------------------------------------------------------
#: run keys the pipeline may resolve into others on its run card (``standardize = true`` is saved as
#: ``normalize = "global"``): a planned value absent from the card is not a different configuration
_RESOLVED_KEYS = ("standardize", "normalize")


def same_configuration(saved: Mapping[str, Any], planned: Mapping[str, Any]) -> bool:
    """Whether a run card's configuration is the planned one: every planned key (but the folder, so a sweep
    folder can be moved) has the planned value; keys the pipeline added when resolving defaults do not count."""
    for key, value in planned.items():
        if key == "out":
            continue
        if key not in saved:
            if key in _RESOLVED_KEYS:
                continue
            return False
        if saved[key] != value:
            return False
    return True


def finished_report(folder: Path, config: RunConfig) -> dict[str, Any] | None:
    """The report of a finished run of ``config`` in ``folder``, or None (absent, half-written or another
    configuration's: such a run is redone)."""
    try:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or not isinstance(report.get("config"), dict) or "accuracy" not in report:
        return None
    if not same_configuration(report["config"], json.loads(json.dumps(config.to_dict(), default=str))):
        logger.warning("%s holds a run of another configuration; it is run again", folder)
        return None
    return report


# -- one run, in whichever process runs it --------------------------------------------------------------------
class RunError(SertkError):
    """A sweep run that failed: the error's one-line message and, for unexpected errors, the traceback.

    Whatever the run raised is turned into this (picklable) error in the worker, so it crosses process and
    cluster boundaries intact."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message, detail)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


@dataclasses.dataclass(frozen=True)
class RunTask:
    """What a worker needs for one run: plain data, so it pickles for a process pool and for Ray."""

    name: str
    config: dict[str, Any]
    overwrite: bool


def execute_run(task: RunTask) -> dict[str, Any]:
    """Run one sweep cell as ``sertk run`` would; returns a summary of its report (raises :class:`RunError`)."""
    from sertk.experiment.pipeline import run_experiment

    start = time.perf_counter()
    try:
        config = RunConfig.from_dict(task.config, source=f"sweep run {task.name}")
        result = run_experiment(config, overwrite=task.overwrite, fresh_out=False)
    except SertkError as exc:
        raise RunError(str(exc)) from None
    except Exception as exc:  # a bug or a plugin's own error: keep its traceback for --debug and sweep.json
        raise RunError(f"{type(exc).__name__}: {exc}", traceback.format_exc()) from None
    report = result.report
    return {"name": task.name, "folder": str(result.paths["json"].parent), "metrics": _metrics(report),
            "n_computed": int(report["featurizer"]["n_computed"]), "seconds": round(time.perf_counter() - start, 3)}


def _metrics(report: Mapping[str, Any]) -> dict[str, float]:
    return {"accuracy": report["accuracy"], "unweighted_accuracy": report["unweighted_accuracy"],
            "macro_f1": report["macro_f1"]}


# -- executors: fn over items, on_result(index, result or exception) in the driver as each finishes -----------
OnResult = Callable[[int, Any], None]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def map_sequential(fn: Callable[[Any], Any], items: Sequence[Any], *, on_result: OnResult) -> None:
    """Run ``fn`` on each item in this process, in order (``--jobs 1``)."""
    for index, item in enumerate(items):
        try:
            result = fn(item)
        except Exception as exc:
            result = exc
        on_result(index, result)


def _init_worker(threads: int) -> None:
    """Size a worker's thread pools (BLAS, OpenMP, torch) to its share of the cores, so that N workers do not
    each start one thread per core; and keep progress bars, which would interleave, out of workers."""
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    from sertk import progress

    progress.configure(enabled=False)


@contextlib.contextmanager
def _thread_variables(threads: int) -> Iterator[None]:
    """Set the thread-pool variables while worker processes start (they read them when BLAS loads)."""
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def map_local(fn: Callable[[Any], Any], items: Sequence[Any], *, jobs: int, threads_per_job: int = 1,
              on_result: OnResult) -> None:
    """Run ``fn`` on each item in a pool of ``jobs`` fresh (spawned) processes with ``threads_per_job`` BLAS
    threads each; ``on_result(index, result_or_exception)`` is called here as each run finishes. A worker that
    dies (killed, out of memory) fails the runs it had and the ones still waiting, each with that reason."""
    import multiprocessing

    if not items:
        return
    context = multiprocessing.get_context("spawn")  # no fork of a driver that holds threads and a database
    with _thread_variables(threads_per_job):
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=context,
                                                      initializer=_init_worker, initargs=(threads_per_job,))
    try:
        futures = {pool.submit(fn, item): index for index, item in enumerate(items)}
        for future in concurrent.futures.as_completed(futures):
            try:
                result = future.result()
            except concurrent.futures.process.BrokenProcessPool as exc:
                result = RunError(f"its worker process died ({exc or 'killed'}); rerun the sweep to redo it")
            except Exception as exc:
                result = exc
            on_result(futures[future], result)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _map_ray(fn: Callable[[Any], Any], items: Sequence[Any], *, address: str | None, num_cpus_per_run: float,
             on_result: OnResult) -> None:
    try:
        from sertk.executors.ray import map_runs
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("sertk"):
            raise ConfigError("this sertk has no Ray executor (sertk.executors.ray); use --executor local") from None
        raise
    map_runs(fn, items, address=address, num_cpus_per_run=num_cpus_per_run, on_result=on_result)


# -- embeddings, once per (dataset, featurizer), before the runs fan out ---------------------------------------
def _embedding_key(config: RunConfig) -> str:
    return json.dumps({"dataset": config.dataset.name, "dataset_options": config.dataset.options,
                       "root": config.data_root, "featurizer": config.featurizer.name,
                       "featurizer_options": config.featurizer.options, "cache_dir": config.cache_dir,
                       "batch_size": config.batch_size}, sort_keys=True, default=str)


def prepare_embeddings(config: RunConfig) -> dict[str, Any]:
    """Embed ``config``'s dataset with its featurizer into the cache; returns counts for the manifest.

    The featurizer runs where the base configuration says (``executor = "local"`` or ``"ray"``, as in
    ``sertk run``); the driver alone writes the cache. Files that fail are not cached: each run then reports them
    itself (or leaves them out with ``skip_bad_audio``), as a single ``sertk run`` would.
    """
    from sertk.executors import make_executor
    from sertk.experiment.pipeline import load_utterances
    from sertk.featurization.cache import EmbeddingCache
    from sertk.featurization.embed import embed_paths
    from sertk.plugins import get_component, instantiate

    dataset_component = get_component("dataset", config.dataset.name)
    if config.data_root is None and getattr(dataset_component.cls, "requires_root", False):
        raise ConfigError(f"dataset {config.dataset.name!r} needs its files: set [dataset] root in the sweep file")
    dataset = instantiate(dataset_component, config.dataset.options, root=config.data_root)
    featurizer = instantiate(get_component("featurizer", config.featurizer.name), config.featurizer.options)
    utterances = load_utterances(dataset, config.dataset.name)
    executor = make_executor(config.executor, address=config.ray_address, workers=config.workers,
                             gpus_per_worker=config.gpus_per_worker)
    try:
        with EmbeddingCache(Path(config.cache_dir) if config.cache_dir else None) as cache:
            result = embed_paths(featurizer, [u.path for u in utterances], cache=cache,
                                 batch_size=config.batch_size, executor=executor,
                                 desc=f"embedding {config.dataset.name} ({config.featurizer.name})")
    finally:
        executor.close()
    return {"n_files": len(utterances), "n_cached": int(result.n_cached), "n_computed": int(result.n_computed),
            "n_failed": len(result.failures)}


# -- the sweep ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunOutcome:
    """Where one run stands: ``pending``, ``finished`` (this time), ``earlier`` (finished before, skipped),
    ``failed`` (with ``error``)."""

    name: str
    folder: str
    cell: dict[str, Any]
    status: str = "pending"
    error: str | None = None
    detail: str | None = None
    metrics: dict[str, float] | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass
class SweepResult:
    plan: SweepPlan
    outcomes: list[RunOutcome]
    embeddings: list[dict[str, Any]]

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def finished_folders(self) -> list[Path]:
        return [Path(o.folder) for o in self.outcomes if o.status in ("finished", "earlier")]


@dataclasses.dataclass
class SweepEvent:
    """Told to ``on_event`` as the sweep goes: ``embedded`` (``detail``: counts), ``skipped``, ``finished`` or
    ``failed`` (``outcome``), with the runs done (finished or failed) and left of this session."""

    kind: str
    done: int
    left: int
    outcome: RunOutcome | None = None
    detail: dict[str, Any] | None = None


def claim_sweep_folder(folder: Path) -> None:
    """A sweep folder is new, empty, or an earlier run of a sweep (it has ``sweep.json``): never someone else's."""
    from sertk.experiment.outputs import check_creatable

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"sweep folder {folder} is a file; choose another --out")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
        raise ConfigError(f"sweep folder {folder} is not empty and holds no {MANIFEST}, so it is not a sweep's; "
                          f"choose another --out")
    if not folder.exists():
        check_creatable(folder, "sweep folder", "--out")
    folder.mkdir(parents=True, exist_ok=True)


class _Manifest:
    """``sweep.json``: the plan and each run's state, rewritten atomically (only by the driver)."""

    def __init__(self, plan: SweepPlan, outcomes: list[RunOutcome], embeddings: list[dict[str, Any]]) -> None:
        self.plan, self.outcomes, self.embeddings = plan, outcomes, embeddings
        self.created = _now()

    def write(self) -> None:
        from sertk import __version__
        from sertk.atomic import atomic_write_text

        counts = {status: sum(o.status == status for o in self.outcomes)
                  for status in ("finished", "earlier", "failed", "pending")}
        data = {"format": MANIFEST_FORMAT, "sertk_version": __version__, "source": self.plan.source,
                "created": self.created, "updated": _now(), "axes": self.plan.axes, "counts": counts,
                "embeddings": self.embeddings,
                "runs": [{**o.to_dict(), "folder": _relative(Path(o.folder), self.plan.folder)}
                         for o in self.outcomes]}
        atomic_write_text(self.plan.folder / MANIFEST, json.dumps(data, indent=1, default=str) + "\n")


def run_sweep(plan: SweepPlan, *, jobs: int | None = None, executor: str = "local", ray_address: str | None = None,
              on_event: Callable[[SweepEvent], None] | None = None) -> SweepResult:
    """Run every unfinished run of ``plan``; returns each run's outcome. Failed runs do not stop the others.

    ``jobs``: parallel runs of the local pool (default: the usable cores; 1 runs them in this process, one after
    the other). ``executor``: ``local`` or ``ray`` (``ray_address``: an existing cluster; default a new local
    one, see :mod:`sertk.executors.ray`).
    """
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r}; choose local or ray")
    cores = usable_cores()
    jobs = cores if jobs is None else jobs
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    claim_sweep_folder(plan.folder)
    notify = on_event or (lambda event: None)

    outcomes = [RunOutcome(run.name, str(run.folder), run.cell) for run in plan.runs]
    todo: list[int] = []
    for index, run in enumerate(plan.runs):
        report = finished_report(run.folder, run.config)
        if report is None:
            todo.append(index)
        else:
            outcomes[index].status, outcomes[index].metrics = "earlier", _metrics(report)
    embeddings: list[dict[str, Any]] = []
    manifest = _Manifest(plan, outcomes, embeddings)
    manifest.write()
    done = 0
    for index, outcome in enumerate(outcomes):
        if outcome.status == "earlier":
            notify(SweepEvent("skipped", done, len(todo), outcome))

    # embeddings first, once per distinct (dataset, featurizer); a run whose embedding failed fails with it
    blocked: dict[int, str] = {}
    groups: dict[str, list[int]] = {}
    for index in todo:
        config = plan.runs[index].config
        if config.cache:
            groups.setdefault(_embedding_key(config), []).append(index)
    for key, members in groups.items():
        config = plan.runs[members[0]].config
        entry: dict[str, Any] = {"dataset": config.dataset.name, "featurizer": config.featurizer.name,
                                 "featurizer_options": config.featurizer.options, "runs": len(members)}
        try:
            entry.update(prepare_embeddings(config))
        except SertkError as exc:
            entry["error"] = str(exc)
            blocked.update({index: f"embedding failed: {exc}" for index in members})
        embeddings.append(entry)
        manifest.write()
        notify(SweepEvent("embedded", done, len(todo), detail=entry))

    tasks: list[RunTask] = []
    task_index: list[int] = []
    for index in todo:
        if index in blocked:
            outcomes[index].status, outcomes[index].error = "failed", blocked[index]
            done += 1
            notify(SweepEvent("failed", done, len(todo) - done, outcomes[index]))
            continue
        run = plan.runs[index]
        folder = run.folder
        overwrite = folder.is_dir() and any(folder.iterdir())  # a half-done or stale run: only sertk's files go
        tasks.append(RunTask(run.name, run.config.to_dict(), overwrite))
        task_index.append(index)
    manifest.write()

    def on_result(position: int, result: Any) -> None:
        nonlocal done
        outcome = outcomes[task_index[position]]
        if isinstance(result, BaseException):
            outcome.status, outcome.error = "failed", str(result) or type(result).__name__
            outcome.detail = getattr(result, "detail", None) or None
            if not isinstance(result, SertkError):
                outcome.error = f"{type(result).__name__}: {result}"
        else:
            outcome.status, outcome.metrics, outcome.seconds = "finished", result["metrics"], result["seconds"]
        done += 1
        manifest.write()
        notify(SweepEvent(outcome.status, done, len(todo) - done, outcome))

    threads = max(1, cores // max(1, min(jobs, len(tasks) or 1)))
    if executor == "ray":
        _map_ray(execute_run, tasks, address=ray_address, num_cpus_per_run=1, on_result=on_result)
    elif jobs == 1 or len(tasks) <= 1:
        map_sequential(execute_run, tasks, on_result=on_result)
    else:
        map_local(execute_run, tasks, jobs=jobs, threads_per_job=threads, on_result=on_result)
    manifest.write()
    return SweepResult(plan, outcomes, embeddings)


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
