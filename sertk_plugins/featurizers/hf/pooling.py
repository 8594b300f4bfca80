"""Layers and pooling: every layer's frame statistics from one forward pass, and the vector a choice selects.

A forward pass with ``output_hidden_states=True`` gives ``num_hidden_layers + 1`` hidden states (the encoder's
input, then each layer; the last is ``last_hidden_state``, which in stable-layer-norm checkpoints — large, lv60,
WavLM — has passed the encoder's final layer norm). From them we keep, for every *view* — each hidden state,
plus their mean (the ``layer="mean"`` view: equal weights over all ``num_hidden_layers + 1`` states, SUPERB's
weighted sum without learnt weights) — the frame count, the mean and the sum of squared deviations of its
frames, in float64 (:class:`FrameStats`). Statistics of the windows of a long recording combine exactly
(:meth:`FrameStats.merge`, Chan et al.'s pairwise update), so the pooled vector of a recording cut into windows
is the frame-weighted mean and standard deviation over all of its frames.

:func:`all_views_row` flattens the statistics of every view into one float32 row (the per-model layer store keeps
these rows); :func:`select` cuts the vector of one layer and pooling out of such a row, so a layer or pooling
chosen later is a slice, not another forward pass.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["POOLINGS", "FrameStats", "all_views_row", "frame_stats", "select", "view_count"]

#: ``mean``: the mean over frames; ``mean+std``: mean and (population) standard deviation, concatenated
POOLINGS = ("mean", "mean+std")


def view_count(num_hidden_layers: int) -> int:
    """Views a row holds: every hidden state (``num_hidden_layers + 1``) and their mean."""
    return num_hidden_layers + 2


@dataclasses.dataclass
class FrameStats:
    """Frame statistics of every view of one recording (or window).

    Attributes
    ----------
    count
        Frames seen.
    mean, m2
        float64 ``(views, hidden)``: the mean of the frames and the sum of their squared deviations from it.
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray

    def merge(self, other: "FrameStats") -> "FrameStats":
        """The statistics of both frame sets together (exact up to float64 rounding)."""
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return FrameStats(n, mean, m2)

    def std(self) -> np.ndarray:
        """Population standard deviation over frames, float64 ``(views, hidden)``."""
        return np.sqrt(np.maximum(self.m2, 0.0) / self.count)


def frame_stats(hidden_states: "list[torch.Tensor]", frames: int) -> FrameStats:
    """:class:`FrameStats` of the first ``frames`` frames of one item.

    Parameters
    ----------
    hidden_states
        The item's hidden states, each ``(time, hidden)`` of any float dtype; frames past ``frames`` (padding)
        are left out.
    frames
        Valid frames, at least 1.
    """
    import torch

    states = torch.stack([h[:frames] for h in hidden_states]).to(torch.float64)  # (layers + 1, time, hidden)
    views = torch.cat([states, states.mean(dim=0, keepdim=True)])  # + the mean of all layers
    mean = views.mean(dim=1)
    m2 = ((views - mean[:, None]) ** 2).sum(dim=1)
    return FrameStats(frames, mean.cpu().numpy(), m2.cpu().numpy())


def all_views_row(stats: FrameStats) -> np.ndarray:
    """float32 ``(views * 2 * hidden,)``: per view, its mean then its standard deviation."""
    return np.concatenate([stats.mean, stats.std()], axis=1).astype(np.float32).reshape(-1)


def select(rows: np.ndarray, view: int, pooling: str, hidden: int) -> np.ndarray:
    """The vectors of one view and pooling, float32 ``(n, hidden)`` or ``(n, 2 * hidden)``, from
    :func:`all_views_row` rows ``(n, views * 2 * hidden)``."""
    block = rows[:, view * 2 * hidden:(view + 1) * 2 * hidden]
    return np.ascontiguousarray(block if pooling == "mean+std" else block[:, :hidden])
