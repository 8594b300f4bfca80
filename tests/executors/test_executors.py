"""Executors without a cluster: choosing one, the resource plan, the missing extra, options, sertk list."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sertk.cli.main import cli
from sertk.errors import ConfigError
from sertk.executors import make_executor
from sertk.executors.local import LocalExecutor
from sertk.executors.ray import RayExecutor, connect, plan_workers, threads_per_worker
from sertk.experiment.config import RunConfig, dump_config, load_config
from sertk.featurization.embed import embed_paths
from sertk.plugins import get_component, instantiate, recipe_of


def test_local_is_the_default_and_unknown_names_list_the_known(toy_host, toy_corpus):
    assert isinstance(make_executor(), LocalExecutor)
    with pytest.raises(ConfigError, match="unknown executor 'dask'; known executors: local, ray"):
        make_executor("dask")
    featurizer = instantiate(get_component("featurizer", "toy-bands"), {})
    result = embed_paths(featurizer, sorted(toy_corpus.glob("*.wav"))[:5], cache=None)
    assert result.computed_by == {"local": 5}


def test_instantiate_records_how_to_build_the_same_component_again(toy_host):
    featurizer = instantiate(get_component("featurizer", "toy-bands"), {"n_bands": 8})
    recipe = recipe_of(featurizer)
    assert (recipe.kind, recipe.name, recipe.options, recipe.plugin) == ("featurizer", "toy-bands", {"n_bands": 8},
                                                                         "toy")
    assert recipe.build().fingerprint() == featurizer.fingerprint()


GPU_NODE = {"CPU": 8.0, "GPU": 2.0}
CPU_NODE = {"CPU": 2.0}


@pytest.mark.parametrize("nodes, workers, gpus, expected", [
    ([CPU_NODE], None, None, (1, 0.0)),  # CPU workers: all that fit less one, for the driver and Ray's tasks
    ([GPU_NODE], None, None, (2, 1.0)),  # one GPU each when the cluster has GPUs
    ([GPU_NODE, GPU_NODE], None, 0.5, (8, 0.5)),
    ([GPU_NODE], 3, 0, (3, 0.0)),
])
def test_the_default_plan(nodes, workers, gpus, expected):
    plan = plan_workers(nodes, workers, gpus, cpus_per_worker=1.0)
    assert (plan.workers, plan.gpus) == expected


@pytest.mark.parametrize("nodes, workers, gpus, message", [
    ([CPU_NODE], None, 1, r"the Ray cluster has no GPU \(2 CPU and 0 GPU in 1 node\(s\)\); pass --gpus-per-worker 0"),
    ([GPU_NODE, GPU_NODE], None, 3, r"needs 3 GPU on one node \(the most a node has: 2\)"),
    ([GPU_NODE], 3, None, r"--workers 3 with 1 CPU and 1 GPU each need 3 CPU and 3 GPU; .* room for 2 worker\(s\): "
                          r"pass --workers 2"),
    ([CPU_NODE], 3, 0, r"room for 2 worker\(s\): pass --workers 2$"),
])
def test_a_plan_the_cluster_cannot_hold_names_what_is_missing(nodes, workers, gpus, message):
    with pytest.raises(ConfigError, match=message):
        plan_workers(nodes, workers, gpus, cpus_per_worker=1.0)


@pytest.mark.parametrize("nodes, workers, expected", [
    ([{"CPU": 2.0}], 1, 2),  # one worker on a 2-core machine computes on both cores, as the local executor does
    ([{"CPU": 2.0}], 2, 1),
    ([{"CPU": 16.0}], 3, 5),
    ([{"CPU": 8.0}, {"CPU": 8.0}], 4, 4),  # spread: two per node
    ([{"CPU": 1.0}], 4, 1),  # never below one
])
def test_compute_threads_per_worker(nodes, workers, expected):
    # Ray starts a one-CPU actor with OMP_NUM_THREADS=1; the logical CPU (scheduling headroom) is not the cores
    assert threads_per_worker(nodes, workers) == expected


def test_bad_ray_options_are_refused_before_any_work():
    for options in ({"workers": 0}, {"shard_size": 0}, {"gpus_per_worker": -1}):
        with pytest.raises(ConfigError, match="ray executor"):
            RayExecutor(**options)


def test_without_ray_the_error_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    with pytest.raises(ConfigError, match=r"ray executor.*pip install sertk\[ray\]"):
        connect()
    config = tmp_path / "run.toml"
    config.write_text('executor = "ray"\n')
    with pytest.raises(ConfigError, match=r"executor = 'ray' needs the optional package ray.*pip install sertk\[ray\]"):
        load_config(config)
    listing = CliRunner().invoke(cli, ["list", "--json"])
    ray_row = next(row for row in json.loads(listing.output)["executors"] if row["name"] == "ray")
    assert (ray_row["installed"], ray_row["install"]) == (False, "pip install sertk[ray]")


def test_sertk_list_shows_the_executors(builtin_host):
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0, result.output
    text = result.output[result.output.index("executors:"):]
    assert "local" in text and "ray" in text
    assert "ray 2." in text  # the extra is installed here (dev installs it)


def test_executor_options_in_the_run_configuration(tmp_path):
    config = RunConfig.from_dict({"executor": "ray", "ray_address": "10.0.0.5:6379", "workers": 4,
                                  "gpus_per_worker": 0.5})
    path = tmp_path / "config.toml"
    path.write_text(dump_config(config))
    again = load_config(path)
    assert (again.executor, again.ray_address, again.workers, again.gpus_per_worker) == ("ray", "10.0.0.5:6379", 4,
                                                                                         0.5)
    assert RunConfig().executor == "local"
    for bad, message in (({"executor": "dask"}, "executor must be one of local, ray"),
                         ({"workers": 0}, "workers must be at least 1"),
                         ({"gpus_per_worker": -1}, "gpus_per_worker must be 0 or more")):
        with pytest.raises(ConfigError, match=message):
            RunConfig.from_dict(bad)


@pytest.mark.parametrize("command", [["run"], ["embed", "x.wav", "-f", "handcrafted", "--out", "o.npz"]])
def test_ray_options_need_the_ray_executor(command, tmp_path):
    result = CliRunner().invoke(cli, [*command, "--workers", "2"])
    assert result.exit_code == 2
    assert "--ray-address, --workers and --gpus-per-worker go with --executor ray" in result.output


def test_embed_cli_with_the_local_executor_named(builtin_host, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32), 16000)
    result = CliRunner().invoke(cli, ["embed", str(wav), "-f", "handcrafted", "--executor", "local", "--no-cache",
                                      "--out", str(tmp_path / "o.npz")])
    assert result.exit_code == 0, result.output
