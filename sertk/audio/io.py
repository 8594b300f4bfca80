"""Decode audio files with :mod:`soundfile` (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF, …).

Every channel is kept, as ImageBind's reference code keeps them (it reads channel 0 for features but
subtracts a mean taken over all channels). Integer PCM is scaled to [-1, 1) by libsndfile's convention
(divide by 2**(bits-1)), the same convention torchaudio uses.

Every sample that leaves this module has been checked (:func:`check_samples`): a file with no samples, a NaN or
infinite sample, or samples beyond :data:`MAX_AMPLITUDE` cannot give a meaningful embedding, so it is refused
with an :class:`~sertk.errors.AudioError` naming it, never repaired. :func:`read_audio` decodes a whole file;
:class:`AudioFile` reads one in blocks or in parts, so a featurizer's memory need not grow with the recording.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sertk.errors import AudioError

__all__ = ["MAX_AMPLITUDE", "AudioFile", "check_samples", "read_audio"]

#: Largest accepted sample magnitude. Float files may exceed full scale (1.0) a little, and some tools write
#: float audio on the int16 scale (±32768), which still decodes to meaningful features; beyond 1e6 (120 dB over
#: full scale) the file is not a recording, and an encoder's float32 arithmetic heads for overflow.
MAX_AMPLITUDE = 1e6

#: frames per block when a file is read in blocks (64 Ki frames: 4 s at 16 kHz, 256 KiB per mono float32 block)
BLOCK_FRAMES = 1 << 16


def check_samples(path: object, data: np.ndarray, offset: int = 0) -> None:
    """Raise :class:`AudioError` naming ``path`` if ``data`` (``(frames,)`` or ``(frames, channels)``, starting at
    frame ``offset`` of the file) holds a non-finite sample or one beyond :data:`MAX_AMPLITUDE`; the reason names
    the first such frame, so the user can look."""
    bad = ~np.isfinite(data)
    if bad.any():
        first = offset + int(np.flatnonzero(bad.any(axis=-1) if data.ndim > 1 else bad)[0])
        raise AudioError(path, f"the file holds NaN or infinite samples (the first at frame {first})")
    loud = np.abs(data) > MAX_AMPLITUDE
    if loud.any():
        first = offset + int(np.flatnonzero(loud.any(axis=-1) if data.ndim > 1 else loud)[0])
        raise AudioError(path, f"samples reach {float(np.max(np.abs(data))):.3g} (the first at frame {first}), "
                               f"beyond the {MAX_AMPLITUDE:.0e} any recording stays within (full scale is 1.0)")


class AudioFile:
    """One open audio file, read in checked blocks (:meth:`blocks`) or parts (:meth:`read`); a context manager.

    Raises :class:`AudioError` naming the file when it is missing, not audio, or holds no samples.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import soundfile as sf

        self.path = Path(path)
        if not self.path.is_file():
            raise AudioError(self.path, "no such file")
        try:
            self._file: Any = sf.SoundFile(str(self.path))
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
            raise AudioError(self.path, f"{type(exc).__name__}: {exc}") from None
        self.rate = int(self._file.samplerate)
        self.channels = int(self._file.channels)
        #: the frame count libsndfile reports (from the header; :meth:`blocks` reads to the true end)
        self.frames = int(self._file.frames)
        if self.frames == 0 or self.channels == 0:
            self.close()
            raise AudioError(self.path, "the file holds no samples")

    def __enter__(self) -> "AudioFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _read(self, frames: int) -> np.ndarray:
        import soundfile as sf

        offset = self._file.tell()
        try:
            data = self._file.read(frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
            raise AudioError(self.path, f"{type(exc).__name__}: {exc}") from None
        check_samples(self.path, data, offset)
        return data

    def blocks(self, frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """The whole file from its start, float32 ``(block_frames, channels)`` blocks of at most ``frames``."""
        self._seek(0)
        while True:
            data = self._read(frames)
            if data.shape[0] == 0:
                return
            yield data

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` (cut at the end of the file) as float32 ``(channels, frames)``, C-contiguous."""
        start = max(0, start)
        self._seek(start)
        data = self._read(max(0, stop - start))
        return np.ascontiguousarray(data.T)

    def read_all(self) -> np.ndarray:
        """The whole file as float32 ``(channels, frames)``, C-contiguous, in one read (checked)."""
        blocks = list(self.blocks(max(self.frames, 1)))
        data = blocks[0] if len(blocks) == 1 else np.concatenate(blocks) if blocks else np.zeros((0, 1), np.float32)
        if data.shape[0] == 0:
            raise AudioError(self.path, "the file holds no samples")
        return np.ascontiguousarray(data.T)

    def check(self) -> int:
        """Read the whole file block by block (bounded memory), raising :class:`AudioError` at a bad sample;
        returns the number of frames decoded (which, unlike :attr:`frames`, never trusts a header)."""
        frames = sum(block.shape[0] for block in self.blocks())
        if frames == 0:
            raise AudioError(self.path, "the file holds no samples")
        return frames

    def _seek(self, frame: int) -> None:
        try:
            self._file.seek(frame)
        except Exception as exc:  # noqa: BLE001 - libsndfile raises several types; all mean "cannot seek"
            raise AudioError(self.path, f"cannot seek to frame {frame}: {type(exc).__name__}: {exc}") from None


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
        The file is missing, not audio, empty, or holds non-finite or absurdly large samples; the message names
        the file.
    """
    with AudioFile(path) as audio:
        return audio.read_all(), audio.rate
