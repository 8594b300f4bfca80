"""Run upstream ImageBind's own audio code on a CPU-only machine, unchanged, as a reference.

Upstream's package (PyPI ``imagebind-unofficial``, identical to Meta's files) does not import here: its
``__init__`` pulls in video and vision packages, ``timm`` needs torchvision, torchaudio's PyPI wheel is a CUDA
build and ``torchaudio.load`` needs TorchCodec. This module installs the smallest stand-ins that let
upstream's ``imagebind.data.load_and_transform_audio_data`` and its audio branch run, and nothing that
changes their arithmetic:

- ``imagebind`` is registered as a bare package (its ``__init__``, which imports the video code, never runs);
- ``timm.layers``: ``DropPath`` (identity; it only acts in training) and ``trunc_normal_`` (torch's own
  ``nn.init.trunc_normal_``; it only initialises weights, which are then overwritten);
- ``pkg_resources`` (if setuptools no longer has it): ``resource_filename`` (text tokenizer path only);
- ``torchvision.transforms.Normalize``: ``(x - mean) / std`` in the tensor's dtype, as torchvision computes it
  (``tensor.sub_(mean).div_(std)``);
- ``pytorchvideo``: empty modules, except ``pytorchvideo.data.clip_sampling``, loaded from pytorchvideo's
  own file (install ``pytorchvideo==0.1.5 --no-deps``; its package ``__init__`` is not run);
- ``torchaudio``: its compiled extension is kept from loading (its pure-Python ``compliance.kaldi`` and
  ``functional.resample`` are what upstream calls), and ``torchaudio.load`` reads with soundfile (float32,
  ``[channels, samples]``, PCM scaled by ``2**-(bits-1)``, as torchaudio/TorchCodec return it).

Only :func:`install` touches ``sys.modules``; it is idempotent. Needs (separate venv): torch, numpy,
soundfile, einops, ftfy, regex, iopath, pillow, ``imagebind-unofficial --no-deps``, ``torchaudio --no-deps``,
``pytorchvideo==0.1.5 --no-deps``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

_installed: dict[str, Any] = {}


class UpstreamUnavailable(ImportError):
    """Upstream ImageBind (or one of the packages it needs) is not installed here."""


def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.submodule_search_locations:  # origin None: a mere folder
        raise UpstreamUnavailable(f"package {name!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def install() -> types.SimpleNamespace:
    """Install the stand-ins and import upstream; returns ``data`` and ``imagebind_model`` modules."""
    if _installed:
        return _installed["ns"]
    import numpy as np
    import soundfile as sf
    import torch
    from torch import nn

    try:
        imagebind_dir = _package_dir("imagebind")
        pytorchvideo_dir = _package_dir("pytorchvideo")
        _package_dir("torchaudio")
        for name in ("einops", "ftfy", "regex", "iopath", "PIL"):
            if importlib.util.find_spec(name) is None:
                raise UpstreamUnavailable(f"package {name!r} is not installed")
    except ValueError as exc:  # find_spec on a half-registered module
        raise UpstreamUnavailable(str(exc)) from None
    if not (imagebind_dir / "data.py").is_file() or not (imagebind_dir / "models" / "imagebind_model.py").is_file():
        raise UpstreamUnavailable(f"{imagebind_dir} is not upstream's imagebind package")

    # torchaudio without its compiled libraries
    if "torchaudio" not in sys.modules:
        _module("torchaudio._extension", _IS_TORCHAUDIO_EXT_AVAILABLE=False, _IS_ALIGN_AVAILABLE=False,
                fail_if_no_align=lambda f: f)
    import torchaudio
    import torchaudio.compliance.kaldi  # noqa: F401
    import torchaudio.functional  # noqa: F401

    def load(path, *args, **kwargs):
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return torch.from_numpy(np.ascontiguousarray(data.T)), rate

    torchaudio.load = load

    # timm.layers
    class DropPath(nn.Module):
        def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            return x

    timm = _module("timm")
    timm.layers = _module("timm.layers", DropPath=DropPath, trunc_normal_=torch.nn.init.trunc_normal_)

    # pkg_resources (gone from setuptools >= 82)
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        def resource_filename(package: str, resource: str) -> str:
            return str(_package_dir(package) / resource)

        _module("pkg_resources", resource_filename=resource_filename)

    # torchvision.transforms.Normalize
    class Normalize:
        def __init__(self, mean, std, inplace: bool = False) -> None:
            self.mean, self.std, self.inplace = mean, std, inplace

        def __call__(self, tensor):
            mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
            std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
            if mean.ndim == 1:
                mean = mean.view(-1, 1, 1)
            if std.ndim == 1:
                std = std.view(-1, 1, 1)
            if not self.inplace:
                tensor = tensor.clone()
            return tensor.sub_(mean).div_(std)

    torchvision = _module("torchvision")
    torchvision.transforms = _module("torchvision.transforms", Normalize=Normalize)

    # pytorchvideo: only the clip sampler, from pytorchvideo's own source file
    pv = _module("pytorchvideo")
    pv.__path__ = [str(pytorchvideo_dir)]
    pv.transforms = _module("pytorchvideo.transforms")
    pv.data = _module("pytorchvideo.data")
    pv.data.__path__ = [str(pytorchvideo_dir / "data")]
    pv.data.encoded_video = _module("pytorchvideo.data.encoded_video", EncodedVideo=None)
    spec = importlib.util.spec_from_file_location("pytorchvideo.data.clip_sampling",
                                                  pytorchvideo_dir / "data" / "clip_sampling.py")
    clip_sampling = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = clip_sampling
    spec.loader.exec_module(clip_sampling)
    pv.data.clip_sampling = clip_sampling

    # imagebind as a bare package
    ib = _module("imagebind")
    ib.__path__ = [str(imagebind_dir)]
    data = importlib.import_module("imagebind.data")
    imagebind_model = importlib.import_module("imagebind.models.imagebind_model")
    ns = types.SimpleNamespace(data=data, imagebind_model=imagebind_model, torchaudio=torchaudio,
                               imagebind_dir=imagebind_dir)
    _installed["ns"] = ns
    return ns


def load_and_transform_audio(paths) -> "Any":
    """Upstream's ``load_and_transform_audio_data(paths, "cpu")``: float32 ``[n, 3, 1, 128, 204]``."""
    return install().data.load_and_transform_audio_data([str(p) for p in paths], "cpu")


def _build_on_meta(ns) -> "Any":
    """``imagebind_huge(pretrained=False)`` with every tensor on the meta device (no memory, no init time),
    except ``torch.linspace``, whose values upstream reads with ``.item()`` (drop-path rates)."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._device import _device_constructors

    constructors = _device_constructors()

    class MetaMode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = dict(kwargs or {})
            if func in constructors and func is not torch.linspace and kwargs.get("device") is None:
                kwargs["device"] = "meta"
            return func(*args, **kwargs)

    with MetaMode():
        return ns.imagebind_model.imagebind_huge(pretrained=False)


def build_audio_model(state_dict) -> "Any":
    """Upstream's ``imagebind_huge`` built by upstream's own code on the meta device, keeping only the audio
    branch (materialised on CPU) with ``state_dict`` (the 177 audio tensors) loaded strictly. Call the result
    with a ``[n, 3, 1, 128, 204]`` tensor: it runs upstream's ``ImageBindModel.forward`` for audio."""
    from torch import nn

    ns = install()
    full = _build_on_meta(ns)

    class AudioOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for part in ("modality_preprocessors", "modality_trunks", "modality_heads", "modality_postprocessors"):
                setattr(self, part, nn.ModuleDict({"audio": getattr(full, part)["audio"]}))

        def forward(self, audio):
            return ns.imagebind_model.ImageBindModel.forward(self, {"audio": audio})["audio"]

    model = AudioOnly().to_empty(device="cpu")
    persistent = set(model.state_dict())
    transient = [name for name, _ in model.named_buffers() if name not in persistent]
    assert not transient, f"non-persistent buffers would stay uninitialised: {transient}"
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def full_model_key_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of every tensor of upstream's ``imagebind_huge`` (built on the meta device)."""
    full = _build_on_meta(install())
    return {k: tuple(v.shape) for k, v in full.state_dict().items()}
