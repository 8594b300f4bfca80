"""The command line: help everywhere, exit codes, one clear line for user errors, --debug tracebacks."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sertk.cli.main import cli


def invoke(*args, **kwargs):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, **kwargs)


def _commands(group, prefix=()):
    import click

    for name, command in group.commands.items():
        yield prefix + (name,)
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))


@pytest.mark.parametrize("path", [()] + list(_commands(cli)))
def test_help_everywhere(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_run_on_the_toy_corpus(toy_host, toy_corpus, tmp_path):
    out = tmp_path / "run"
    result = invoke("--no-progress", "run", "--dataset", "toy", "--data-root", str(toy_corpus), "--featurizer",
                    "toy-bands", "--classifier", "logreg", "--seed", "2", "--out", str(out), "-o",
                    "classifier.C=0.5", "-o", "protocol.test_size=0.25", "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    assert "WA " in result.output and "UA " in result.output and "sd-random (speaker-dependent" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["classifier"] == {"name": "logreg", "options": {"C": 0.5}}
    assert report["config"]["seed"] == 2 and report["n_test"] == 20
    again = invoke("--no-progress", "run", "--config", str(out / "config.toml"), "--out", str(tmp_path / "again"))
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "predictions.csv").read_text() == (out / "predictions.csv").read_text()


def test_run_keeps_the_nusvm_fit_in_a_checkpoint_folder(toy_host, toy_corpus, tmp_path):
    """``-o classifier.checkpoint=DIR`` reaches NuSVC: the fit is kept there, and a repeated run takes it from the
    file (the same predictions; the folder still holds one file, for this training set and these parameters)."""
    from sertk_plugins.classifiers import nusvm

    toy_host.register_plugin(nusvm, "nusvm")
    folder = tmp_path / "fits"
    folder.mkdir()
    args = ["--no-progress", "run", "--dataset", "toy", "--data-root", str(toy_corpus), "--featurizer", "toy-bands",
            "--classifier", "nusvm", "--no-plots", "-o", f"classifier.checkpoint={folder}", "--cache-dir",
            str(tmp_path / "cache")]
    first = invoke(*args, "--out", str(tmp_path / "a"))
    assert first.exit_code == 0, first.output
    (kept,) = folder.iterdir()
    assert kept.name.startswith("nusvm-") and kept.suffix == ".npz"
    before = kept.read_bytes()
    again = invoke(*args, "--out", str(tmp_path / "b"))
    assert again.exit_code == 0, again.output
    assert (tmp_path / "b" / "predictions.csv").read_text() == (tmp_path / "a" / "predictions.csv").read_text()
    assert list(folder.iterdir()) == [kept] and kept.read_bytes() == before


def test_run_keeps_a_long_nusvm_fit_in_the_cache_by_default(toy_host, toy_corpus, tmp_path, monkeypatch):
    """From FIT_CHECKPOINT_FROM training samples (0 here, for the toy corpus) ``sertk run`` keeps its ν-SVM fit in
    the cache's fits folder: a repeated (or stopped) run takes it from there. ``sertk cache info`` counts the file,
    ``sertk cache clear`` deletes it with the embeddings, after one question that names both; the saved model names
    no such folder; ``--no-cache`` keeps nothing."""
    from sertk.experiment import pipeline
    from sertk_plugins.classifiers import nusvm

    toy_host.register_plugin(nusvm, "nusvm")
    monkeypatch.setattr(pipeline, "FIT_CHECKPOINT_FROM", 0)
    cache = tmp_path / "cache"
    args = ["--no-progress", "run", "--dataset", "toy", "--data-root", str(toy_corpus), "--featurizer", "toy-bands",
            "--classifier", "nusvm", "--no-plots", "--cache-dir", str(cache)]
    first = invoke(*args, "--out", str(tmp_path / "a"))
    assert first.exit_code == 0, first.output
    (kept,) = (cache / "fits").iterdir()
    assert kept.name.startswith("nusvm-") and kept.suffix == ".npz"
    before = kept.read_bytes()
    again = invoke("-v", *args, "--out", str(tmp_path / "b"))
    assert again.exit_code == 0, again.output
    assert "ν-SVM fit resumed from" in again.output and "6 of 6 pairs solved" in again.output
    assert (tmp_path / "b" / "predictions.csv").read_text() == (tmp_path / "a" / "predictions.csv").read_text()
    assert list((cache / "fits").iterdir()) == [kept] and kept.read_bytes() == before
    from sertk.experiment.model import CLASSIFIER_FILE

    assert nusvm.NuSVMClassifier.load(tmp_path / "a" / "model" / CLASSIFIER_FILE).checkpoint is None

    info = invoke("cache", "info", "--cache-dir", str(cache), "--json")
    assert info.exit_code == 0, info.output
    assert json.loads(info.output)["fits"]["files"] == 1
    (cache / "fits" / "notes.txt").write_text("mine")  # a user's file there is left alone
    entries = json.loads(info.output)["entries"]
    assert entries > 0
    # one question names the embeddings and the fits; "no" keeps both
    refused = invoke("cache", "clear", "--cache-dir", str(cache), input="n\n")
    assert refused.exit_code == 1 and "Aborted!" in refused.output
    assert refused.output.count("[y/N]") == 1
    assert f"({entries} entries)" in refused.output and "and the 1 ν-SVM fit checkpoint(s) in" in refused.output
    assert kept.exists()
    assert json.loads(invoke("cache", "info", "--cache-dir", str(cache), "--json").output)["entries"] == entries
    cleared = invoke("cache", "clear", "--cache-dir", str(cache), input="y\n")
    assert cleared.exit_code == 0, cleared.output
    assert cleared.output.count("[y/N]") == 1 and "deleted 1 fit checkpoint(s)" in cleared.output
    assert sorted(p.name for p in (cache / "fits").iterdir()) == ["notes.txt"]
    assert json.loads(invoke("cache", "info", "--cache-dir", str(cache), "--json").output)["entries"] == 0

    bare = tmp_path / "bare"
    plain = invoke(*args[:-2], "--cache-dir", str(bare), "--no-cache", "--out", str(tmp_path / "c"))
    assert plain.exit_code == 0, plain.output
    assert not (bare / "fits").exists()


def test_sigterm_stops_a_command_as_ctrl_c_does(tmp_path):
    """``kill`` or a batch scheduler's time limit (SIGTERM) reaches a command as KeyboardInterrupt, so that it cleans
    up as after Ctrl-C (a run removes its half-written folder, a fit keeps its state); the exit status says SIGTERM."""
    import signal
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from sertk.cli.main import cli, main

        @cli.command("slow")
        def slow():
            print("started", flush=True)
            try:
                time.sleep(120)
            except KeyboardInterrupt:
                open(sys.argv[1], "w").write("cleaned up")
                raise

        main(["slow"])
    """))
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, str(script), str(marker)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert marker.read_text() == "cleaned up"
    assert "Aborted!" in err


@pytest.mark.parametrize("args, message", [
    (["run", "--dataset", "nope"], "Error: unknown dataset 'nope'; known datasets: toy"),
    (["run", "--dataset", "toy"], "Error: dataset 'toy' needs its files: pass --data-root DIR"),
    (["run", "--dataset", "toy", "--data-root", "{root}", "--featurizer", "toy-bands", "--classifier", "logreg",
      "-o", "classifier.C"], "Error: bad option 'classifier.C'"),
    (["run", "--dataset", "toy", "--data-root", "{root}", "--featurizer", "toy-bands", "--classifier", "logreg",
      "-o", "classifer.C=1"], "Error: "),
    (["run", "--dataset", "toy", "--data-root", "{root}", "--featurizer", "toy-bands", "--classifier", "logreg",
      "-o", "classifier.gamma=1"], "Error: classifier 'logreg' has no option 'gamma'; its options are: C, "),
    (["run", "--dataset", "toy", "--data-root", "{root}", "--featurizer", "toy-bands", "--classifier", "logreg",
      "--protocol", "speakerwise"], "Error: unknown protocol 'speakerwise'"),
    (["run", "--config", "{root}/missing.toml"], "Error: cannot read config file"),
])
def test_user_errors_are_one_line_and_exit_1(toy_host, toy_corpus, args, message):
    args = [a.replace("{root}", str(toy_corpus)) for a in args]
    result = CliRunner().invoke(cli, ["--no-progress"] + args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert "Traceback" not in result.output


def test_usage_errors_exit_2():
    assert CliRunner().invoke(cli, ["run", "--seed", "abc"]).exit_code == 2
    assert CliRunner().invoke(cli, ["no-such-command"]).exit_code == 2


def test_debug_shows_the_traceback(toy_host):
    from sertk.errors import UnknownComponentError

    with pytest.raises(UnknownComponentError):
        CliRunner().invoke(cli, ["--debug", "run", "--dataset", "nope"], catch_exceptions=False)


def test_list_shows_components_with_their_plugins(toy_host):
    result = invoke("list")
    assert result.exit_code == 0
    assert "datasets:" in result.output and "toy" in result.output
    assert "sklearn-nusvc" in result.output
    assert "sertk_plugins.classifiers.sklearn_reference (sertk 0.1.0)" in result.output
    assert "loso-speaker" in result.output and "speaker-independent" in result.output
    data = json.loads(invoke("list", "--json").output)
    row = next(r for r in data["components"] if r["name"] == "toy-bands")
    assert row["kind"] == "featurizer" and row["plugin"] == "toy"


def test_predict_with_a_saved_model(toy_host, toy_corpus, tmp_path):
    out = tmp_path / "run"
    result = invoke("--no-progress", "run", "--dataset", "toy", "--data-root", str(toy_corpus), "--featurizer",
                    "toy-bands", "--classifier", "toy-centroid", "--no-plots", "--out", str(out))
    assert result.exit_code == 0, result.output
    import csv

    tested = list(csv.DictReader(open(out / "predictions.csv")))  # the saved model is the evaluated one
    files = [str(toy_corpus / f"{row['id']}.wav") for row in tested]
    result = invoke("predict", str(out / "model"), *files, "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["path"] for r in rows] == files
    assert [r["emotion"] for r in rows] == [row["predicted"] for row in tested]
    assert set(rows[0]["scores"]) == {"ang", "hap", "neu", "sad"} and rows[0]["score_kind"] == "decision"
    best = max(rows[0]["scores"], key=rows[0]["scores"].get)
    assert best == rows[0]["emotion"]
    plain = invoke("predict", str(out / "model"), files[0])
    assert plain.output.startswith(f"{files[0]}\t{tested[0]['predicted']}\t(decision: ang ")


def test_predict_refuses_a_model_of_another_featurizer_configuration(toy_host, toy_corpus, tmp_path):
    from sertk.experiment.model import write_digests

    out = tmp_path / "run"
    invoke("--no-progress", "run", "--dataset", "toy", "--data-root", str(toy_corpus), "--featurizer", "toy-bands",
           "--classifier", "toy-centroid", "--no-plots", "--out", str(out))
    meta = json.loads((out / "model" / "model.json").read_text())
    meta["featurizer"]["fingerprint"]["version"] = 0
    (out / "model" / "model.json").write_text(json.dumps(meta))
    write_digests(out / "model")  # a genuine model of another configuration, not an edited one
    result = CliRunner().invoke(cli, ["predict", str(out / "model"), str(toy_corpus / "spk0_sad_0.wav")])
    assert result.exit_code == 1
    assert "different fingerprint (differs in: version)" in result.output


def test_predict_errors(toy_host, toy_corpus, tmp_path):
    result = CliRunner().invoke(cli, ["predict", str(tmp_path), str(toy_corpus / "spk0_sad_0.wav")])
    assert result.exit_code == 1 and "holds no saved model (no model.json)" in result.output


def test_predict_names_unreadable_files_and_exits_1(toy_host, toy_corpus, tmp_path):
    out = tmp_path / "run"
    invoke("--no-progress", "run", "--dataset", "toy", "--data-root", str(toy_corpus), "--featurizer", "toy-bands",
           "--classifier", "toy-centroid", "--no-plots", "--out", str(out))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"no audio here")
    result = CliRunner().invoke(cli, ["predict", str(out / "model"), str(bad), "--json"])
    assert result.exit_code == 1
    (row,) = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert row["path"] == str(bad) and "bad.wav" in row["error"]
    good = str(toy_corpus / "spk0_sad_0.wav")
    mixed = CliRunner().invoke(cli, ["predict", str(out / "model"), str(bad), good, "--json"])
    assert mixed.exit_code == 1
    rows = [json.loads(line) for line in mixed.output.splitlines() if line.startswith("{")]
    assert "error" in rows[0] and rows[1]["path"] == good and rows[1]["emotion"] in {"ang", "hap", "neu", "sad"}
