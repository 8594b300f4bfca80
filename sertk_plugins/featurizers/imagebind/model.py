"""ImageBind's audio encoder (``imagebind_huge``, audio branch) as a torch module.

Our own implementation from the published architecture. The module tree mirrors the checkpoint's key names
(``modality_preprocessors.audio.*``, ``modality_trunks.audio.*``, ``modality_heads.audio.*``,
``modality_postprocessors.audio.*``), so the 177 audio tensors of ``imagebind_huge.pth`` load with
``strict=True`` and no renaming.

Per clip (input ``[clips, 1, 128, 204]`` normalised log-mel):

1. stem: Conv2d 1→768, kernel 16, stride 10, no bias → 12 × 19 = 228 patch tokens → LayerNorm (eps 1e-5);
   a learned class token in front; a learned positional embedding ``[1, 229, 768]`` added;
2. 12 pre-LayerNorm blocks (eps 1e-6): 12-head self-attention whose keys and values get one extra learned
   token appended (PyTorch's ``add_bias_kv``: 229 queries attend over 230 keys), then an MLP 768→3072→768
   with exact GELU; both residual;
3. head: LayerNorm (eps 1e-6) of the class token, Linear 768→1024 without bias;
4. L2 normalisation, times ``min(exp(log_logit_scale), 100)`` (20 in the released weights).

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` in batch-first layout, as
PyTorch's own ``nn.MultiheadAttention`` does when no weights are requested. Since the head reads only the
class token, the last block computes only its row (one query over all 230 keys, one MLP row): about 7 %
fewer operations per clip, the same result to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AudioEncoder", "EMBED_DIM", "OUT_DIM", "NUM_MEL_BINS", "TARGET_FRAMES", "clip_flop"]

EMBED_DIM = 768
OUT_DIM = 1024
NUM_HEADS = 12
NUM_BLOCKS = 12
MLP_DIM = 3072
NUM_MEL_BINS = 128
TARGET_FRAMES = 204
PATCH = 16
STRIDE = 10
NUM_PATCHES = ((NUM_MEL_BINS - PATCH) // STRIDE + 1) * ((TARGET_FRAMES - PATCH) // STRIDE + 1)  # 12 * 19


def clip_flop(class_token_only: bool = True) -> float:
    """Floating-point operations (2 per multiply-add) of one clip's forward pass: the stem, 12 blocks and the
    head, with the last block computing only the class token as :class:`AudioEncoder` does (38.1 GFLOP), or
    every token as upstream does (``class_token_only=False``: 40.9 GFLOP). Normalisations, GELU and softmax are
    left out: they are a fraction of a percent of the count (though not of the time)."""
    tokens, keys, head_dim = NUM_PATCHES + 1, NUM_PATCHES + 2, EMBED_DIM // NUM_HEADS

    def block(queries: int) -> int:
        return (2 * tokens * EMBED_DIM * 2 * EMBED_DIM + 2 * queries * EMBED_DIM * EMBED_DIM  # k, v; q
                + 2 * 2 * NUM_HEADS * queries * keys * head_dim  # scores and the weighted values
                + 2 * queries * EMBED_DIM * EMBED_DIM  # output projection
                + 2 * 2 * queries * EMBED_DIM * MLP_DIM)  # MLP

    stem = 2 * NUM_PATCHES * EMBED_DIM * PATCH * PATCH
    last = block(1 if class_token_only else tokens)
    return float(stem + (NUM_BLOCKS - 1) * block(tokens) + last + 2 * EMBED_DIM * OUT_DIM)


class PatchStem(nn.Module):
    """Conv2d patchifier + LayerNorm: ``[n, 1, 128, 204]`` → ``[n, 228, 768]``."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, EMBED_DIM, kernel_size=PATCH, stride=STRIDE, bias=False)
        self.norm_layer = nn.LayerNorm(EMBED_DIM, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_layer(self.proj(x).flatten(2).transpose(1, 2))


class PositionalEmbedding(nn.Module):
    """Holds the learned ``pos_embed`` ``[1, 229, 768]`` (named as in the checkpoint)."""

    def __init__(self) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, NUM_PATCHES + 1, EMBED_DIM))


class AudioStem(nn.Module):
    """Patch tokens with the class token in front and positions added: ``[n, 229, 768]``."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        self.rgbt_stem = PatchStem()
        self.pos_embedding_helper = PositionalEmbedding()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        return tokens + self.pos_embedding_helper.pos_embed


class SelfAttention(nn.Module):
    """Multi-head self-attention with one learned extra key/value token (parameters named as in
    ``nn.MultiheadAttention(bias=True, add_bias_kv=True)``), batch-first."""

    def __init__(self) -> None:
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * EMBED_DIM, EMBED_DIM))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * EMBED_DIM))
        self.bias_k = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        self.bias_v = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        self.out_proj = nn.Linear(EMBED_DIM, EMBED_DIM)

    def forward(self, x: torch.Tensor, num_queries: int | None = None) -> torch.Tensor:
        """``[n, L, D]`` → ``[n, L, D]``; with ``num_queries`` only the first tokens' outputs are computed."""
        n, length, dim = x.shape
        head_dim = dim // NUM_HEADS
        if num_queries is None:
            q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).split(dim, dim=-1)
            queries = length
        else:
            q = F.linear(x[:, :num_queries], self.in_proj_weight[:dim], self.in_proj_bias[:dim])
            k, v = F.linear(x, self.in_proj_weight[dim:], self.in_proj_bias[dim:]).split(dim, dim=-1)
            queries = num_queries
        k = torch.cat((k, self.bias_k.to(k.dtype).expand(n, 1, dim)), dim=1)
        v = torch.cat((v, self.bias_v.to(v.dtype).expand(n, 1, dim)), dim=1)
        q = q.reshape(n, queries, NUM_HEADS, head_dim).transpose(1, 2)
        k = k.reshape(n, length + 1, NUM_HEADS, head_dim).transpose(1, 2)
        v = v.reshape(n, length + 1, NUM_HEADS, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(n, queries, dim))


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(EMBED_DIM, MLP_DIM)
        self.fc2 = nn.Linear(MLP_DIM, EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-LayerNorm transformer block (no layer scale; drop path is training-only and absent here)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm_1 = nn.LayerNorm(EMBED_DIM, eps=1e-6)
        self.attn = SelfAttention()
        self.norm_2 = nn.LayerNorm(EMBED_DIM, eps=1e-6)
        self.mlp = Mlp()

    def forward(self, x: torch.Tensor, num_outputs: int | None = None) -> torch.Tensor:
        """``[n, L, D]`` → ``[n, L, D]``, or only the first ``num_outputs`` tokens (all still attended to)."""
        attended = self.attn(self.norm_1(x), num_queries=num_outputs)
        x = (x if num_outputs is None else x[:, :num_outputs]) + attended
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block() for _ in range(NUM_BLOCKS))

    def forward(self, x: torch.Tensor, class_token_only: bool = False) -> torch.Tensor:
        """``[n, 229, 768]`` → the same, or ``[n, 1, 768]`` (the class token) with ``class_token_only``: the
        head reads nothing else, so the last block then computes one query and one MLP row per clip."""
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, num_outputs=1 if class_token_only and i == last else None)
        return x


class ClassToken(nn.Module):
    """Selects token 0 (parameter-free; keeps the head's checkpoint indices 0 and 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class LogitScale(nn.Module):
    """Multiplies by ``min(exp(log_logit_scale), 100)``; the released value is ln 20."""

    log_logit_scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("log_logit_scale", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.log_logit_scale.exp(), max=100.0) * x


class L2Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1, p=2)


class AudioEncoder(nn.Module):
    """The audio branch of ``imagebind_huge``: normalised log-mel clips → scaled 1024-d clip embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.modality_preprocessors = nn.ModuleDict({"audio": AudioStem()})
        self.modality_trunks = nn.ModuleDict({"audio": Trunk()})
        self.modality_heads = nn.ModuleDict(
            {"audio": nn.Sequential(nn.LayerNorm(EMBED_DIM, eps=1e-6), ClassToken(),
                                    nn.Linear(EMBED_DIM, OUT_DIM, bias=False))}
        )
        self.modality_postprocessors = nn.ModuleDict({"audio": nn.Sequential(L2Normalize(), LogitScale())})

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Embed clips.

        Parameters
        ----------
        clips
            float ``[n, 1, 128, 204]``: normalised log-mel features (see ``preprocess``).

        Returns
        -------
        torch.Tensor
            float32 ``[n, 1024]``, each of norm ``exp(log_logit_scale)`` (20).
        """
        tokens = self.modality_preprocessors["audio"](clips)
        cls = self.modality_trunks["audio"](tokens, class_token_only=True)  # [n, 1, 768]
        head: nn.Sequential = self.modality_heads["audio"]  # type: ignore[assignment]
        emb = head[2](head[0](cls))[:, 0]  # the head's LayerNorm is per token: the class token's alone
        return self.modality_postprocessors["audio"](emb.float())

    def cast_matmul_weights(self, dtype: torch.dtype) -> "AudioEncoder":
        """Store the weights of matrix products (convolution, linear layers, attention projections) in
        ``dtype``, for running under ``torch.autocast(dtype=dtype)``: the same numbers autocast would produce by
        casting them at every call, without the per-call casts. LayerNorms, tokens and positions stay float32."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                module.to(dtype)
            elif isinstance(module, SelfAttention):
                module.in_proj_weight.data = module.in_proj_weight.data.to(dtype)
                module.in_proj_bias.data = module.in_proj_bias.data.to(dtype)
        return self
