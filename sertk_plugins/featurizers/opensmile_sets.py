"""The ``opensmile`` featurizer: openSMILE's standard feature sets (eGeMAPS, GeMAPS, ComParE 2016), functionals.

The values are those of ``opensmile.Smile(feature_set, FeatureLevel.Functionals).process_file(path)`` for the same
file (the ``opensmile`` package, ``pip install sertk[opensmile]``; its wheel carries the openSMILE library, so it
works offline). sertk decodes the file itself through :mod:`sertk.audio.io`, so every file is checked as for the
other featurizers (NaN, infinite or absurd samples are refused, naming the file), and feeds the signal to the same
``Smile`` object. What sertk adds to ``process_file``, each a documented choice:

- several channels are averaged (``audresample.remix(mixdown=True)``, as ``process_file`` with ``channels=None,
  mixdown=True``; ``process_file``'s default reads channel 0 only);
- the file's own sampling rate is analysed (as ``process_file`` does); ``sample_rate=R`` resamples to ``R`` first
  with ``audresample``, as ``Smile(sampling_rate=R, resample=True)`` does;
- openSMILE analyses 16-bit PCM: ``Smile`` multiplies by 32768 and casts to int16, which *wraps* a sample at or
  beyond full scale (+1.0 becomes -32768). sertk saturates such samples at full scale instead, as any conversion to
  16-bit PCM does, and refuses a file with more than :data:`MAX_CLIPPED_FRACTION` of its samples beyond full scale
  (float audio on the int16 scale, say): its features would describe a clipped signal;
- a file too short for the feature set (openSMILE returns no frame and ``Smile`` fills NaN: under ~0.1 s for
  eGeMAPS) is an :class:`~sertk.errors.AudioError` saying so.

Files of a batch are analysed in worker threads: the openSMILE library runs outside the GIL (ctypes), so threads
can use the cores as processes would, without a pool's start-up and copying (``benchmarks/RESULTS-featurizers.md``:
on a loaded 2-core machine, threads and openSMILE's process pool gained the same 1.13×).
Importing this module does not import ``opensmile`` (pandas and its friends take ~2 s); the featurizer does on
first use, and a run served entirely from the cache never does.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import sertk
from sertk.audio.io import AudioFile
from sertk.errors import AudioError, ConfigError, FeaturizerError
from sertk.extras import import_extra, require_extra

logger = logging.getLogger(__name__)

__all__ = ["FEATURE_SETS", "MAX_CLIPPED_FRACTION", "OpenSmileFeaturizer"]

#: the feature sets offered, by openSMILE's names → functionals per file
FEATURE_SETS: dict[str, int] = {"eGeMAPSv02": 88, "GeMAPSv01b": 62, "ComParE_2016": 6373}
#: more samples than this beyond 16-bit full scale and the file is refused (see the module docstring)
MAX_CLIPPED_FRACTION = 0.01
#: bump whenever a change alters the output for the same options (it is part of the cache key)
RECIPE_VERSION = "1"
_FULL_SCALE_HIGH = np.float32(32767 / 32768)  # the largest sample int16 holds, on the ±1 scale


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


class OpenSmileFeaturizer(sertk.Featurizer):
    """openSMILE functionals of a standard feature set (eGeMAPSv02 88-d, GeMAPSv01b 62-d, ComParE_2016 6373-d).

    Parameters
    ----------
    feature_set
        openSMILE's name of the set: ``"eGeMAPSv02"`` (default), ``"GeMAPSv01b"`` or ``"ComParE_2016"``.
    sample_rate
        ``None`` (default): analyse each file at its own rate, as ``process_file`` does. An integer: resample to it
        first (``audresample``), so a corpus with mixed rates is analysed alike.
    num_workers
        Threads that analyse the files of a batch; ``None`` (default): the CPU count, at most 8; ``0``: in the
        calling thread. Does not change the values.
    """

    name: ClassVar[str] = "opensmile"
    description: ClassVar[str] = ("openSMILE functionals: eGeMAPSv02 (88-d, default), GeMAPSv01b, ComParE_2016 "
                                  "(6373-d); the INTERSPEECH baselines")
    extra: ClassVar[str] = "opensmile"
    standardize: ClassVar[bool] = True
    batch_size: int = 32

    def __init__(self, feature_set: str = "eGeMAPSv02", sample_rate: int | None = None,
                 num_workers: int | None = None) -> None:
        if feature_set not in FEATURE_SETS:
            raise ConfigError(f"featurizer 'opensmile': unknown feature_set {feature_set!r}; choose one of "
                              f"{', '.join(FEATURE_SETS)}")
        if sample_rate is not None and (isinstance(sample_rate, bool) or not isinstance(sample_rate, int)
                                        or sample_rate < 1000):
            raise ConfigError(f"featurizer 'opensmile': sample_rate must be an integer of at least 1000 Hz (or "
                              f"unset: each file's own rate), got {sample_rate!r}")
        if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                        or num_workers < 0):
            raise ConfigError(f"featurizer 'opensmile': num_workers must be a non-negative integer, got "
                              f"{num_workers!r}")
        require_extra(self.extra, "featurizer 'opensmile'")
        self.feature_set = feature_set
        self.sample_rate = sample_rate
        self.num_workers = min(8, os.cpu_count() or 1) if num_workers is None else num_workers
        self._lock = threading.Lock()
        self._smile_object: Any = None
        self._pool: ThreadPoolExecutor | None = None

    # -- contract ------------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return FEATURE_SETS[self.feature_set]

    def fingerprint(self) -> Mapping[str, Any]:
        fingerprint: dict[str, Any] = {
            "name": self.name, "version": RECIPE_VERSION, "feature_set": self.feature_set,
            "feature_level": "functionals", "opensmile": _package_version("opensmile"),
            "channels": "mean", "pcm": "int16, saturated", "sample_rate": self.sample_rate, "dtype": "float32"}
        if self.sample_rate is not None:  # the resampler's output is part of the features then
            fingerprint["audresample"] = _package_version("audresample")
        return fingerprint

    def feature_names(self) -> list[str]:
        """openSMILE's name of each output column, in order."""
        return list(self._smile().feature_names)

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """Functionals of each file.

        Returns
        -------
        numpy.ndarray
            float32, shape ``(len(paths), dim)``.

        Raises
        ------
        sertk.errors.AudioError
            Naming the first file that cannot be read, holds bad samples (see :mod:`sertk.audio.io`), lies mostly
            beyond full scale, or is too short for the feature set.
        """
        smile = self._smile()
        if self.num_workers == 0 or len(paths) < 2:
            rows = [self._features(smile, Path(p)) for p in paths]
        else:
            # map() yields in order and re-raises a worker's AudioError when its row is reached
            rows = list(self._workers().map(lambda p: self._features(smile, Path(p)), paths))
        out = np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)
        return out.astype(np.float32, copy=False)

    # -- one file ------------------------------------------------------------------------------------------
    def _features(self, smile: Any, path: Path) -> np.ndarray:
        signal, rate = self._signal(path)
        values = np.asarray(smile(signal, rate), dtype=np.float32).reshape(-1)  # (1 channel, dim, 1 frame)
        if values.shape != (self.dim,):
            raise FeaturizerError(f"openSMILE {self.feature_set} returned {values.size} values for {path}; "
                                  f"expected {self.dim} (one functionals frame)")
        if np.isnan(values).all():
            seconds = signal.shape[-1] / rate
            raise AudioError(path, f"too short for openSMILE's {self.feature_set} ({seconds:.3f} s): it gives no "
                                   f"features (eGeMAPS needs about 0.1 s)")
        return values

    def _signal(self, path: Path) -> tuple[np.ndarray, int]:
        """The file as float32 ``(1, samples)`` on the ±1 scale, mixed down, resampled if asked, within 16-bit
        full scale; the rate it is at."""
        with AudioFile(path) as audio:
            signal, rate = audio.read_all(), audio.rate
        if signal.shape[0] > 1:
            import audresample

            signal = audresample.remix(signal, channels=None, mixdown=True)
        if self.sample_rate is not None and rate != self.sample_rate:
            import audresample

            signal, rate = audresample.resample(signal, rate, self.sample_rate), self.sample_rate
        beyond = np.count_nonzero(np.abs(signal) > 1.0)
        if beyond > MAX_CLIPPED_FRACTION * signal.size:
            peak = float(np.max(np.abs(signal)))
            raise AudioError(path, f"{beyond} of {signal.size} samples lie beyond full scale (peak {peak:.3g}; "
                                   f"full scale is 1.0): openSMILE analyses 16-bit audio, which would clip "
                                   f"them; rescale the file (float audio on the int16 scale: divide by 32768)")
        if beyond or np.any(signal > _FULL_SCALE_HIGH):  # +1.0 itself does not fit int16 either
            signal = np.clip(signal, -1.0, _FULL_SCALE_HIGH)
        return np.ascontiguousarray(signal, dtype=np.float32), rate

    # -- openSMILE, threads ----------------------------------------------------------------------------------
    def _smile(self) -> Any:
        """The ``opensmile.Smile`` object, built once (its feature count checked against :data:`FEATURE_SETS`)."""
        with self._lock:
            if self._smile_object is None:
                opensmile = import_extra(self.extra, "opensmile", "featurizer 'opensmile'")
                # a level name openSMILE does not know makes its library crash: only the enum is ever passed
                smile = opensmile.Smile(feature_set=opensmile.FeatureSet[self.feature_set],
                                        feature_level=opensmile.FeatureLevel.Functionals)
                if len(smile.feature_names) != self.dim:
                    raise FeaturizerError(f"openSMILE {opensmile.__version__} gives {len(smile.feature_names)} "
                                          f"{self.feature_set} functionals; sertk expects {self.dim}")
                self._smile_object = smile
        # Smile warns "Segment too short, filling with NaN" (from worker threads too): _features names the file
        # instead, so the warning would only repeat it (renewed per call: pytest and others reset the filters)
        warnings.filterwarnings("ignore", message="Segment too short", category=UserWarning)
        return self._smile_object

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="sertk-opensmile")
            return self._pool

    def __getstate__(self) -> dict[str, Any]:  # picklable (process executors): the lock, pool and library are not
        state = self.__dict__.copy()
        state.update(_lock=None, _smile_object=None, _pool=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


@sertk.hookimpl
def sertk_register_featurizers(register) -> None:
    register(OpenSmileFeaturizer)
