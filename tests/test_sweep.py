"""`sertk sweep`: axes expanded into runs, a failing run that does not stop the others, embeddings computed once,
resume after a killed sweep, and the Ray path when its executor exists.

One sweep on the demo corpus (two of its classes and one speaker per session, 36 files, to keep it quick) is shared
by the module: 12 runs, of which the 4 with ν = 1.5 fail (ν must be in (0, 1]).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from sertk.cli.main import cli
from sertk.errors import ConfigError
from sertk.experiment.sweep import MANIFEST, finished_report, load_sweep, plan_sweep, run_sweep

SWEEP_TOML = """
save_model = false
[dataset]
name = "demo"
[dataset.options]
labels = ["ang", "sad"]
speakers = ["s1m", "s2f", "s3m"]
[classifier]
name = "nusvm"
[axes]
protocol = ["sd-random", "loso"]
"classifier.nu" = [0.1, 0.5, 1.5]
seed = [0, 1]
"""


# -- expansion ------------------------------------------------------------------------------------------------
def test_axes_expand_into_a_cartesian_product_with_readable_names():
    plan = plan_sweep({
        "classifier": {"name": "nusvm", "options": {"kernel": "rbf"}},
        "sweep": {"out": "sw"},
        "axes": {"featurizer": [{"name": "handcrafted"}, {"name": "handcrafted", "n_mfcc": 13}],
                 "classifier.nu": [0.1, 0.2], "seed": [0, 1, 2]},
    })
    assert len(plan.runs) == 2 * 2 * 3
    first, last = plan.runs[0], plan.runs[-1]
    assert first.name == "handcrafted_nu-0.1_seed-0"
    assert last.name == "handcrafted-n_mfcc-13_nu-0.2_seed-2"
    assert last.folder == Path("sw") / last.name
    assert last.config.featurizer.options == {"n_mfcc": 13}
    assert last.config.classifier.options == {"kernel": "rbf", "nu": 0.2}  # the base's options are kept
    assert last.config.seed == 2 and last.config.plots is False  # sweeps draw no t-SNE unless asked
    assert len({run.name for run in plan.runs}) == len(plan.runs)


def test_a_component_axis_comes_before_its_options_whatever_the_order():
    plan = plan_sweep({"axes": {"classifier.C": [1.0], "classifier": ["sklearn-svc", "logreg"]}})
    assert [(r.config.classifier.name, r.config.classifier.options) for r in plan.runs] == [
        ("sklearn-svc", {"C": 1.0}), ("logreg", {"C": 1.0})]


def test_no_axes_is_one_run():
    plan = plan_sweep({"seed": 3})
    assert [r.name for r in plan.runs] == ["base"] and plan.runs[0].config.seed == 3


@pytest.mark.parametrize("data, message", [
    ({"axes": {"seed": 1}}, "non-empty list"),
    ({"axes": {"seed": []}}, "non-empty list"),
    ({"axes": {"colour": [1]}}, "not a run key"),
    ({"axes": {"model.nu": [1]}}, "'model' is not a component"),
    ({"axes": {"cache_dir": ["a", "b"]}}, "cannot vary"),
    ({"axes": {"executor": ["local", "ray"]}}, "cannot vary"),
    ({"axes": {"seed": [0, 0]}}, "twice"),
    ({"axes": {"seed": ["x"]}}, "seed must be int"),
    ({"out": "runs/x"}, "[sweep] out"),
    ({"sweep": {"folder": "x"}}, "unknown key"),
])
def test_bad_sweep_files_fail_before_any_work(data, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        plan_sweep(data, source="s.toml")


def test_load_sweep_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[axes\n")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        load_sweep(path)
    path.write_text("[axes]\nseed = [0]\n")
    assert load_sweep(path).folder == Path("sweeps") / "bad"


def test_sweep_refuses_a_folder_that_is_not_a_sweeps(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="holds no sweep.json"):
        run_sweep(plan_sweep({}, out=tmp_path), jobs=1)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


# -- a real sweep on the demo corpus --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_sweep(tmp_path_factory):
    """The sweep above through the CLI with a pool of 2 workers; its own cache and sertk home."""
    root = tmp_path_factory.mktemp("sweep")
    path = root / "demo.toml"
    path.write_text(f'cache_dir = "{root / "cache"}"\n' + SWEEP_TOML)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SERTK_HOME", str(root / "home"))
        mp.setenv("SERTK_LOAD_PLUGINS", "")
        result = CliRunner().invoke(cli, ["--no-progress", "sweep", str(path), "--out", str(root / "out"),
                                          "--jobs", "2"])
    return path, root / "out", result


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def test_a_failing_run_is_reported_and_the_others_finish(demo_sweep):
    _, out, result = demo_sweep
    assert result.exit_code == 1, result.output
    manifest = _manifest(out)
    failed = {r["name"] for r in manifest["runs"] if r["status"] == "failed"}
    finished = {r["name"] for r in manifest["runs"] if r["status"] == "finished"}
    assert failed == {f"{p}_nu-1.5_seed-{s}" for p in ("sd-random", "loso") for s in (0, 1)}
    assert len(finished) == 8 and manifest["counts"] == {"finished": 8, "earlier": 0, "failed": 4, "pending": 0}
    assert all("nu must be a number in (0, 1]" in r["error"] for r in manifest["runs"] if r["status"] == "failed")
    assert "4 run(s) failed" in result.output and "loso_nu-1.5_seed-1: " in result.output
    assert "[12 done, 0 left]" in result.output
    for name in finished:
        assert (out / name / "report.json").is_file()
    assert not any((out / name / "report.json").exists() for name in failed)
    # the comparison at the end: printed and written to the sweep folder, the two protocols never ranked together
    assert "## demo (labels=[ang,sad], speakers=[s1m,s2f,s3m]) · loso, speaker-independent" in result.output
    assert "ranked separately" in (out / "comparison.md").read_text()
    assert json.loads((out / "comparison.json").read_text())["format"] == "sertk-compare/1"


def test_embeddings_are_computed_once_for_all_runs(demo_sweep):
    _, out, _ = demo_sweep
    manifest = _manifest(out)
    [entry] = manifest["embeddings"]  # one featurizer, one dataset
    assert entry["n_computed"] == entry["n_files"] == 36 and entry["n_cached"] == 0
    for run in manifest["runs"]:
        if run["status"] == "finished":
            report = json.loads((out / run["folder"] / "report.json").read_text())
            assert report["featurizer"]["n_computed"] == 0  # every run read the cache only
            assert report["featurizer"]["n_cached"] == 36


def test_dry_run_lists_what_is_finished(demo_sweep):
    path, out, _ = demo_sweep
    result = CliRunner().invoke(cli, ["sweep", str(path), "--out", str(out), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.count("finished ") == 8 and result.output.count("to run ") == 4


def test_a_killed_sweep_resumes_redoing_only_unfinished_runs(demo_sweep, monkeypatch):
    path, out, _ = demo_sweep
    monkeypatch.setenv("SERTK_LOAD_PLUGINS", "")
    plan = load_sweep(path, out=out)
    broken, deleted = "loso_nu-0.5_seed-0", "sd-random_nu-0.1_seed-1"
    (out / broken / "report.json").write_text('{"accuracy": 0.5, "conf')  # killed while writing
    (out / broken / "notes.txt").write_text("mine")  # not sertk's: must survive the redo
    (out / deleted / "report.json").unlink()
    others = {r.name: (r.folder / "report.json").stat().st_mtime_ns for r in plan.runs
              if r.name not in (broken, deleted) and (r.folder / "report.json").exists()}
    events = []
    result = run_sweep(plan, jobs=1, on_event=events.append)
    redone = {e.outcome.name for e in events if e.kind == "finished"}
    skipped = {e.outcome.name for e in events if e.kind == "skipped"}
    assert redone == {broken, deleted}
    assert skipped == set(others) and len(skipped) == 6
    assert [e.detail["n_computed"] for e in events if e.kind == "embedded"] == [0]
    assert {o.name for o in result.failed} == {r.name for r in plan.runs if "nu-1.5" in r.name}
    for name, mtime in others.items():
        assert (out / name / "report.json").stat().st_mtime_ns == mtime
    assert (out / broken / "notes.txt").read_text() == "mine"
    assert finished_report(out / broken, plan.runs[[r.name for r in plan.runs].index(broken)].config)
    assert _manifest(out)["counts"]["earlier"] == 6


@pytest.mark.skipif(importlib.util.find_spec("sertk.executors.ray") is None,
                    reason="sertk.executors.ray (map_runs) has not landed in this checkout")
def test_the_ray_executor_runs_the_same_sweep(demo_sweep, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    from sertk.executors import ray as ray_executor

    if not hasattr(ray_executor, "map_runs"):
        pytest.skip("sertk.executors.ray has no map_runs yet")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # nothing of Ray's in the real $HOME
    session = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    monkeypatch.setenv("RAY_TMPDIR", session)
    monkeypatch.setenv("SERTK_LOAD_PLUGINS", "")
    path, _, _ = demo_sweep
    data = tomllib.loads(path.read_text())  # its cache holds the embeddings already
    data["axes"] = {"classifier.nu": [0.1, 1.5]}
    try:
        result = run_sweep(plan_sweep(data, out=tmp_path / "out"), executor="ray")
    finally:
        shutil.rmtree(session, ignore_errors=True)
    assert [o.status for o in result.outcomes] == ["finished", "failed"]
    assert "nu must be a number" in result.outcomes[1].error
