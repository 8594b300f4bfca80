"""The ``handcrafted`` featurizer: shapes, fingerprint, robustness, pitch accuracy, and that it separates the demo."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sertk
from sertk.errors import AudioError
from sertk_plugins.featurizers import handcrafted
from sertk_plugins.featurizers.handcrafted import HandcraftedFeaturizer


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    import soundfile as sf

    sf.write(str(path), np.asarray(samples, dtype=np.float32), rate, subtype="PCM_16")
    return path


def harmonic_tone(f0: float, seconds: float = 1.0, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced-like tone: ten harmonics with falling amplitude, a slow amplitude wobble and a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 11))
    wave *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2
    return 0.2 * wave + 0.002 * np.random.default_rng(seed).standard_normal(t.size)


def column(name: str, featurizer: HandcraftedFeaturizer, x: np.ndarray) -> np.ndarray:
    return x[..., featurizer.feature_names().index(name)]


def test_shapes_dtype_and_registration(tmp_path):
    f = HandcraftedFeaturizer()
    assert f.dim == len(f.feature_names()) == len(set(f.feature_names()))
    paths = [write_wav(tmp_path / f"{i}.wav", harmonic_tone(120 + 40 * i)) for i in range(3)]
    x = f.embed(paths)
    assert x.shape == (3, f.dim) and x.dtype == np.float32 and np.isfinite(x).all()
    assert f.embed([]).shape == (0, f.dim)
    assert HandcraftedFeaturizer(n_mels=24, n_mfcc=13).embed(paths[:1]).shape == (1, 4 * 13 + 2 * 24 + 22)
    assert f.standardize is True and f.batch_size > 1 and isinstance(f, sertk.contracts.FeaturizerLike)
    seen = []
    handcrafted.sertk_register_featurizers(register=seen.append)
    assert seen == [HandcraftedFeaturizer]


def test_fingerprint_names_every_option():
    base = HandcraftedFeaturizer().fingerprint()
    json.dumps(base)
    assert base["name"] == "handcrafted" and base["version"] == handcrafted.RECIPE_VERSION
    for option, value in [("n_mels", 32), ("n_mfcc", 13), ("sample_rate", 8000), ("hop_ms", 5.0),
                          ("f0_min", 75.0), ("voicing_threshold", 0.6), ("active_db", 30.0)]:
        fp = HandcraftedFeaturizer(**{option: value}).fingerprint()
        assert fp != base and fp[option] == value
    assert HandcraftedFeaturizer().fingerprint() == base


@pytest.mark.parametrize("options", [{"n_mfcc": 50}, {"n_mels": 1}, {"hop_ms": 30.0}, {"f0_min": 600.0},
                                     {"voicing_threshold": 1.5}, {"sample_rate": 100}])
def test_bad_options(options):
    with pytest.raises(ValueError):
        HandcraftedFeaturizer(**options)


def test_silence_and_tiny_files_give_finite_features(tmp_path):
    f = HandcraftedFeaturizer()
    paths = [
        write_wav(tmp_path / "silence.wav", np.zeros(16000)),
        write_wav(tmp_path / "tiny.wav", 0.1 * np.ones(7)),
        write_wav(tmp_path / "click.wav", np.r_[np.zeros(4000), 0.9, np.zeros(4000)]),
    ]
    x = f.embed(paths)
    assert np.isfinite(x).all()
    assert np.all(column("f0_voiced", f, x)[:2] == 0)


def test_files_without_meaningful_features_are_refused_not_repaired(tmp_path):
    """No samples, NaN/inf samples or absurd amplitudes: an AudioError naming the file (never zeros)."""
    import soundfile as sf

    f = HandcraftedFeaturizer()
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0))
    cases = {empty: "no samples"}
    for name, value, reason in [("nan", np.nan, "NaN"), ("inf", -np.inf, "NaN or infinite"),
                                ("huge", 1e30, r"samples reach 1e\+30")]:
        wave = np.full(8000, 0.1, np.float32)
        wave[5000:] = value
        path = tmp_path / f"{name}.wav"
        sf.write(str(path), wave, 16000, subtype="FLOAT")
        cases[path] = reason
    for path, reason in cases.items():
        with pytest.raises(AudioError, match=reason) as info:
            f.embed([path])
        assert info.value.path == path
    with pytest.raises(AudioError, match="the first at frame 5000"):
        f.embed([tmp_path / "nan.wav"])
    for signal in (np.full(3000, np.nan), np.zeros(0)):
        with pytest.raises(AudioError):
            f.features(signal)


def test_chunked_statistics_equal_whole_signal_ones(tmp_path):
    """The streaming passes give the statistics of one pass over the whole signal (float64 accumulation in another
    order: Chan's pairwise means and variances; measured 3e-13 relative on 75 s). The output is float32, and a
    float64 value moved by 3e-13 can still round to the neighbouring float32: allow two float32 ulps
    (2.4e-7 relative), far below any change of the recipe."""
    import soundfile as sf

    rng = np.random.default_rng(3)
    pieces = [harmonic_tone(rng.uniform(90, 300), rng.uniform(0.2, 1.2), rate=22050, seed=i) * rng.uniform(0.1, 1)
              for i in range(12)]
    wave = np.concatenate([np.r_[p, 0.001 * rng.standard_normal(3000)] for p in pieces])
    path = tmp_path / "long22k.wav"
    sf.write(str(path), np.stack([wave, 0.5 * wave], axis=1).astype(np.float32), 22050, subtype="FLOAT")
    whole = HandcraftedFeaturizer()
    whole.chunk_frames = 10**7  # one chunk: the whole signal at once
    small = HandcraftedFeaturizer()
    small.chunk_frames = 37  # many chunks, borders everywhere
    a, b = whole.embed([path]), small.embed([path])
    np.testing.assert_allclose(b, a, rtol=2.4e-7, atol=1e-9)
    # the resampler streams too: blocks of 64 Ki frames through resample_poly equal one call on the whole file
    from scipy.signal import resample_poly

    from sertk.audio.io import AudioFile

    mono = np.concatenate(list(handcrafted._resample_stream(
        (b[:, 0].astype(np.float64) for b in AudioFile(path).blocks(5000)), 160, 441)))
    ref = resample_poly(sf.read(str(path), dtype="float32")[0][:, 0].astype(np.float64), 160, 441)
    # same filter, same taps per output; tolerance only for summation order inside upfirdn (measured 0)
    np.testing.assert_allclose(mono, ref, rtol=0, atol=1e-12)


def test_stereo_and_other_rates_are_mixed_and_resampled(tmp_path):
    f = HandcraftedFeaturizer()
    mono = harmonic_tone(180.0, rate=16000)
    ref = f.embed([write_wav(tmp_path / "mono.wav", mono)])
    stereo = np.stack([harmonic_tone(180.0, rate=22050)] * 2, axis=1)
    other = f.embed([write_wav(tmp_path / "stereo22k.wav", stereo, rate=22050)])
    assert other.shape == ref.shape
    for name in ("f0_p50", "f0_voiced", "log_duration"):
        assert column(name, f, other) == pytest.approx(column(name, f, ref), abs=0.05)


@pytest.mark.parametrize("f0", [85.0, 140.0, 230.0, 380.0])
def test_pitch_tracker_finds_f0(tmp_path, f0):
    f = HandcraftedFeaturizer()
    x = f.features(harmonic_tone(f0))
    assert column("f0_voiced", f, x) > 0.9
    assert column("f0_p50", f, x) == pytest.approx(12 * math.log2(f0 / 100), abs=0.25)
    assert column("f0_std", f, x) < 0.3


def test_unreadable_file_raises_audio_error_naming_it(tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100))
    good = write_wav(tmp_path / "good.wav", harmonic_tone(150.0, seconds=0.3))
    with pytest.raises(AudioError, match="corrupt.wav") as info:
        HandcraftedFeaturizer().embed([good, bad])
    assert info.value.path == bad
    with pytest.raises(AudioError, match="absent.wav"):
        HandcraftedFeaturizer().embed([tmp_path / "absent.wav"])


def test_import_loads_no_torch_and_defers_scipy():
    code = ("import sys; heavy = ('torch', 'scipy', 'soundfile'); import sertk; "
            "before = {m for m in heavy if m in sys.modules}; import sertk_plugins.featurizers.handcrafted; "
            "print(sorted(m for m in heavy if m in sys.modules and (m == 'torch' or m not in before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"


def test_features_separate_the_demo_classes():
    """5-fold cross-validated logistic regression on standardised features: 0.69 measured, chance 0.25."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sertk_plugins.datasets.demo import DemoDataset

    utts = list(DemoDataset().utterances())
    f = HandcraftedFeaturizer()
    x = f.embed([u.path for u in utts])
    y = np.array([u.label for u in utts])
    assert np.isfinite(x).all()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    scores = cross_val_score(model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    chance = 1 / len(set(y))
    assert scores.mean() > 2 * chance, scores


@pytest.mark.parametrize("option, value, message", [
    ("sample_rate", "abc", "sample_rate must be an integer, got 'abc'"),
    ("n_mels", 2.5, "n_mels must be an integer, got 2.5"),
    ("win_ms", "wide", "win_ms must be a number, got 'wide'"),
    ("f0_max", float("nan"), "f0_max must be a finite number"),
    ("n_mfcc", True, "n_mfcc must be an integer, got True"),
])
def test_bad_option_values_name_the_option_and_what_it_must_be(option, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        HandcraftedFeaturizer(**{option: value})
    assert HandcraftedFeaturizer(n_mels=40.0).config.n_mels == 40  # a whole float is an integer
