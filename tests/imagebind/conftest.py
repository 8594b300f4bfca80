"""Fixtures for the ImageBind featurizer tests: the committed test recordings, upstream's golden outputs, and
random weights (regenerated from a seed, bit for bit) saved in the real checkpoint formats.

The golden files were made with ``scripts/make_imagebind_golden.py`` (upstream's own code; see its
docstring for the command).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "imagebind"
GOLDEN_SEED = 0


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(before, 2))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def golden_info() -> dict:
    return json.loads((DATA / "golden.json").read_text())


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    with np.load(DATA / "golden.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def recordings(golden_info) -> dict[str, Path]:
    """name → path of every committed test recording, in the golden files' order."""
    return {name: DATA / "rec" / name for name in golden_info["recordings"]}


@pytest.fixture(scope="session")
def random_pth(tmp_path_factory) -> Path:
    """A full-style checkpoint (audio keys + a few of other modalities) with the golden random weights."""
    from sertk_plugins.featurizers.imagebind.weights import random_checkpoint

    return random_checkpoint(tmp_path_factory.mktemp("weights") / "imagebind_huge.pth", seed=GOLDEN_SEED)


@pytest.fixture(scope="session")
def featurizer(random_pth):
    """The default (upstream-equal) featurizer on the golden random weights, model loaded once."""
    from sertk_plugins.featurizers.imagebind import ImageBindFeaturizer

    return ImageBindFeaturizer(weights=str(random_pth), device="cpu")


@pytest.fixture(scope="session")
def random_safetensors(random_pth, tmp_path_factory) -> Path:
    """The audio-only file that ``sertk weights extract-audio`` makes from :func:`random_pth`."""
    from sertk_plugins.featurizers.imagebind.weights import extract_audio

    return extract_audio(random_pth, tmp_path_factory.mktemp("extracted") / "imagebind_huge_audio.safetensors")


@pytest.fixture(scope="session")
def golden_run(featurizer, recordings) -> np.ndarray:
    """Our fp32 embeddings of every test recording, in one batch (computed once per session)."""
    return featurizer.embed(list(recordings.values()))
