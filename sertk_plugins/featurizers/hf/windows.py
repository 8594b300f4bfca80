"""Long recordings: the window rule, and reading a file window by window as mono 16 kHz audio.

The rule (:func:`window_bounds`): a recording of ``n`` samples at 16 kHz that fits in ``window`` samples
(``chunk_seconds``, 30 s by default: Whisper's input, and where self-attention's quadratic memory is still small)
is one window. A longer one is cut into ``k = ceil(n / window)`` consecutive windows of equal length (±1 sample),
so no window is a sliver. Each window goes through the model's feature extractor and the model as an utterance of
its own (its own normalisation); the pooled statistics of the windows are combined frame-weighted (see
:mod:`.pooling`), so a one-hour recording costs 120 forward passes of 30 s, never one of an hour.

:func:`read_windows` decodes only one window at a time (plus the resampling filter's reach on each side), so
memory does not grow with the recording either. Channels are averaged to mono, then resampled to 16 kHz with
:func:`sertk.audio.resample.resample`; the samples equal those of resampling the whole file at once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np

from sertk.audio.io import AudioFile
from sertk.audio.resample import resample, resampled_length, sinc_kernel

__all__ = ["SAMPLE_RATE", "WINDOW_RULE", "read_windows", "window_bounds"]

#: the rate every supported encoder was trained at
SAMPLE_RATE = 16000
#: the window rule's name in the fingerprint (bump when the rule changes)
WINDOW_RULE = "equal-split-v1"


def window_bounds(samples: int, window: int) -> list[tuple[int, int]]:
    """``[start, stop)`` sample bounds of the windows of a recording of ``samples`` samples (the rule above)."""
    if samples <= window:
        return [(0, samples)]
    k = -(-samples // window)
    edges = [round(i * samples / k) for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


def read_windows(path: str | os.PathLike, window: int) -> Iterator[np.ndarray]:
    """The windows of a file as float32 mono 16 kHz arrays, decoded one at a time.

    Raises :class:`sertk.errors.AudioError` naming the file when it cannot be read (every sample is checked).
    """
    with AudioFile(path) as audio:
        if audio.frames <= window * audio.rate / SAMPLE_RATE:  # short: one read (the usual case)
            yield _mono_16k(audio.read_all(), audio.rate)
            return
        frames = audio.check()  # the true length, not the header's
        length = frames if audio.rate == SAMPLE_RATE else resampled_length(frames, audio.rate, SAMPLE_RATE)
        for start, stop in window_bounds(length, window):
            yield _read_16k(audio, start, stop, frames)


def _mono_16k(wave: np.ndarray, rate: int) -> np.ndarray:
    mono = wave.mean(axis=0, dtype=np.float32) if wave.shape[0] > 1 else wave[0]
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(mono, dtype=np.float32)
    import torch

    return resample(torch.from_numpy(np.ascontiguousarray(mono)), rate, SAMPLE_RATE).numpy().copy()


def _read_16k(audio: AudioFile, start: int, stop: int, frames: int) -> np.ndarray:
    """Mono 16 kHz samples ``[start, stop)`` of a file of ``frames`` frames: the values resampling the whole file
    gives, from a stretch with the filter's reach on each side that starts on a filter step."""
    if audio.rate == SAMPLE_RATE:
        return _mono_16k(audio.read(start, stop), SAMPLE_RATE)
    g = math.gcd(audio.rate, SAMPLE_RATE)
    orig, new = audio.rate // g, SAMPLE_RATE // g
    _, width = sinc_kernel(audio.rate, SAMPLE_RATE)
    reach = -(-width // orig) + 1  # filter steps of context on each side
    first_step = max(0, start // new - reach)  # the stretch starts on a step, so the filter's phases line up
    stretch = _mono_16k(audio.read(first_step * orig, min(frames, (-(-stop // new) + reach + 1) * orig)),
                        audio.rate)
    offset = first_step * new  # the output index of the stretch's first sample
    return np.ascontiguousarray(stretch[start - offset:stop - offset])
