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
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import sertk
from sertk.errors import ConfigError
from sertk_plugins.featurizers.imagebind.preprocess import ClipConfig

logger = logging.getLogger(__name__)

__all__ = ["ImageBindFeaturizer"]

DTYPES = ("float32", "bfloat16", "float16")
NORMALIZE = ("none", "l2")
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
        products in low precision, normalisations and the residual stream in float32).
    batch_size
        Files per call that the host sends by default.
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
        batch_size: int = 16,
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
        if int(batch_size) != batch_size or batch_size < 1:
            raise ConfigError(f"imagebind: batch_size must be a positive integer, got {batch_size!r}")
        try:
            self._clip_config = ClipConfig(clips=clips, clip_seconds=clip_seconds,
                                           inplace_mean=bool(inplace_mean),
                                           reuse_identical_clips=bool(reuse_identical_clips))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"imagebind: {exc}") from None
        self.weights = weights
        self.device = device
        self.dtype = dtype
        self.batch_size = int(batch_size)
        self.normalize = normalize
        self._encoder: Any = None
        self._weights_path: Path | None = None
        self._torch_device: Any = None

    # -- the contract ----------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return 1024

    def weights_path(self) -> Path:
        """The weights file this featurizer uses (raises FeaturizerError saying how to get one)."""
        if self._weights_path is None:
            from sertk_plugins.featurizers.imagebind.weights import find_weights

            self._weights_path = find_weights(self.weights)
        return self._weights_path

    def fingerprint(self) -> Mapping[str, Any]:
        import dataclasses

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

        Every file is decoded before any computation; the first that cannot be read raises
        :class:`sertk.errors.AudioError` naming it (the host then retries the others one by one).
        """
        from sertk.audio.io import read_audio

        decoded = [read_audio(p) for p in paths]
        if not decoded:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_waveforms(decoded, names=[str(p) for p in paths])

    # -- beyond the contract ---------------------------------------------------------------------------------
    def embed_waveforms(self, waves: Sequence[tuple[np.ndarray, int]], names: Sequence[str] | None = None,
                        max_clips_per_forward: int = 64) -> np.ndarray:
        """Embed decoded audio: ``(float32 [channels, samples], rate)`` pairs → float32 ``(n, 1024)``."""
        import torch
        import torch.nn.functional as F

        from sertk_plugins.featurizers.imagebind.preprocess import prepare

        encoder, device = self.encoder()
        with torch.inference_mode(), _exact_fp32(device, self.dtype):
            batch = prepare(waves, self.clip_config(), device, names=names)
            parts = []
            for start in range(0, batch.features.shape[0], max_clips_per_forward):
                chunk = batch.features[start:start + max_clips_per_forward]
                with self._autocast(device):
                    parts.append(encoder(chunk).float())
            clip_emb = torch.cat(parts)
            out = clip_emb[batch.index].mean(dim=1)  # [n, clips, 1024] → [n, 1024], after the ×20 scaling
            if self.normalize == "l2":
                out = F.normalize(out, dim=-1)
        return out.cpu().numpy().astype(np.float32, copy=False)

    def encoder(self) -> tuple[Any, Any]:
        """The loaded :class:`~.model.AudioEncoder` (eval mode) and its device, built on first use."""
        if self._encoder is None:
            import torch

            from sertk_plugins.featurizers.imagebind.model import AudioEncoder
            from sertk_plugins.featurizers.imagebind.weights import load_audio_state_dict

            device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto"
                                  else self.device)
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
            self._encoder, self._torch_device = encoder, device
        return self._encoder, self._torch_device

    def _autocast(self, device: Any):
        import torch

        if self.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=getattr(torch, self.dtype))


@contextlib.contextmanager
def _exact_fp32(device: Any, dtype: str) -> Iterator[None]:
    """On CUDA in float32, switch TF32 off for convolutions (the stem, the resampler) while we run."""
    import torch

    if device.type != "cuda" or dtype != "float32":
        yield
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@sertk.hookimpl
def sertk_register_featurizers(register) -> None:
    register(ImageBindFeaturizer)


@sertk.hookimpl
def sertk_register_commands(cli) -> None:
    from sertk_plugins.featurizers.imagebind.commands import weights_group

    if "weights" not in getattr(cli, "commands", {}):
        cli.add_command(weights_group)
