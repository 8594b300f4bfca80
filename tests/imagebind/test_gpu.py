"""Device selection, and the CUDA path where a GPU exists (marker ``gpu``; skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sertk_plugins.featurizers.imagebind import ImageBindFeaturizer


def test_auto_device_is_cpu_without_cuda(random_safetensors, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, device = ImageBindFeaturizer(weights=str(random_safetensors)).encoder()
    assert device.type == "cpu"


def test_auto_device_picks_cuda_when_present(random_safetensors, monkeypatch):
    """Without a GPU, stop at the point the weights are moved: the device asked for must be CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    seen = []
    real_to = torch.Tensor.to

    def spy(self, *args, **kwargs):
        device = kwargs.get("device", args[0] if args else None)
        seen.append(torch.device(device).type if isinstance(device, (str, torch.device)) else None)
        if "cuda" in seen:
            raise RuntimeError("stop: cuda requested")
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    with pytest.raises(RuntimeError, match="stop: cuda requested"):
        ImageBindFeaturizer(weights=str(random_safetensors)).encoder()
    assert "cuda" in seen


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("bfloat16", None)])
def test_cuda_matches_cpu(random_safetensors, recordings, golden_run, dtype, tolerance):
    paths = list(recordings.values())
    gpu = ImageBindFeaturizer(weights=str(random_safetensors), device="cuda", dtype=dtype).embed(paths)
    if tolerance is not None:
        np.testing.assert_allclose(gpu, golden_run, atol=tolerance)
    cosine = (gpu * golden_run).sum(1) / np.linalg.norm(gpu, axis=1) / np.linalg.norm(golden_run, axis=1)
    assert cosine.min() > 0.9999
