"""ImageBind's audio preprocessing, batched in torch: waveforms → normalised log-mel clips.

Per utterance, upstream's defaults (see ``docs/imagebind.md``):

1. resample to 16 kHz when the file's rate differs (:func:`sertk.audio.resample.resample`, all channels);
2. ``clips`` windows of ``clip_seconds`` (3 × 2 s): ``step = max(duration - 2, 0) / 3``, clip *i* spans
   samples ``[int(i·step·sr), int((i·step + 2)·sr))`` computed with exact fractions as upstream's clip sampler
   does (the last ``step`` seconds of a long file are never used);
3. per clip, in order, subtract the clip's mean taken over **all channels**, *in place on the waveform*
   (``inplace_mean=True``, upstream's behaviour: where clips overlap, a later clip sees samples already
   shifted by an earlier clip's mean); ``inplace_mean=False`` subtracts from a copy instead;
4. Kaldi log-mel filterbank of channel 0: 128 bins, 25 ms Hanning frames every 10 ms, dither 0
   (:func:`sertk.audio.fbank.fbank`); laid out ``[128, frames]``;
5. zero-pad on the right or crop to 204 frames, then ``(x + 4.268) / 9.138``.

Steps 1-3 run per file on the CPU (:func:`cut_clips`, in the featurizer's worker threads); steps 4-5 run batched
on the model's device (:func:`clip_features`: one padded filterbank call, frames past each clip's end masked).

Long recordings take bounded memory (:func:`cut_file`): a file longer than :data:`WHOLE_FILE_SECONDS` is first
checked block by block, then only the stretches its clips cover are decoded (and resampled, with enough
context that the values are those of resampling the whole file), so memory is about ``clips × clip_seconds``
of audio however long the file is.

Beyond upstream: recordings shorter than one frame (400 samples at 16 kHz) are padded with silence to 400
samples (a warning is logged) instead of crashing; clips covering the same samples (files of at most 2 s,
where all three clips do) are computed once (``reuse_identical_clips``), which skips upstream's re-subtraction
of a residual mean of ~1e-9 on the repeats: embeddings move by about 1e-6.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from sertk.audio.fbank import FbankOptions, fbank, num_frames
from sertk.audio.io import AudioFile
from sertk.audio.resample import resample, resampled_length, sinc_kernel

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = ["GPU_ROW_MULTIPLE", "WHOLE_FILE_SECONDS", "ClipBatch", "ClipConfig", "UtteranceClips", "assemble",
           "clip_bounds", "clip_features", "clip_features_by_length", "cut_clips", "cut_file", "gather_clips",
           "prepare", "to_device"]

#: on a GPU, the filterbank's row count is rounded up to a multiple of this (stable shapes: few FFT plans)
GPU_ROW_MULTIPLE = 64
_FLOAT32_EPS = float(np.finfo(np.float32).eps)
_CONSTANTS: dict[tuple, tuple] = {}

#: files up to this long are decoded whole (one read; 60 s of 48 kHz stereo is 23 MB); longer ones part by part
WHOLE_FILE_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    """How utterances become model inputs; the defaults are upstream's."""

    sample_rate: int = 16000
    clips: int = 3
    clip_seconds: float = 2.0
    inplace_mean: bool = True
    reuse_identical_clips: bool = True
    num_mel_bins: int = 128
    target_frames: int = 204
    mean: float = -4.268
    std: float = 9.138
    min_samples: int = 400

    def __post_init__(self) -> None:
        if isinstance(self.clips, bool) or int(self.clips) != self.clips or self.clips < 1:
            raise ValueError(f"clips must be a positive integer, got {self.clips!r}")
        if not float(self.clip_seconds) > 0:
            raise ValueError(f"clip_seconds must be positive, got {self.clip_seconds!r}")
        object.__setattr__(self, "clips", int(self.clips))  # 3.0 → 3: the same fingerprint
        object.__setattr__(self, "clip_seconds", float(self.clip_seconds))

    @property
    def fbank_options(self) -> FbankOptions:
        return FbankOptions(sample_rate=float(self.sample_rate), num_mel_bins=self.num_mel_bins,
                            window_type="hanning")


@dataclasses.dataclass
class ClipBatch:  # torch tensors; torch is imported only when one is made
    """Model inputs for a batch of utterances.

    Attributes
    ----------
    features
        float32 ``[unique_clips, 1, num_mel_bins, target_frames]``.
    index
        int64 ``[utterances, clips]``: the row of ``features`` holding each clip of each utterance.
    padded
        positions (in the batch) of utterances that were shorter than one frame and were padded.
    """

    features: "torch.Tensor"
    index: "torch.Tensor"
    padded: list[int]


def clip_bounds(num_samples: int, cfg: ClipConfig = ClipConfig()) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of an utterance's clips (``end`` may pass the end of the signal).

    Follows upstream's arithmetic exactly: the duration is a float, the clip length and the step exact
    fractions, positions truncated to whole samples.
    """
    rate = cfg.sample_rate
    length = Fraction(cfg.clip_seconds)
    max_start = Fraction(max(num_samples / rate - length, 0))
    step = max_start / cfg.clips
    return [(int(step * i * rate), int((step * i + length) * rate)) for i in range(cfg.clips)]


@dataclasses.dataclass
class UtteranceClips:  # torch tensors; torch is imported only when one is made
    """One utterance cut into clips, on the CPU: the part of preprocessing done file by file.

    Attributes
    ----------
    clips
        The distinct clips, 1-D float32 CPU tensors (channel 0, mean already subtracted).
    rows
        For each of the utterance's ``cfg.clips`` clips, its position in ``clips``.
    padded
        Whether the recording was shorter than one frame and was padded.
    """

    clips: "list[torch.Tensor]"
    rows: list[int]
    padded: bool


def cut_clips(wave: np.ndarray, rate: int, cfg: ClipConfig = ClipConfig(), name: object = "utterance",
              copy: bool = True) -> UtteranceClips:
    """Steps 1-3 for one decoded utterance (``float32 [channels, samples]``), on the CPU.

    Independent of every other file and free of the GIL in its heavy parts (torch), so the featurizer runs it
    in worker threads next to decoding while the model works on the previous batch. The mean subtraction edits
    the samples in place: ``copy=False`` lets it edit ``wave`` itself (a freshly decoded array nobody else
    holds, as :func:`cut_file` passes) instead of a copy.
    """
    import torch
    import torch.nn.functional as F

    samples = (np.array(wave, dtype=np.float32, order="C", copy=True) if copy
               else np.ascontiguousarray(wave, dtype=np.float32))
    x = torch.from_numpy(samples)  # shares samples' memory: one copy at most, where the old code made two
    if x.ndim != 2:
        raise ValueError(f"waveforms must be [channels, samples], got shape {tuple(x.shape)}")
    if rate != cfg.sample_rate:
        x = resample(x, rate, cfg.sample_rate)
    padded = x.shape[-1] < cfg.min_samples
    if padded:
        logger.warning("%s: %d samples at %d Hz is shorter than one 25 ms frame; padded with silence to %d",
                       name, x.shape[-1], cfg.sample_rate, cfg.min_samples)
        x = F.pad(x, (0, cfg.min_samples - x.shape[-1]))
    clips: list[torch.Tensor] = []
    rows = [0] * cfg.clips
    spans = [(i, start, end) for i, (start, end) in enumerate(clip_bounds(x.shape[-1], cfg))]
    _take_clips(x, 0, spans, cfg, clips, rows, {})
    return UtteranceClips(clips, rows, padded)


def _take_clips(x: "torch.Tensor", offset: int, spans: "list[tuple[int, int, int]]", cfg: ClipConfig,
                clips: "list[torch.Tensor]", rows: list[int], seen: dict[tuple[int, int], int]) -> None:
    """Step 3 for ``spans`` ((clip number, start, end) in samples of the utterance) of ``x``, whose first sample
    is the utterance's sample ``offset``: each clip's mean subtracted as ``cfg`` says (in place on ``x``, as
    upstream), its channel 0 appended to ``clips`` and its position written to ``rows``; identical spans once."""
    for i, start, end in spans:
        view = x[:, start - offset:end - offset]
        if cfg.inplace_mean:
            view -= view.mean()  # upstream: in place, on the waveform itself
            clip = view[0]
        else:
            clip = view[0] - view.mean()
        if cfg.reuse_identical_clips and (start, end) in seen:
            rows[i] = seen[(start, end)]
            continue
        seen[(start, end)] = rows[i] = len(clips)
        clips.append(clip.clone())  # later in-place clips must not reach this one


def cut_file(path, cfg: ClipConfig = ClipConfig()) -> UtteranceClips:
    """Decode one file and cut its clips (:func:`cut_clips`), reading only what the clips need when it is long.

    Every sample is checked either way (:class:`sertk.errors.AudioError` names the file). Clips that overlap are
    read as one stretch, so upstream's in-place mean subtraction sees what it sees on the whole waveform.
    """
    with AudioFile(path) as audio:
        if audio.frames > WHOLE_FILE_SECONDS * audio.rate:
            return _cut_long(audio, cfg)
        wave = audio.read_all()  # the file opened once either way
    return cut_clips(wave, audio.rate, cfg, str(path), copy=False)  # ours alone: cut in place


def _cut_long(audio: AudioFile, cfg: ClipConfig) -> UtteranceClips:
    """:func:`cut_clips` of a long file, decoding only the stretches its clips cover."""
    frames = audio.check()  # block by block; the true length, not the header's
    length = frames if audio.rate == cfg.sample_rate else resampled_length(frames, audio.rate, cfg.sample_rate)
    bounds = [(start, min(end, length)) for start, end in clip_bounds(length, cfg)]
    groups: list[list[int]] = []  # runs of clips that overlap: each is read as one stretch
    for i, (start, _) in enumerate(bounds):
        if groups and start < max(bounds[j][1] for j in groups[-1]):
            groups[-1].append(i)
        else:
            groups.append([i])
    clips: "list[torch.Tensor]" = []
    rows: list[int] = [0] * cfg.clips
    for group in groups:
        lo, hi = bounds[group[0]][0], max(bounds[i][1] for i in group)
        x = _read_resampled(audio, lo, hi, frames, cfg.sample_rate)
        _take_clips(x, lo, [(i, *bounds[i]) for i in group], cfg, clips, rows, {})
    return UtteranceClips(clips, rows, False)


def _read_resampled(audio: AudioFile, start: int, stop: int, frames: int, rate: int) -> "torch.Tensor":
    """Samples ``[start, stop)`` at ``rate`` of a file of ``frames`` frames, as float32 ``[channels, n]``: the
    values :func:`resample` gives for the whole file, from a stretch with the filter's reach on each side."""
    import torch

    if audio.rate == rate:
        return torch.from_numpy(audio.read(start, stop))
    g = math.gcd(audio.rate, rate)
    orig, new = audio.rate // g, rate // g
    _, width = sinc_kernel(audio.rate, rate)
    reach = -(-width // orig) + 1  # filter steps of context on each side
    first_step = max(0, start // new - reach)  # the stretch starts on a step: the filter's phases line up
    seg_start = first_step * orig
    seg_stop = min(frames, (-(-stop // new) + reach + 1) * orig)
    out = resample(torch.from_numpy(audio.read(seg_start, seg_stop)), audio.rate, rate)
    offset = first_step * new  # the output index of out's first sample
    return out[:, start - offset:stop - offset].contiguous()


def clip_features(clips: "Sequence[torch.Tensor]", cfg: ClipConfig = ClipConfig(),
                  device: "torch.device | str" = "cpu") -> "torch.Tensor":
    """Steps 4-5, batched: 1-D CPU clips → normalised ``[len(clips), 1, bins, target]`` on ``device``.

    All clips go through one filterbank call: each is zero-padded on the right to the batch's longest (at least
    the nominal clip length, so the shape rarely changes), and the frames that reach past a clip's own end are
    then zeroed, which is what padding its own, shorter feature matrix to the model's frames does. The frames
    a clip does fill see only its own samples, so its features are those of a call on it alone, to float
    rounding. On a GPU the clips are copied once, into page-locked memory, uploaded without blocking the host,
    and the row count is rounded up to a multiple of :data:`GPU_ROW_MULTIPLE` (zero rows, dropped after), so
    that a few shapes, and so a few FFT plans, serve every batch.
    """
    import torch
    import torch.nn.functional as F

    device = torch.device(device)
    if not clips:
        return torch.zeros(0, 1, cfg.num_mel_bins, cfg.target_frames, device=device)
    opts = dataclasses.replace(cfg.fbank_options, use_log=False)  # the log below, without a tensor upload
    cuda = device.type == "cuda"
    lengths = [clip.shape[-1] for clip in clips]
    width = max(max(lengths), int(round(cfg.clip_seconds * cfg.sample_rate)))
    rows = -(-len(clips) // GPU_ROW_MULTIPLE) * GPU_ROW_MULTIPLE if cuda else len(clips)
    staging = torch.empty((rows, width), dtype=torch.float32, pin_memory=cuda)
    for i, clip in enumerate(clips):  # one copy of each clip; zeros only where a clip ends early
        staging[i, :lengths[i]] = clip
        if lengths[i] < width:
            staging[i, lengths[i]:] = 0.0
    staging[len(clips):] = 0.0
    frames = torch.tensor([num_frames(n, opts) for n in lengths] + [0] * (rows - len(clips)), dtype=torch.int32)
    if cuda:
        frames = frames.pin_memory()
    signal = staging.to(device, non_blocking=True)
    frames = frames.to(device, non_blocking=True)
    energies = fbank(signal, opts)  # [rows, frames, bins]
    feats = energies.clamp_min(_FLOAT32_EPS).log().transpose(1, 2)  # as fbank's own log: max(energy, eps)
    keep = torch.arange(feats.shape[-1], device=device) < frames[:, None]  # [rows, frames]
    feats = torch.where(keep[:, None, :], feats, 0.0)
    gap = cfg.target_frames - feats.shape[-1]
    feats = F.pad(feats, (0, gap)) if gap > 0 else feats[..., : cfg.target_frames]
    mean, std = _normalisation(cfg, device)
    feats = (feats[: len(clips)] - mean) / std  # float32 constants, as upstream's Normalize makes them
    return feats.unsqueeze(1)


def clip_features_by_length(clips: "Sequence[torch.Tensor]", cfg: ClipConfig = ClipConfig(),
                            device: "torch.device | str" = "cpu") -> "torch.Tensor":
    """Steps 4-5 the direct way, one filterbank call per distinct clip length: the reference that tests hold
    :func:`clip_features` to (it was the featurizer's path until the padded call replaced it)."""
    import torch
    import torch.nn.functional as F

    device = torch.device(device)
    out: "list[torch.Tensor | None]" = [None] * len(clips)
    groups: dict[int, list[int]] = {}
    for i, clip in enumerate(clips):
        groups.setdefault(clip.shape[-1], []).append(i)
    mean, std = _normalisation(cfg, device)
    for rows in groups.values():
        feats = fbank(torch.stack([clips[i] for i in rows]).to(device), cfg.fbank_options).transpose(1, 2)
        gap = cfg.target_frames - feats.shape[-1]
        feats = F.pad(feats, (0, gap)) if gap > 0 else feats[..., : cfg.target_frames]
        feats = (feats - mean) / std
        for j, i in enumerate(rows):
            out[i] = feats[j]
    return torch.stack(out).unsqueeze(1)  # type: ignore[arg-type]


def _normalisation(cfg: ClipConfig, device: "torch.device") -> "tuple[torch.Tensor, torch.Tensor]":
    """The normalisation's mean and std as float32 tensors on ``device``, made once per device (a scalar made on
    a GPU for every batch would be a blocking upload each time)."""
    import torch

    key = (cfg.mean, cfg.std, str(device))
    if key not in _CONSTANTS:
        _CONSTANTS[key] = (torch.tensor(cfg.mean, dtype=torch.float32, device=device),
                           torch.tensor(cfg.std, dtype=torch.float32, device=device))
    return _CONSTANTS[key]


def to_device(tensor: "torch.Tensor", device: "torch.device") -> "torch.Tensor":
    """``tensor`` (CPU) on ``device``; to a GPU through page-locked memory, without blocking the host."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def assemble(cut: Sequence[UtteranceClips], cfg: ClipConfig = ClipConfig(),
             device: "torch.device | str" = "cpu") -> ClipBatch:
    """Cut utterances → one :class:`ClipBatch` on ``device``."""
    import torch

    clips, index = gather_clips(cut, cfg)
    device = torch.device(device)
    return ClipBatch(clip_features(clips, cfg, device), to_device(index, device),
                     [pos for pos, u in enumerate(cut) if u.padded])


def gather_clips(cut: Sequence[UtteranceClips], cfg: ClipConfig = ClipConfig()
                 ) -> "tuple[list[torch.Tensor], torch.Tensor]":
    """The distinct clips of a batch, in order, and the int64 ``[utterances, clips]`` row of each utterance's
    clips among them (CPU)."""
    import torch

    clips: "list[torch.Tensor]" = []
    index: list[list[int]] = []
    for utterance in cut:
        index.append([len(clips) + r for r in utterance.rows])
        clips += utterance.clips
    return clips, torch.tensor(index, dtype=torch.long).reshape(len(index), cfg.clips)


def prepare(
    waves: Sequence[tuple[np.ndarray, int]],
    cfg: ClipConfig = ClipConfig(),
    device: "torch.device | str" = "cpu",
    names: Sequence[object] | None = None,
) -> ClipBatch:
    """Turn decoded utterances into model inputs (:func:`cut_clips` for each, then :func:`assemble`).

    Parameters
    ----------
    waves
        ``(waveform, sample_rate)`` pairs as :func:`sertk.audio.io.read_audio` returns them: float32
        ``[channels, samples]``.
    cfg
        :class:`ClipConfig`.
    device
        Where the filterbank runs and the outputs live (clips are cut on the CPU).
    names
        Used in log messages (file paths).
    """
    cut = [cut_clips(wave, rate, cfg, names[pos] if names is not None else f"utterance {pos}")
           for pos, (wave, rate) in enumerate(waves)]
    return assemble(cut, cfg, device)
