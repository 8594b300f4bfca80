"""ImageBind preprocessing: clips, in-place mean subtraction, 128-bin filterbank, padding, normalisation.

Golden features are upstream's own model inputs (``load_and_transform_audio_data``), made by
``PYTHONPATH=. python scripts/make_imagebind_golden.py`` in a venv where upstream runs (see that script).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from tolerances import IMAGEBIND_FEATURES, assert_close

from sertk.audio.io import read_audio
from sertk_plugins.featurizers.imagebind.preprocess import ClipConfig, clip_bounds, prepare


def test_clip_bounds_follow_upstreams_sampler():
    # files of 2 s or less: three identical clips from the start (end may pass the end of the signal)
    assert clip_bounds(240) == [(0, 32000)] * 3
    assert clip_bounds(32000) == [(0, 32000)] * 3
    assert clip_bounds(32001) == [(0, 32000)] * 3  # step of 1/3 sample truncates to 0
    # 3.7 s: step = 1.7 / 3 s; overlapping clips
    assert clip_bounds(59200) == [(0, 32000), (9066, 41066), (18133, 50133)]
    # 10.4 s: step (10.4 - 2) / 3 = 2.8 s; gaps between clips, and the last 2.8 s are never used
    assert clip_bounds(166400) == [(0, 32000), (44800, 76800), (89600, 121600)]
    assert clip_bounds(166400, ClipConfig(clips=2, clip_seconds=1.0)) == [(0, 16000), (75200, 91200)]


@pytest.mark.golden
def test_features_equal_upstreams(recordings, golden):
    """Upstream's normalised 128-bin log-mel input, clip by clip: files at 16, 44.1 and 48 kHz, mono and stereo,
    15 ms to 10.4 s. Bit-identical on the CPU that made the goldens, except the two sub-frame files (padded;
    ≤ 6e-8); elsewhere within IMAGEBIND_FEATURES (float32 FFT rounding, see tests/tolerances.py)."""
    waves = [read_audio(p) for p in recordings.values()]
    batch = prepare(waves, ClipConfig(), "cpu", names=list(recordings))
    assert batch.features.shape[1:] == (1, 128, 204) and batch.features.dtype == torch.float32
    for i, name in enumerate(recordings):
        gold = golden[f"features/{name}"]
        ours = batch.features[batch.index[i], 0].numpy()  # [3, 128, 204]
        if len(gold) == 1:  # a file of <= 2 s: upstream's three clips cover the same samples
            assert len(set(batch.index[i].tolist())) == 1, name
        assert_close(ours, gold, IMAGEBIND_FEATURES, what=name, err_msg=name)


def test_clips_are_computed_once_when_they_coincide(recordings):
    names = ["short_0.8s_16k.flac", "exact_2s_16k.wav", "overlap_3.7s_16k_dc.flac"]
    batch = prepare([read_audio(recordings[n]) for n in names])
    assert batch.features.shape[0] == 1 + 1 + 3
    assert batch.index.tolist() == [[0, 0, 0], [1, 1, 1], [2, 3, 4]]
    every = prepare([read_audio(recordings[n]) for n in names], ClipConfig(reuse_identical_clips=False))
    assert every.features.shape[0] == 9
    # upstream re-subtracts a residual mean (~1e-9) on the repeats: a tiny, bounded difference
    diff = (every.features[1:3] - every.features[0]).abs().max().item()
    assert 0 < diff < 1e-4


@pytest.mark.golden
def test_inplace_mean_subtraction_is_upstreams_quirk(recordings, golden):
    """Clips overlap in files of 2–8 s: upstream subtracts each clip's mean in place on the waveform, so a later
    clip sees samples already shifted by the earlier clips' means. The default reproduces it; the option
    ``inplace_mean=False`` subtracts each clip's own mean from a copy and differs clearly on a file with DC.

    The two behaviours differ by 0.3-0.56 on this file; float32 rounding across CPUs (IMAGEBIND_FEATURES,
    2e-4) is three orders of magnitude below that, so the tolerance cannot hide the quirk."""
    name = "overlap_3.7s_16k_dc.flac"
    wave = read_audio(recordings[name])
    default = prepare([wave]).features[:, 0].numpy()
    copied = prepare([wave], ClipConfig(inplace_mean=False)).features[:, 0].numpy()
    gold = golden[f"features/{name}"]
    assert_close(default, gold, IMAGEBIND_FEATURES, what="inplace_mean=True")
    assert_close(copied[0], gold[0], IMAGEBIND_FEATURES, what="copy, first clip")  # it sees the untouched waveform
    quirk = np.abs(copied[1:] - gold[1:]).max()
    assert quirk > 1e-2 and quirk > 50 * IMAGEBIND_FEATURES.atol


def test_input_arrays_are_not_modified(recordings):
    wave, rate = read_audio(recordings["overlap_3.7s_16k_dc.flac"])
    before = wave.copy()
    prepare([(wave, rate)])
    np.testing.assert_array_equal(wave, before)  # exact: an untouched array is bit-equal by construction


def test_short_recordings_are_padded_with_a_warning(recordings, caplog):
    with caplog.at_level(logging.WARNING):
        batch = prepare([read_audio(recordings["tiny_15ms_16k.wav"]), (np.zeros((1, 1), np.float32), 16000)],
                        names=["tiny.wav", "one-sample.wav"])
    assert batch.padded == [0, 1]
    assert "tiny.wav" in caplog.text and "one-sample.wav" in caplog.text and "padded" in caplog.text
    assert torch.isfinite(batch.features).all()


def test_options_change_clip_layout(recordings):
    wave = read_audio(recordings["long_10.4s_16k.flac"])
    batch = prepare([wave], ClipConfig(clips=5, clip_seconds=1.5))
    assert batch.index.shape == (1, 5) and batch.features.shape == (5, 1, 128, 204)
    # 1.5 s = 148 frames, then zero-padded: the padded frames hold the normalised zero
    pad_value = (0 - np.float32(-4.268)) / np.float32(9.138)
    np.testing.assert_allclose(batch.features[:, 0, :, 148:].numpy(), pad_value, rtol=1e-6)
    with pytest.raises(ValueError):
        ClipConfig(clips=0)
