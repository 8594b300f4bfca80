"""Bad audio: files that cannot give a meaningful embedding are named and follow ``--skip-bad-audio``; long
recordings take bounded memory.

Each test writes its own files and says, in its docstring, what the user sees.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner, Result
from toy_plugin import toy_plugin

import sertk
import sertk.plugins
from sertk.audio.io import MAX_AMPLITUDE, AudioFile, read_audio
from sertk.cli.main import cli
from sertk.errors import AudioError
from sertk.featurization.embed import NON_FINITE, embed_paths
from sertk_plugins.featurizers.handcrafted import HandcraftedFeaturizer

RATE = 16000


# -- helpers (own fixtures: tests/robustness/conftest.py belongs to the output and validation tests) -----------
@pytest.fixture
def audio_host(monkeypatch):
    """The built-in folder dataset and handcrafted featurizer, logreg, the protocols, and the toy plugin."""
    host = sertk.plugins.PluginHost(builtins=["sertk_plugins.datasets.folder",
                                             "sertk_plugins.featurizers.handcrafted",
                                             "sertk_plugins.classifiers.sklearn_reference",
                                             "sertk_plugins.protocols.standard"], load_external=False)
    host.register_plugin(toy_plugin, "toy")
    monkeypatch.setattr(sertk.plugins, "_host", host)
    return host


def run_cli(*args: object) -> Result:
    return CliRunner().invoke(cli, ["--no-progress", *map(str, args)])


def tone(f0: float, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * f0 * t) + noise).astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(samples, dtype=np.float32), rate, subtype=subtype)
    return path


def with_value(value: float, at: slice = slice(3000, 3100)) -> np.ndarray:
    wave = tone(200.0)
    wave[at] = value
    return wave


#: name → (samples, what the reason says); every one is refused by every featurizer, named, never repaired
BAD = {
    "nan.wav": (with_value(np.nan), "NaN or infinite samples (the first at frame 3000)"),
    "all-nan.wav": (np.full(8000, np.nan, np.float32), "NaN or infinite samples (the first at frame 0)"),
    "inf.wav": (with_value(np.inf), "NaN or infinite samples"),
    "minus-inf.wav": (with_value(-np.inf), "NaN or infinite samples"),
    "huge.wav": (with_value(1e30), "samples reach 1e+30 (the first at frame 3000)"),
    "zero-frames.wav": (np.zeros(0, np.float32), "the file holds no samples"),
}


def folder_corpus(root: Path, bad: dict[str, np.ndarray] | None = None) -> Path:
    """Two label folders of six tones each, plus ``bad`` files in ``ang/``."""
    for label, f0 in (("ang", 330.0), ("neu", 160.0)):
        for k in range(6):
            write(root / label / f"s{k % 2}_{label}_{k}.wav", tone(f0 * (1 + 0.03 * k), seed=k), subtype="PCM_16")
    for name, samples in (bad or {}).items():
        write(root / "ang" / name, samples)
    return root


def run_args(root: Path, out: Path, *extra: object) -> list[object]:
    return ["run", "--dataset", "folder", "--data-root", root, "--featurizer", "handcrafted", "--classifier",
            "logreg", "--no-plots", "--no-cache", "--no-save-model", "--out", out, *extra]


# -- the reader and the featurizers ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_samples_are_refused_by_reader_and_handcrafted(tmp_path, name):
    """User sees: ``cannot read audio file PATH: <reason>`` (the frame where it starts); no features."""
    samples, reason = BAD[name]
    path = write(tmp_path / name, samples)
    for attempt in (lambda: read_audio(path), lambda: HandcraftedFeaturizer().embed([path]),
                    lambda: AudioFile(path).check()):
        with pytest.raises(AudioError) as info:
            attempt()
        assert info.value.path == path and reason in info.value.reason
        assert str(info.value).startswith(f"cannot read audio file {path}: ")


@pytest.mark.parametrize(("name", "samples"), [
    ("silence.wav", np.zeros(RATE, np.float32)),            # digital silence: unvoiced, not an error
    ("one-sample.wav", np.array([0.2], np.float32)),        # shorter than a frame: padded, as documented
    ("int16-scale.wav", 20000 * tone(200.0)),               # float audio on the int16 scale: a real recording
    ("just-below-limit.wav", with_value(0.99 * MAX_AMPLITUDE)),
    ("clipped.wav", np.clip(4 * tone(200.0), -1, 1)),
])
def test_unusual_but_meaningful_audio_is_embedded(tmp_path, name, samples):
    """User sees: nothing special; the features are finite."""
    path = write(tmp_path / name, samples)
    x = HandcraftedFeaturizer().embed([path])
    assert x.shape == (1, HandcraftedFeaturizer().dim) and np.isfinite(x).all()


def test_imagebind_preprocessing_refuses_the_same_files(tmp_path):
    """ImageBind decodes through the same checks: short and long files alike, a NaN anywhere in a long file
    (even past its last clip) included. User sees the same ``cannot read audio file PATH: …`` line."""
    from sertk_plugins.featurizers.imagebind.preprocess import WHOLE_FILE_SECONDS, ClipConfig, cut_file

    for name, (samples, reason) in BAD.items():
        path = write(tmp_path / name, samples)
        with pytest.raises(AudioError, match="cannot read audio file") as info:
            cut_file(path, ClipConfig())
        assert reason in info.value.reason
    long = np.tile(tone(200.0, 1.0), int(WHOLE_FILE_SECONDS) + 10)
    long[-5] = np.nan  # the clips never reach the last seconds of a long file
    path = write(tmp_path / "long-nan-at-end.wav", long)
    with pytest.raises(AudioError, match=f"the first at frame {long.size - 5}"):
        cut_file(path, ClipConfig())


# -- the host: any featurizer's non-finite output -------------------------------------------------------------
class ExplodingFeaturizer(sertk.Featurizer):
    """A third-party featurizer whose float32 arithmetic overflows on loud files (as an encoder's can)."""

    name = "exploding"
    batch_size = 4

    @property
    def dim(self) -> int:
        return 3

    def fingerprint(self):
        return {"name": self.name}

    def embed(self, paths):
        rows = []
        for path in paths:
            x, _ = read_audio(path)
            with np.errstate(over="ignore", invalid="ignore"):
                energy = np.float32(np.sum(x.astype(np.float32) ** 2 * np.float32(1e37)))
            rows.append([energy, x.mean(), x.std()])
        return np.array(rows, dtype=np.float32)


def test_non_finite_embeddings_are_per_file_failures_never_cached(tmp_path):
    """User sees: the file named with ``the featurizer's output for this file is not finite …``; the other
    files are embedded and cached; the bad one is not cached (it fails again next time)."""
    from sertk.featurization.cache import EmbeddingCache

    files = [write(tmp_path / f"ok{i}.wav", 1e-3 * tone(200.0 + i, seed=i)) for i in range(3)]
    files.insert(1, write(tmp_path / "loud.wav", 0.9 * tone(200.0)))
    with EmbeddingCache(tmp_path / "cache") as cache:
        result = embed_paths(ExplodingFeaturizer(), files, cache=cache)
        assert result.ok.tolist() == [True, False, True, True] and result.failures == {1: NON_FINITE}
        again = embed_paths(ExplodingFeaturizer(), files, cache=cache)
        assert again.n_cached == 3 and again.n_computed == 0 and again.failures == {1: NON_FINITE}


# -- what the CLI shows --------------------------------------------------------------------------------------
def test_run_stops_on_bad_audio_naming_it_with_the_way_out(tmp_path, audio_host):
    """User sees one line: ``Error: 1 audio file(s) could not be read, e.g. PATH: the file holds NaN or infinite
    samples (…); fix or remove them, or pass --skip-bad-audio to leave them out``; exit status 1, no traceback."""
    root = folder_corpus(tmp_path / "corpus", {"all-nan.wav": BAD["all-nan.wav"][0]})
    result = run_cli(*run_args(root, tmp_path / "out"))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "all-nan.wav" in lines[0] and "NaN or infinite" in lines[0] and "--skip-bad-audio" in lines[0]
    assert "Traceback" not in result.output


def test_run_with_skip_bad_audio_lists_every_bad_file_in_the_report(tmp_path, audio_host):
    """User sees: the run completes; report.json/report.md warnings list each left-out file and why, and the
    utterance count excludes them (an all-NaN file is not embedded as silence)."""
    bad = {name: samples for name, (samples, _) in BAD.items()}
    root = folder_corpus(tmp_path / "corpus", bad)
    (root / "ang" / "garbage.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really")
    out = tmp_path / "out"
    result = run_cli(*run_args(root, out, "--skip-bad-audio", "-o", "dataset.missing=skip"))
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    warnings = "\n".join(report["warnings"])
    for name, (_, reason) in BAD.items():
        assert name in warnings, name
        line = next(w for w in report["warnings"] if f"/{name}:" in w or f"/{name} " in w)
        assert reason in line or "no audio samples" in line, line
    assert "garbage.wav" in warnings
    md = (out / "report.md").read_text()
    assert "## Warnings" in md and "all-nan.wav" in md


def test_embed_names_each_bad_file_and_skip_bad_leaves_them_out(tmp_path, audio_host):
    """User sees: ``cannot embed PATH: reason`` on stderr for each bad file, then ``Error: N of M files could not
    be embedded …; pass --skip-bad to leave them out`` (exit 1, nothing written); with ``--skip-bad`` the .npz
    holds the good files and a ``failed`` list."""
    good = [write(tmp_path / f"g{i}.wav", tone(180.0 + 20 * i, seed=i)) for i in range(2)]
    bad = [write(tmp_path / name, BAD[name][0]) for name in ("nan.wav", "huge.wav", "zero-frames.wav")]
    out = tmp_path / "emb.npz"
    result = run_cli("embed", "-f", "handcrafted", "--no-cache", "--out", out, *good, *bad)
    assert result.exit_code == 1 and "Traceback" not in result.output and not out.exists()
    for path in bad:
        assert f"{path}" in result.stderr
    assert "3 of 5 files could not be embedded" in result.stderr and "--skip-bad" in result.stderr
    result = run_cli("embed", "-f", "handcrafted", "--no-cache", "--skip-bad", "--out", out, *good, *bad)
    assert result.exit_code == 0, result.output
    with np.load(out) as saved:
        assert sorted(saved["failed"].tolist()) == sorted(map(str, bad))
        assert np.isfinite(saved[[k for k in saved.files if k not in ("failed", "paths", "fingerprint")][0]]).all()


# -- bounded memory -------------------------------------------------------------------------------------------
def _peak_python_memory(action) -> int:
    """Peak bytes allocated through Python and numpy (tracemalloc traces numpy's buffers) while ``action`` runs."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "ten-minutes.wav"
    block = np.tile(tone(190.0, 1.0), 60)
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=1, subtype="PCM_16") as out:
        for _ in range(10):
            out.write(block)
    return path


def test_handcrafted_memory_does_not_grow_with_the_recording(ten_minutes):
    """A 10-minute file: under 120 MB of arrays (63 MB measured; 3.3 GiB before streaming; see docs/audio.md).
    The bound is the ~60 MB chunk working set plus ~20 bytes per 10 ms frame, whatever the length."""
    f = HandcraftedFeaturizer()
    f.features(tone(190.0))  # imports (scipy) first: they are not the file's memory
    peak = _peak_python_memory(lambda: f.embed([ten_minutes]))
    assert peak < 120e6, f"{peak / 1e6:.0f} MB"


def test_imagebind_reads_only_its_clips_of_a_long_file(ten_minutes, tmp_path):
    """A 10-minute file: the clips equal those of decoding the whole file (16 kHz: same samples, so exact), and
    the decode takes under 8 MB of arrays (0.9 MB measured; the whole file alone is 38 MB as float32)."""
    from sertk_plugins.featurizers.imagebind.preprocess import ClipConfig, cut_clips, cut_file

    cfg = ClipConfig()
    cut_file(ten_minutes, cfg)  # imports (torch) first: they are not the file's memory
    peak = _peak_python_memory(lambda: cut_file(ten_minutes, cfg))
    assert peak < 8e6, f"{peak / 1e6:.1f} MB"
    parts, whole = cut_file(ten_minutes, cfg), cut_clips(*read_audio(ten_minutes), cfg)
    assert parts.rows == whole.rows and len(parts.clips) == len(whole.clips) == 3
    for a, b in zip(parts.clips, whole.clips):
        assert a.shape == b.shape and bool((a == b).all())
    # another rate: the stretches are resampled with the filter's reach on each side; tolerance for float32
    # summation order inside the convolution (measured 0 at 44.1/48 kHz, 1.5e-7 at 8 kHz)
    wave = np.tile(tone(190.0, 1.0), 70)[: 70 * 8000]
    path = write(tmp_path / "eight-k.wav", wave, rate=8000)
    parts, whole = cut_file(path, cfg), cut_clips(*read_audio(path), cfg)
    for a, b in zip(parts.clips, whole.clips):
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-6
