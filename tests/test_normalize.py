"""Normalisation in each fold (sertk.experiment.normalize): no labels, nothing from outside the fold, per-speaker
statistics, small speakers, block scaling; and the run option, report wording and saved models that use it."""

from __future__ import annotations

import csv
import inspect
import json
import types

import numpy as np
import pytest
from click.testing import CliRunner
from toy_plugin import ToyFeaturizer

import sertk
from sertk.errors import ConfigError, FeaturizerError, ModelError
from sertk.experiment import normalize
from sertk.experiment.config import RunConfig, load_config
from sertk.experiment.normalize import MIN_STD_RATIO, fit_fold, fit_normalization
from sertk.experiment.pipeline import run_experiment
from sertk.protocols import Fold

#: float64 statistics of a few dozen values: a z-scored column's mean and std are 0 and 1 to rounding
ROUNDING = 1e-9


def _data(seed: int = 0, speakers=("a", "a", "a", "a", "b", "b", "b", "c", "c", "c", "c", "c")):
    rng = np.random.default_rng(seed)
    speakers = np.array(speakers)
    offset = {s: rng.normal(0, 5, 6) for s in set(speakers)}  # speaker-specific offsets and scales
    spread = {s: rng.uniform(0.5, 3, 6) for s in set(speakers)}
    X = np.stack([offset[s] + spread[s] * rng.standard_normal(6) for s in speakers])
    return X, speakers


# -- the normaliser itself -------------------------------------------------------------------------------------
def test_the_normaliser_takes_no_labels():
    for function in (fit_normalization, fit_fold):
        parameters = set(inspect.signature(function).parameters)
        assert not parameters & {"y", "labels", "label", "y_train", "labels_train", "targets"}, function


def test_global_is_standardize_bit_for_bit():
    X, speakers = _data()
    X = X.astype(np.float32)
    X[:, 2] = 1.5  # constant: divided by 1, as --standardize always did
    fitted = fit_normalization("global", X[:8], speakers[:8])
    mean, std = X[:8].mean(axis=0), X[:8].std(axis=0)
    std[std == 0] = 1.0
    assert np.array_equal(fitted.transform(X[8:]), (X[8:] - mean) / std)
    assert fitted.transform(X).dtype == np.float32
    assert fit_normalization("none", X, speakers).transform(X) is X


def test_speaker_z_scores_each_speaker_with_its_own_statistics():
    X, speakers = _data()
    fold = Fold("f", train=np.arange(7), test=np.arange(7, 12))  # a, b train; c test: speaker-independent
    fitted = fit_fold("speaker", X, speakers, fold)
    for speaker in ("a", "b", "c"):
        rows = speakers == speaker
        Z = fitted.transform(X[rows], speakers[rows])
        assert np.allclose(Z.mean(axis=0), 0, atol=ROUNDING) and np.allclose(Z.std(axis=0), 1, atol=ROUNDING)
    # the test speaker's statistics are those of its test rows alone
    assert np.allclose(fitted.speakers["c"].mean, X[7:].mean(axis=0), atol=ROUNDING)
    with pytest.raises(ValueError, match="no statistics for speaker"):
        fitted.transform(X[:2], ["z", "z"])


def test_a_speaker_on_both_sides_gets_one_set_of_statistics_over_both():
    X, speakers = _data()
    fold = Fold("f", train=np.array([0, 1, 2, 4, 5, 7, 8, 9]), test=np.array([3, 6, 10, 11]))  # speaker-dependent
    fitted = fit_fold("speaker", X, speakers, fold)
    for speaker in ("a", "b", "c"):
        rows = np.flatnonzero(speakers == speaker)
        assert np.allclose(fitted.speakers[speaker].mean, X[rows].mean(axis=0), atol=ROUNDING)
        assert np.allclose(fitted.speakers[speaker].std, X[rows].std(axis=0), atol=ROUNDING)


def test_changing_utterances_outside_a_fold_changes_nothing_in_it():
    X, speakers = _data(speakers=["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["d"] * 4)
    fold = Fold("f", train=np.arange(0, 8), test=np.arange(8, 12))  # speaker d is in neither side
    inside = np.arange(12)
    changed = X.copy()
    changed[12:] = 1e6 * np.random.default_rng(1).standard_normal((4, X.shape[1]))
    for mode in normalize.MODES:
        before = fit_fold(mode, X, speakers, fold).transform(X[inside], speakers[inside])
        after = fit_fold(mode, changed, speakers, fold).transform(changed[inside], speakers[inside])
        assert np.array_equal(before, after), mode


def test_permuting_test_labels_changes_nothing_the_normaliser_computes(toy_host, toy_corpus, tmp_path, monkeypatch):
    """Through the pipeline: labels shuffled within each speaker keep every loso-speaker fold, and every
    normalised vector and statistic stays the same."""
    seen: list[list] = []
    real_fit_fold = normalize.fit_fold

    def spy(mode, X, speakers, fold, blocks=()):
        fitted = real_fit_fold(mode, X, speakers, fold, blocks)
        seen[-1].append((fitted.transform(X[fold.test], np.asarray(speakers)[fold.test]),
                         {s: (st.mean, st.std) for s, st in fitted.speakers.items()}))
        return fitted

    monkeypatch.setattr(normalize, "fit_fold", spy)
    rows = list(csv.DictReader(open(toy_corpus / "labels.csv")))
    for run, permute in enumerate((False, True)):
        if permute:
            rng = np.random.default_rng(0)
            for speaker in {r["speaker"] for r in rows}:
                mine = [r for r in rows if r["speaker"] == speaker]
                for r, label in zip(mine, rng.permutation([r["label"] for r in mine])):
                    r["label"] = label
            with open(toy_corpus / "labels.csv", "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        seen.append([])
        run_experiment(_toy_config(toy_corpus, tmp_path / f"run{run}", protocol={"name": "loso-speaker"},
                                   cache_dir=str(tmp_path / "cache")))
    assert len(seen[0]) == len(seen[1]) == 4
    for (z0, stats0), (z1, stats1) in zip(*seen):
        assert np.array_equal(z0, z1) and stats0.keys() == stats1.keys()
        assert all(np.array_equal(stats0[s][k], stats1[s][k]) for s in stats0 for k in (0, 1))


def test_small_speakers_and_constant_dimensions():
    X, speakers = _data()
    X[speakers == "a", 1] = 7.0  # constant for speaker a only
    X[:, 4] = -2.0  # constant for everyone
    X[speakers == "b", 3] = X[speakers == "b", 3][0] + 1e-9 * np.arange(3)  # rounding noise, not signal
    speakers = speakers.astype("<U8")
    speakers[11] = "solo"  # one utterance
    fitted = fit_normalization("speaker", X[:8], speakers[:8], X[8:], speakers[8:])
    reference = fitted.reference
    assert fitted.small_speakers == ["solo"]
    solo = fitted.transform(X[11:], speakers[11:])
    assert np.allclose(solo, (X[11:] - reference.mean) / reference.std, atol=ROUNDING)  # the training side's
    Z = fitted.transform(X, speakers)
    assert np.isfinite(Z).all()
    assert np.allclose(Z[speakers == "a", 1], 0, atol=ROUNDING)  # centred on the speaker, not blown up
    assert np.allclose(Z[:, 4], 0, atol=ROUNDING)
    assert np.abs(Z[speakers == "b", 3]).max() < 1e-6  # noise of 1e-9 stays noise: divided by the reference std
    assert fitted.speakers["b"].std[3] == reference.std[3] and MIN_STD_RATIO < 1


def test_block_scaling_gives_every_block_the_same_total_variance():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (40, 3)), rng.normal(5, 30, (40, 37))], axis=1)
    speakers = np.repeat(["a", "b"], 20)
    blocks = normalize.check_blocks([("small", 3), ("big", 37)], 40)
    for mode in ("global", "speaker"):
        Z = fit_normalization(mode, X, speakers, blocks=blocks).transform(X, speakers)
        assert Z[:, :3].var(axis=0).sum() == pytest.approx(1, abs=ROUNDING)
        assert Z[:, 3:].var(axis=0).sum() == pytest.approx(1, abs=ROUNDING)
        assert Z[:, 3:].var(axis=0) == pytest.approx(np.full(37, 1 / 37), abs=ROUNDING)
    assert fit_normalization("none", X, speakers, blocks=blocks).transform(X) is X  # none: as made
    with pytest.raises(FeaturizerError, match=r"add up to 39 dimensions, but its embeddings have 40"):
        normalize.check_blocks([("small", 3), ("big", 36)], 40)
    with pytest.raises(FeaturizerError, match="must be \\(label, dim\\) with a positive dim"):
        normalize.check_blocks([("small", 0), ("big", 40)], 40)


# -- the run option --------------------------------------------------------------------------------------------
def _toy_config(root, out, **extra) -> RunConfig:
    data = {"dataset": {"name": "toy", "root": str(root)}, "featurizer": {"name": "toy-bands"},
            "classifier": {"name": "sklearn-nusvc", "options": {"nu": 0.1}}, "out": str(out), "normalize": "speaker",
            "plots": False, "save_model": False}
    data.update(extra)
    return RunConfig.from_dict(data)


def test_config_key_alias_and_contradictions(tmp_path):
    assert RunConfig().normalization("global") == "global"  # nothing said: the featurizer's default
    assert RunConfig.from_dict({"standardize": False}).normalization("global") == "none"
    config = RunConfig.from_dict({"normalize": "speaker"})
    assert config.normalization("none") == "speaker"
    config.update({"standardize": True}, source="command line")  # a later layer's alias replaces it
    assert config.normalization("none") == "global" and config.normalize is None
    assert RunConfig.from_dict({"normalize": "global", "standardize": True}).normalization("none") == "global"
    with pytest.raises(ConfigError, match=r"command line: standardize = true \(--standardize\) means normalize = "
                                          r"'global', which contradicts normalize = 'speaker'; give only one"):
        RunConfig.from_dict({"normalize": "speaker", "standardize": True}, source="command line")
    with pytest.raises(ConfigError, match="unknown normalisation 'speakers'; choose one of none, global, speaker"):
        RunConfig.from_dict({"normalize": "speakers"})
    path = tmp_path / "c.toml"
    path.write_text('normalize = "speaker"\n')
    assert load_config(path).normalize == "speaker"


def test_run_card_and_report_name_the_normalisation(toy_host, toy_corpus, tmp_path):
    out = tmp_path / "run"
    report = run_experiment(_toy_config(toy_corpus, out, normalize=None, protocol={"name": "loso"})).report
    assert report["normalization"]["mode"] == "global"  # the toy featurizer's standardize
    assert report["normalization"]["source"] == "featurizer default" and report["classifier"]["standardize"] is True
    assert 'normalize = "global"' in (out / "config.toml").read_text()  # explicit, so the run repeats exactly
    assert report["featurizer"]["options"] == {"n_bands": 16} and len(report["featurizer"]["fingerprint_key"]) == 64
    md = (out / "report.md").read_text()
    assert "- Normalisation: **global** (the featurizer's default): the mean and standard deviation of each " in md
    assert "- Featurizer: **toy-bands** (n_bands=16); 16-d; fingerprint `" in md
    assert "- Classifier: **sklearn-nusvc** (nu=0.1, random_state=0)" in md
    assert "Test-speaker statistics" not in md


class BlockFeaturizer(ToyFeaturizer):
    """The toy bands declared as two blocks, as a composite featurizer declares its parts."""

    name = "toy-blocks"
    blocks = (("low", 4), ("high", 12))


@sertk.hookimpl
def sertk_register_featurizers(register):
    register(BlockFeaturizer)


def test_a_featurizer_with_blocks_is_block_scaled(toy_host, toy_corpus, tmp_path, monkeypatch):
    toy_host.register_plugin(types.SimpleNamespace(sertk_register_featurizers=sertk_register_featurizers), "blocks")
    seen = []
    real = normalize.fit_fold
    monkeypatch.setattr(normalize, "fit_fold", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    out = tmp_path / "run"
    report = run_experiment(_toy_config(toy_corpus, out, featurizer={"name": "toy-blocks"}, normalize="global")
                            ).report
    assert report["normalization"]["blocks"] == [["low", 4], ["high", 12]] and report["normalization"]["block_scaling"]
    assert np.allclose(seen[0].scale, [0.5] * 4 + [12 ** -0.5] * 12)
    assert "- Block scaling: after z-scoring, each block of the features (low 4, high 12) was multiplied by " \
           "1/sqrt(its dimension)" in (out / "report.md").read_text()


def test_speaker_independent_run_says_test_speaker_statistics_were_used(toy_host, toy_corpus, tmp_path):
    out = tmp_path / "run"
    report = run_experiment(_toy_config(toy_corpus, out, protocol={"name": "loso-speaker"})).report
    normalization = report["normalization"]
    assert normalization["mode"] == "speaker" and normalization["uses_test_speaker_statistics"] is True
    assert normalization["speakers_on_both_sides"] is False and "both sides" not in normalization["statistics"]
    assert report["accuracy"] >= 0.75  # tones of four pitches stay separable
    md = (out / "report.md").read_text()
    assert ("- Normalisation: **speaker**: each speaker's own mean and standard deviation within each fold: training "
            "speakers' from their training utterances, test speakers' from their test utterances' features "
            "(unlabelled)") in md
    assert "**Test-speaker statistics were used**" in md


# -- saved models and sertk predict ----------------------------------------------------------------------------
def _invoke(*args):
    from sertk.cli.main import cli

    return CliRunner().invoke(cli, ["--no-progress", *args], catch_exceptions=False)


def test_predict_with_a_speaker_normalised_model(toy_host, toy_corpus, tmp_path):
    """group-split trains on speaker 0 and tests speaker 1 alone: predicting speaker 1's files as one speaker
    gives the run's own predictions."""
    out = tmp_path / "run"
    result = _invoke("run", "--dataset", "toy", "--data-root", str(toy_corpus), "-o", "dataset.speakers_per_group=1",
                     "--featurizer", "toy-bands", "--classifier", "toy-centroid", "--protocol", "group-split",
                     "-o", "protocol.train=g0", "-o", "protocol.test=g1", "--normalize", "speaker", "--no-plots",
                     "--out", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads((out / "model" / "model.json").read_text())["format"] == "sertk-model/2"
    tested = list(csv.DictReader(open(out / "predictions.csv")))
    files = [str(toy_corpus / f"{row['id']}.wav") for row in tested]
    refused = _invoke("predict", str(out / "model"), *files)
    assert refused.exit_code == 1
    assert "trained with per-speaker normalisation (--normalize speaker)" in refused.output
    assert "recordings of ONE speaker with --one-speaker" in refused.output
    too_few = _invoke("predict", str(out / "model"), files[0], "--one-speaker")
    assert too_few.exit_code == 1 and "needs at least 2 recordings of the speaker" in too_few.output
    result = _invoke("predict", str(out / "model"), *files, "--one-speaker", "--json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["emotion"] for line in result.output.splitlines()] == [r["predicted"] for r in tested]


def test_a_global_model_keeps_the_old_layout(toy_host, toy_corpus, tmp_path):
    from sertk.experiment.model import load_model

    out = tmp_path / "run"
    run_experiment(_toy_config(toy_corpus, out, normalize="global", classifier={"name": "toy-centroid"},
                               save_model=True))
    meta = json.loads((out / "model" / "model.json").read_text())
    assert meta["format"] == "sertk-model/1" and meta["standardize"] is True
    model = load_model(out / "model")
    assert model.normalize == "global" and model.scaler is not None
    model.check_input(1, one_speaker=False)  # a global model predicts single files
    meta["format"] = "sertk-model/2"  # a per-speaker format without per-speaker statistics: refused
    (out / "model" / "model.json").write_text(json.dumps(meta))
    from sertk.experiment.model import write_digests

    write_digests(out / "model")
    with pytest.raises(ModelError, match="per-speaker normalisation and format 'sertk-model/2' disagree"):
        load_model(out / "model")


# -- the demo corpus through the command line ------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-cache")


@pytest.mark.parametrize("protocol, both_sides", [("sd-random", True), ("loso-speaker", False)])
def test_sertk_run_normalize_speaker_on_the_demo_corpus(builtin_host, demo_cache, tmp_path, protocol, both_sides):
    out = tmp_path / "run"
    result = _invoke("run", "--normalize", "speaker", "--protocol", protocol, "--no-plots", "--no-save-model",
                     "-o", "dataset.labels=ang,sad", "--cache-dir", str(demo_cache), "--out", str(out))  # half: fast
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["normalization"]["mode"] == "speaker" and report["config"]["normalize"] == "speaker"
    assert report["normalization"]["speakers_on_both_sides"] is both_sides
    assert report["featurizer"]["options"]["n_mfcc"] == 20  # the handcrafted defaults, named
    md = (out / "report.md").read_text()
    assert "**Test-speaker statistics were used**" in md
    assert ("a speaker on both sides of a split (speaker-dependent protocol) gets one set of statistics over both "
            "sides" in md) is both_sides


def test_contradictory_options_are_one_line(builtin_host):
    result = _invoke("run", "--normalize", "speaker", "--standardize")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: command line: standardize = true (--standardize) means normalize = 'global', which contradicts "
        "normalize = 'speaker'; give only one of them"]
