"""The Ray executor on one small local cluster for the whole module (2 CPUs, 1 logical GPU, 100 MiB object store),
started by sertk's own :func:`~sertk.executors.ray.connect` with Ray's session files in this module's temporary
folder and $HOME pointed there too; the cluster's processes inherit that environment.

The featurizer under test is a third-party one (``counting_plugin.py``, installed on disk with an entry point), so
the workers build it through their own plugin registry; it logs ``pid name`` per file it embeds, which is how the
tests count computations.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cache_rows import committed_rows
from click.testing import CliRunner

import sertk
import sertk.plugins
from sertk.cli.main import cli
from sertk.errors import ConfigError
from sertk.featurization.cache import EmbeddingCache, audio_key, database_path, fingerprint_key
from sertk.featurization.embed import NON_FINITE, embed_paths
from sertk.plugins import get_component, instantiate

ray = pytest.importorskip("ray")

from sertk.executors.ray import RayExecutor, connect, map_runs  # noqa: E402 - needs ray

HERE = Path(__file__).parent
REPO = Path(sertk.__file__).resolve().parents[1]
PLUGIN_ENTRY_POINT = "sertk-counting"


class Cluster:
    def __init__(self, connection, plugin_dir: Path, home: Path) -> None:
        self.connection, self.plugin_dir, self.home = connection, plugin_dir, home


def _install_plugin(directory: Path) -> Path:
    """counting_plugin.py as an installed distribution: the module and a .dist-info naming its entry point."""
    directory.mkdir(parents=True)
    shutil.copy(HERE / "counting_plugin.py", directory / "sertk_counting_plugin.py")
    info = directory / "sertk_counting-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sertk-counting\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[sertk]\n{PLUGIN_ENTRY_POINT} = sertk_counting_plugin\n")
    return directory


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    # Ray's Unix sockets live under $RAY_TMPDIR/ray/session_…/sockets/ and a socket path has at most 107 bytes
    ray_tmp = root if len(str(root)) <= 40 else Path(tempfile.mkdtemp(prefix="sertk-ray-"))
    plugin_dir = _install_plugin(root / "plugin")
    home = root / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", str(ray_tmp))
        mp.setenv("HOME", str(home))
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(plugin_dir), str(REPO),
                                                              os.environ.get("PYTHONPATH")])))
        for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
            mp.delenv(name, raising=False)
        mp.syspath_prepend(str(plugin_dir))
        connection = connect(num_cpus=2, num_gpus=1, object_store_memory=100 * 2**20)
        try:
            yield Cluster(connection, plugin_dir, home)
        finally:
            connection.close()
            if ray_tmp != root:
                shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture
def counting(cluster, monkeypatch):
    """The driver's host loads the counting plugin (and the workers are told to load the same)."""
    monkeypatch.setenv("SERTK_LOAD_PLUGINS", PLUGIN_ENTRY_POINT)
    sertk.plugins.reset_host()
    return lambda **options: instantiate(get_component("featurizer", "counting"), options)


def wavs(directory: Path, n: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    paths = []
    for i in range(n):
        paths.append(directory / f"u{i:02d}.wav")
        sf.write(paths[-1], (0.1 * rng.standard_normal(400 + 10 * i)).astype(np.float32), 16000, subtype="FLOAT")
    return paths


def computed(log: Path) -> list[tuple[int, str]]:
    """(pid, file name) for every file the counting featurizer embedded, in order."""
    if not log.exists():
        return []
    return [(int(pid), name) for pid, name in (line.split() for line in log.read_text().splitlines())]


def assert_same(a, b) -> None:
    np.testing.assert_array_equal(a.embeddings, b.embeddings)  # the same per-file arithmetic, no BLAS: exact
    np.testing.assert_array_equal(a.ok, b.ok)
    assert a.failures == b.failures
    assert (a.n_cached, a.n_computed, a.audio_keys, a.fp_key) == (b.n_cached, b.n_computed, b.audio_keys, b.fp_key)


# -- the cluster sertk starts ----------------------------------------------------------------------------------
def test_the_cluster_sertk_starts_is_on_loopback_with_token_authentication(cluster):
    from ray._raylet import AuthenticationMode, get_authentication_mode

    assert cluster.connection.started
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    assert cluster.connection.gcs_address.startswith("127.0.0.1:")
    assert get_authentication_mode() == AuthenticationMode.TOKEN
    assert os.environ["RAY_AUTH_TOKEN"]  # held in the environment, for the cluster's processes
    assert not (cluster.home / ".ray").exists(), "Ray wrote into $HOME"


# -- same output as the local executor ---------------------------------------------------------------------------
def test_demo_corpus_through_ray_equals_local(cluster, counting, tmp_path):
    dataset = instantiate(get_component("dataset", "demo"), {}, root=None)
    demo = [u.path for u in dataset.utterances()][:24]
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    # a repeat, an unreadable file, a missing one, one whose embedding is NaN
    files = [demo[0], broken, *demo[1:4], demo[0], tmp_path / "gone.wav", *demo[4:]]
    featurizer = counting(nan_on=demo[2].name)
    local = embed_paths(featurizer, files, cache=None)
    assert local.failures[1].startswith("not audio") and local.failures[3] == NON_FINITE and 6 in local.failures
    with EmbeddingCache(tmp_path / "cache") as cache:
        # two workers of half a (logical) GPU each: fractional GPU scheduling; shards finish out of order
        through_ray = embed_paths(featurizer, files, cache=cache,
                                  executor=RayExecutor(workers=2, gpus_per_worker=0.5, shard_size=4))
        again = embed_paths(featurizer, files, cache=cache, executor="ray")  # all cached: no worker starts
    assert_same(through_ray, local)
    assert (again.n_cached, again.n_computed, again.failures) == (local.n_computed, 0, local.failures)
    assert sorted(through_ray.computed_by.values()) != [0, 0] and len(through_ray.computed_by) == 2
    assert all(" GPU 0" in worker for worker in through_ray.computed_by)


# -- failures ------------------------------------------------------------------------------------------------------
def test_a_worker_killed_in_the_middle_of_a_shard_has_its_shard_retried(cluster, counting, tmp_path):
    files = wavs(tmp_path / "audio", 10)
    log = tmp_path / "calls.log"
    # shards of 4 files (2 batches): the worker dies at the second batch of the second shard
    featurizer = counting(log=str(log), die_on=files[6].name)
    with EmbeddingCache(tmp_path / "cache") as cache:
        result = embed_paths(featurizer, files, cache=cache, executor=RayExecutor(workers=1, shard_size=4))
        assert cache.count(result.fp_key) == len(files)
    assert_same(result, embed_paths(counting(), files, cache=None))
    dead_pid = int(Path(f"{log}.died").read_text())
    counts = collections.Counter(name for _, name in computed(log))
    # files[4:6] were embedded by the worker that died (never committed) and again by its replacement
    assert counts == {f.name: 2 if f in files[4:6] else 1 for f in files}
    assert {pid for pid, _ in computed(log)} - {dead_pid}, "the shard was not retried by another worker"
    assert len(result.computed_by) == 2  # the dead worker's first shard counts, then its replacement's
    assert all(w.endswith(" GPU 0") for w in result.computed_by)  # the default: one GPU each when the cluster has


def test_an_impossible_gpu_request_fails_at_once_naming_what_is_missing(cluster, counting, tmp_path):
    files = wavs(tmp_path / "audio", 2)
    with pytest.raises(ConfigError, match=r"needs 2 GPU on one node \(the most a node has: 1\)"):
        embed_paths(counting(), files, cache=None, executor=RayExecutor(gpus_per_worker=2))
    with pytest.raises(ConfigError, match=r"--workers 3 with 1 CPU and 1 GPU each .* room for 1 worker"):
        embed_paths(counting(), files, cache=None, executor=RayExecutor(workers=3))
    # nothing was left waiting for a GPU.  Ray's resource view is eventually consistent: a GPU an earlier test's
    # actor just gave back may not show yet (seen once in a loaded CI run), so wait for it, up to 30 s; a request
    # left pending would hold it for good and still fail here
    deadline = time.monotonic() + 30
    while ray.available_resources().get("GPU") != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("GPU") == 1


def test_a_featurizer_the_workers_cannot_find_is_named(cluster, monkeypatch, tmp_path):
    from toy_plugin import toy_plugin

    host = sertk.plugins.PluginHost(builtins=[], load_external=False)
    host.register_plugin(toy_plugin, "toy")  # registered in this process only
    monkeypatch.setattr(sertk.plugins, "_host", host)
    featurizer = instantiate(get_component("featurizer", "toy-bands"), {})
    with pytest.raises(sertk.FeaturizerError, match="cannot build featurizer 'toy-bands'.*install the plugin"):
        embed_paths(featurizer, wavs(tmp_path / "audio", 2), cache=None,
                    executor=RayExecutor(workers=1, gpus_per_worker=0))


# -- the driver killed and resumed -----------------------------------------------------------------------------------
def test_a_killed_driver_resumes_with_nothing_lost_or_computed_twice(cluster, counting, tmp_path):
    files = wavs(tmp_path / "audio", 16)
    log, cache_dir, out = tmp_path / "calls.log", tmp_path / "cache", tmp_path / "out.npz"
    fp_key = fingerprint_key(counting().fingerprint())
    args = ["embed", *map(str, files), "-f", "counting", "-o", f"log={log}", "--batch-size", "2",
            "--executor", "ray", "--workers", "1", "--gpus-per-worker", "0", "--cache-dir", str(cache_dir),
            "--out", str(out)]
    env = {**os.environ, "SERTK_LOAD_PLUGINS": PLUGIN_ENTRY_POINT}
    # a second driver joins this module's cluster (its token is in the environment); shards of one batch (2 files)
    proc = subprocess.Popen([sys.executable, "-m", "sertk", *args, "-o", "delay=0.5",
                             "--ray-address", cluster.connection.gcs_address],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    try:
        deadline = time.monotonic() + 90
        while True:  # until >= 2 shards are committed and the next one is under way
            assert proc.poll() is None, f"the driver ended before it was killed: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, f"no progress: {proc.stderr.read1().decode()}"
            starts = Path(f"{log}.starts")
            begun = len(starts.read_text().splitlines()) if starts.exists() else 0
            # batches (= shards) of 2 files
            if committed_rows(cache_dir) >= 4 and begun > committed_rows(cache_dir) // 2:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    killed_pids = {pid for pid, _ in computed(log)}  # the killed driver's worker may still log a file or two

    with EmbeddingCache(cache_dir) as cache:
        kept = cache.get_many(fp_key, [k for k in cache.audio_keys(files) if isinstance(k, str)])
    assert 4 <= len(kept) < len(files) and len(kept) % 2 == 0, "a shard was half-written"
    conn = sqlite3.connect(database_path(cache_dir))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()

    result = CliRunner().invoke(cli, args, env={"SERTK_LOAD_PLUGINS": PLUGIN_ENTRY_POINT})
    assert result.exit_code == 0, result.output
    rerun = [name for pid, name in computed(log) if pid not in killed_pids]
    # the rerun embedded exactly what the cache did not hold, each file once
    assert sorted(rerun) == sorted(f.name for f in files if audio_key(f) not in kept)
    with np.load(out) as saved:
        np.testing.assert_array_equal(saved["embeddings"], embed_paths(counting(), files, cache=None).embeddings)
        assert list(saved["paths"]) == list(map(str, files))


# -- sweeps ----------------------------------------------------------------------------------------------------------
def test_map_runs_delivers_every_result_and_the_failure(cluster):
    from sertk_counting_plugin import square_unless_three  # importable on the workers too

    results: dict[int, object] = {}
    map_runs(square_unless_three, range(6), num_cpus_per_run=1, on_result=results.__setitem__)
    assert sorted(results) == list(range(6))
    assert {i: r for i, r in results.items() if i != 3} == {0: 0, 1: 1, 2: 4, 4: 16, 5: 25}
    assert isinstance(results[3], ValueError) and "three is not welcome" in str(results[3])
    with pytest.raises(ConfigError, match="asks for 3 CPU; no node"):
        map_runs(square_unless_three, [1], num_cpus_per_run=3, on_result=results.__setitem__)
