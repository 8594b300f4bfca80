"""The Ray executor: cache misses embedded by Ray actors, one featurizer per worker; and :func:`map_runs` for sweeps.

The only module of sertk that imports ``ray`` (``pip install sertk[ray]``; Ray >= 2.54, see docs/distributed.md).

Connecting (:func:`connect`) follows one rule everywhere: an explicit address, else ``$RAY_ADDRESS``, else a *new*
local cluster (``address="local"``) — never silently joining whatever cluster runs on the machine. A cluster sertk
starts listens on the loopback interface only and keeps Ray's token authentication on, with a fresh token held in
this process's environment (inherited by the cluster's processes, never written to ``~/.ray``); its session files
go where Ray puts them (``$RAY_TMPDIR``, default ``/tmp``). Joining a cluster never turns authentication off.

Featurizing (:class:`RayExecutor`): the cluster's resources are checked before any actor is created, so a request it
cannot satisfy fails at once naming what is missing (Ray itself would wait forever). Each actor builds the
featurizer from its :class:`~sertk.plugins.Recipe` through the plugin registry on its host, checks that its
fingerprint is the driver's, and embeds whole shards with :func:`sertk.featurization.embed.embed_batches`; the driver
keeps two shards queued per actor, yields each result as it arrives (and commits it: the workers never touch the cache),
and resubmits the shards of a worker that died to a fresh one, a bounded number of times.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sertk.errors import ConfigError, FeaturizerError, SertkError
from sertk.executors import EmbedJob, ShardResult
from sertk.plugins import Recipe

__all__ = ["Connection", "RayExecutor", "connect", "map_runs"]

logger = logging.getLogger(__name__)

#: what a new local cluster sets in this process's environment (inherited by the cluster's processes) while it runs
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's node address is 127.0.0.1, its servers bind there
_AUTH_MODE_ENV, _AUTH_TOKEN_ENV, _AUTH_TOKEN_PATH_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
_USAGE_STATS_ENV = "RAY_USAGE_STATS_ENABLED"

#: shards queued per actor: one running, one waiting, so an actor never idles while the driver commits
_QUEUE_PER_WORKER = 2


def _import_ray() -> Any:
    from sertk.extras import import_extra

    return import_extra("ray", "ray", "the ray executor (--executor ray)", ConfigError)


# -- the cluster ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Connection:
    """This process's connection to a Ray cluster.

    Attributes
    ----------
    address
        ``"local"`` for a cluster sertk started, else the address joined (or ``"(existing)"``).
    started
        Whether sertk started the cluster (then :meth:`close` shuts it down).
    start_s
        Seconds ``ray.init`` took.
    """

    address: str
    started: bool
    start_s: float
    _restore_env: dict[str, str | None] = dataclasses.field(default_factory=dict, repr=False)
    _closed: bool = dataclasses.field(default=False, repr=False)

    @property
    def gcs_address(self) -> str:
        """The address other drivers join (``--ray-address``)."""
        return str(_import_ray().get_runtime_context().gcs_address)

    def close(self) -> None:
        """Shut down a cluster sertk started (a joined or pre-existing connection is left as it was)."""
        if self._closed:
            return
        self._closed = True
        if self.started:
            _import_ray().shutdown()
            _set_env(self._restore_env)


def connect(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
            object_store_memory: int | None = None) -> Connection:
    """Connect to a Ray cluster: ``address``, else ``$RAY_ADDRESS``, else a new local one (loopback, token auth).

    A process already connected (``ray.init`` called by the user) keeps its connection. ``num_cpus``, ``num_gpus``
    and ``object_store_memory`` size a new local cluster (``num_gpus`` counts are logical: tests schedule GPU
    workers on a machine without one).

    Raises
    ------
    ConfigError
        When Ray is not installed, or the cluster cannot be reached.
    """
    ray = _import_ray()
    if ray.is_initialized():
        logger.info("using the Ray cluster this process is already connected to")
        return Connection("(existing)", started=False, start_s=0.0)
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    t0 = time.perf_counter()
    if target == "local":
        restore = _secure_local_env(ray)
        try:
            ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, object_store_memory=object_store_memory,
                     include_dashboard=False, logging_level=logging.WARNING)
            nodes = {n["NodeManagerAddress"] for n in ray.nodes()}
            if nodes != {"127.0.0.1"} or not _token_auth_on():  # this Ray ignored a switch: do not run exposed
                ray.shutdown()
                raise SertkError(f"the local Ray cluster came up on {sorted(nodes)} with token authentication "
                                 f"{'on' if _token_auth_on() else 'off'}, not on the loopback address 127.0.0.1 with "
                                 f"authentication on; start a cluster yourself inside a trusted network and pass "
                                 f"--ray-address (docs/distributed.md)")
        except BaseException:
            _set_env(restore)
            raise
        connection = Connection("local", started=True, start_s=time.perf_counter() - t0, _restore_env=restore)
        logger.info("started a local Ray cluster on 127.0.0.1 in %.1f s (token authentication on)",
                    connection.start_s)
        return connection
    if os.environ.get(_AUTH_MODE_ENV, "").lower() == "disabled":
        logger.warning("%s=disabled: this connection to %s is not authenticated; anyone who reaches the cluster can "
                       "run code on it (docs/distributed.md)", _AUTH_MODE_ENV, target)
    try:
        ray.init(address=target, logging_level=logging.WARNING)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {target!r}: {exc}; is it running (`ray start --head` on "
                          f"its head node), and is its token in $RAY_AUTH_TOKEN or $RAY_AUTH_TOKEN_PATH?") from None
    connection = Connection(target, started=False, start_s=time.perf_counter() - t0)
    logger.info("joined the Ray cluster at %s in %.1f s", target, connection.start_s)
    return connection


def _secure_local_env(ray: Any) -> dict[str, str | None]:
    """Set the environment a new local cluster starts with (loopback, token auth, no usage reports); returns the
    values to put back when it is shut down."""
    wanted = {_LOOPBACK_ENV: "0", _AUTH_MODE_ENV: "token"}
    if not os.environ.get(_AUTH_TOKEN_ENV) and not os.environ.get(_AUTH_TOKEN_PATH_ENV):
        wanted[_AUTH_TOKEN_ENV] = secrets.token_hex(32)  # in memory only: Ray would write ~/.ray/auth_token
    if _USAGE_STATS_ENV not in os.environ:
        wanted[_USAGE_STATS_ENV] = "0"
    if os.environ.get(_AUTH_MODE_ENV, "token").lower() != "token":
        logger.warning("%s=%s is ignored for the cluster sertk starts: it keeps token authentication on",
                       _AUTH_MODE_ENV, os.environ[_AUTH_MODE_ENV])
    restore = {name: os.environ.get(name) for name in wanted}
    _set_env(wanted)
    return restore


def _set_env(values: Mapping[str, str | None]) -> None:
    """Set (``None``: unset) environment variables, and make an already imported Ray see them: it reads the
    loopback switch at import and caches the authentication mode and token (as its own ``ray.init`` refreshes them
    after enabling token authentication)."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        import ray._private.ray_constants as constants
        from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # private, unstubbed
    except ImportError:  # another Ray layout: connect() checks the node address and the authentication mode
        return
    constants.ENABLE_RAY_CLUSTER = os.environ.get(_LOOPBACK_ENV, "1").lower() not in ("0", "false")
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _token_auth_on() -> bool:
    try:
        from ray._raylet import AuthenticationMode, get_authentication_mode  # type: ignore[attr-defined]
    except ImportError:
        return os.environ.get(_AUTH_MODE_ENV, "").lower() == "token"
    return bool(get_authentication_mode() == AuthenticationMode.TOKEN)


@dataclasses.dataclass(frozen=True)
class _Plan:
    workers: int
    cpus: float
    gpus: float


def _node_resources(ray: Any) -> list[dict[str, float]]:
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive", False)]


def _fit(resources: dict[str, float], cpus: float, gpus: float) -> int:
    """How many workers of ``cpus`` CPUs and ``gpus`` GPUs one node holds."""
    counts = [math.floor(resources.get(kind, 0.0) / need + 1e-9) for kind, need in (("CPU", cpus), ("GPU", gpus))
              if need > 0]
    return min(counts) if counts else 0


def _describe(nodes: list[dict[str, float]]) -> str:
    cpu = sum(n.get("CPU", 0.0) for n in nodes)
    gpu = sum(n.get("GPU", 0.0) for n in nodes)
    return f"{cpu:g} CPU and {gpu:g} GPU in {len(nodes)} node(s)"


def plan_workers(nodes: list[dict[str, float]], workers: int | None, gpus_per_worker: float | None,
                 cpus_per_worker: float) -> _Plan:
    """The workers to create on a cluster with these nodes, or :class:`ConfigError` naming what is missing.

    Defaults: one GPU per worker when the cluster has GPUs, else CPU workers; as many GPU workers as fit, and as
    many CPU workers as fit less one (headroom for the driver and Ray's own tasks: actors holding every CPU can
    deadlock a small machine).
    """
    total_gpus = sum(n.get("GPU", 0.0) for n in nodes)
    gpus = gpus_per_worker if gpus_per_worker is not None else (1.0 if total_gpus >= 1 else 0.0)
    if gpus < 0 or cpus_per_worker <= 0:
        raise ConfigError(f"a worker needs a positive number of CPUs and zero or more GPUs, got {cpus_per_worker:g} "
                          f"CPU and {gpus:g} GPU")
    fits = sum(_fit(n, cpus_per_worker, gpus) for n in nodes)
    have = _describe(nodes)
    if fits == 0:
        if gpus > 0 and total_gpus == 0:
            raise ConfigError(f"--gpus-per-worker {gpus:g}: the Ray cluster has no GPU ({have}); pass "
                              f"--gpus-per-worker 0 to run the workers on CPUs, or join a cluster with GPUs")
        most_gpu = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
        most_cpu = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
        missing = (f"{gpus:g} GPU on one node (the most a node has: {most_gpu:g})" if gpus > most_gpu
                   else f"{cpus_per_worker:g} CPU on one node (the most a node has: {most_cpu:g})")
        raise ConfigError(f"no node of the Ray cluster can hold a worker: it needs {missing}; the cluster has {have}")
    if workers is None:
        workers = fits if gpus > 0 else max(1, fits - 1)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers > fits:
        raise ConfigError(f"--workers {workers} with {cpus_per_worker:g} CPU and {gpus:g} GPU each need "
                          f"{workers * cpus_per_worker:g} CPU and {workers * gpus:g} GPU; the Ray cluster has {have}, "
                          f"room for {fits} worker(s): pass --workers {fits}"
                          + (" or a smaller --gpus-per-worker" if gpus > 0 else ""))
    return _Plan(workers, cpus_per_worker, gpus)


# -- the workers ---------------------------------------------------------------------------------------------------
class _FeaturizerWorker:
    """A Ray actor's state: one featurizer, built once from its recipe on the worker's host."""

    def __init__(self, recipe: Recipe, load_plugins: str | None, threads: int = 1) -> None:
        from sertk.featurization.cache import fingerprint_key
        from sertk.plugins import DEFAULT_PLUGINS, LOAD_PLUGINS_ENV, PluginHost, instantiate, reset_host

        self.error: BaseException | None = None
        try:
            _use_threads(threads)
            if load_plugins is not None:  # the driver's plugin selection, not whatever this host's environment says
                os.environ[LOAD_PLUGINS_ENV] = load_plugins
                reset_host()
            if recipe.plugin in DEFAULT_PLUGINS:  # a built-in: its own module only (no classifiers, no scikit-learn)
                host = PluginHost(builtins=[recipe.plugin], load_external=False)
                self.featurizer = instantiate(host.get(recipe.kind, recipe.name), dict(recipe.options), **recipe.fixed)
            else:
                self.featurizer = recipe.build()
            self.fp_key = fingerprint_key(self.featurizer.fingerprint())
        except Exception as exc:  # noqa: BLE001 - reported by ready(), where the driver sees it as itself
            self.error = exc

    def ready(self) -> tuple[str, str]:
        """``(fingerprint key, who this worker is)``, or the error its featurizer raised when built."""
        if self.error is not None:
            raise self.error
        return self.fp_key, _who()

    def embed(self, paths: list[str], batch_size: int, dim: int) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        """One shard: ``(rows (n, dim) float32, ok (n,) bool, reasons)``."""
        from sertk.featurization.embed import embed_batches

        files = [Path(p) for p in paths]
        batches = [files[start:start + batch_size] for start in range(0, len(files), batch_size)]
        rows = np.zeros((len(files), dim), dtype=np.float32)
        ok = np.zeros(len(files), dtype=bool)
        reasons: list[str | None] = []
        index = 0
        for vectors, why in embed_batches(self.featurizer, batches, dim):
            for vector, reason in zip(vectors, why):
                if vector is not None:
                    rows[index], ok[index] = vector, True
                reasons.append(reason)
                index += 1
        return rows, ok, reasons


def _use_threads(threads: int) -> None:
    """Let this worker's compute use ``threads`` threads. Ray starts an actor of one logical CPU with
    ``OMP_NUM_THREADS=1``, so a single CPU worker on a small machine would compute on one core where the local
    executor uses all of them; the logical CPU count stays what the scheduler sees (headroom against deadlocks),
    the threads are what the host's cores allow (the driver mostly waits)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)  # for libraries loaded from here on (torch, a featurizer's own)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)  # the BLAS already loaded (NumPy's): kept for the actor's life
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def threads_per_worker(nodes: list[dict[str, float]], workers: int) -> int:
    """Compute threads for each of ``workers`` CPU workers spread over ``nodes``: the cores of the largest node
    shared among the workers it may hold, at least 1."""
    most = max((n.get("CPU", 0.0) for n in nodes), default=1.0)
    per_node = max(1, -(-workers // max(1, len(nodes))))  # workers are spread (SPREAD strategy)
    return max(1, int(most // per_node))


def _who() -> str:
    ray = _import_ray()
    gpus = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    return f"{ray.util.get_node_ip_address()} pid {os.getpid()}" + (f" GPU {','.join(map(str, gpus))}" if gpus else "")


@dataclasses.dataclass
class _Shard:
    keys: list[str]
    paths: list[str]
    attempts: int = 0


@dataclasses.dataclass
class _Worker:
    actor: Any
    who: str
    queued: int = 0


class RayExecutor:
    """Embeds cache misses on Ray actors (``--executor ray``).

    Parameters
    ----------
    address
        The cluster (see :func:`connect`); ``None``: ``$RAY_ADDRESS``, else a new local cluster.
    workers
        How many actors; default: as many as the cluster holds (CPU workers: less one).
    gpus_per_worker
        GPUs per actor (fractions share a GPU); default 1 when the cluster has GPUs, else 0.
    cpus_per_worker
        CPUs per actor.
    shard_size
        Files per shard (a multiple of the batch size is best); default: 1–4 batches, at least 8 shards per worker
        when there are enough files.
    max_attempts
        How often a shard is tried on workers that die before it fails the run.
    start_timeout_s
        How long workers may take to start (resources busy elsewhere, featurizer loading) before the run fails.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, gpus_per_worker: float | None = None,
                 *, cpus_per_worker: float = 1.0, shard_size: int | None = None, max_attempts: int = 3,
                 start_timeout_s: float = 300.0) -> None:
        for option, value, least in (("workers", workers, 1), ("shard_size", shard_size, 1),
                                     ("max_attempts", max_attempts, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ConfigError(f"ray executor: {option} must be an integer >= {least}, got {value!r}")
        if gpus_per_worker is not None and (isinstance(gpus_per_worker, bool) or gpus_per_worker < 0):
            raise ConfigError(f"ray executor: gpus_per_worker must be >= 0, got {gpus_per_worker!r}")
        self.address, self.workers, self.gpus_per_worker = address, workers, gpus_per_worker
        self.cpus_per_worker, self.shard_size = cpus_per_worker, shard_size
        self.max_attempts, self.start_timeout_s = max_attempts, start_timeout_s
        self.connection: Connection | None = None
        self.plan: _Plan | None = None
        #: seconds the last embed call's workers took to start (create the actors, build the featurizers)
        self.workers_start_s: float | None = None

    def _connect(self) -> Any:
        ray = _import_ray()
        if self.connection is None:
            self.connection = connect(self.address)
        return ray

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.name, "address": self.connection.address if self.connection else
                                self.address or os.environ.get("RAY_ADDRESS") or "local"}
        if self.plan is not None:
            info.update(workers=self.plan.workers, cpus_per_worker=self.plan.cpus, gpus_per_worker=self.plan.gpus)
        if self.connection is not None and self.connection.started:
            info["start_s"] = round(self.connection.start_s, 3)
        if self.workers_start_s is not None:
            info["workers_start_s"] = round(self.workers_start_s, 3)
        return info

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    # -- one embed_paths call ------------------------------------------------------------------------------------
    def embed(self, featurizer: Any, job: EmbedJob, misses: Sequence[tuple[str, Path]]) -> Iterator[ShardResult]:
        ray = self._connect()
        plan = self.plan = plan_workers(_node_resources(ray), self.workers, self.gpus_per_worker,
                                        self.cpus_per_worker)
        workers = min(plan.workers, len(misses))
        size = self.shard_size or _default_shard_size(len(misses), job.batch_size, workers)
        pending = collections.deque(_Shard([k for k, _ in misses[i:i + size]], [str(p) for _, p in misses[i:i + size]])
                                    for i in range(0, len(misses), size))
        logger.info("ray executor: %d files in %d shards on %d worker(s) of %g CPU and %g GPU", len(misses),
                    len(pending), workers, plan.cpus, plan.gpus)
        recipe = job.recipe or Recipe("featurizer", job.name, {})
        actor_class = ray.remote(_FeaturizerWorker).options(num_cpus=plan.cpus, num_gpus=plan.gpus, max_restarts=0,
                                                            scheduling_strategy="SPREAD")
        from sertk.plugins import LOAD_PLUGINS_ENV

        load_plugins = os.environ.get(LOAD_PLUGINS_ENV)

        threads = threads_per_worker(_node_resources(ray), workers)

        def start(count: int) -> list[_Worker]:
            actors = [actor_class.remote(recipe, load_plugins, threads) for _ in range(count)]
            try:
                return [_Worker(actor, who) for actor, who in zip(actors, self._ready(ray, actors, job))]
            except BaseException:
                for actor in actors:
                    ray.kill(actor)
                raise

        t0 = time.perf_counter()
        live = start(workers)
        self.workers_start_s = time.perf_counter() - t0
        in_flight: dict[Any, tuple[_Worker, _Shard]] = {}
        try:
            while pending or in_flight:
                for worker in live:
                    while worker.queued < _QUEUE_PER_WORKER and pending:
                        shard = pending.popleft()
                        in_flight[worker.actor.embed.remote(shard.paths, job.batch_size, job.dim)] = (worker, shard)
                        worker.queued += 1
                [ref], _ = ray.wait(list(in_flight), num_returns=1)
                worker, shard = in_flight.pop(ref)
                try:
                    rows, ok, reasons = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    raise _task_error(exc, job.name, worker.who) from None
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                        ray.exceptions.ObjectLostError) as exc:
                    lost = [shard]
                    for other in [r for r, (w, _) in in_flight.items() if w is worker]:  # queued behind it
                        lost.append(in_flight.pop(other)[1])
                    self._requeue(lost, pending, worker.who, exc)
                    live.remove(worker)
                    ray.kill(worker.actor)
                    live += self._replace(start, live)
                    continue
                worker.queued -= 1
                yield ShardResult(shard.keys, [row if good else None for row, good in zip(rows, ok)], list(reasons),
                                  worker=worker.who)
        finally:  # killing an actor ends its queued shards too (Ray cannot force-cancel actor tasks)
            for worker in live:
                ray.kill(worker.actor)

    def _ready(self, ray: Any, actors: list[Any], job: EmbedJob) -> list[str]:
        """Wait (bounded) until the actors built their featurizers; check each fingerprint is the driver's."""
        refs = [actor.ready.remote() for actor in actors]
        done, waiting = ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout_s)
        if waiting:
            raise FeaturizerError(f"{len(waiting)} of {len(refs)} Ray worker(s) did not start within "
                                  f"{self.start_timeout_s:g} s: the cluster's resources are in use by other work, or "
                                  f"building featurizer {job.name!r} is that slow (its weights must be readable on "
                                  f"every host); cluster: {_describe(_node_resources(ray))}")
        who = []
        for ref in refs:
            try:
                fp_key, name = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                raise _task_error(exc, job.name, "a Ray worker", building=True) from None
            if fp_key != job.fp_key:
                raise FeaturizerError(
                    f"the Ray worker {name} built featurizer {job.name!r} with another fingerprint than this process "
                    f"({fp_key[:12]} != {job.fp_key[:12]}): its embeddings would not be the ones cached here; install "
                    f"the same sertk, plugins and weights on every host"
                    + ("" if job.recipe else ", and build the featurizer with sertk.plugins.instantiate so that its "
                                             "options are known"))
            who.append(name)
        return who

    def _requeue(self, lost: list[_Shard], pending: collections.deque, who: str, exc: BaseException) -> None:
        for shard in lost:
            shard.attempts += 1
            if shard.attempts >= self.max_attempts:
                raise FeaturizerError(f"a shard of {len(shard.paths)} files (first: {shard.paths[0]}) was lost with "
                                      f"{shard.attempts} Ray workers that died; last: {who}: {_first_line(exc)}")
        logger.warning("Ray worker %s died (%s); its %d shard(s) go to another worker", who, _first_line(exc),
                       len(lost))
        pending.extendleft(reversed(lost))

    def _replace(self, start: Callable[[int], list[_Worker]], live: list[_Worker]) -> list[_Worker]:
        """A fresh worker for a dead one; when none starts, the others carry on (none left: the error)."""
        try:
            return start(1)
        except SertkError as exc:
            if not live:
                raise
            logger.warning("no replacement Ray worker (%s); %d worker(s) carry on", exc, len(live))
            return []


def _default_shard_size(n_files: int, batch_size: int, workers: int) -> int:
    n_batches = math.ceil(n_files / batch_size)
    return batch_size * min(4, max(1, math.ceil(n_batches / (8 * workers))))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _task_error(exc: Any, name: str, who: str, building: bool = False) -> BaseException:
    """The exception a worker's featurizer raised, as itself when it is one of sertk's (a run fails the same way
    as a local one), else a :class:`FeaturizerError` naming the worker."""
    from sertk.errors import UnknownComponentError

    cause = getattr(exc, "cause", None)
    if isinstance(cause, UnknownComponentError) and building:
        return FeaturizerError(f"the Ray workers cannot build featurizer {name!r}: {cause}; install the plugin that "
                               f"provides it on every host (plugins registered at run time in this process are not "
                               f"seen by the workers)")
    if isinstance(cause, SertkError):
        return cause
    what = f"{type(cause).__name__}: {cause}" if cause is not None else _first_line(exc)
    return FeaturizerError(f"featurizer {name!r} failed on {who}"
                           f"{' while being built' if building else ''}: {what}")


# -- sweeps ----------------------------------------------------------------------------------------------------------
def _run_one(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def map_runs(fn: Callable[[Any], Any], items: Iterable[Any], *, address: str | None = None,
             num_cpus_per_run: float = 1, on_result: Callable[[int, Any], None]) -> None:
    """Run ``fn(item)`` for every item as a Ray task and call ``on_result(index, result_or_exception)`` here, in the
    driver, as each finishes (completion order); a failing item delivers its exception and the others go on.

    ``fn`` must be a module-level function and the items picklable. The cluster is chosen as by :func:`connect`
    (a cluster started for this call is shut down when it returns).

    Raises
    ------
    ConfigError
        When no node of the cluster has ``num_cpus_per_run`` CPUs (checked before anything is submitted).
    """
    ray = _import_ray()
    items = list(items)
    connection = connect(address)
    refs: dict[Any, int] = {}
    try:
        nodes = _node_resources(ray)
        if num_cpus_per_run <= 0 or not any(n.get("CPU", 0.0) + 1e-9 >= num_cpus_per_run for n in nodes):
            raise ConfigError(f"a run asks for {num_cpus_per_run:g} CPU; no node of the Ray cluster has that many "
                              f"({_describe(nodes)})")
        task = ray.remote(_run_one).options(num_cpus=num_cpus_per_run, max_retries=1)
        refs = {task.remote(fn, item): index for index, item in enumerate(items)}
        while refs:
            [ref], _ = ray.wait(list(refs), num_returns=1)
            index = refs.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                result = getattr(exc, "cause", None) or exc
            except ray.exceptions.RayError as exc:  # the worker died (crash, out of memory) and the retry too
                result = exc
            on_result(index, result)
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        connection.close()
