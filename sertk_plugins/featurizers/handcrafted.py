"""The ``handcrafted`` featurizer: utterance-level acoustic statistics that need no model weights.

Each file becomes one fixed-size vector of statistics over 25 ms frames every 10 ms:

===========================  ======================================================================
block                        values
===========================  ======================================================================
MFCC                         mean and std of ``n_mfcc`` cepstra, mean and std of their deltas
log-mel                      mean and std of ``n_mels`` log filterbank energies
frame energy (dB)            mean, std, 10th / 50th / 90th percentile, 90th − 10th
F0 (semitones re 100 Hz)     voiced fraction, mean, std, 5th / 50th / 95th percentile, 95th − 5th,
                             mean absolute frame-to-frame change
zero-crossing rate           mean, std
spectral centroid (kHz)      mean, std
rhythm                       energy peaks per second of speech (a syllable-rate proxy), voiced onsets
                             per second, log speech duration, pause fraction
===========================  ======================================================================

Spectral statistics are taken over the *active* frames (within ``active_db`` of the loudest frame), so
leading and trailing silence does not dominate them. F0 comes from a normalised-autocorrelation tracker in
the style of Boersma (1993): Hann-windowed frames three periods of ``f0_min`` long, the frame autocorrelation
divided by the window's, the shortest-lag local maximum within 10 % of the strongest one in the search range,
parabolic peak interpolation; isolated octave jumps are replaced by a running median. Everything is
vectorised numpy; a 2 s file takes about 10 ms. The features are on very different scales, so
:attr:`standardize` asks the pipeline to z-score them on the training split.

scipy and soundfile are imported when audio is first embedded; this module never imports torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import sertk
from sertk.audio.io import AudioFile, check_samples
from sertk.errors import AudioError

__all__ = ["HandcraftedConfig", "HandcraftedFeaturizer"]

#: bump whenever a change alters the output for the same options (it is part of the cache key)
RECIPE_VERSION = "1"

_EPS = 1e-10
_PEAK_TOLERANCE = 0.1
_DB_FLOOR = -100.0
_DELTA_WIDTH = 2


def _number(option: str, value: Any, kind: type) -> Any:
    """``kind(value)`` for a numeric option, or a ValueError that names the option and what it must be (not
    Python's "invalid literal for int()"); whole floats pass as integers, other floats and booleans do not."""
    if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{option} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{option} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if kind is float and not math.isfinite(number):
        raise ValueError(f"{option} must be a finite number, got {value!r}")
    return number


@dataclasses.dataclass(frozen=True)
class HandcraftedConfig:
    """Options of the ``handcrafted`` featurizer (the same fields as its constructor keywords)."""

    sample_rate: int = 16000
    n_mels: int = 40
    n_mfcc: int = 20
    win_ms: float = 25.0
    hop_ms: float = 10.0
    f0_min: float = 60.0
    f0_max: float = 500.0
    voicing_threshold: float = 0.45
    active_db: float = 35.0

    def __post_init__(self) -> None:
        if self.sample_rate < 4000:
            raise ValueError(f"sample_rate must be at least 4000 Hz, got {self.sample_rate}")
        if self.n_mels < 2:
            raise ValueError(f"n_mels must be at least 2, got {self.n_mels}")
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f"n_mfcc must be between 1 and n_mels ({self.n_mels}), got {self.n_mfcc}")
        if not 0 < self.hop_ms <= self.win_ms:
            raise ValueError(f"need 0 < hop_ms <= win_ms, got hop_ms={self.hop_ms}, win_ms={self.win_ms}")
        if not 0 < self.f0_min < self.f0_max < self.sample_rate / 4:
            raise ValueError(f"need 0 < f0_min < f0_max < sample_rate/4, got {self.f0_min}, {self.f0_max}")
        if not 0 < self.voicing_threshold < 1:
            raise ValueError(f"voicing_threshold must be in (0, 1), got {self.voicing_threshold}")
        if self.active_db <= 0:
            raise ValueError(f"active_db must be positive, got {self.active_db}")

    @property
    def win(self) -> int:
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def n_fft(self) -> int:
        return 1 << (self.win - 1).bit_length()

    @property
    def f0_win(self) -> int:
        """The pitch analysis window: three periods of the lowest F0."""
        return int(math.ceil(3 * self.sample_rate / self.f0_min))


_N_ENERGY, _N_F0, _N_ZCR, _N_CENTROID, _N_RHYTHM = 6, 8, 2, 2, 4


class HandcraftedFeaturizer(sertk.Featurizer):
    """MFCC, log-mel, energy, F0, zero-crossing and rhythm statistics per utterance; no weights needed.

    Parameters
    ----------
    sample_rate
        Audio at another rate is resampled to this one (polyphase, :func:`scipy.signal.resample_poly`).
    n_mels, n_mfcc
        Mel filterbank channels (20 Hz to Nyquist, HTK mel scale) and cepstra kept (``n_mfcc <= n_mels``).
    win_ms, hop_ms
        Spectral frame length and shift.
    f0_min, f0_max
        Pitch search range in Hz.
    voicing_threshold
        Normalised autocorrelation a frame needs to count as voiced.
    active_db
        Frames within this many dB of the loudest frame are speech; the rest are pauses.
    """

    name: ClassVar[str] = "handcrafted"
    description: ClassVar[str] = "MFCC / log-mel / energy / F0 / rhythm statistics (no weights; baseline)"
    standardize: ClassVar[bool] = True
    batch_size: int = 32
    #: frames per chunk of the streaming passes (~10 s at a 10 ms hop, ~60 MB of working arrays)
    chunk_frames: int = 1024

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 40,
        n_mfcc: int = 20,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        f0_min: float = 60.0,
        f0_max: float = 500.0,
        voicing_threshold: float = 0.45,
        active_db: float = 35.0,
    ) -> None:
        self.config = HandcraftedConfig(
            sample_rate=_number("sample_rate", sample_rate, int),
            n_mels=_number("n_mels", n_mels, int),
            n_mfcc=_number("n_mfcc", n_mfcc, int),
            win_ms=_number("win_ms", win_ms, float),
            hop_ms=_number("hop_ms", hop_ms, float),
            f0_min=_number("f0_min", f0_min, float),
            f0_max=_number("f0_max", f0_max, float),
            voicing_threshold=_number("voicing_threshold", voicing_threshold, float),
            active_db=_number("active_db", active_db, float),
        )

    # -- contract ------------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        c = self.config
        return 4 * c.n_mfcc + 2 * c.n_mels + _N_ENERGY + _N_F0 + _N_ZCR + _N_CENTROID + _N_RHYTHM

    def fingerprint(self) -> Mapping[str, Any]:
        return {"name": self.name, "version": RECIPE_VERSION, "dtype": "float32",
                **dataclasses.asdict(self.config)}

    def feature_names(self) -> list[str]:
        """One name per output column, in order (for reports and debugging)."""
        c = self.config
        names = [f"mfcc{i}_{s}" for s in ("mean", "std") for i in range(c.n_mfcc)]
        names += [f"dmfcc{i}_{s}" for s in ("mean", "std") for i in range(c.n_mfcc)]
        names += [f"logmel{i}_{s}" for s in ("mean", "std") for i in range(c.n_mels)]
        names += [f"energy_{s}" for s in ("mean", "std", "p10", "p50", "p90", "range")]
        names += [f"f0_{s}" for s in ("voiced", "mean", "std", "p5", "p50", "p95", "range", "delta")]
        names += ["zcr_mean", "zcr_std", "centroid_mean", "centroid_std"]
        names += ["peak_rate", "onset_rate", "log_duration", "pause_fraction"]
        return names

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """Features of each file.

        Parameters
        ----------
        paths
            Audio files :mod:`soundfile` can read; several channels are averaged.

        Returns
        -------
        numpy.ndarray
            float32, shape ``(len(paths), dim)``.

        Raises
        ------
        sertk.errors.AudioError
            Naming the first file that cannot be read or cannot give meaningful features: no samples, a NaN or
            infinite sample, samples beyond :data:`sertk.audio.io.MAX_AMPLITUDE`. Nothing is repaired.
        """
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        for i, path in enumerate(paths):
            with AudioFile(path) as audio:
                out[i] = self._features(lambda: self._signal(audio))
        return out

    # -- audio -----------------------------------------------------------------------------------------------
    def _signal(self, audio: AudioFile) -> Iterator[np.ndarray]:
        """The file as float64 mono blocks at :attr:`config.sample_rate`, decoded (and resampled) as it goes."""
        mono = ((b.mean(axis=1) if b.shape[1] > 1 else b[:, 0]).astype(np.float64) for b in audio.blocks())
        if audio.rate == self.config.sample_rate:
            return mono
        g = math.gcd(audio.rate, self.config.sample_rate)
        return _resample_stream(mono, self.config.sample_rate // g, audio.rate // g)

    # -- features --------------------------------------------------------------------------------------------
    def features(self, signal: np.ndarray) -> np.ndarray:
        """The feature vector of one mono signal at :attr:`config.sample_rate` (float64 in, float32 out).

        Raises :class:`~sertk.errors.AudioError` for an empty signal or one with a non-finite or absurd sample.
        """
        x = np.asarray(signal, dtype=np.float64).ravel()
        if x.size == 0:
            raise AudioError("signal", "no samples")
        check_samples("signal", x)
        return self._features(lambda: iter([x]))

    def _features(self, blocks: Callable[[], Iterable[np.ndarray]]) -> np.ndarray:
        """Two passes over the signal, ``chunk_frames`` frames at a time, so memory does not grow with its length
        beyond ~20 bytes per frame: the first finds each frame's energy (which frames are speech depends on the
        loudest one), the second accumulates the statistics of everything else."""
        c = self.config
        # pass 1: frame energy decides which frames are speech
        energies = []
        for chunk in _chunks(blocks(), c.hop, c.win, 0, c.win, self.chunk_frames):
            frames = _frames(chunk.samples, c.win, c.hop, chunk.last - chunk.first)
            energies.append(10 * np.log10(np.mean(frames**2, axis=1) + _EPS))
        energy_db = np.concatenate(energies)
        n_frames = energy_db.size
        active = energy_db >= energy_db.max() - c.active_db

        # pass 2: spectra (pre-emphasis, Hann window, power spectrum, mel, DCT), zero crossings, pitch
        pad = max(0, (c.f0_win - c.win) // 2)
        ctx = _DELTA_WIDTH * c.hop  # deltas need _DELTA_WIDTH frames on each side
        left, right = ctx + pad + 1, ctx + max(c.win, c.f0_win - pad)
        mel, dct = _mel_matrix(c.sample_rate, c.n_fft, c.n_mels), _dct_matrix(c.n_mels, c.n_mfcc)
        freqs = np.fft.rfftfreq(c.n_fft, 1.0 / c.sample_rate)
        stats = {key: _Moments() for key in ("mfcc", "dmfcc", "logmel", "zcr", "centroid")}
        f0 = np.zeros(n_frames)
        pitched = np.zeros(n_frames, dtype=bool)
        for chunk in _chunks(blocks(), c.hop, c.win, left, right, self.chunk_frames):
            first, last, x = chunk.first, chunk.last, chunk.samples
            n, base = last - first, first * c.hop - left  # base: where x starts in the signal
            emph = np.empty_like(x)
            emph[0] = x[0]
            emph[1:] = x[1:] - 0.97 * x[:-1]
            if chunk.end is not None:  # the signal ends in this chunk: pre-emphasis is zero past it
                emph[max(0, chunk.end - base):] = 0.0
            # spectral frames first-W .. last+W-1; those outside the signal repeat its edge frames (for deltas)
            spec_frames = _frames(emph[pad + 1:], c.win, c.hop, n + 2 * _DELTA_WIDTH)
            spec_frames = spec_frames - spec_frames.mean(axis=1, keepdims=True)
            power = np.abs(np.fft.rfft(spec_frames * _hann(c.win), n=c.n_fft, axis=1)) ** 2
            logmel = np.log(power @ mel.T + _EPS)
            mfcc = logmel @ dct.T
            w = _DELTA_WIDTH
            if first == 0:
                mfcc[:w] = mfcc[w]
            if last == n_frames:
                mfcc[w + n:] = mfcc[w + n - 1]
            dmfcc = sum(k * (mfcc[w + k: w + k + n] - mfcc[w - k: w - k + n]) for k in range(1, w + 1))
            dmfcc = dmfcc / (2 * sum(k * k for k in range(1, w + 1)))
            power, logmel, mfcc = power[w: w + n], logmel[w: w + n], mfcc[w: w + n]
            centroid = (power @ freqs) / (power.sum(axis=1) + _EPS) / 1000.0
            frames = _frames(x[left:], c.win, c.hop, n)
            crossings = np.abs(np.diff(np.signbit(frames).astype(np.int8), axis=1)).sum(axis=1) / (c.win - 1)
            f0[first:last], pitched[first:last] = self._pitch(_frames(x[left - pad:], c.f0_win, c.hop, n))
            a = active[first:last]
            for key, values in (("mfcc", mfcc), ("dmfcc", dmfcc), ("logmel", logmel),
                                ("zcr", crossings[:, None]), ("centroid", centroid[:, None])):
                stats[key].add(values[a])
        voiced = pitched & active

        parts = [
            stats["mfcc"].mean_std(), stats["dmfcc"].mean_std(), stats["logmel"].mean_std(),
            _energy_stats(energy_db[active]),
            _f0_stats(f0, voiced),
            stats["zcr"].mean_std(), stats["centroid"].mean_std(),
            _rhythm_stats(energy_db, active, voiced, c.hop / c.sample_rate),
        ]
        return np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)

    def _pitch(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """F0 in Hz and whether it is trustworthy (voiced, if the frame is speech) for pitch frames of
        ``f0_win`` samples centred on the spectral frames' centres."""
        c = self.config
        win = c.f0_win
        n_frames = frames.shape[0]
        frames = frames - frames.mean(axis=1, keepdims=True)
        window = _hann(win)
        n_fft = 1 << (2 * win - 1).bit_length()
        lo = max(2, int(math.floor(c.sample_rate / c.f0_max)))
        hi = min(win // 2, int(math.ceil(c.sample_rate / c.f0_min)))
        acf = np.fft.irfft(np.abs(np.fft.rfft(frames * window, n=n_fft, axis=1)) ** 2, n=n_fft, axis=1)
        acf = acf[:, : hi + 2]
        r0 = acf[:, :1]
        norm = acf / np.maximum(r0, _EPS) / _window_acf(win, hi + 2)
        inner = norm[:, lo: hi + 1]
        is_peak = (inner > norm[:, lo - 1: hi]) & (inner >= norm[:, lo + 1: hi + 2])
        has_peak = is_peak.any(axis=1)
        strongest = np.where(is_peak, inner, -np.inf).max(axis=1, keepdims=True)
        # the shortest period whose peak is nearly as strong as the strongest: multiples of the period score
        # about as high as the period itself (higher when the amplitude changes), so the plain maximum would
        # often pick an octave too low
        near = is_peak & (inner >= strongest - _PEAK_TOLERANCE * np.abs(strongest))
        best = lo + np.argmax(near, axis=1)
        rows = np.arange(n_frames)
        left, mid, right = norm[rows, best - 1], norm[rows, best], norm[rows, best + 1]
        denom = left - 2 * mid + right
        shift = np.where(np.abs(denom) > _EPS, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
        shift = np.clip(shift, -0.5, 0.5)
        f0 = c.sample_rate / (best + shift)
        voiced = has_peak & (mid >= c.voicing_threshold) & (r0[:, 0] > _EPS)
        voiced &= (f0 >= c.f0_min) & (f0 <= c.f0_max)
        return f0, voiced


# -- streaming: signal blocks → frame chunks ------------------------------------------------------------------
@dataclasses.dataclass
class _Chunk:
    """Frames ``[first, last)`` of a signal and the samples they need."""

    first: int
    last: int
    #: samples ``[first*hop - left, (last-1)*hop + right)`` of the signal, zeros outside it
    samples: np.ndarray
    #: the signal's length (padded to one frame) when it ends in or before this chunk, else None
    end: int | None


def _chunks(blocks: Iterable[np.ndarray], hop: int, min_len: int, left: int, right: int, chunk_frames: int
            ) -> Iterator[_Chunk]:
    """Cut a signal arriving in blocks of any size into chunks of ``chunk_frames`` frames (``1 + n // hop`` frames
    in all for a signal of ``n`` samples, zero-padded to ``min_len``), each with ``left`` / ``right`` samples of
    context; only one chunk and one block are held at a time."""
    source = iter(blocks)
    buf, start = np.zeros(left), -left  # start: where buf begins in the signal
    total, end, first = 0, None, 0
    while True:
        want = (first + chunk_frames - 1) * hop + right
        pieces = [buf]
        have = start + buf.size
        while end is None and have < want:
            block = next(source, None)
            if block is None:
                end = max(total, min_len)
            else:
                pieces.append(block)
                total += block.size
                have += block.size
        buf = np.concatenate(pieces) if len(pieces) > 1 else buf
        last = first + chunk_frames if end is None else min(first + chunk_frames, 1 + end // hop)
        if last <= first:
            return
        stop = (last - 1) * hop + right
        if start + buf.size < stop:
            buf = np.concatenate([buf, np.zeros(stop - start - buf.size)])
        lo = first * hop - left - start
        yield _Chunk(first, last, buf[lo: stop - start], end)
        first = last
        drop = first * hop - left - start
        buf, start = buf[drop:], start + drop


def _resample_stream(blocks: Iterable[np.ndarray], up: int, down: int) -> Iterator[np.ndarray]:
    """:func:`scipy.signal.resample_poly` ``(x, up, down)`` of a signal arriving in blocks, in output blocks.

    Each output block comes from ``resample_poly`` of a stretch of input with enough context on both sides that
    its filter never reaches past the stretch; stretches start at multiples of ``down``, where the polyphase
    filter is aligned as it is for the whole signal, so the values are resample_poly's own.
    """
    from scipy.signal import resample_poly

    half = 10 * max(up, down)  # resample_poly's default filter half-length, in upsampled samples
    margin = down * (-(-(2 * half + 2 * down) // (up * down)) + 1)  # input context, a multiple of down
    step = up * max(1, (1 << 16) // up)  # output samples per block, a multiple of up
    source = iter(blocks)
    buf, start, total, n_in = np.zeros(0), 0, 0, None
    out = 0  # the next output sample
    while True:
        want = (out + step) // up * down + margin
        pieces = [buf]
        while n_in is None and start + sum(p.size for p in pieces) < want:
            block = next(source, None)
            if block is None:
                n_in = total
            else:
                pieces.append(block)
                total += block.size
        buf = np.concatenate(pieces) if len(pieces) > 1 else buf
        stop = out + step
        if n_in is not None:
            stop = min(stop, -(-n_in * up // down))
        if stop <= out:
            return
        seg_start = max(0, out // up * down - margin)
        seg = buf[seg_start - start: min(want, start + buf.size) - start]
        offset = seg_start // down * up  # the output index of seg's first output
        yield resample_poly(seg, up, down)[out - offset: stop - offset]
        out = stop
        drop = max(0, out // up * down - margin) - start
        buf, start = buf[drop:], start + drop


class _Moments:
    """Running count, mean and sum of squared deviations per column (Chan et al.'s pairwise update)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:
        if values.shape[0] == 0:
            return
        n_b, mean_b = values.shape[0], values.mean(axis=0)
        m2_b = ((values - mean_b) ** 2).sum(axis=0)
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * n_b / n)
        self.n = n

    def mean_std(self) -> np.ndarray:
        if self.mean is None or self.m2 is None:
            raise ValueError("no values")
        return np.concatenate([self.mean, np.sqrt(self.m2 / self.n)])


# -- helpers (pure functions, cached constants) ---------------------------------------------------------------
def _frames(x: np.ndarray, win: int, hop: int, n_frames: int) -> np.ndarray:
    """``n_frames`` frames of ``win`` samples every ``hop``, zero-padded past the end; a read-only view."""
    need = (n_frames - 1) * hop + win
    if x.size < need:
        x = np.pad(x, (0, need - x.size))
    return np.lib.stride_tricks.sliding_window_view(x[:need], win)[::hop]


@functools.lru_cache(maxsize=16)
def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


@functools.lru_cache(maxsize=16)
def _window_acf(win: int, n_lags: int) -> np.ndarray:
    """The Hann window's normalised autocorrelation at lags ``0 .. n_lags-1``."""
    w = _hann(win)
    n_fft = 1 << (2 * win - 1).bit_length()
    r = np.fft.irfft(np.abs(np.fft.rfft(w, n=n_fft)) ** 2, n=n_fft)[:n_lags]
    return np.maximum(r / r[0], 1e-3)


@functools.lru_cache(maxsize=16)
def _mel_matrix(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular HTK-mel filters, shape ``(n_mels, n_fft // 2 + 1)``, from 20 Hz to Nyquist."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(20.0), mel(sample_rate / 2), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


@functools.lru_cache(maxsize=16)
def _dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II, shape ``(n_out, n_in)``."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m


def _energy_stats(energy_db: np.ndarray) -> np.ndarray:
    e = np.maximum(energy_db, _DB_FLOOR)
    p10, p50, p90 = np.percentile(e, [10, 50, 90])
    return np.array([e.mean(), e.std(), p10, p50, p90, p90 - p10])


def _f0_stats(f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    n = voiced.size
    if not voiced.any():
        return np.zeros(_N_F0)
    semitones = _despike(12 * np.log2(f0[voiced] / 100.0))
    p5, p50, p95 = np.percentile(semitones, [5, 50, 95])
    # frame-to-frame change inside voiced runs only
    both = voiced[1:] & voiced[:-1]
    st_all = np.zeros(n)
    st_all[voiced] = semitones
    delta = np.abs(np.diff(st_all))[both].mean() if both.any() else 0.0
    return np.array([voiced.sum() / n, semitones.mean(), semitones.std(), p5, p50, p95, p95 - p5, delta])


def _despike(semitones: np.ndarray, width: int = 5, tolerance: float = 7.0) -> np.ndarray:
    """Replace octave jumps: values more than ``tolerance`` semitones from their running median."""
    if semitones.size < width:
        return semitones
    half = width // 2
    median = np.median(np.lib.stride_tricks.sliding_window_view(np.pad(semitones, half, mode="edge"), width), axis=1)
    return np.where(np.abs(semitones - median) > tolerance, median, semitones)


def _rhythm_stats(energy_db: np.ndarray, active: np.ndarray, voiced: np.ndarray, hop_s: float) -> np.ndarray:
    """Syllable-rate proxy (energy peaks), voiced onsets per second, log speech duration, pause fraction."""
    idx = np.flatnonzero(active)
    span = active[idx[0]: idx[-1] + 1]  # from the first to the last speech frame
    duration = max(span.size * hop_s, hop_s)
    # smooth the energy over ~50 ms and count local maxima that stand 3 dB above the preceding valley
    e = np.maximum(energy_db, _DB_FLOOR)
    kernel = np.hanning(7)
    smooth = np.convolve(e, kernel / kernel.sum(), mode="same")
    peaks = _count_peaks(smooth, active, prominence=3.0)
    onsets = int(np.count_nonzero(voiced[1:] & ~voiced[:-1]) + int(voiced[0]))
    return np.array([peaks / duration, onsets / duration, math.log(duration), 1.0 - span.mean()])


def _count_peaks(e: np.ndarray, active: np.ndarray, prominence: float) -> int:
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(e, prominence=prominence)
    return int(np.count_nonzero(active[peaks])) if peaks.size else 0


@sertk.hookimpl
def sertk_register_featurizers(register) -> None:
    register(HandcraftedFeaturizer)
