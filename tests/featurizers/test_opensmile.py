"""The ``opensmile`` featurizer: openSMILE's own values, its fingerprint, odd and bad audio, the missing extra, and
``sertk run`` end to end on the demo corpus.

Equality with ``opensmile.Smile(...).process_file`` is exact (tolerance 0): both sides hand the same float32
samples (libsndfile's decoding, read by ``audiofile`` there and by :mod:`sertk.audio.io` here) to the same
openSMILE library in the same process, which is deterministic; any difference would be a real one (decoding,
channel mixing, resampling, 16-bit conversion), not rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

pytest.importorskip("opensmile")

import opensmile  # noqa: E402

import sertk.extras  # noqa: E402
from sertk.cli.main import cli  # noqa: E402
from sertk.errors import AudioError, FeaturizerError  # noqa: E402
from sertk.featurization.embed import embed_paths  # noqa: E402
from sertk_plugins.featurizers.opensmile_sets import FEATURE_SETS, OpenSmileFeaturizer  # noqa: E402

RATE = 16000


def voice(seconds: float = 0.6, rate: int = RATE, f0: float = 180.0, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A voiced-sounding signal: a harmonic tone with a pitch glide, an amplitude envelope and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 2 * t))) / rate
    wave = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6)) * np.hanning(t.size) ** 0.3
    wave = wave + 0.01 * rng.standard_normal(t.size)
    if channels > 1:
        wave = np.stack([wave * (1 - 0.3 * c) for c in range(channels)], axis=1)
    return wave.astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), samples, rate, subtype=subtype)
    return path


def smile(feature_set: str = "eGeMAPSv02", **kwargs) -> opensmile.Smile:
    return opensmile.Smile(feature_set=opensmile.FeatureSet[feature_set],
                           feature_level=opensmile.FeatureLevel.Functionals, **kwargs)


@pytest.fixture(scope="module")
def featurizer() -> OpenSmileFeaturizer:
    return OpenSmileFeaturizer()


# -- openSMILE's own values -----------------------------------------------------------------------------------
@pytest.mark.golden
@pytest.mark.parametrize(("name", "rate", "subtype"), [
    ("pcm16.wav", RATE, "PCM_16"), ("pcm24.wav", RATE, "PCM_24"), ("pcm8.wav", RATE, "PCM_U8"),
    ("float.wav", RATE, "FLOAT"), ("flac.flac", RATE, "PCM_16"), ("cd.wav", 44100, "PCM_16"),
    ("phone.wav", 8000, "PCM_16"),
])
def test_equals_process_file(tmp_path, featurizer, name, rate, subtype):
    """Every format and rate the other featurizers accept: the values are process_file's, exactly (see top)."""
    path = write(tmp_path / name, voice(rate=rate), rate, subtype)
    ours = featurizer.embed([path])
    reference = smile().process_file(str(path)).to_numpy(dtype=np.float32)
    assert ours.shape == (1, 88) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, reference)
    assert featurizer.feature_names() == list(smile().feature_names)


@pytest.mark.golden
@pytest.mark.parametrize("feature_set", ["GeMAPSv01b", "ComParE_2016"])
def test_other_feature_sets_equal_process_file(tmp_path, feature_set):
    path = write(tmp_path / "a.wav", voice())
    ours = OpenSmileFeaturizer(feature_set=feature_set).embed([path])
    assert ours.shape == (1, FEATURE_SETS[feature_set])
    np.testing.assert_array_equal(ours, smile(feature_set).process_file(str(path)).to_numpy(dtype=np.float32))


@pytest.mark.golden
def test_stereo_is_mixed_down_and_resampling_is_smiles(tmp_path, featurizer):
    """Channels are averaged as process_file does with channels=None, mixdown=True; sample_rate=R resamples as
    Smile(sampling_rate=R, resample=True) does."""
    stereo = write(tmp_path / "stereo.wav", voice(channels=2), subtype="FLOAT")
    np.testing.assert_array_equal(
        featurizer.embed([stereo]),
        smile(channels=None, mixdown=True).process_file(str(stereo)).to_numpy(dtype=np.float32))
    cd = write(tmp_path / "cd.wav", voice(rate=44100), 44100)
    np.testing.assert_array_equal(
        OpenSmileFeaturizer(sample_rate=16000).embed([cd]),
        smile(sampling_rate=16000, resample=True).process_file(str(cd)).to_numpy(dtype=np.float32))


def test_worker_threads_give_the_same_rows_in_order(tmp_path):
    paths = [write(tmp_path / f"f{i}.wav", voice(f0=120.0 + 30 * i, seed=i)) for i in range(4)]
    threaded = OpenSmileFeaturizer(num_workers=2).embed(paths)
    in_line = OpenSmileFeaturizer(num_workers=0).embed(paths)
    np.testing.assert_array_equal(threaded, in_line)
    assert len({row.tobytes() for row in threaded}) == 4


# -- fingerprint ----------------------------------------------------------------------------------------------
def test_fingerprint_holds_what_changes_the_output():
    base = OpenSmileFeaturizer().fingerprint()
    assert base["feature_set"] == "eGeMAPSv02" and base["feature_level"] == "functionals"
    assert base["opensmile"] == opensmile.__version__ and "audresample" not in base
    json.dumps(base)  # the cache stores it as JSON
    assert OpenSmileFeaturizer(feature_set="ComParE_2016").fingerprint() != base
    resampled = OpenSmileFeaturizer(sample_rate=16000).fingerprint()
    assert resampled["sample_rate"] == 16000 and "audresample" in resampled
    assert OpenSmileFeaturizer(num_workers=0).fingerprint() == base  # threads do not change values


def test_options_are_checked_in_one_line():
    with pytest.raises(sertk.ConfigError, match="unknown feature_set 'eGeMAPS'; choose one of eGeMAPSv02"):
        OpenSmileFeaturizer(feature_set="eGeMAPS")
    with pytest.raises(sertk.ConfigError, match="sample_rate must be an integer"):
        OpenSmileFeaturizer(sample_rate="16k")
    with pytest.raises(sertk.ConfigError, match="num_workers"):
        OpenSmileFeaturizer(num_workers=-1)


# -- odd and bad audio ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "samples", "rate"), [
    ("silence.wav", np.zeros(RATE, np.float32), RATE),                      # digital silence: finite features
    ("clipped.wav", np.clip(4 * voice(), -1, 1), RATE),                     # at full scale: saturated, not wrapped
    ("slightly-over.wav", np.where(np.arange(9600) == 500, 1.5, voice()), RATE),  # one sample over: clipped
    ("odd-rate.wav", voice(rate=11025), 11025),
    ("high-rate.wav", voice(rate=96000), 96000),
    ("stereo.wav", voice(channels=2), RATE),
])
def test_unusual_but_meaningful_audio_is_embedded(tmp_path, featurizer, name, samples, rate):
    path = write(tmp_path / name, samples, rate, "FLOAT")
    x = featurizer.embed([path])
    assert x.shape == (1, 88) and np.isfinite(x).all()


def test_full_scale_is_saturated_where_smile_wraps(tmp_path, featurizer):
    """+1.0 times 32768 does not fit int16: Smile wraps it to -32768, sertk keeps it at +32767."""
    wave = voice()
    wave[::50] = 1.0
    path = write(tmp_path / "peaks.wav", wave, subtype="FLOAT")
    saturated = wave.copy()
    saturated[::50] = 32767 / 32768
    np.testing.assert_array_equal(featurizer.embed([path]),
                                  smile().process_signal(saturated, RATE).to_numpy(dtype=np.float32))


@pytest.mark.parametrize(("name", "samples", "reason"), [
    ("one-sample.wav", np.array([0.2], np.float32), "too short for openSMILE's eGeMAPSv02 (0.000 s)"),
    ("short.wav", voice(0.05), "too short for openSMILE's eGeMAPSv02 (0.050 s)"),
    ("int16-scale.wav", 20000 * voice(), "9600 of 9600 samples lie beyond full scale (peak 1e+04; full scale is 1.0)"),
    ("nan.wav", np.where(np.arange(9600) == 3000, np.nan, voice()).astype(np.float32),
     "NaN or infinite samples (the first at frame 3000)"),
    ("huge.wav", np.where(np.arange(9600) == 3000, 1e30, voice()).astype(np.float32), "samples reach 1e+30"),
    ("zero-frames.wav", np.zeros(0, np.float32), "the file holds no samples"),
])
def test_bad_audio_is_named(tmp_path, featurizer, name, samples, reason):
    """User sees: ``cannot read audio file PATH: <reason>``; the other files of a batch are embedded."""
    path = write(tmp_path / name, samples, subtype="FLOAT")
    with pytest.raises(AudioError) as info:
        featurizer.embed([path])
    assert info.value.path == path and reason in info.value.reason, info.value.reason


def test_a_bad_file_fails_alone_in_the_host(tmp_path, featurizer):
    good = [write(tmp_path / f"g{i}.wav", voice(seed=i)) for i in range(2)]
    short = write(tmp_path / "short.wav", voice(0.03))
    result = embed_paths(featurizer, [good[0], short, good[1]], cache=None)
    assert result.ok.tolist() == [True, False, True] and "too short" in result.failures[1]


# -- the optional extra ---------------------------------------------------------------------------------------
@pytest.fixture
def without_opensmile(monkeypatch):
    """As if `pip install sertk[opensmile]` had not been run: the module is not found."""
    real = sertk.extras.importlib.util.find_spec
    monkeypatch.setattr(sertk.extras.importlib.util, "find_spec",
                        lambda name, *a: None if name == "opensmile" else real(name, *a))


def test_missing_extra_is_named_by_the_constructor_and_by_list(without_opensmile, builtin_host):
    with pytest.raises(FeaturizerError, match=r"featurizer 'opensmile' needs the optional package opensmile: "
                                              r"pip install sertk\[opensmile\]"):
        OpenSmileFeaturizer()
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("opensmile "))
    assert "not installed: pip install sertk[opensmile]" in "\n".join(lines[at:at + 3])
    rows = json.loads(CliRunner().invoke(cli, ["list", "--json"]).output)["components"]
    assert {r["name"]: r["install"] for r in rows if r["kind"] == "featurizer"}["opensmile"] == \
        "pip install sertk[opensmile]"
    assert all(r["install"] is None for r in rows if r["name"] != "opensmile")


def test_installed_extra_is_not_flagged(builtin_host):
    rows = json.loads(CliRunner().invoke(cli, ["list", "--json"]).output)["components"]
    assert all(r["install"] is None for r in rows)


# -- end to end -----------------------------------------------------------------------------------------------
def test_sertk_run_with_opensmile_on_the_demo_corpus(tmp_path, builtin_host):
    """A third of the demo corpus (two classes, four voices) keeps the test short; the whole runs the same way."""
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["--no-progress", "run", "--featurizer", "opensmile",
                                      "-o", "featurizer.feature_set=eGeMAPSv02", "-o", "dataset.labels=ang,sad",
                                      "-o", "dataset.speakers=s1f,s1m,s2f,s2m",
                                      "--no-plots", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["featurizer"]["name"] == "opensmile" and report["featurizer"]["dim"] == 88
    assert report["featurizer"]["fingerprint"]["feature_set"] == "eGeMAPSv02"
    assert report["classifier"]["standardize"] is True
    assert report["accuracy"] > 0.6  # two well-separated synthetic classes; chance is 0.5
