"""Batching rules: which windows share a forward pass, so that batching never changes an embedding.

Three rules, one per kind of model (:func:`batching_rule`):

- ``padded`` — wav2vec 2.0, HuBERT and WavLM checkpoints whose convolutional feature encoder uses layer norm
  (``feat_extract_norm == "layer"``: large, lv60, robust, WavLM) take an attention mask. Windows are sorted by
  length and padded to the longest of their batch with the mask; each item's frames are then those of the item
  alone (to float rounding), and pooling reads only its own frames.
- ``equal-length`` — checkpoints trained without attention masks (``feat_extract_norm == "group"``:
  wav2vec2-base, HuBERT base; GroupNorm over time would see the padding) and Data2Vec-Audio (which changes with
  padding even under a mask) are never padded: only windows of exactly equal length share a batch, the others
  run one by one.
- ``whisper`` — Whisper's encoder always sees 30 s of log-mel frames (shorter audio is padded by its feature
  extractor, as in training) and takes no mask, so any windows can share a batch; its outputs are cut to the
  audio's length afterwards (50 frames per second).

Every rule caps a forward pass at ``budget`` padded samples (batch × longest window), which bounds memory, and
``padded`` batches hold windows within :data:`MAX_PADDING` of their longest, so padding wastes little compute (on a
CPU the model is compute-bound even for one file, and a padded frame costs what a real one does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sertk_plugins.featurizers.hf.model import ModelFamily

__all__ = ["RULES", "WHISPER_SAMPLES", "batching_rule", "plan_batches"]

RULES = ("padded", "equal-length", "whisper")
#: a padded batch holds windows at least (1 - MAX_PADDING) as long as its longest
MAX_PADDING = 0.2
#: Whisper's fixed input: 30 s at 16 kHz
WHISPER_SAMPLES = 30 * 16000


def batching_rule(family: ModelFamily, config: dict[str, Any]) -> str:
    """The rule for a model of ``family`` with ``config`` (``config.json`` as a dict)."""
    if family.whisper:
        return "whisper"
    if family.mask_safe_with_layer_norm and config.get("feat_extract_norm", "group") == "layer":
        return "padded"
    return "equal-length"


@dataclasses.dataclass(frozen=True)
class Batch:
    """Windows (indices into the list given to :func:`plan_batches`) that share one forward pass."""

    windows: tuple[int, ...]
    padded_length: int


def plan_batches(lengths: Sequence[int], rule: str, budget: int) -> list[Batch]:
    """Group windows of ``lengths`` samples into forward passes under ``rule``, each at most ``budget`` padded
    samples (a window longer than the budget runs alone).

    Longest first, so a batch holds windows of similar length and padding wastes little.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[Batch] = []
    current: list[int] = []

    def size(window: int) -> int:
        return WHISPER_SAMPLES if rule == "whisper" else lengths[window]

    for index in order:
        if current:
            longest = size(current[0])
            joins = (len(current) + 1) * longest <= budget
            if rule == "equal-length":
                joins = joins and lengths[index] == lengths[current[0]]
            elif rule == "padded":
                joins = joins and lengths[index] >= (1 - MAX_PADDING) * longest
            if joins:
                current.append(index)
                continue
            batches.append(Batch(tuple(current), size(current[0])))
        current = [index]
    if current:
        batches.append(Batch(tuple(current), size(current[0])))
    return batches
