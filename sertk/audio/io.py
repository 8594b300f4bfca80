"""Decode audio files with :mod:`soundfile` (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF, …).

Every channel is kept, as ImageBind's reference code keeps them (it reads channel 0 for features but
subtracts a mean taken over all channels). Integer PCM is scaled to [-1, 1) by libsndfile's convention
(divide by 2**(bits-1)), the same convention torchaudio uses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sertk.errors import AudioError

__all__ = ["read_audio"]


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode one file.

    Parameters
    ----------
    path
        Any file libsndfile can read.

    Returns
    -------
    waveform : np.ndarray, float32, shape ``(channels, samples)``, C-contiguous
    sample_rate : int

    Raises
    ------
    sertk.errors.AudioError
        The file is missing, not audio, empty, or holds non-finite samples; the message names the file.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        raise AudioError(path, f"{type(exc).__name__}: {exc}") from None
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(path, "the file holds no samples")
    if not np.isfinite(data).all():
        raise AudioError(path, "the file holds NaN or infinite samples")
    return np.ascontiguousarray(data.T), int(rate)
