"""Building blocks of the spatio-temporal UNet (SnapGen-V §3.2), readable top-down.

Layout conventions
    video   (B, C, T, H, W)   what temporal layers take and return (T may be 1 = an image)
    frames  (B*T, C, H, W)    what spatial layers (ResBlock, spatial transformer, up/down) take
    tokens  (N, L, C)         what attention takes; N and L depend on the layer

Contents
    1. time embedding           sinusoid(t * 1000) -> MLP, a separate module (SnapGen-V App. F
                                precomputes it for a fixed step grid)
    2. ResBlock, Downsample, Upsample (spatial, frames merged into the batch)
    3. rotary position embedding (1D temporal, 2D spatial, 3D spatio-temporal), Attention core
    4. SpatialTransformer (per-frame self-attention + text cross-attention + MLP)
    5. the temporal-layer zoo of SnapGen-V §3.2 / Fig. 3 and the TEMPORAL_LAYERS dict
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# --------------------------------------------------------------------------------------
# 1. Time embedding
# --------------------------------------------------------------------------------------
def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(B,) rectified-flow time in [0, 1] -> (B, dim) sinusoid of t * 1000 (DDPM/SD scale)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]  # (B, 1) * (1, half) -> (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, dim)


class TimestepEmbedding(nn.Module):
    """t (B,) -> (B, dim): sinusoid then a 2-layer MLP. Kept apart from the UNet body so that a
    few-step sampler can precompute it once per grid point (SnapGen-V App. F)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(sinusoidal_embedding(t, self.dim).to(self.mlp[0].weight.dtype))


# --------------------------------------------------------------------------------------
# 2. Spatial convolutions (frames merged into the batch)
# --------------------------------------------------------------------------------------
class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv3x3, time-embedding scale/shift (FiLM, as in ADM), GroupNorm-SiLU-conv3x3,
    plus a 1x1 skip when the width changes. x (B*T, C_in, H, W), emb (B*T, D) -> (B*T, C_out, H, W).
    The first conv may widen to `hidden_ch` (default C_out) and the second narrows back.
    Per-frame: GroupNorm statistics are per (frame, group), so no information crosses frames."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, hidden_ch: int | None = None):
        super().__init__()
        hidden_ch = hidden_ch or out_ch
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, hidden_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * hidden_ch)  # -> (scale, shift)
        self.norm2 = nn.GroupNorm(groups, hidden_ch)
        self.conv2 = nn.Conv2d(hidden_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (N, 2C, 1, 1) -> 2 x (N, C, 1, 1)
        h = torch.addcmul(shift, self.norm2(h), 1 + scale)  # norm(h) * (1 + scale) + shift, one pass
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Stride-2 3x3 conv: (N, C, H, W) -> (N, C, H/2, W/2)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest x2 then 3x3 conv: (N, C, H, W) -> (N, C, 2H, 2W)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


# --------------------------------------------------------------------------------------
# 3. Rotary position embedding and the attention core
# --------------------------------------------------------------------------------------
def rope_angles(grid: tuple[int, ...], head_dim: int, theta: float = 10000.0,
                device: torch.device | None = None) -> Tensor:
    """Rotation angles (L, head_dim // 2) for the L = prod(grid) tokens of a row-major grid.

    The head_dim // 2 rotation pairs are split between the grid axes, the first axis taking the
    remainder: grid (T,) is 1D temporal RoPE, (H, W) 2D RoPE, (T, H, W) 3D RoPE. A token's angle
    on pair j of axis a is pos_a * theta ** (-j / n_a), so a query-key dot product depends only on
    the position difference along every axis.
    """
    pairs, k = head_dim // 2, len(grid)
    counts = [pairs // k] * k
    counts[0] += pairs - sum(counts)
    parts = []
    for axis, (size, n) in enumerate(zip(grid, counts)):
        freqs = theta ** (-torch.arange(n, device=device, dtype=torch.float32) / max(n, 1))  # (n,)
        pos = torch.arange(size, device=device, dtype=torch.float32)
        ang = pos[:, None] * freqs[None]  # (size, n)
        shape = [1] * k + [n]
        shape[axis] = size
        parts.append(ang.view(shape).expand(*grid, n))  # (size, n) -> (*grid, n), broadcast over other axes
    return torch.cat(parts, dim=-1).reshape(-1, pairs)  # (*grid, pairs) -> (L, pairs)


_ROPE_TABLES: dict[tuple, tuple[Tensor, Tensor]] = {}


def rope_cos_sin(grid: tuple[int, ...], head_dim: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos and sin of rope_angles, each (L, head_dim // 2); a table depends on the shape only, so
    it is kept (a few per model). Kept tables are also what a traced export sees: constants, not
    the arange / pow / cos ops that made them (edgevid.export runs each graph once before)."""
    key = (tuple(grid), head_dim, str(device))
    static = all(type(g) is int for g in grid)  # a symbolic size (dynamic-shape compile) is not kept
    if static and key in _ROPE_TABLES:
        return _ROPE_TABLES[key]
    with torch.inference_mode(False), torch.no_grad():  # a plain tensor: usable later with autograd on
        angles = rope_angles(grid, head_dim, device=device)
        table = angles.cos(), angles.sin()
    if static and type(table[0]) is torch.Tensor and len(_ROPE_TABLES) < 64:  # never a traced (fake) tensor
        _ROPE_TABLES[key] = table
    return table


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (..., L, d) by angles with cos, sin (L, d/2), pairing channel j with j + d/2 (or any
    layout cos and sin broadcast to, e.g. x (N, L, heads, d) with (L, 1, d/2))."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # 2 x (..., L, d/2)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


@dataclass(frozen=True)
class AttnSpec:
    """How every attention layer of one UNet is built (from UNetConfig)."""
    head_dim: int
    qk_norm: bool  # RMSNorm on q and k per head, learnable scale (SD3 / ViT-22B practice)
    rope: bool  # rotary positions on q and k in self-attention


class RMSNorm(nn.Module):
    """RMS normalisation over the last axis with a learnable scale; casts the scale to the input
    dtype so that bf16 autocast does not fall back to a slow mixed-dtype path."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight.to(x.dtype), self.eps)


def key_bias(keep: Tensor) -> Tensor:
    """A float key mask (N, S), 1 = real token and 0 = padding, as the additive attention bias
    0 / -1e4: exp(-1e4) is exactly 0 in float32 and bfloat16, so padded keys get no weight, as
    with a bool mask. Unlike the bool form, a row needs at least one real token."""
    return (keep - 1.0) * 1e4


class Attention(nn.Module):
    """Multi-head attention on tokens (N, L, C) through F.scaled_dot_product_attention.

    Self-attention when context_dim is None (optional RoPE (cos, sin), each (L, head_dim/2)), else
    cross-attention to context (N, S, context_dim) with an optional key padding mask (N, S) bool,
    True = real token. A sample whose mask has no real token gets zero attention output instead of
    NaN (its values are zeroed and it attends uniformly), i.e. "no text". A float mask (1 = real,
    0 = padding; `key_bias`) gives the same for rows with a real token, with arithmetic alone.
    """

    def __init__(self, dim: int, spec: AttnSpec, context_dim: int | None = None):
        super().__init__()
        if dim % spec.head_dim:
            raise ValueError(f"attention width {dim} must be divisible by head_dim={spec.head_dim}")
        self.heads, self.head_dim = dim // spec.head_dim, spec.head_dim
        self.is_cross = context_dim is not None
        if self.is_cross:
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_kv = nn.Linear(context_dim, 2 * dim, bias=False)
        else:
            self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)  # one matmul instead of three
        self.q_norm = RMSNorm(spec.head_dim) if spec.qk_norm else nn.Identity()
        self.k_norm = RMSNorm(spec.head_dim) if spec.qk_norm else nn.Identity()
        self.out = nn.Linear(dim, dim)

    def _heads(self, x: Tensor, n: int) -> tuple[Tensor, ...]:
        N, L, _ = x.shape
        return x.view(N, L, n, self.heads, self.head_dim).unbind(2)  # (N, L, n*C) -> n x (N, L, heads, d)

    def forward(self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None,
                rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        N, L, C = x.shape
        if self.is_cross:
            (q,) = self._heads(self.to_q(x), 1)
            k, v = self._heads(self.to_kv(context), 2)
        else:
            q, k, v = self._heads(self.to_qkv(x), 3)
        # Norms and RoPE before the heads move in front of L: the head axis stays contiguous (the
        # norms ran ~1.7x faster so than on the transposed copy, measured).
        q, k = self.q_norm(q).to(v.dtype), self.k_norm(k).to(v.dtype)  # norms may upcast under autocast
        if rope is not None:
            cos, sin = rope[0][:, None], rope[1][:, None]  # (L, 1, d/2): the same angles for every head
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (N, heads, L, d)
        attn_mask = None
        if context_mask is not None and context_mask.dtype == torch.bool:
            keep = context_mask[:, None, None, :]  # (N, S) -> (N, 1, 1, S)
            v = v * keep.transpose(-1, -2).to(v.dtype)  # zero padded values: (N, 1, S, 1)
            attn_mask = keep | ~keep.any(dim=-1, keepdim=True)  # all-padding rows: uniform over zeros
        elif context_mask is not None:  # float 1/0 (the exported graphs' form: arithmetic only)
            attn_mask = key_bias(context_mask)[:, None, None, :].to(q.dtype)  # (N, 1, 1, S)
        L, S = q.shape[-2], k.shape[-2]
        if attn_mask is None and type(L) is int and type(S) is int and max(L, S) <= SHORT_ATTENTION:
            o = short_attention(q, k, v)  # temporal attention over a window's frames
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (N, heads, L, d)
        return self.out(o.transpose(1, 2).reshape(N, L, C))  # (N, heads, L, d) -> (N, L, C)


# Sequences at most this long (queries and keys) take short_attention instead of SDPA; a symbolic
# length (a dynamic-shape export or compile) takes SDPA.
SHORT_ATTENTION = 16


def short_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d)) v for short sequences, (N, heads, L, d) -> same, in fp32 with
    broadcast products and sums: the function F.scaled_dot_product_attention computes. On the CPU
    SDPA's flash kernel works in blocks meant for long sequences; over the 3-5 frames of a
    temporal window it was 1.7-3x slower than this (bf16 and fp32, 2 threads, EPYC), with the same
    error against float64. No matmul, on purpose: bf16 autocast would run one in bf16 and round
    the scores (2-3x the error, measured)."""
    qf, kf, vf = q.float(), k.float(), v.float()
    scores = (qf.unsqueeze(-2) * kf.unsqueeze(-3)).sum(-1).mul_(q.shape[-1] ** -0.5)  # (N, heads, L, S)
    return (scores.softmax(-1).unsqueeze(-1) * vf.unsqueeze(-3)).sum(-2).to(v.dtype)  # (N, heads, L, d)


# --------------------------------------------------------------------------------------
# 4. Spatial transformer (frames merged into the batch)
# --------------------------------------------------------------------------------------
class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(dim, mult * dim)
        self.fc2 = nn.Linear(mult * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact GELU: ~6x faster than the tanh form on CPU (torch 2.13)


class TextRefinerLayer(nn.Module):
    """Pre-LN transformer layer over text tokens (N, L, D) with a key padding mask (N, L) (bool or
    float, as Attention). Both residual branches end in zero-initialised projections, so a new
    layer is the identity; padded rows stay zero."""

    def __init__(self, dim: int, spec: AttnSpec):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, spec, context_dim=dim)
        self.norm2, self.mlp = nn.LayerNorm(dim), FeedForward(dim)
        for proj in (self.attn.out, self.mlp.fc2):
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, mask)  # masked self-attention, through the cross-attention path's key mask
        x = x + self.mlp(self.norm2(x))
        return x if mask is None else x * mask[..., None].to(x.dtype)


class SpatialTransformer(nn.Module):
    """Pre-LayerNorm block on each frame: self-attention over H*W tokens (2D RoPE), text
    cross-attention, MLP. x (B*T, C, H, W) -> same. Nothing crosses frames: self-attention is per
    frame and each query attends to text independently."""

    def __init__(self, dim: int, context_dim: int, spec: AttnSpec):
        super().__init__()
        self.rope, self.head_dim = spec.rope, spec.head_dim
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, spec)
        self.norm2, self.cross = nn.LayerNorm(dim), Attention(dim, spec, context_dim)
        self.norm3, self.mlp = nn.LayerNorm(dim), FeedForward(dim)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor | None, num_frames: int) -> Tensor:
        BT, C, H, W = x.shape
        B = BT // num_frames
        h = x.flatten(2).transpose(1, 2).contiguous()  # (B*T, C, H, W) -> (B*T, H*W, C)
        rope = rope_cos_sin((H, W), self.head_dim, x.device) if self.rope else None
        h = h + self.attn(self.norm1(h), rope=rope)
        # Cross-attention queries are independent, so all frames of a sample share one call and
        # the text keys/values are never repeated per frame.
        q = self.norm2(h).view(B, num_frames * H * W, C)  # (B*T, H*W, C) -> (B, T*H*W, C)
        h = h + self.cross(q, context, context_mask).view(BT, H * W, C)
        h = h + self.mlp(self.norm3(h))
        return h.transpose(1, 2).reshape(BT, C, H, W)  # (B*T, H*W, C) -> (B*T, C, H, W)


# --------------------------------------------------------------------------------------
# 5. Temporal-layer zoo (SnapGen-V §3.2, Fig. 3): Conv1D, Conv3D, SelfAttention1D/3D,
#    CrossAttention1D/3D. Each is residual, takes x (B, C, T, H, W), context (B, L, D),
#    context_mask (B, L) or None, and returns (B, C, T, H, W). Its output projection is
#    zero-initialised, so inserting it into a spatial (image) model starts as the identity
#    (AnimateDiff / SVD inflation). All share one constructor signature so that the
#    architecture search can swap types by name.
# --------------------------------------------------------------------------------------
def video_to_time_tokens(x: Tensor) -> Tensor:
    B, C, T, H, W = x.shape
    return x.permute(0, 3, 4, 2, 1).reshape(B * H * W, T, C)  # (B, C, T, H, W) -> (B*H*W, T, C)


def time_tokens_to_video(h: Tensor, B: int, H: int, W: int) -> Tensor:
    _, T, C = h.shape
    return h.view(B, H, W, T, C).permute(0, 4, 3, 1, 2)  # (B*H*W, T, C) -> (B, C, T, H, W)


def video_to_tokens(x: Tensor) -> Tensor:
    B, C, T, H, W = x.shape
    return x.permute(0, 2, 3, 4, 1).reshape(B, T * H * W, C)  # (B, C, T, H, W) -> (B, T*H*W, C)


def tokens_to_video(h: Tensor, T: int, H: int, W: int) -> Tensor:
    B, _, C = h.shape
    return h.view(B, T, H, W, C).permute(0, 4, 1, 2, 3)  # (B, T*H*W, C) -> (B, C, T, H, W)


class Conv1D(nn.Module):
    """GroupNorm-SiLU-Conv1d (kernel 3 over T, zero padding) per spatial position; cost ~ 3*C^2
    per token, linear in T*H*W (Fig. 3). Norm statistics are per position over (C/groups, T)."""

    def __init__(self, dim: int, *, context_dim: int, spec: AttnSpec, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, dim)
        self.conv = nn.Conv1d(dim, dim, 3, padding=1)
        _zero_init(self.conv)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        B, C, T, H, W = x.shape
        h = x.permute(0, 3, 4, 1, 2).reshape(B * H * W, C, T)  # (B, C, T, H, W) -> (B*H*W, C, T)
        h = self.conv(F.silu(self.norm(h)))
        return x + h.view(B, H, W, C, T).permute(0, 3, 4, 1, 2)  # (B*H*W, C, T) -> (B, C, T, H, W)


class Conv3D(nn.Module):
    """GroupNorm-SiLU-Conv3d (3x3x3, zero padding) on the whole video; cost ~ 27*C^2 per token."""

    def __init__(self, dim: int, *, context_dim: int, spec: AttnSpec, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, dim)
        self.conv = nn.Conv3d(dim, dim, 3, padding=1)
        _zero_init(self.conv)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        return x + self.conv(F.silu(self.norm(x.contiguous())))


class SelfAttention1D(nn.Module):
    """Pre-LayerNorm self-attention over the T frames of each spatial position (space merged into
    the batch), 1D temporal RoPE. Attention cost ~ T^2 * H * W: linear in H*W (Fig. 3)."""

    def __init__(self, dim: int, *, context_dim: int, spec: AttnSpec, groups: int):
        super().__init__()
        self.rope, self.head_dim = spec.rope, spec.head_dim
        self.norm, self.attn = nn.LayerNorm(dim), Attention(dim, spec)
        _zero_init(self.attn.out)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        B, C, T, H, W = x.shape
        h = video_to_time_tokens(x)  # (B*H*W, T, C)
        rope = rope_cos_sin((T,), self.head_dim, x.device) if self.rope else None
        return x + time_tokens_to_video(self.attn(self.norm(h), rope=rope), B, H, W)


class SelfAttention3D(nn.Module):
    """Pre-LayerNorm full self-attention over all T*H*W tokens of a sample, 3D RoPE over (t, h, w).
    Cost ~ (T*H*W)^2: quadratic in resolution, so only affordable at low resolution (Fig. 3)."""

    def __init__(self, dim: int, *, context_dim: int, spec: AttnSpec, groups: int):
        super().__init__()
        self.rope, self.head_dim = spec.rope, spec.head_dim
        self.norm, self.attn = nn.LayerNorm(dim), Attention(dim, spec)
        _zero_init(self.attn.out)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        B, C, T, H, W = x.shape
        h = video_to_tokens(x)  # (B, T*H*W, C)
        rope = rope_cos_sin((T, H, W), self.head_dim, x.device) if self.rope else None
        return x + tokens_to_video(self.attn(self.norm(h), rope=rope), T, H, W)


class _SelfThenCrossAttention(nn.Module):
    """Shared parameters of CrossAttention1D/3D: self-attention, then text cross-attention."""

    def __init__(self, dim: int, *, context_dim: int, spec: AttnSpec, groups: int):
        super().__init__()
        self.rope, self.head_dim = spec.rope, spec.head_dim
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, spec)
        self.norm2, self.cross = nn.LayerNorm(dim), Attention(dim, spec, context_dim)
        _zero_init(self.attn.out)
        _zero_init(self.cross.out)



class CrossAttention1D(_SelfThenCrossAttention):
    """Temporal self-attention followed by text cross-attention, on per-position temporal tokens.

    Our reading of SnapGen-V's CrossAttention1D (the paper gives no formula, only that its cost
    depends on the spatio-temporal size *and* the number of text tokens, Fig. 3, and cites
    OpenSora's temporal + cross-attention blocks): tokens are the T frames of each spatial position
    (space merged into the batch); (1) self-attention over T with temporal RoPE mixes frames,
    (2) every token then cross-attends to the L text tokens, cost ~ T*H*W*L. Pure text
    cross-attention would not mix frames at all, so (1) is what makes it a temporal layer.
    """

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        B, C, T, H, W = x.shape
        h = video_to_time_tokens(x)  # (B*H*W, T, C)
        rope = rope_cos_sin((T,), self.head_dim, x.device) if self.rope else None
        h = h + self.attn(self.norm1(h), rope=rope)
        q = self.norm2(h).view(B, H * W * T, C)  # (B*H*W, T, C) -> (B, H*W*T, C): one text call per sample
        h = h + self.cross(q, context, context_mask).view(B * H * W, T, C)
        return time_tokens_to_video(h, B, H, W)


class CrossAttention3D(_SelfThenCrossAttention):
    """Full 3D self-attention (3D RoPE) followed by text cross-attention, over all T*H*W tokens.

    The 3D counterpart of CrossAttention1D (same reading): (1) mixes every token with every other
    across space and time, (2) each token attends to the L text tokens."""

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor | None = None) -> Tensor:
        B, C, T, H, W = x.shape
        h = video_to_tokens(x)  # (B, T*H*W, C)
        rope = rope_cos_sin((T, H, W), self.head_dim, x.device) if self.rope else None
        h = h + self.attn(self.norm1(h), rope=rope)
        h = h + self.cross(self.norm2(h), context, context_mask)
        return tokens_to_video(h, T, H, W)


def _zero_init(layer: nn.Module) -> None:
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


# The names in edgevid.config.TEMPORAL_LAYER_TYPES -> classes. A plain dict: no registry.
TEMPORAL_LAYERS: dict[str, type[nn.Module]] = {
    "conv1d": Conv1D,
    "conv3d": Conv3D,
    "self_attn1d": SelfAttention1D,
    "self_attn3d": SelfAttention3D,
    "cross_attn1d": CrossAttention1D,
    "cross_attn3d": CrossAttention3D,
}
