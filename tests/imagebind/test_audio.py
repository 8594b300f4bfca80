"""sertk.audio: decoding, the windowed-sinc resampler, the Kaldi-compatible filterbank.

Equality with torchaudio (resampler, filterbank) is checked bit for bit by ``test_upstream_live.py`` where
torchaudio runs, and through upstream's golden features at 44.1/48 kHz and 128 bins in ``test_preprocess.py``;
here the resampler is compared with a direct float64 evaluation of its defining formula and the filterbank
with kaldi-native-fbank, an independent implementation of Kaldi's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from tolerances import FBANK_KALDI_NATIVE, FLOAT32_RESHAPED, RESAMPLE_DEFINITION, assert_close

from sertk.audio.fbank import FbankOptions, fbank, mel_banks, num_frames
from sertk.audio.io import read_audio
from sertk.audio.resample import resample, resampled_length
from sertk.errors import AudioError


# -- io ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("subtype,fmt,tol", [("PCM_16", "WAV", 2**-15), ("PCM_24", "FLAC", 2**-23),
                                             ("FLOAT", "WAV", 0.0)])
def test_read_audio_formats_and_channels(tmp_path, subtype, fmt, tol):
    rng = np.random.default_rng(1)
    wave = (0.5 * rng.uniform(-1, 1, size=(1234, 2))).astype(np.float32)
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, wave, 22050, subtype=subtype, format=fmt)
    data, rate = read_audio(path)
    assert rate == 22050 and data.dtype == np.float32 and data.shape == (2, 1234)
    assert data.flags.c_contiguous
    np.testing.assert_allclose(data, wave.T, atol=tol, rtol=0)


def test_read_audio_pcm_scaling_matches_torchaudio_convention(tmp_path):
    ints = np.array([-32768, -1, 0, 1, 16384, 32767], dtype=np.int16)
    sf.write(tmp_path / "i.wav", ints, 16000, subtype="PCM_16")
    data, _ = read_audio(tmp_path / "i.wav")
    np.testing.assert_array_equal(data[0], ints.astype(np.float32) / 32768)


@pytest.mark.parametrize("make,reason", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b"this is not audio at all" * 10), "Error"),
    (lambda p: sf.write(p, np.zeros((0, 1), np.float32), 16000), "no samples"),
    (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2], np.float32), 16000, subtype="FLOAT"), "NaN"),
])
def test_read_audio_errors_name_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=reason) as info:
        read_audio(path)
    assert info.value.path == path and str(path) in str(info.value)


# -- resampling -------------------------------------------------------------------------------------------
def _resample_direct(x: np.ndarray, orig: int, new: int, width: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """The definition, in float64 and without the polyphase layout:
    y[j] = sum_i x[i] h(i/o - j/n), h(tau) = c/o · sinc(c·tau) · cos²(pi c tau / 2w) for |c tau| < w, else 0,
    with o, n the gcd-reduced rates and c = rolloff · min(o, n)."""
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    c = rolloff * min(o, n)
    out = np.zeros(resampled_length(len(x), orig, new))
    i = np.arange(len(x))
    for j in range(len(out)):
        t = c * (i / o - j / n)
        t = np.clip(t, -width, width)
        h = np.sinc(t) * np.cos(np.pi * t / (2 * width)) ** 2 * c / o
        out[j] = np.dot(x, h)
    return out


@pytest.mark.golden
@pytest.mark.parametrize("orig,new", [(44100, 16000), (48000, 16000), (8000, 16000), (22050, 16000)])
def test_resample_matches_its_definition(orig, new):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(1500).astype(np.float32) * 0.3
    ours = resample(torch.from_numpy(x), orig, new).numpy()
    assert ours.shape == (math.ceil(new * 1500 / orig),)
    # The kernel is computed in float32, as torchaudio's: tap times reach c = 0.99 min(o, n) (158 zero
    # crossings at 44.1 kHz, 317 at 22.05 kHz) before the clamp, so each tap is off by up to ~eps * c ≈ 4e-5
    # of a zero crossing, which is what the float64 definition sees. A wrong cut-off, window or phase
    # is off by more than 1e-2.
    direct = _resample_direct(x.astype(np.float64), orig, new)
    assert_close(ours, direct, RESAMPLE_DEFINITION, what=f"{orig}->{new}")
    assert np.sqrt(np.mean((ours - direct) ** 2)) < 5e-6


def test_resample_batches_channels_and_keeps_a_tone():
    t = np.arange(44100) / 44100
    tone = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 1000 * t)]).astype(np.float32)
    both = resample(torch.from_numpy(tone), 44100, 16000)
    assert both.shape == (2, 16000)
    for c in range(2):  # each row is resampled on its own (a convolution of another batch shape: to rounding)
        assert_close(both[c].numpy(), resample(torch.from_numpy(tone[c]), 44100, 16000).numpy(), FLOAT32_RESHAPED)
    t16 = np.arange(16000) / 16000
    expected = np.sin(2 * np.pi * 440 * t16)
    np.testing.assert_allclose(both[0, 200:-200].numpy(), expected[200:-200], atol=2e-3)
    same = torch.from_numpy(tone)
    assert resample(same, 16000, 16000) is same


def test_resampled_length_rounds_through_float32_like_torchaudio():
    # new*n/orig = 1088435.3742...: exact ceil 1088436; float32 holds it as 1088435.375 -> same
    assert resampled_length(3_000_000, 44100, 16000) == 1088436
    # a length whose exact quotient is just above an integer that float32 cannot resolve
    n = 44100 * 1200 + 1  # 1200 s at 44.1 kHz plus one sample: 19_200_000.36 -> float32 19_200_000
    assert resampled_length(n, 44100, 16000) == 19_200_000
    with pytest.raises(ValueError):
        resampled_length(10, 44100.5, 16000)


# -- filterbank -------------------------------------------------------------------------------------------
def _knf(x: np.ndarray, bins: int, window: str, snip_edges: bool) -> np.ndarray:
    knf = pytest.importorskip("kaldi_native_fbank")
    o = knf.FbankOptions()
    o.frame_opts.dither = 0.0
    o.frame_opts.samp_freq = 16000
    o.frame_opts.window_type = window
    o.frame_opts.snip_edges = snip_edges
    o.mel_opts.num_bins = bins
    o.use_energy = False
    f = knf.OnlineFbank(o)
    f.accept_waveform(16000, x.tolist())
    f.input_finished()
    return np.array([f.get_frame(i) for i in range(f.num_frames_ready)])


@pytest.mark.golden
@pytest.mark.parametrize("bins", [80, 100, 120])
@pytest.mark.parametrize("window,snip_edges", [("hanning", True), ("povey", False), ("hamming", True)])
def test_fbank_matches_kaldi_native_fbank(recordings, bins, window, snip_edges):
    """Both sides are float32; the largest differences sit in quiet bins (FBANK_KALDI_NATIVE says why)."""
    x, rate = sf.read(recordings["overlap_3.7s_16k_dc.flac"], dtype="float32")
    assert rate == 16000
    theirs = _knf(x, bins, window, snip_edges)
    ours = fbank(torch.from_numpy(x), FbankOptions(num_mel_bins=bins, window_type=window,
                                                   snip_edges=snip_edges)).numpy()
    assert ours.shape == theirs.shape == (num_frames(len(x), FbankOptions(snip_edges=snip_edges)), bins)
    assert_close(ours, theirs, FBANK_KALDI_NATIVE, what=f"{bins} bins, {window}")


def test_fbank_is_batched_and_handles_short_input():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((3, 4000)).astype(np.float32) * 0.1)
    opts = FbankOptions(num_mel_bins=128, window_type="hanning")
    batch = fbank(x, opts)
    assert batch.shape == (3, 23, 128)
    for i in range(3):
        assert_close(batch[i].numpy(), fbank(x[i], opts).numpy(), FLOAT32_RESHAPED, what="log-mel")
    assert fbank(x[:, :399], opts).shape == (3, 0, 128)
    assert fbank(x[:, :400], opts).shape == (3, 1, 128)


def test_mel_banks_128_bins_keep_the_empty_filter_kaldi_refuses():
    banks = mel_banks(FbankOptions(num_mel_bins=128))
    assert banks.shape == (128, 257)
    assert (banks[:, -1] == 0).all()
    # at 512 points filter 3 (63.0-93.0 Hz) falls strictly between two FFT bins (62.5 and 93.75 Hz)
    assert (banks.sum(dim=1) == 0).nonzero().flatten().tolist() == [3]


def test_fbank_options_are_validated():
    with pytest.raises(ValueError):
        FbankOptions(window_type="kaiser")
    with pytest.raises(ValueError):
        FbankOptions(low_freq=9000)
    with pytest.raises(TypeError):
        fbank(torch.zeros(1000, dtype=torch.float64))
