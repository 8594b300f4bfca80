"""Live comparison with upstream ImageBind, wherever its code runs (marker ``upstream``; skipped elsewhere).

Needs a separate venv with upstream's package and the few packages ``scripts/upstream_shims`` lists (the
command is in ``scripts/make_imagebind_golden.py``); then ``PYTHONPATH=. python -m pytest tests/imagebind -m
upstream``. Upstream's code runs unchanged through those stand-ins.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tolerances import IMAGEBIND_EMBEDDING, IMAGEBIND_FEATURES, assert_close

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.upstream


@pytest.fixture(scope="module")
def upstream():
    sys.path.insert(0, str(ROOT / "scripts"))  # upstream_shims, make_imagebind_golden
    try:
        import upstream_shims

        upstream_shims.install()
    except ImportError as exc:
        sys.path.remove(str(ROOT / "scripts"))
        pytest.skip(f"upstream ImageBind does not run here: {exc}")
    yield upstream_shims
    sys.path.remove(str(ROOT / "scripts"))


@pytest.fixture(scope="module")
def upstream_model(upstream):
    from sertk_plugins.featurizers.imagebind.weights import random_audio_state_dict

    return upstream.build_audio_model(random_audio_state_dict(0))


def _write(path: Path, seconds: float, rate: int, channels: int, seed: int, **kw) -> Path:
    from make_imagebind_golden import synthesize

    dc = tuple(0.04 * (c + 1) for c in range(channels))
    sf.write(path, synthesize(rate, channels, int(round(seconds * rate)), dc, seed).astype(np.float32), rate, **kw)
    return path


def test_resample_and_fbank_equal_torchaudio_bit_for_bit(upstream):
    from sertk.audio.fbank import FbankOptions, fbank
    from sertk.audio.resample import resample

    ta = upstream.install().torchaudio
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 30001)).astype(np.float32)) * 0.2
    for rate in (8000, 22050, 44100, 48000, 96000):
        theirs = ta.functional.resample(x, rate, 16000)
        # exact: the same torch operations in the same order, on this CPU, in one process
        assert torch.equal(resample(x, rate, 16000), theirs), rate
    for window in ("hanning", "povey", "hamming"):
        theirs = ta.compliance.kaldi.fbank(x[:1], htk_compat=True, sample_frequency=16000, use_energy=False,
                                           window_type=window, num_mel_bins=128, dither=0.0, frame_length=25,
                                           frame_shift=10)
        assert torch.equal(fbank(x[0], FbankOptions(num_mel_bins=128, window_type=window)), theirs), window


def test_goldens_are_upstreams_current_output(upstream, upstream_model, recordings, golden):
    names = [n for n in recordings if sf.info(recordings[n]).frames >= 400]
    with torch.no_grad():
        inputs = upstream.load_and_transform_audio([recordings[n] for n in names])
        emb = upstream_model(inputs)
    for i, name in enumerate(names):
        gold = golden[f"features/{name}"]
        # goldens were made on another CPU: within float32 rounding across CPUs, bit-equal on the same one
        assert_close(inputs[i, : len(gold), 0].numpy(), gold, IMAGEBIND_FEATURES, what=name, err_msg=name)
        assert_close(emb[i].numpy(), golden[f"embedding/{name}"], IMAGEBIND_EMBEDDING, what=name, err_msg=name)


def test_upstream_crashes_below_one_frame_where_we_pad(upstream, recordings):
    with pytest.raises(AssertionError, match="window size"):
        upstream.load_and_transform_audio([recordings["tiny_15ms_16k.wav"]])


def test_embeddings_equal_upstream_on_fresh_recordings(upstream, upstream_model, featurizer, tmp_path):
    """New recordings each run: rates, channels, formats and durations not in the goldens."""
    paths = [
        _write(tmp_path / "a.wav", 0.04, 44100, 1, 1, subtype="PCM_16"),
        _write(tmp_path / "b.flac", 1.99, 48000, 2, 2),
        _write(tmp_path / "c.ogg", 2.3, 22050, 1, 3),
        _write(tmp_path / "d.wav", 6.1, 16000, 2, 4, subtype="PCM_24"),
        _write(tmp_path / "e.wav", 12.7, 16000, 1, 5, subtype="FLOAT"),
    ]
    with torch.no_grad():
        theirs = upstream_model(upstream.load_and_transform_audio(paths)).numpy()
    ours = featurizer.embed(paths)
    assert_close(ours, theirs, IMAGEBIND_EMBEDDING, what="fresh recordings")
