"""`sertk compare`: rows per configuration (seeds folded into mean ± std), groups per dataset and protocol with the
reason said, markdown/CSV/JSON, the paper's row, and clear errors for folders that are not runs.

One real run (toy plugin, in this process) gives a genuine report.json; the other runs are copies of it with the
configuration and numbers a test needs, so the table's arithmetic can be checked exactly.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from sertk.cli.main import cli
from sertk.errors import ConfigError
from sertk.experiment.compare import compare, load_runs, render
from sertk.experiment.config import RunConfig
from sertk.experiment.pipeline import run_experiment
from sertk.experiment.report import PAPER_ACCURACY


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict:
    """The report.json of one real toy run (a host with the toy plugin, as conftest's toy_host builds it)."""
    from toy_plugin import toy_plugin, write_toy_corpus

    import sertk.plugins

    root = tmp_path_factory.mktemp("compare")
    host = sertk.plugins.PluginHost(builtins=["sertk_plugins.protocols.standard"], load_external=False)
    host.register_plugin(toy_plugin, "toy")
    config = RunConfig.from_dict({"dataset": {"name": "toy"}, "featurizer": {"name": "toy-bands"},
                                  "classifier": {"name": "toy-centroid"}, "plots": False, "save_model": False,
                                  "cache_dir": str(root / "cache"), "out": str(root / "real")})
    config.data_root = str(write_toy_corpus(root / "toy"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sertk.plugins, "_host", host)
        run_experiment(config)
    return json.loads((root / "real" / "report.json").read_text())


def _run(template: dict, folder: Path, *, seed: int = 0, protocol: str = "sd-random",
         kind: str = "speaker-dependent", classifier: dict | None = None, wa: float = 0.5, ua: float = 0.5,
         f1: float = 0.5, **config) -> Path:
    report = copy.deepcopy(template)
    report["config"].update(seed=seed, out=str(folder), **config)
    report["config"]["protocol"] = {"name": protocol}
    if classifier is not None:
        report["config"]["classifier"] = classifier
    report["protocol"] = {**report["protocol"], "name": protocol, "kind": kind}
    report.update(accuracy=wa, unweighted_accuracy=ua, macro_f1=f1)
    report["confidence_intervals"] = {"accuracy": [wa - 0.1, wa + 0.1], "unweighted_accuracy": [ua - 0.1, ua + 0.1],
                                      "macro_f1": [f1 - 0.1, f1 + 0.1]}
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def test_mixed_protocols_are_grouped_and_the_output_says_why(template, tmp_path):
    folders = [_run(template, tmp_path / "sd-a", ua=0.6, classifier={"name": "toy-centroid"}),
               _run(template, tmp_path / "sd-b", ua=0.8, classifier={"name": "toy-centroid",
                                                                     "options": {"shrink": 0.1}}),
               _run(template, tmp_path / "si", protocol="loso", kind="speaker-independent", ua=0.9)]
    comparison = compare(load_runs(folders))
    assert [(g.protocol, [r.rank for r in g.rows]) for g in comparison.groups] == [
        ("loso, speaker-independent", [1]), ("sd-random, speaker-dependent", [1, 2])]
    best = comparison.groups[1].rows[0]
    assert best.classifier == "toy-centroid (shrink=0.1)" and best.folders == [str(tmp_path / "sd-b")]
    assert "2 groups, ranked separately" in comparison.notes[0] and "protocols" in comparison.notes[0]
    text = render(comparison)
    assert "## toy · loso, speaker-independent" in text and "## toy · sd-random, speaker-dependent" in text
    assert "| 1 | toy-bands | toy-centroid (shrink=0.1) | global | 50.00 [40.00, 60.00] | 80.00 [70.00, 90.00]" in text


def test_different_datasets_are_grouped_too(template, tmp_path):
    other = _run(template, tmp_path / "b", dataset={"name": "demo"})
    comparison = compare(load_runs([_run(template, tmp_path / "a"), other]))
    assert [g.dataset for g in comparison.groups] == ["demo", "toy"]
    assert "datasets (demo; toy)" in comparison.notes[0]


def test_seeds_of_one_configuration_fold_into_mean_and_std(template, tmp_path):
    was = [0.70, 0.74, 0.78]
    folders = [_run(template, tmp_path / f"seed{s}", seed=s, wa=wa) for s, wa in enumerate(was)]
    [group] = compare(load_runs(folders)).groups
    [row] = group.rows
    assert row.seeds == [0, 1, 2] and len(row.folders) == 3 and row.ci is None
    # the mean of three binary fractions and their sample std, to double rounding
    assert math.isclose(row.values["accuracy"], 0.74, rel_tol=1e-12)
    assert math.isclose(row.std["accuracy"], 0.04, rel_tol=1e-9)
    assert "| 74.00 ± 4.00 |" in render(compare(load_runs(folders)))
    assert "3 runs, seeds 0, 1, 2" in render(compare(load_runs(folders)))


def test_csv_and_json_through_the_cli(template, tmp_path):
    folders = [str(_run(template, tmp_path / f"s{s}", seed=s, wa=0.5 + s / 10)) for s in range(2)]
    folders.append(str(_run(template, tmp_path / "loso", protocol="loso", kind="speaker-independent")))
    runner = CliRunner()
    result = runner.invoke(cli, ["compare", *folders, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["protocol"], r["n_runs"], r["seeds"]) for r in rows] == [
        ("loso, speaker-independent", "1", "0"), ("sd-random, speaker-dependent", "2", "0 1")]
    assert float(rows[1]["accuracy"]) == pytest.approx(0.55, rel=1e-12)  # mean of 0.5 and 0.6
    assert rows[1]["accuracy_ci_low"] == "" and rows[0]["accuracy_ci_low"] == "0.4"

    out = tmp_path / "table.json"
    result = runner.invoke(cli, ["compare", *folders, "--format", "json", "--output", str(out), "--sort", "wa"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["format"] == "sertk-compare/1" and data["sort"] == "wa" and len(data["groups"]) == 2
    assert data["groups"][1]["rows"][0]["std"]["accuracy"] == pytest.approx(math.sqrt(0.005), rel=1e-9)
    result = runner.invoke(cli, ["compare", *folders, "--output", str(out)])
    assert result.exit_code == 1 and "already exists; pass --overwrite" in result.output
    assert runner.invoke(cli, ["compare", *folders, "--output", str(out), "--overwrite"]).exit_code == 0
    assert out.read_text().startswith("# sertk comparison")


def test_the_paper_row_stands_next_to_a_paper_configuration_run(template, tmp_path):
    paper = _run(template, tmp_path / "paper", wa=0.79, dataset={"name": "iemocap"},
                 featurizer={"name": "imagebind"}, classifier={"name": "nusvm", "options": {"nu": 0.1}})
    comparison = compare(load_runs([paper]), paper=True)
    [group] = comparison.groups
    assert [r.source.split(":")[0] for r in group.rows] == ["run", "paper"]
    assert group.rows[1].values == {"accuracy": PAPER_ACCURACY, "unweighted_accuracy": None, "macro_f1": None}
    assert group.rows[1].rank is None
    paper_row = "| — | imagebind (the paper) | nusvm (kernel=rbf, nu=0.1) | — | 80.58 | — | — | paper |"
    assert paper_row in render(comparison)
    other = compare(load_runs([_run(template, tmp_path / "other")]), paper=True)
    assert len(other.groups[0].rows) == 1 and any("paper's row is not shown" in note for note in other.notes)


def test_folders_that_are_not_runs_are_named(template, tmp_path):
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    half = tmp_path / "half"
    half.mkdir()
    (half / "sertk-run.json").write_text('{"format": "sertk-run/1", "files": []}')
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "report.json").write_text("{")
    cases = {empty: "is not a sertk run folder (no report.json)", half: "holds an unfinished run",
             broken: "is not a readable report", tmp_path / "nope": "does not exist"}
    for folder, message in cases.items():
        result = runner.invoke(cli, ["compare", str(_run(template, tmp_path / f"ok-{folder.name}")), str(folder)])
        assert result.exit_code == 1 and f"{folder}" in result.output and message in result.output
    with pytest.raises(ConfigError, match="unknown sort key"):
        compare(load_runs([tmp_path / "ok-empty"]), sort="speed")


def test_a_sweep_folder_stands_for_its_finished_runs(template, tmp_path):
    sweep = tmp_path / "sweep"
    _run(template, sweep / "a", seed=0)
    _run(template, sweep / "b", seed=1)
    (sweep / "sweep.json").write_text(json.dumps({"runs": [
        {"name": "a", "folder": "a", "status": "finished"}, {"name": "b", "folder": "b", "status": "earlier"},
        {"name": "c", "folder": "c", "status": "failed"}]}))
    [group] = compare(load_runs([sweep])).groups
    assert group.rows[0].seeds == [0, 1]
