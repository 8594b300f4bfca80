"""Kaldi-compatible log mel filterbank features in torch, batched, on CPU or GPU.

This follows Kaldi's ``compute-fbank-feats`` (and torchaudio's ``compliance.kaldi.fbank``, which mirrors it):
frames of ``frame_length_ms`` every ``frame_shift_ms`` (``snip_edges``: only frames that fit), per-frame DC
removal, pre-emphasis ``x[i] - k * x[i-1]`` (``x[-1] = x[0]``), a window, zero padding to a power of two,
power spectrum, triangular mel filters equally spaced on ``1127 ln(1 + f / 700)`` between ``low_freq`` and
``high_freq`` (non-positive: offset from Nyquist), and ``log(max(energy, float32 eps))``. The mel matrix is
built in float32 with the same arithmetic as torchaudio, so features agree with it to float rounding.

Not supported (sertk needs none of them): dither (features are deterministic: dither 0), the energy column
(``use_energy``), VTLN warping, cepstral mean subtraction. Kaldi itself refuses mel bins that receive no FFT
bin (for 512-point FFTs at 16 kHz: more than about 120 bins); like torchaudio we compute them anyway, since
ImageBind's 128 bins need it (its filter 3, 63–93 Hz, then holds ``log(eps)``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["FbankOptions", "fbank", "mel_banks", "num_frames"]

WINDOWS = ("hanning", "hamming", "povey", "rectangular", "blackman")
_CACHE: dict[tuple, "torch.Tensor"] = {}


@dataclasses.dataclass(frozen=True)
class FbankOptions:
    """Filterbank options, named and defaulted as in Kaldi (``dither`` is always 0)."""

    sample_rate: float = 16000.0
    num_mel_bins: int = 23
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    window_type: str = "povey"
    blackman_coeff: float = 0.42
    preemphasis: float = 0.97
    remove_dc_offset: bool = True
    round_to_power_of_two: bool = True
    snip_edges: bool = True
    low_freq: float = 20.0
    high_freq: float = 0.0
    use_power: bool = True
    use_log: bool = True

    def __post_init__(self) -> None:
        if self.window_type not in WINDOWS:
            raise ValueError(f"window_type must be one of {', '.join(WINDOWS)}, got {self.window_type!r}")
        if self.num_mel_bins <= 3:
            raise ValueError("num_mel_bins must be at least 4")
        if not 0.0 <= self.preemphasis <= 1.0:
            raise ValueError("preemphasis must be in [0, 1]")
        if not 2 <= self.window_size or self.window_shift <= 0:
            raise ValueError("frame length must span at least 2 samples and the shift at least 1")
        if self.fft_size % 2:
            raise ValueError("the (padded) frame length must be even: set round_to_power_of_two")
        nyquist = 0.5 * self.sample_rate
        high = self.high_freq if self.high_freq > 0 else self.high_freq + nyquist
        if not (0.0 <= self.low_freq < nyquist and 0.0 < high <= nyquist and self.low_freq < high):
            raise ValueError(f"bad band: low_freq {self.low_freq}, high_freq {self.high_freq}, Nyquist {nyquist}")

    @property
    def window_size(self) -> int:
        """Samples per frame (400 for 25 ms at 16 kHz)."""
        return int(self.sample_rate * self.frame_length_ms * 0.001)

    @property
    def window_shift(self) -> int:
        """Samples between frame starts (160 for 10 ms at 16 kHz)."""
        return int(self.sample_rate * self.frame_shift_ms * 0.001)

    @property
    def fft_size(self) -> int:
        n = self.window_size
        return 1 << (n - 1).bit_length() if self.round_to_power_of_two else n


def num_frames(num_samples: int, opts: FbankOptions) -> int:
    """How many frames :func:`fbank` returns for ``num_samples`` samples."""
    size, shift = opts.window_size, opts.window_shift
    if opts.snip_edges:
        return 0 if num_samples < size else 1 + (num_samples - size) // shift
    return (num_samples + shift // 2) // shift


def mel_banks(opts: FbankOptions, device: "torch.device | str | None" = None) -> "torch.Tensor":
    """Triangular mel filters, float32 ``[num_mel_bins, fft_size // 2 + 1]`` (the Nyquist column is zero)."""
    import torch

    key = ("mel", opts.num_mel_bins, opts.fft_size, opts.sample_rate, opts.low_freq, opts.high_freq, str(device))
    if key in _CACHE:
        return _CACHE[key]

    def mel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)

    high = opts.high_freq if opts.high_freq > 0 else opts.high_freq + 0.5 * opts.sample_rate
    mel_low, mel_high = mel(opts.low_freq), mel(high)
    delta = (mel_high - mel_low) / (opts.num_mel_bins + 1)
    # float32 throughout, in torchaudio's order of operations
    b = torch.arange(opts.num_mel_bins).unsqueeze(1)
    left = mel_low + b * delta
    center = mel_low + (b + 1.0) * delta
    right = mel_low + (b + 2.0) * delta
    bin_width = opts.sample_rate / opts.fft_size
    fft_mel = 1127.0 * (1.0 + bin_width * torch.arange(opts.fft_size / 2) / 700.0).log()
    fft_mel = fft_mel.unsqueeze(0)
    up = (fft_mel - left) / (center - left)
    down = (right - fft_mel) / (right - center)
    banks = torch.clamp_min(torch.minimum(up, down), 0.0)
    banks = torch.nn.functional.pad(banks, (0, 1))
    banks = banks.to(device=device, dtype=torch.float32)
    _CACHE[key] = banks
    return banks


def _window(opts: FbankOptions, device) -> "torch.Tensor":
    import torch

    key = ("win", opts.window_type, opts.window_size, opts.blackman_coeff, str(device))
    if key in _CACHE:
        return _CACHE[key]
    n = opts.window_size
    f32 = dict(dtype=torch.float32, device=device)
    if opts.window_type == "hanning":
        w = torch.hann_window(n, periodic=False, **f32)
    elif opts.window_type == "povey":
        w = torch.hann_window(n, periodic=False, **f32).pow(0.85)
    elif opts.window_type == "hamming":
        w = torch.hamming_window(n, periodic=False, alpha=0.54, beta=0.46, **f32)
    elif opts.window_type == "rectangular":
        w = torch.ones(n, **f32)
    else:  # blackman
        a = 2 * math.pi / (n - 1)
        i = torch.arange(n, **f32)
        w = opts.blackman_coeff - 0.5 * torch.cos(a * i) + (0.5 - opts.blackman_coeff) * torch.cos(2 * a * i)
    _CACHE[key] = w
    return w


def _frames(waveform: "torch.Tensor", opts: FbankOptions) -> "torch.Tensor":
    """``[..., samples]`` → ``[..., frames, window_size]`` (a strided view when ``snip_edges``)."""
    import torch

    size, shift = opts.window_size, opts.window_shift
    if not opts.snip_edges:
        # Kaldi reflects the signal at both ends so that frame i is centred on i * shift + shift / 2
        n = waveform.shape[-1]
        pad = size // 2 - shift // 2
        flipped = waveform.flip(-1)
        if pad > 0:
            waveform = torch.cat((waveform[..., :pad].flip(-1), waveform, flipped), dim=-1)
        else:
            waveform = torch.cat((waveform[..., -pad:], flipped), dim=-1)
        m = num_frames(n, opts)
        return waveform.unfold(-1, size, shift)[..., :m, :]
    if waveform.shape[-1] < size:
        return waveform.new_zeros(*waveform.shape[:-1], 0, size)
    return waveform.unfold(-1, size, shift)


def fbank(waveform: "torch.Tensor", opts: FbankOptions = FbankOptions()) -> "torch.Tensor":
    """Log mel filterbank of one or many equal-length signals.

    Parameters
    ----------
    waveform
        float32 ``[..., samples]`` at ``opts.sample_rate`` on any device (a batch of clips: ``[batch, samples]``).
    opts
        :class:`FbankOptions`; ImageBind uses ``num_mel_bins=128, window_type="hanning"``.

    Returns
    -------
    torch.Tensor
        float32 ``[..., frames, num_mel_bins]``; ``frames`` is :func:`num_frames` (0 for signals shorter than
        one frame with ``snip_edges``).
    """
    import torch
    import torch.nn.functional as F

    if waveform.dtype != torch.float32:
        raise TypeError(f"fbank needs float32 samples, got {waveform.dtype}")
    device = waveform.device
    frames = _frames(waveform, opts)
    if frames.shape[-2] == 0:
        return waveform.new_zeros(*frames.shape[:-1], opts.num_mel_bins)
    if opts.remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    if opts.preemphasis != 0.0:
        previous = torch.cat((frames[..., :1], frames[..., :-1]), dim=-1)
        frames = frames - opts.preemphasis * previous
    frames = frames * _window(opts, device)
    if opts.fft_size != opts.window_size:
        frames = F.pad(frames, (0, opts.fft_size - opts.window_size))
    spectrum = torch.fft.rfft(frames).abs()
    if opts.use_power:
        spectrum = spectrum.pow(2.0)
    energies = torch.matmul(spectrum, mel_banks(opts, device).T)
    if opts.use_log:
        eps = torch.tensor(torch.finfo(torch.float32).eps, device=device)
        energies = torch.maximum(energies, eps).log()
    return energies
