"""The ``imagebind`` featurizer: Meta's ImageBind (``imagebind_huge``) audio embeddings, 1024-d.

Our own implementation of upstream's audio preprocessing and encoder, equal to upstream to float rounding
(tested against golden outputs of upstream's code; see ``docs/imagebind.md``). The plugin also adds the
``sertk weights`` command group (download, extract-audio, info).

Modules: :mod:`.preprocess` (clips, filterbank, normalisation), :mod:`.model` (the encoder),
:mod:`.weights` (files, download, digests), :mod:`.commands` (CLI). Importing this module does not import
torch; the featurizer loads it on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import sertk
from sertk.errors import ConfigError
from sertk_plugins.featurizers.imagebind.preprocess import ClipConfig

logger = logging.getLogger(__name__)

__all__ = ["ImageBindFeaturizer"]

DTYPES = ("float32", "bfloat16", "float16", "auto")
NORMALIZE = ("none", "l2")
#: batches whose files the worker threads prepare ahead of the model (see ImageBindFeaturizer.prefetch)
_PREFETCH_DEPTH = 2
#: bump when a change of this implementation changes embeddings (it is part of the fingerprint)
IMPLEMENTATION_VERSION = 1


class ImageBindFeaturizer(sertk.Featurizer):
    """ImageBind audio embeddings (imagebind_huge), 1024-d; weights CC BY-NC 4.0.

    Parameters
    ----------
    weights
        ``imagebind_huge.pth`` or the audio-only safetensors file from ``sertk weights extract-audio``;
        default: look in ``$SERTK_HOME/weights``.
    device
        ``"auto"`` (CUDA when available, else CPU), or any torch device string.
    dtype
        ``"float32"`` (default; equal to upstream), ``"bfloat16"`` or ``"float16"`` (autocast: matrix
        products in low precision, normalisations and the residual stream in float32), or ``"auto"``: the
        fastest here — ``"bfloat16"`` on a GPU and on CPUs that multiply bfloat16 in hardware (AMX or
        AVX512-BF16), ``"float32"`` elsewhere, where bfloat16 is emulated and several times slower (measured 7×
        on an AMD EPYC with AVX2 only). The fingerprint holds the dtype that ran.
    batch_size
        Files per call that the host sends by default; ``None`` (default): 16 on the CPU, 256 on a GPU, where
        large batches keep the device busy.
    num_workers
        Threads that decode files and cut their clips (libsndfile and torch release the GIL), next to the model:
        while it embeds one batch they prepare the next (see :meth:`prefetch`). ``None`` (default): on a GPU
        the cores this process may use (at most 8); on the CPU none (``0``: in the calling thread), because there
        the model already uses every core and extra threads only contend with it (measured: fp32 10 % slower with
        2 workers on 2 cores, bf16 unchanged).
    clips, clip_seconds
        Clips per utterance and their length (upstream: 3 × 2 s). Longer clips are cropped to the model's
        204 frames (2.04 s); shorter ones are zero-padded.
    inplace_mean
        Upstream's in-place mean subtraction on overlapping clips (default ``True``; see the docs).
    reuse_identical_clips
        Compute clips that cover the same samples once (default ``True``; about 1e-6 from upstream).
    normalize
        ``"none"`` (upstream: the mean of three clip embeddings of norm 20, so norm ≤ 20) or ``"l2"``
        (re-normalised to unit length).
    """

    name = "imagebind"
    description = "ImageBind (imagebind_huge) audio embeddings, 1024-d, equal to Meta's; weights CC BY-NC 4.0"
    standardize = False

    def __init__(
        self,
        weights: str | None = None,
        device: str = "auto",
        dtype: str = "float32",
        batch_size: int | None = None,
        num_workers: int | None = None,
        clips: int = 3,
        clip_seconds: float = 2.0,
        inplace_mean: bool = True,
        reuse_identical_clips: bool = True,
        normalize: str = "none",
    ) -> None:
        if dtype not in DTYPES:
            raise ConfigError(f"imagebind: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if normalize not in NORMALIZE:
            raise ConfigError(f"imagebind: normalize must be one of {', '.join(NORMALIZE)}, got {normalize!r}")
        for option, value, minimum in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
                raise ConfigError(f"imagebind: {option} must be an integer ≥ {minimum} (or left out), got {value!r}")
        try:
            self._clip_config = ClipConfig(clips=clips, clip_seconds=clip_seconds,
                                           inplace_mean=bool(inplace_mean),
                                           reuse_identical_clips=bool(reuse_identical_clips))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"imagebind: {exc}") from None
        self.weights = weights
        self.device = device
        self._dtype_option = dtype
        self._batch_size = batch_size
        self._num_workers = num_workers
        self.normalize = normalize
        self._encoder: Any = None
        self._weights_path: Path | None = None
        self._torch_device: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._prefetched: dict[tuple[Path, ...], list[Future]] = {}  # at most _PREFETCH_DEPTH batches
        self._in_flight: dict[tuple[Path, ...], _Pending] = {}  # at most one batch queued on the device
        self._launch_ahead: bool | None = None  # None: on a GPU (see launch_ahead)

    # -- the contract ----------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return 1024

    @property
    def batch_size(self) -> int:  # type: ignore[override]  # the base class's plain default, resolved per device
        """Files per :meth:`embed` call the host sends: the option, or 16 on the CPU and 256 on a GPU."""
        if self._batch_size is not None:
            return self._batch_size
        return 256 if self.torch_device().type == "cuda" else 16

    @property
    def num_workers(self) -> int:
        """Worker threads for decoding: the option, or on a GPU the cores this process may use (at most 8) and on
        the CPU 0."""
        if self._num_workers is not None:
            return self._num_workers
        from sertk.machine import cpu_info

        return min(cpu_info()["cores"], 8) if self.torch_device().type == "cuda" else 0

    @property
    def dtype(self) -> str:
        """The dtype the model runs in: the option, with ``"auto"`` resolved for this device and CPU."""
        if self._dtype_option != "auto":
            return self._dtype_option
        from sertk.machine import bf16_is_native

        return "bfloat16" if self.torch_device().type == "cuda" or bf16_is_native() else "float32"

    def torch_device(self) -> Any:
        """The :class:`torch.device` the model runs on (``device`` resolved; imports torch)."""
        if self._torch_device is None:
            import torch

            self._torch_device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                                              if self.device == "auto" else self.device)
        return self._torch_device

    def weights_path(self) -> Path:
        """The weights file this featurizer uses (raises FeaturizerError saying how to get one)."""
        if self._weights_path is None:
            from sertk_plugins.featurizers.imagebind.weights import find_weights

            self._weights_path = find_weights(self.weights)
        return self._weights_path

    def fingerprint(self) -> Mapping[str, Any]:
        from sertk_plugins.featurizers.imagebind.weights import file_digest

        return {
            "name": self.name,
            "implementation": IMPLEMENTATION_VERSION,  # fixed choices: resampler, filterbank, short-file padding
            "weights_sha256": file_digest(self.weights_path()),
            "dtype": self.dtype,
            "normalize": self.normalize,
            **dataclasses.asdict(self.clip_config()),
        }

    def clip_config(self) -> ClipConfig:
        """The clip and feature settings these options give."""
        return self._clip_config

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """Embed files: float32 ``(len(paths), 1024)``.

        Every file is decoded and cut into clips before the model runs; the first (in order) that cannot be
        read raises :class:`sertk.errors.AudioError` naming it (the host then retries the others one by one).
        On a GPU a batch stays in flight (:attr:`launch_ahead`): before waiting for this batch's result, the
        next batch the host announced (:meth:`prefetch`) is uploaded and queued behind it, so the device works
        on it while the host commits this one and cuts the one after.
        """
        paths = [Path(p) for p in paths]
        if not paths:
            return np.zeros((0, self.dim), dtype=np.float32)
        pending = self._in_flight.pop(tuple(paths), None)
        if pending is None:
            cut = self._cut_all(paths)
            pending = self._launch(cut)
        if self.launch_ahead:
            self._launch_next(exclude=tuple(paths))
        return self._finish(pending)

    def prefetch(self, paths: Sequence[Path]) -> None:
        """Start decoding ``paths`` and cutting their clips in the worker threads; an :meth:`embed` of the same
        paths uses the result. The host calls it with the next batch before embedding the current one. A hint:
        batches never embedded are dropped once newer ones arrive, so at most two are held."""
        if self.num_workers == 0:
            return
        key = tuple(Path(p) for p in paths)
        if key in self._prefetched or key in self._in_flight or not key:
            return
        while len(self._prefetched) >= _PREFETCH_DEPTH:
            oldest = next(iter(self._prefetched))
            for future in self._prefetched.pop(oldest):
                future.cancel()
        self._prefetched[key] = [self._worker_pool().submit(self._cut_file, p) for p in key]

    def close(self) -> None:
        """Stop the worker threads (they also stop with the process)."""
        self._drop_prefetched()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # -- beyond the contract ---------------------------------------------------------------------------------
    def embed_waveforms(self, waves: Sequence[tuple[np.ndarray, int]], names: Sequence[str] | None = None
                        ) -> np.ndarray:
        """Embed decoded audio: ``(float32 [channels, samples], rate)`` pairs → float32 ``(n, 1024)``."""
        from sertk_plugins.featurizers.imagebind.preprocess import cut_clips

        if not waves:
            return np.zeros((0, self.dim), dtype=np.float32)
        cut = [cut_clips(wave, rate, self.clip_config(), names[pos] if names is not None else f"utterance {pos}")
               for pos, (wave, rate) in enumerate(waves)]
        return self._finish(self._launch(cut))

    def clips_per_forward(self) -> int:
        """Clips per forward pass: 64 on the CPU (bounded memory, no speed lost), 1024 on a GPU."""
        return 1024 if self.torch_device().type == "cuda" else 64

    def flops(self, paths: Sequence[Path]) -> float:
        """Floating-point operations the encoder does for ``paths``: the clips it computes (identical ones once)
        times :func:`~.model.clip_flop`; ``sertk bench`` divides this by the time taken. Reads the headers only."""
        import soundfile as sf

        from sertk.audio.resample import resampled_length
        from sertk_plugins.featurizers.imagebind.model import clip_flop
        from sertk_plugins.featurizers.imagebind.preprocess import clip_bounds

        cfg = self.clip_config()
        clips = 0
        for path in paths:
            info = sf.info(str(path))
            frames = info.frames if info.samplerate == cfg.sample_rate else resampled_length(
                info.frames, info.samplerate, cfg.sample_rate)
            bounds = clip_bounds(max(frames, cfg.min_samples), cfg)
            clips += len(set(bounds)) if cfg.reuse_identical_clips else len(bounds)
        return clips * clip_flop()

    @property
    def launch_ahead(self) -> bool:
        """Whether :meth:`embed` queues the next announced batch before waiting for the current one: on a GPU,
        where the device runs while the host works; on the CPU every step is done when it returns, so there
        nothing would overlap."""
        if self._launch_ahead is not None:
            return self._launch_ahead
        return self.torch_device().type == "cuda"

    def _launch(self, cut: Sequence[Any]) -> "_Pending":
        """Queue a cut batch on the device: chunks of :meth:`clips_per_forward` clips, each uploaded, through the
        filterbank and the encoder (so device memory does not grow with the batch size), then each utterance's
        clip mean and its copy back into page-locked memory. On the CPU this computes it all."""
        import torch
        import torch.nn.functional as F

        from sertk_plugins.featurizers.imagebind.preprocess import clip_features, gather_clips, to_device

        encoder, device = self.encoder()
        cfg = self.clip_config()
        step = self.clips_per_forward()
        clips, index = gather_clips(cut, cfg)
        with torch.inference_mode(), _exact_fp32(device, self.dtype):
            index = to_device(index, device)
            parts = []
            for start in range(0, len(clips), step):
                features = clip_features(clips[start:start + step], cfg, device)
                with self._autocast(device):
                    parts.append(encoder(features).float())
            out = torch.cat(parts)[index].mean(dim=1)  # [n, clips, 1024] → [n, 1024], after the ×20 scaling
            if self.normalize == "l2":
                out = F.normalize(out, dim=-1)
            if device.type != "cuda":
                return _Pending(out, None)
            host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
            host.copy_(out, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
        return _Pending(host, done)

    def _launch_next(self, exclude: tuple[Path, ...]) -> None:
        """Launch the newest announced batch other than ``exclude`` once its files are cut; a batch with a bad
        file is left for its own :meth:`embed`, which raises for it, so this batch's result is unaffected."""
        waiting = [key for key in self._prefetched if key != exclude and key not in self._in_flight]
        if not waiting:
            return
        key = waiting[-1]
        futures = self._prefetched[key]
        if any(f.exception() is not None for f in futures):  # waits for the workers; AudioError stays in them
            return
        del self._prefetched[key]
        self._in_flight.clear()  # at most one batch waits on the device
        self._in_flight[key] = self._launch([f.result() for f in futures])

    @staticmethod
    def _finish(pending: "_Pending") -> np.ndarray:
        if pending.done is not None:
            pending.done.synchronize()  # this batch only: the one queued behind it keeps the device busy
        return pending.host.numpy().astype(np.float32, copy=True)  # a private copy: the pinned block returns

    def _cut_file(self, path: Path):
        from sertk_plugins.featurizers.imagebind.preprocess import cut_file

        return cut_file(path, self.clip_config())  # a long file: only what its clips cover is decoded

    def _cut_all(self, paths: list[Path]) -> list:
        """Every file decoded and cut, in order (prefetched, in the workers, or here); the first failure in order
        is raised."""
        futures = self._prefetched.pop(tuple(paths), None)
        if futures is None and self.num_workers == 0:
            return [self._cut_file(p) for p in paths]
        if futures is None:
            futures = [self._worker_pool().submit(self._cut_file, p) for p in paths]
        return [future.result() for future in futures]

    def _drop_prefetched(self) -> None:
        self._in_flight.clear()
        for futures in self._prefetched.values():
            for future in futures:
                future.cancel()
        self._prefetched.clear()

    def _worker_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.num_workers, thread_name_prefix="sertk-imagebind")
        return self._pool

    def encoder(self) -> tuple[Any, Any]:
        """The loaded :class:`~.model.AudioEncoder` (eval mode) and its device, built on first use."""
        if self._encoder is None:
            import torch

            from sertk_plugins.featurizers.imagebind.model import AudioEncoder
            from sertk_plugins.featurizers.imagebind.weights import load_audio_state_dict

            device = self.torch_device()
            path = self.weights_path()
            state = load_audio_state_dict(path)
            with torch.device("meta"):
                encoder = AudioEncoder()
            # a private copy: tensors read from a .pth are memory-mapped, and page-cache eviction under memory
            # pressure would then slow every forward pass
            state = {k: v.to(device=device, dtype=torch.float32, copy=True) for k, v in state.items()}
            encoder.load_state_dict(state, strict=True, assign=True)
            encoder.eval().requires_grad_(False)
            if self.dtype != "float32":
                encoder.cast_matmul_weights(getattr(torch, self.dtype))
            logger.info("loaded ImageBind audio weights from %s on %s (%s)", path, device, self.dtype)
            if device.type == "cpu":
                _log_cpu_choices(self.dtype, self.batch_size, self.num_workers, self.clips_per_forward())
            self._encoder = encoder
        return self._encoder, self._torch_device

    def _autocast(self, device: Any):
        import torch

        if self.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=getattr(torch, self.dtype))


def _log_cpu_choices(dtype: str, batch_size: int, workers: int, clips_per_forward: int) -> None:
    """Say at start-up what the CPU can do and what this run chose; warn where a low-precision dtype is
    emulated (no AMX/AVX512-BF16 for bfloat16, no AMX-FP16/AVX512-FP16 for float16) and so slower than float32."""
    import torch

    from sertk.machine import bf16_is_native, cpu_info, fp16_is_native

    cpu = cpu_info()
    native = {"bfloat16": bf16_is_native(), "float16": fp16_is_native(), "float32": True}
    logger.info("CPU %s (%s; native bfloat16: %s): %s, %d torch threads, %d files per batch, %d decode workers, "
                "%d clips per forward", cpu["model"], "+".join(cpu["isa"]) or "no AVX2",
                "yes" if native["bfloat16"] else "no", dtype, torch.get_num_threads(), batch_size, workers,
                clips_per_forward)
    if not native[dtype]:
        logger.warning("%s on a CPU without hardware %s: torch emulates it, several times slower than float32 "
                       "(measured 7x on an AMD EPYC with AVX2); use dtype=float32, or dtype=auto to get the "
                       "fastest for each machine", dtype, dtype)


@dataclasses.dataclass
class _Pending:
    """A batch queued on the device: its embeddings' host buffer, valid once ``done`` (a CUDA event) is."""

    host: Any  # torch.Tensor [n, 1024]
    done: Any  # torch.cuda.Event, or None when already computed


@contextlib.contextmanager
def _exact_fp32(device: Any, dtype: str) -> Iterator[None]:
    """On CUDA in float32, switch TF32 off for matrix products and convolutions (the stem) while we run.

    Through ``fp32_precision`` where torch has it (2.9 and later): there the legacy ``allow_tf32`` flags are not
    read or written at all, since torch refuses to mix the two interfaces once the new one has been used."""
    import torch

    if device.type != "cuda" or dtype != "float32":
        yield
        return
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        backends = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)  # type: ignore[attr-defined]
        saved = tuple(b.fp32_precision for b in backends)
        for backend in backends:
            backend.fp32_precision = "ieee"
        try:
            yield
        finally:
            for backend, value in zip(backends, saved):
                backend.fp32_precision = value
        return
    legacy = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = legacy


@sertk.hookimpl
def sertk_register_featurizers(register) -> None:
    register(ImageBindFeaturizer)


@sertk.hookimpl
def sertk_register_commands(cli) -> None:
    from sertk_plugins.featurizers.imagebind.commands import weights_group

    if "weights" not in getattr(cli, "commands", {}):
        cli.add_command(weights_group)
