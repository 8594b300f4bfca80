"""ImageBind weights: where they live, how to get them, what a file holds, loading the audio tensors.

Two file formats are accepted wherever weights are needed:

- ``imagebind_huge.pth``, Meta's full checkpoint (4.8 GB, every modality): a plain state dict, read with
  ``torch.load(mmap=True, weights_only=True)`` so only the audio tensors are paged in and no arbitrary object
  is ever unpickled;
- the audio-only safetensors file that ``sertk weights extract-audio`` writes (345 MB, the 177 audio tensors,
  names unchanged).

Without an explicit path the featurizer looks in ``$SERTK_HOME/weights`` (default ``~/.cache/sertk/weights``)
for ``imagebind_huge_audio.safetensors``, then ``imagebind_huge.pth``. The weights are Meta's, licensed
CC BY-NC 4.0 (non-commercial).

:func:`random_checkpoint` writes random weights in the real format (real key names, a few keys of other
modalities); tests and the golden-file script use it, since the real weights cannot be shipped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sertk.download import file_digest  # re-exported: the weights digest in the fingerprint
from sertk.errors import FeaturizerError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = [
    "URL", "CHECKPOINT_NAME", "AUDIO_NAME", "AUDIO_SHAPES", "sertk_home", "weights_dir", "find_weights",
    "file_digest", "load_audio_state_dict", "extract_audio", "describe", "download", "random_audio_state_dict",
    "random_checkpoint", "tensors_digest",
]

URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
CHECKPOINT_NAME = "imagebind_huge.pth"
AUDIO_NAME = "imagebind_huge_audio.safetensors"
LICENCE = "CC BY-NC 4.0 (Meta's ImageBind weights; non-commercial use only)"
HOW_TO_GET = (
    "get them with `sertk weights download` (4.8 GB, then optionally `sertk weights extract-audio` for a 345 MB "
    "audio-only file), or pass the featurizer option weights=PATH"
)


def _audio_shapes() -> dict[str, tuple[int, ...]]:
    pre, trunk = "modality_preprocessors.audio.", "modality_trunks.audio.blocks."
    shapes: dict[str, tuple[int, ...]] = {
        pre + "cls_token": (1, 1, 768),
        pre + "rgbt_stem.proj.weight": (768, 1, 16, 16),
        pre + "rgbt_stem.norm_layer.weight": (768,),
        pre + "rgbt_stem.norm_layer.bias": (768,),
        pre + "pos_embedding_helper.pos_embed": (1, 229, 768),
    }
    for i in range(12):
        b = f"{trunk}{i}."
        shapes.update({
            b + "attn.in_proj_weight": (2304, 768), b + "attn.in_proj_bias": (2304,),
            b + "attn.bias_k": (1, 1, 768), b + "attn.bias_v": (1, 1, 768),
            b + "attn.out_proj.weight": (768, 768), b + "attn.out_proj.bias": (768,),
            b + "norm_1.weight": (768,), b + "norm_1.bias": (768,),
            b + "norm_2.weight": (768,), b + "norm_2.bias": (768,),
            b + "mlp.fc1.weight": (3072, 768), b + "mlp.fc1.bias": (3072,),
            b + "mlp.fc2.weight": (768, 3072), b + "mlp.fc2.bias": (768,),
        })
    shapes.update({
        "modality_heads.audio.0.weight": (768,),
        "modality_heads.audio.0.bias": (768,),
        "modality_heads.audio.2.weight": (1024, 768),
        "modality_postprocessors.audio.1.log_logit_scale": (),
    })
    return shapes


#: the 177 audio tensors of imagebind_huge.pth and their shapes
AUDIO_SHAPES: dict[str, tuple[int, ...]] = _audio_shapes()
#: a few real keys of other modalities, for test checkpoints (so extraction has something to leave out)
OTHER_SHAPES: dict[str, tuple[int, ...]] = {
    "modality_preprocessors.vision.cls_token": (1, 1, 1280),
    "modality_trunks.vision.pre_transformer_layer.0.weight": (1280,),
    "modality_heads.text.proj.0.weight": (1024,),
    "modality_postprocessors.text.1.log_logit_scale": (),
}


# -- locations --------------------------------------------------------------------------------------------
def sertk_home() -> Path:
    """``$SERTK_HOME``, default ``~/.cache/sertk``."""
    return Path(os.environ.get("SERTK_HOME") or "~/.cache/sertk").expanduser()


def weights_dir() -> Path:
    return sertk_home() / "weights"


def find_weights(explicit: str | os.PathLike | None = None) -> Path:
    """The weights file to use: ``explicit`` if given, else the audio-only file, else the full checkpoint."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FeaturizerError(f"ImageBind weights file {path} does not exist; {HOW_TO_GET}")
        return path
    candidates = [weights_dir() / AUDIO_NAME, weights_dir() / CHECKPOINT_NAME]
    for path in candidates:
        if path.is_file():
            return path
    raise FeaturizerError(
        "no ImageBind weights found (looked for " + " and ".join(str(p) for p in candidates) + f"); {HOW_TO_GET}"
    )


# -- reading ----------------------------------------------------------------------------------------------
def _format_of(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(9)
    if head[:4] == b"PK\x03\x04":
        return "torch"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x80":
        return "torch-legacy"
    raise FeaturizerError(f"{path} is neither a PyTorch checkpoint nor a safetensors file")


def _torch_state_dict(path: Path) -> Mapping[str, "torch.Tensor"]:
    import pickle

    import torch

    kind = _format_of(path)
    try:
        if kind == "torch":
            sd = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise FeaturizerError(
            f"cannot read {path} as a plain state dict (only tensors are accepted, nothing is unpickled "
            f"beyond them): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    if isinstance(sd, Mapping) and "model" in sd and isinstance(sd["model"], Mapping):
        sd = sd["model"]  # tolerate {"model": state_dict}
    if not isinstance(sd, Mapping):
        raise FeaturizerError(f"{path} holds a {type(sd).__name__}, not a state dict")
    return sd


def _select_audio(sd: Mapping[str, Any], source: Path, strict_extra: bool) -> dict[str, "torch.Tensor"]:
    import torch

    missing = [k for k in AUDIO_SHAPES if k not in sd]
    if missing:
        raise FeaturizerError(
            f"{source} lacks {len(missing)} of the 177 ImageBind audio tensors (first: {missing[0]}); is it "
            f"imagebind_huge? {HOW_TO_GET}"
        )
    bad = [(k, tuple(sd[k].shape)) for k in AUDIO_SHAPES if tuple(sd[k].shape) != AUDIO_SHAPES[k]]
    if bad:
        k, shape = bad[0]
        raise FeaturizerError(f"{source}: {k} has shape {shape}, expected {AUDIO_SHAPES[k]} (imagebind_huge)")
    if strict_extra:
        extra = sorted(set(sd) - set(AUDIO_SHAPES))
        if extra:
            raise FeaturizerError(f"{source} holds {len(extra)} unexpected tensors (first: {extra[0]})")
    out = {k: sd[k] for k in AUDIO_SHAPES}
    for k, v in out.items():
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            raise FeaturizerError(f"{source}: {k} is not a floating-point tensor")
    return out


def load_audio_state_dict(path: str | os.PathLike) -> dict[str, "torch.Tensor"]:
    """The 177 audio tensors from either accepted file, validated by name and shape (CPU tensors)."""
    path = Path(path)
    kind = _format_of(path)
    if kind == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            sd = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise FeaturizerError(f"cannot read {path}: {exc}") from None
        return _select_audio(sd, path, strict_extra=True)
    return _select_audio(_torch_state_dict(path), path, strict_extra=False)


def extract_audio(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the audio tensors of a full checkpoint to a safetensors file (names unchanged, float as stored)."""
    from safetensors.torch import save_file

    from sertk.atomic import atomic_path

    checkpoint, out = Path(checkpoint), Path(out)
    if _format_of(checkpoint) == "safetensors":
        raise FeaturizerError(f"{checkpoint} is already a safetensors file; extract-audio reads a .pth checkpoint")
    audio = _select_audio(_torch_state_dict(checkpoint), checkpoint, strict_extra=False)
    metadata = {
        "format": "sertk-imagebind-audio",
        "format_version": "1",
        "source": checkpoint.name,
        "source_size": str(checkpoint.stat().st_size),
        "licence": LICENCE,
    }
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in audio.items()}, str(tmp), metadata=metadata)
    logger.info("wrote %s (%.0f MB)", out, out.stat().st_size / 1e6)
    return out


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """What a weights file holds: format, tensors, parameters, dtypes, per-modality counts, audio completeness."""
    path = Path(path)
    kind = _format_of(path)
    metadata: dict[str, str] = {}
    if kind == "safetensors":
        from safetensors import safe_open

        names = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
            dtypes = {k: names.get(d, d.lower()) for k in fh.keys() for d in [fh.get_slice(k).get_dtype()]}
    else:
        sd = _torch_state_dict(path)
        shapes = {k: tuple(v.shape) for k, v in sd.items()}
        dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in sd.items()}
    modalities: dict[str, int] = {}
    for k in shapes:
        m = re.match(r"modality_\w+?\.(\w+)\.", k)
        name = m.group(1) if m else "(other)"
        modalities[name] = modalities.get(name, 0) + 1
    audio_ok = all(shapes.get(k) == s for k, s in AUDIO_SHAPES.items())
    return {
        "path": str(path),
        "format": kind,
        "size_bytes": path.stat().st_size,
        "tensors": len(shapes),
        "parameters": sum(math.prod(s) for s in shapes.values()),
        "dtypes": sorted(set(dtypes.values())),
        "modalities": dict(sorted(modalities.items())),
        "audio_complete": audio_ok,
        "audio_parameters": sum(math.prod(s) for s in AUDIO_SHAPES.values()) if audio_ok else 0,
        "metadata": metadata,
    }


# -- download ---------------------------------------------------------------------------------------------
def download(
    url: str = URL,
    dest: str | os.PathLike | None = None,
    *,
    sha256: str | None = None,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Fetch ``url`` to ``dest`` (default ``weights_dir()/imagebind_huge.pth``), resuming a partial download.

    A thin wrapper of :func:`sertk.download.fetch`: bytes go to ``dest.part`` (kept when interrupted, so the next
    call resumes with an HTTP Range request; a server that ignores ranges makes it start over); on completion the
    size is checked against the server's, the sha256 against ``sha256`` when given, and the file is renamed into
    place. ``dest.sha256.json`` records url, size and sha256 (it is also the featurizer's digest cache, so the
    4.8 GB file is never hashed twice). A complete ``dest`` whose record matches is not fetched again. Failures
    are :class:`FeaturizerError`.
    """
    from sertk.download import DownloadError, fetch

    dest = Path(dest) if dest is not None else weights_dir() / CHECKPOINT_NAME
    try:
        return fetch(url, dest, sha256=sha256, timeout=timeout, chunk_size=chunk_size)
    except DownloadError as exc:
        raise FeaturizerError(str(exc)) from None


# -- random weights in the real format ----------------------------------------------------------------------
def _init_scale(key: str, shape: tuple[int, ...]) -> tuple[float, float]:
    """(offset, half-width) of the uniform distribution a random tensor is drawn from."""
    if key.endswith("log_logit_scale"):
        raise AssertionError("fixed")
    norm = ("norm_layer." in key or ".norm_1." in key or ".norm_2." in key or key.startswith("modality_heads.audio.0")
            or "pre_transformer_layer" in key or "heads.text.proj.0" in key)
    if norm:
        return (1.0, 0.2) if key.endswith("weight") else (0.0, 0.1)
    if key.endswith(("bias_k", "bias_v", "cls_token")):
        return 0.0, 1.0
    if key.endswith("pos_embed"):
        return 0.0, 0.5
    if key.endswith("bias"):
        return 0.0, 0.05
    fan_in = math.prod(shape[1:])
    return 0.0, math.sqrt(3.0 / fan_in)  # unit-variance activations


def random_audio_state_dict(seed: int = 0, other_modalities: bool = False) -> dict[str, "torch.Tensor"]:
    """Deterministic random weights with the real names and shapes (float32; a second or so for 86 M values).

    Drawn with a seeded CPU :class:`torch.Generator` (``torch.rand``, then exact affine maps), key by key in
    sorted order (audio keys first, so ``other_modalities`` leaves them unchanged): the same seed gives
    bit-identical tensors on any machine. ``log_logit_scale`` is ln 20
    as in the release. ``other_modalities`` adds a few small tensors of other modalities.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    keys = sorted(AUDIO_SHAPES) + (sorted(OTHER_SHAPES) if other_modalities else [])  # audio first: same audio
    shapes = dict(AUDIO_SHAPES, **OTHER_SHAPES)
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        shape = shapes[key]
        if key.endswith("log_logit_scale"):
            out[key] = torch.tensor(math.log(20.0 if "audio" in key else 100.0), dtype=torch.float32)
            continue
        offset, half = _init_scale(key, shape)
        values = torch.rand(shape, generator=g, dtype=torch.float32).mul_(2.0).sub_(1.0).mul_(half)
        out[key] = values.add_(offset) if offset else values
    return out


def tensors_digest(state_dict: Mapping[str, "torch.Tensor"]) -> str:
    """sha256 over names, shapes, dtypes and bytes of a state dict's tensors, in sorted name order."""
    import torch

    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def random_checkpoint(path: str | os.PathLike, seed: int = 0, fmt: str = "torch") -> Path:
    """Save :func:`random_audio_state_dict` as a full-style ``.pth`` (``fmt="torch"``, with a few keys of other
    modalities) or as an audio-only safetensors file (``fmt="safetensors"``)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torch":
        torch.save(random_audio_state_dict(seed, other_modalities=True), path)
    elif fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(random_audio_state_dict(seed), str(path), metadata={"format": "sertk-imagebind-audio",
                                                                      "source": f"random seed {seed}"})
    else:
        raise ValueError(f"fmt must be 'torch' or 'safetensors', got {fmt!r}")
    return path
