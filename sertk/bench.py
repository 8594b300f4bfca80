"""How fast sertk runs on this machine: what ``sertk bench`` measures, as functions benchmarks can share.

- :func:`featurizer_throughput`: audio files → cached embeddings through :func:`sertk.featurization.embed.embed_paths`,
  the path ``sertk run`` and ``sertk embed`` take (content hashing, decoding, the featurizer, one cache commit per
  batch), each round into a fresh cache in a temporary folder, so every file is computed;
- :func:`matmul_tflops`: the rate a large matrix product reaches here, in a given dtype, measured on the spot: the
  ceiling to read a featurizer's achieved TFLOP/s against (a featurizer that can count its work has a
  ``flops(paths)`` method);
- :func:`svm_timings`: ν-SVM fit and predict times at chosen training sizes on embedding-like data, next to
  scikit-learn's NuSVC when asked, interleaved round by round;
- :func:`iemocap_durations` and :func:`write_corpus`: synthetic speech-like files whose durations follow IEMOCAP's
  spread (mean ≈ 4.5 s, median ≈ 3.3 s, a quarter at or under 2 s, 0.6–30 s, many distinct lengths), for machines
  that have no corpus at hand.

torch is imported only by the functions that need it (the matrix product), and only the featurizer decides
which device it runs on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["AUDIO_SUFFIXES", "SvmTiming", "Throughput", "find_audio_files", "format_report", "iemocap_durations",
           "matmul_tflops", "svm_timings", "write_corpus", "write_report"]

#: IEMOCAP's utterance durations (5,531 utterances, sessions 1-5) as a log-normal: median 3.3 s, σ 0.78 of ln(s),
#: so mean ≈ 4.5 s and a quarter at or under 2 s; cut to the corpus's range, about 0.6 s to 30 s
IEMOCAP_MEDIAN_S = 3.3
IEMOCAP_SIGMA = 0.78
IEMOCAP_RANGE_S = (0.6, 30.0)
#: file suffixes ``--files DIR`` picks up (what libsndfile decodes)
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf"})


# -- the corpus ---------------------------------------------------------------------------------------------------
def iemocap_durations(n: int, seed: int = 0) -> np.ndarray:
    """``n`` durations in seconds (float64, multiples of 10 ms) at IEMOCAP's spread, in a shuffled order.

    Stratified (the ``(i + ½) / n`` quantiles of the log-normal, not random draws), so the spread is the corpus's
    for any ``n`` and the lengths are nearly all distinct: every length the featurizer sees is a new shape.
    """
    from statistics import NormalDist

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    unit = NormalDist()
    z = np.array([unit.inv_cdf((i + 0.5) / n) for i in range(n)])
    seconds = np.clip(IEMOCAP_MEDIAN_S * np.exp(IEMOCAP_SIGMA * z), *IEMOCAP_RANGE_S)
    return np.random.default_rng(seed).permutation(np.round(seconds, 2))


def speech_like(num_samples: int, rate: int, seed: int) -> np.ndarray:
    """float32 ``(num_samples,)``: a voiced source with a wandering pitch plus breath noise, under syllable-rate
    loudness changes and pauses; not speech, but its spectrum and level move as speech does (peak ≈ 0.5)."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / rate
    pitch = 120.0 + 40.0 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi))  # Hz
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3.0, 5.0) * t + rng.uniform(0, 2 * np.pi)), 0.0, None)
    x = syllables * (0.15 * voiced + 0.05 * rng.standard_normal(num_samples)) + 0.002 * rng.standard_normal(num_samples)
    return (0.5 * x / max(float(np.abs(x).max()), 1e-9)).astype(np.float32)


def write_corpus(directory: str | os.PathLike, n: int, rate: int = 16000, seed: int = 0) -> list[Path]:
    """Write ``n`` distinct 16-bit WAV files of :func:`speech_like` audio at :func:`iemocap_durations` into
    ``directory`` (created); returns their paths in order."""
    import soundfile as sf

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, seconds in enumerate(iemocap_durations(n, seed)):
        path = out / f"utt{i:05d}.wav"
        sf.write(str(path), speech_like(int(round(seconds * rate)), rate, seed * 1_000_003 + i), rate,
                 subtype="PCM_16")
        paths.append(path)
    return paths


def find_audio_files(directory: str | os.PathLike) -> list[Path]:
    """The audio files (by suffix, :data:`AUDIO_SUFFIXES`) under ``directory``, sorted; ``ValueError`` naming the
    folder when there are none."""
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"{root}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in it or below it")
    return files


# -- the matrix-product ceiling -----------------------------------------------------------------------------------
def matmul_tflops(device: Any = "cpu", dtype: str = "bfloat16", size: int | None = None,
                  seconds: float = 0.5) -> float:
    """TFLOP/s of ``size``³ products of random ``dtype`` matrices on ``device`` (default size: 8192 on a GPU, 2048
    on the CPU), after a warm-up; repeated for about ``seconds``, timed with the device synchronised."""
    import torch

    device = torch.device(device)
    n = size or (8192 if device.type == "cuda" else 2048)
    kind = getattr(torch, dtype)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=kind)  # random, never zeros: zeros run faster
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=kind)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        a @ b
        sync()
        reps, elapsed = 0, 0.0
        start = time.perf_counter()
        while elapsed < seconds or reps < 3:
            a @ b
            reps += 1
            if reps % 4 == 0 or device.type != "cuda":
                sync()
                elapsed = time.perf_counter() - start
        sync()
        elapsed = time.perf_counter() - start
    return 2.0 * n ** 3 * reps / elapsed / 1e12


# -- featurizer throughput ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Throughput:
    """One featurizer configuration's files → cached embeddings, over ``rounds`` fresh caches."""

    settings: dict[str, Any]
    files: int
    round_s: list[float]
    flops: float | None  # the featurizer's own count of the work these files take, if it can count it

    @property
    def median_s(self) -> float:
        return float(np.median(self.round_s))

    @property
    def utterances_per_s(self) -> float:
        return self.files / self.median_s

    @property
    def tflops(self) -> float | None:
        return None if self.flops is None else self.flops / self.median_s / 1e12

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "median_s": self.median_s, "utterances_per_s": self.utterances_per_s,
                "achieved_tflops": self.tflops}


def featurizer_throughput(featurizer: Any, files: Sequence[Path], *, rounds: int = 3, batch_size: int | None = None,
                          settings: dict[str, Any] | None = None, scratch: str | os.PathLike | None = None
                          ) -> Throughput:
    """Time ``files`` → embeddings through :func:`sertk.featurization.embed.embed_paths` with a fresh
    :class:`sertk.featurization.cache.EmbeddingCache` per round (in a temporary folder under ``scratch``), after one
    uncached warm-up batch (weights loaded, kernels chosen, threads started). Raises :class:`RuntimeError` if a file
    fails: a benchmark that skipped files would overstate the rate."""
    from sertk.featurization.cache import EmbeddingCache
    from sertk.featurization.embed import embed_paths

    files = [Path(p) for p in files]
    size = batch_size or getattr(featurizer, "batch_size", 16)
    embed_paths(featurizer, files[:size], cache=None, batch_size=size, desc="warm-up")
    times = []
    with tempfile.TemporaryDirectory(prefix="sertk-bench-", dir=scratch) as tmp:
        for number in range(rounds):
            with EmbeddingCache(Path(tmp) / f"cache{number}") as cache:
                start = time.perf_counter()
                result = embed_paths(featurizer, files, cache=cache, batch_size=size, desc=f"round {number + 1}")
                times.append(time.perf_counter() - start)
            if result.failures:
                index, reason = next(iter(result.failures.items()))
                raise RuntimeError(f"{len(result.failures)} files failed, e.g. {files[index]}: {reason}")
    count = getattr(featurizer, "flops", None)
    flops = float(count(files)) if callable(count) else None
    return Throughput(settings={"batch_size": size, **(settings or {})}, files=len(files), round_s=times, flops=flops)


# -- the ν-SVM ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SvmTiming:
    """Fit on ``n_train`` embedding-like vectors, predict ``n_test``: median seconds per library over rounds."""

    n_train: int
    n_test: int
    dim: int
    fit_s: dict[str, float]
    predict_s: dict[str, float]
    agreement: float | None  # share of test predictions both libraries agree on (with a reference)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def embedding_like(n: int, dim: int = 1024, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length float64 ``(n, dim)`` vectors of ``classes`` overlapping, unbalanced classes (low rank plus noise,
    as embeddings are), and their int labels: a problem where most training points end up support vectors."""
    rng = np.random.default_rng(seed)
    y = rng.choice(classes, size=n, p=np.linspace(1.5, 0.5, classes) / np.linspace(1.5, 0.5, classes).sum())
    rank = min(64, dim)
    basis = rng.standard_normal((rank, dim)) / np.sqrt(rank)
    x = (0.24 * rng.standard_normal((classes, rank))[y] + rng.standard_normal((n, rank))) @ basis
    x += 0.5 * np.sqrt(rank / dim) * rng.standard_normal((n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def svm_timings(sizes: Sequence[int], *, reference: bool = False, dim: int = 1024, rounds: int = 1,
                nu: float = 0.1) -> list[SvmTiming]:
    """For each training size: sertk's :class:`~sertk.svm.NuSVC` (RBF, ``gamma="scale"``) fit and predict times on
    :func:`embedding_like` data (predicting a held-out quarter as many), and with ``reference`` scikit-learn's
    NuSVC on the same data, the two interleaved in each round (alternating which goes first)."""
    from sertk.svm import NuSVC

    makers: dict[str, Callable[[], Any]] = {"sertk": lambda: NuSVC(nu=nu, cache_size=1024)}
    if reference:
        from sklearn.svm import NuSVC as SkNuSVC

        makers["sklearn"] = lambda: SkNuSVC(nu=nu, cache_size=1024)
    out = []
    for n in sizes:
        n_test = max(n // 4, 1)
        x, y = embedding_like(n + n_test, dim, seed=n)
        x_train, y_train, x_test = x[:n], y[:n], x[n:]
        fit: dict[str, list[float]] = {k: [] for k in makers}
        predict: dict[str, list[float]] = {k: [] for k in makers}
        predictions: dict[str, np.ndarray] = {}
        order = list(makers)
        for _ in range(rounds):
            for name in order:
                model = makers[name]()
                start = time.perf_counter()
                model.fit(x_train, y_train)
                fit[name].append(time.perf_counter() - start)
                start = time.perf_counter()
                predictions[name] = model.predict(x_test)
                predict[name].append(time.perf_counter() - start)
            order.reverse()
        agreement = (float(np.mean(predictions["sertk"] == predictions["sklearn"])) if reference else None)
        out.append(SvmTiming(n, n_test, dim, {k: float(np.median(v)) for k, v in fit.items()},
                             {k: float(np.median(v)) for k, v in predict.items()}, agreement))
    return out


# -- the report -----------------------------------------------------------------------------------------------------
def format_report(report: dict[str, Any]) -> str:
    """The tables ``sertk bench`` prints, from the report :func:`write_report` writes."""
    lines = [f"machine: {report['machine_line']}"]
    gpus = report.get("machine", {}).get("torch", {}).get("gpus")
    if gpus:
        lines.append(f"GPU: {', '.join(gpus)} (CUDA {report['machine']['torch'].get('cuda')})")
    matmul = report.get("matmul")
    f = report.get("featurizer")
    if f:
        lines.append(f"featurizer {f['name']} on {f['device']}: {f['files']} files ({f['corpus']}), "
                     f"{f['rounds']} rounds, each into a fresh cache")
        lines.append(f"  {'settings':44s} {'median s':>9s} {'utt/s':>9s} {'TFLOP/s':>8s} {'of matmul':>9s}")
    for entry in (f or {}).get("runs", []):
        s = entry["settings"]
        label = ", ".join(f"{k}={v}" for k, v in s.items())
        tflops = entry["achieved_tflops"]
        ceiling = (matmul or {}).get(s.get("dtype", ""), None)
        achieved = f"{tflops:8.2f}" if tflops is not None else f"{'-':>8s}"
        share = f"{100 * tflops / ceiling:8.1f}%" if tflops is not None and ceiling else f"{'-':>9s}"
        lines.append(f"  {label:44s} {entry['median_s']:9.3f} {entry['utterances_per_s']:9.1f} {achieved} {share}")
    if matmul:
        lines.append("matrix product here: " + ", ".join(f"{k} {v:.2f} TFLOP/s" for k, v in matmul.items())
                     + f" ({report.get('matmul_size')}³)")
    svm = report.get("svm", [])
    if svm:
        libraries = list(svm[0]["fit_s"])
        lines.append(f"nu-SVM (RBF, nu=0.1, dim {svm[0]['dim']}): median seconds")
        header = "  " + f"{'n train':>8s} {'n test':>7s}" + "".join(f" {k + ' fit':>12s} {k + ' pred':>12s}"
                                                                    for k in libraries)
        if len(libraries) > 1:
            header += f" {'fit x':>7s} {'pred x':>7s} {'agree':>6s}"
        lines.append(header)
        for t in svm:
            row = f"  {t['n_train']:8d} {t['n_test']:7d}" + "".join(
                f" {t['fit_s'][k]:12.3f} {t['predict_s'][k]:12.3f}" for k in libraries)
            if len(libraries) > 1:
                row += (f" {t['fit_s']['sklearn'] / t['fit_s']['sertk']:7.2f}"
                        f" {t['predict_s']['sklearn'] / t['predict_s']['sertk']:7.2f} {t['agreement']:6.3f}")
            lines.append(row)
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the report as JSON, atomically (a reader never sees half a file)."""
    from sertk.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(report, indent=2, default=str) + "\n")
