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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import sertk
from sertk.errors import AudioError

__all__ = ["HandcraftedConfig", "HandcraftedFeaturizer"]

#: bump whenever a change alters the output for the same options (it is part of the cache key)
RECIPE_VERSION = "1"

_EPS = 1e-10
_PEAK_TOLERANCE = 0.1
_DB_FLOOR = -100.0


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
            sample_rate=int(sample_rate),
            n_mels=int(n_mels),
            n_mfcc=int(n_mfcc),
            win_ms=float(win_ms),
            hop_ms=float(hop_ms),
            f0_min=float(f0_min),
            f0_max=float(f0_max),
            voicing_threshold=float(voicing_threshold),
            active_db=float(active_db),
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
            float32, shape ``(len(paths), dim)``, always finite.

        Raises
        ------
        sertk.errors.AudioError
            Naming the first file that cannot be read.
        """
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        for i, path in enumerate(paths):
            out[i] = self.features(self._load(Path(path)))
        return out

    # -- audio -----------------------------------------------------------------------------------------------
    def _load(self, path: Path) -> np.ndarray:
        import soundfile as sf

        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:  # noqa: BLE001 - libsndfile raises several types; all mean "unreadable"
            raise AudioError(path, f"{type(exc).__name__}: {exc}") from exc
        signal = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        signal = np.nan_to_num(signal.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if rate != self.config.sample_rate and signal.size:
            from scipy.signal import resample_poly

            g = math.gcd(int(rate), self.config.sample_rate)
            signal = resample_poly(signal, self.config.sample_rate // g, int(rate) // g)
        return signal

    # -- features --------------------------------------------------------------------------------------------
    def features(self, signal: np.ndarray) -> np.ndarray:
        """The feature vector of one mono signal at :attr:`config.sample_rate` (float64 in, float32 out)."""
        c = self.config
        x = np.nan_to_num(np.asarray(signal, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if x.size < c.win:
            x = np.pad(x, (0, c.win - x.size))
        n_frames = 1 + x.size // c.hop
        frames = _frames(x, c.win, c.hop, n_frames)

        # frame energy decides which frames are speech
        energy_db = 10 * np.log10(np.mean(frames**2, axis=1) + _EPS)
        active = energy_db >= energy_db.max() - c.active_db

        # spectra: pre-emphasis, Hann window, power spectrum, mel, DCT
        emph = np.empty_like(x)
        emph[0] = x[0]
        emph[1:] = x[1:] - 0.97 * x[:-1]
        spec_frames = _frames(emph, c.win, c.hop, n_frames)
        spec_frames = spec_frames - spec_frames.mean(axis=1, keepdims=True)
        power = np.abs(np.fft.rfft(spec_frames * _hann(c.win), n=c.n_fft, axis=1)) ** 2
        logmel = np.log(power @ _mel_matrix(c.sample_rate, c.n_fft, c.n_mels).T + _EPS)
        mfcc = logmel @ _dct_matrix(c.n_mels, c.n_mfcc).T
        dmfcc = _deltas(mfcc)
        freqs = np.fft.rfftfreq(c.n_fft, 1.0 / c.sample_rate)
        centroid = (power @ freqs) / (power.sum(axis=1) + _EPS) / 1000.0

        crossings = np.abs(np.diff(np.signbit(frames).astype(np.int8), axis=1)).sum(axis=1) / (c.win - 1)

        f0, voiced = self._pitch(x, n_frames, active)

        a = active
        parts = [
            _mean_std(mfcc[a]), _mean_std(dmfcc[a]), _mean_std(logmel[a]),
            _energy_stats(energy_db[a]),
            _f0_stats(f0, voiced),
            _mean_std(crossings[a, None]), _mean_std(centroid[a, None]),
            _rhythm_stats(energy_db, active, voiced, c.hop / c.sample_rate),
        ]
        out = np.concatenate([np.ravel(p) for p in parts])
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def _pitch(self, x: np.ndarray, n_frames: int, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """F0 in Hz per frame and a voiced mask, frames centred on the spectral frames' centres."""
        c = self.config
        win = c.f0_win
        pad = max(0, (win - c.win) // 2)
        frames = _frames(np.pad(x, (pad, win)), win, c.hop, n_frames)
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
        voiced = has_peak & (mid >= c.voicing_threshold) & active & (r0[:, 0] > _EPS)
        voiced &= (f0 >= c.f0_min) & (f0 <= c.f0_max)
        return f0, voiced


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


def _deltas(feat: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas over ±``width`` frames, edges repeated; same shape as ``feat``."""
    padded = np.pad(feat, ((width, width), (0, 0)), mode="edge")
    n = feat.shape[0]
    num = sum(k * (padded[width + k: width + k + n] - padded[width - k: width - k + n]) for k in range(1, width + 1))
    return num / (2 * sum(k * k for k in range(1, width + 1)))


def _mean_std(values: np.ndarray) -> np.ndarray:
    if values.shape[0] == 0:
        return np.zeros(2 * values.shape[1])
    return np.concatenate([values.mean(axis=0), values.std(axis=0)])


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
