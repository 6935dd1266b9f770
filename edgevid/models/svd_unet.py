"""The image-to-video denoiser of Stable Video Diffusion (SVD, Blattmann et al. 2023) and the
MobileVD optimisations of it (Ben Yahia et al., arXiv 2412.07583), readable top-down.

With the default SVDUNetConfig this is diffusers' `UNetSpatioTemporalConditionModel` (same
module names, so its weights load as they are: `SVDUNet.from_diffusers`), taking channels-first
video like the rest of edgevid. The network knows nothing about EDM or flow math (DESIGN.md): it
maps (x, timestep, context, added_time_ids) to a tensor of x's shape.

Layout conventions
    video   (B, C, T, H, W)   the model's input and output; what temporal resnets see
    frames  (B*T, C, H, W)    spatial layers (frames merged into the batch, sample-major)
    tokens  (N, L, C)         attention; per frame (N = B*T, L = H*W) or per position
                              (N = B*H*W, L = T)

Contents
    1. SVDUNet: time embeddings, down / mid / up blocks, per-stage frame counts
    2. down, mid and up blocks; spatial and temporal down/upsampling
    3. SpatioTemporalResBlock = ResnetBlock2D, TemporalResnetBlock, AlphaBlender
    4. TransformerSpatioTemporalModel = BasicTransformerBlock + TemporalBasicTransformerBlock
    5. attention (SDPA), single-token cross-attention (MobileVD Fig. 2), GEGLU feed-forward
    6. diffusers interop: config_from_diffusers, load_diffusers_state_dict
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgevid.config import SVDUNetConfig

# Diffusers builds its GroupNorms with eps 1e-6 in the cross-attention down blocks and in every
# up block (it never passes its resnet_eps there), 1e-5 elsewhere. Kept for exact parity.
_EPS_ATTN_DOWN_AND_UP, _EPS_OTHER = 1e-6, 1e-5


# --------------------------------------------------------------------------------------
# 1. The UNet
# --------------------------------------------------------------------------------------
class SVDUNet(nn.Module):
    """x (B, in_channels, T, H, W), timestep (B,) or scalar (embedded as timestep * timestep_scale),
    context (B, L, cross_attention_dim) (SVD: L = 1, the CLIP image embedding), added_time_ids
    (B, num_added_time_ids) (SVD: fps, motion_bucket_id, noise_aug_strength)
    -> (B, out_channels, T, H, W).

    Stage i works at latent resolution / 2**i: layers_per_block SpatioTemporalResBlocks, each
    followed by a TransformerSpatioTemporalModel where cross_attention[i], then a stride-2
    downsampler (not after the last stage). Mid: resnet, transformer, resnet. The up path mirrors
    it with layers_per_block + 1 blocks per stage, each concatenating one skip. With
    temporal_downsample the frame count halves (rounding up) after the flagged stages and doubles
    back on the way up (`frame_counts`; MobileVD temporal multiscaling).
    """

    def __init__(self, config: SVDUNetConfig):
        super().__init__()
        self.config = config
        ch, n = config.block_out_channels, len(config.block_out_channels)
        plan = _BuildPlan(config)

        self.conv_in = nn.Conv2d(config.in_channels, ch[0], 3, padding=1)
        self.time_embedding = TimestepMLP(ch[0], config.time_embed_dim)
        self.add_embedding = TimestepMLP(config.num_added_time_ids * config.addition_time_embed_dim,
                                         config.time_embed_dim)

        # Down path; skip_ch records the width of every skip in push order (conv_in's first).
        self.down_blocks = nn.ModuleList()
        skip_ch, width = [ch[0]], ch[0]
        for i in range(n):
            self.down_blocks.append(DownBlock(f"down_blocks.{i}", width, ch[i], i, plan, add_downsample=i < n - 1))
            width = ch[i]
            skip_ch += [width] * (config.layers_per_block + (i < n - 1))

        self.mid_block = MidBlock("mid_block", width, plan)

        # Up path, deepest stage first; each resnet eats one skip.
        self.up_blocks = nn.ModuleList()
        for u, i in enumerate(reversed(range(n))):
            skips = [skip_ch.pop() for _ in range(config.layers_per_block + 1)]
            self.up_blocks.append(UpBlock(f"up_blocks.{u}", width, skips, ch[i], i, plan, add_upsample=i > 0))
            width = ch[i]
        assert not skip_ch, "every skip must be consumed"

        self.conv_norm_out = nn.GroupNorm(config.norm_groups, ch[0], eps=1e-5)
        self.conv_out = nn.Conv2d(ch[0], config.out_channels, 3, padding=1)

    def embed_time(self, timestep: Tensor, added_time_ids: Tensor) -> Tensor:
        """(B,) timestep, (B, num_added_time_ids) -> (B, time_embed_dim): what every resnet gets.
        The micro-conditions (SVD §4) are embedded like timesteps and added."""
        cfg, B = self.config, added_time_ids.shape[0]
        dtype = self.conv_in.weight.dtype
        emb = self.time_embedding(timestep_sinusoid(timestep * cfg.timestep_scale, cfg.block_out_channels[0]).to(dtype))
        ids = timestep_sinusoid(added_time_ids.flatten(), cfg.addition_time_embed_dim)  # (B*n_ids, D_add)
        return emb + self.add_embedding(ids.reshape(B, -1).to(dtype))  # (B*n_ids, D_add) -> (B, n_ids*D_add)

    def frame_counts(self, num_frames: int) -> list[tuple[int, int]]:
        """(frames, frame stride) per stage: the temporal multiscaling plan. A frame of stage i
        stands for `stride` input frames; its position for the temporal transformers is
        stride * index (the first input frame of its group), so positions keep their meaning in
        input frames."""
        stages, frames, stride = [], num_frames, 1
        for i in range(len(self.config.block_out_channels)):
            stages.append((frames, stride))
            if self.config.temporal_downsample and self.config.temporal_downsample[i]:
                frames, stride = (frames + 1) // 2, 2 * stride
        return stages

    def forward(self, x: Tensor, timestep: Tensor | float, context: Tensor, added_time_ids: Tensor) -> Tensor:
        self._check_inputs(x, timestep, context, added_time_ids)
        timestep = torch.as_tensor(timestep, dtype=torch.float32, device=x.device)
        return self.forward_embedded(x, self.embed_time(timestep.expand(x.shape[0]), added_time_ids), context)

    def forward_embedded(self, x: Tensor, emb: Tensor, context: Tensor) -> Tensor:
        """forward with the time embedding given, (B, time_embed_dim) from `embed_time`: a sampler
        with a fixed time grid and fixed micro-conditions computes it once (SnapGen-V App. F;
        edgevid.export ships it as a constant)."""
        B, C, T, H, W = x.shape
        stages = self.frame_counts(T)

        # (B, C, T, H, W) -> (B*T, C, H, W), as a 4-D transpose (litert-torch miscompiles a 5-D
        # transpose of a graph input that feeds a conv; docs/EXPORT.md)
        h = x.reshape(B, C, T, H * W).transpose(1, 2).reshape(B * T, C, H, W)
        h = self.conv_in(h)

        skips = [h]
        for i, block in enumerate(self.down_blocks):
            h, states = block(h, emb, context, *stages[i])
            skips += states

        h = self.mid_block(h, emb, context, *stages[-1])

        for u, block in enumerate(self.up_blocks):
            i = len(stages) - 1 - u
            states = [skips.pop() for _ in range(len(block.resnets))]
            h = block(h, states, emb, context, *stages[i], next_frames=stages[max(i - 1, 0)][0])

        h = self.conv_out(F.silu(self.conv_norm_out(h)))  # (B*T, C_out, H, W)
        return h.view(B, T, -1, H, W).transpose(1, 2).contiguous()  # (B*T, C, H, W) -> (B, C, T, H, W)

    @classmethod
    def from_diffusers(cls, source: str | Path | nn.Module, variant: str | None = None, **overrides: Any) -> SVDUNet:
        """Build from a diffusers UNetSpatioTemporalConditionModel: a folder written by its
        save_pretrained (config.json + diffusion_pytorch_model[.variant].safetensors, sharded or
        not) or the module itself. overrides replace SVDUNetConfig fields, e.g.
        optimized_cross_attention=True or temporal_blocks=(...): weights of the blocks such a
        config does not build are dropped."""
        if isinstance(source, nn.Module):
            diffusers_config, state_dict = dict(source.config), source.state_dict()
        else:
            folder = Path(source)
            diffusers_config = _read_json(folder / "config.json")
            state_dict = _read_safetensors(folder, variant)
        model = cls(config_from_diffusers(diffusers_config, **overrides))
        load_diffusers_state_dict(model, state_dict)
        return model

    def _check_inputs(self, x: Tensor, timestep: Tensor | float, context: Tensor, added_time_ids: Tensor) -> None:
        cfg = self.config
        if x.ndim != 5:
            raise ValueError(f"x must be a video latent (B, C, T, H, W), got shape {tuple(x.shape)}; "
                             "add a frame axis of size 1 for an image")
        B, C, T, H, W = x.shape
        if C != cfg.in_channels:
            raise ValueError(f"x has {C} channels but SVDUNetConfig.in_channels={cfg.in_channels}: concatenate the "
                             f"noisy latent and the conditioning-frame latent along C")
        f = cfg.downsample_factor
        if H % f or W % f:
            raise ValueError(f"latent H, W = {H}, {W} must be divisible by {f} (2 ** (stages - 1)); pick a pixel "
                             f"size that gives e.g. latent {H + (-H) % f}x{W + (-W) % f}")
        if torch.is_tensor(timestep) and not (timestep.ndim == 0 or tuple(timestep.shape) == (B,)):
            raise ValueError(f"timestep must have shape ({B},) or be a scalar, got {tuple(timestep.shape)}")
        if context.ndim != 3 or context.shape[0] != B or context.shape[2] != cfg.cross_attention_dim:
            raise ValueError(f"context must have shape ({B}, L, {cfg.cross_attention_dim}) (cross_attention_dim), "
                             f"got {tuple(context.shape)}")
        if cfg.optimized_cross_attention and context.shape[1] != 1:
            raise ValueError(f"optimized_cross_attention needs exactly one context token (MobileVD Fig. 2), got "
                             f"{context.shape[1]}; pool the context to one token or build the config without it")
        if tuple(added_time_ids.shape) != (B, cfg.num_added_time_ids):
            raise ValueError(f"added_time_ids must have shape ({B}, {cfg.num_added_time_ids}) (SVD: fps, "
                             f"motion_bucket_id, noise_aug_strength), got {tuple(added_time_ids.shape)}")


class _BuildPlan:
    """Per-module build decisions from the config, looked up by module path (SVDUNetConfig's
    temporal_block_names / attention_layer_names orders)."""

    def __init__(self, config: SVDUNetConfig):
        self.config = config
        self.kept_temporal = set(config.temporal_block_names())
        layers = config.attention_layer_names(all_layers=True)
        qk = config.funnel_qk_dims or (0,) * len(layers)
        vo = config.funnel_vo_dims or (0,) * len(layers)
        self.attention_dims = {name: (q, v) for name, q, v in zip(layers, qk, vo)}

    def keeps(self, temporal_block: str) -> bool:
        return temporal_block in self.kept_temporal

    def dims(self, attention_layer: str) -> tuple[int, int]:
        """(q/k width, v/out width) of an attention layer, 0 = full width."""
        return self.attention_dims[attention_layer]


def timestep_sinusoid(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(N,) -> (N, dim) as (cos, sin) of t * max_period**(-i / (dim/2)) (diffusers `Timesteps` with
    flip_sin_to_cos=True, downscale_freq_shift=0)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (N, 1) * (1, half) -> (N, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (N, dim)


class TimestepMLP(nn.Module):
    """Linear-SiLU-Linear on a sinusoid (diffusers `TimestepEmbedding`). (N, in_dim) -> (N, out_dim)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int | None = None):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, hidden_dim)
        self.linear_2 = nn.Linear(hidden_dim, out_dim or hidden_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


# --------------------------------------------------------------------------------------
# 2. Down, mid and up blocks (all take and return frames (B*T, C, H, W))
# --------------------------------------------------------------------------------------
class DownBlock(nn.Module):
    """One down stage: layers_per_block x (SpatioTemporalResBlock [-> transformer]), then an optional
    Downsample. Returns the output and the skips it pushes (each layer's output, the downsampler's)."""

    def __init__(self, path: str, in_ch: int, out_ch: int, stage: int, plan: _BuildPlan, add_downsample: bool):
        super().__init__()
        cfg = plan.config
        attention = cfg.cross_attention[stage]
        eps = _EPS_ATTN_DOWN_AND_UP if attention else _EPS_OTHER
        self.resnets = nn.ModuleList(
            SpatioTemporalResBlock(f"{path}.resnets.{j}", in_ch if j == 0 else out_ch, out_ch, eps, plan)
            for j in range(cfg.layers_per_block))
        self.attentions = nn.ModuleList(
            TransformerSpatioTemporalModel(f"{path}.attentions.{j}", out_ch, cfg.num_attention_heads[stage], plan)
            for j in range(cfg.layers_per_block if attention else 0))
        halve = bool(cfg.temporal_downsample) and cfg.temporal_downsample[stage]
        self.downsamplers = nn.ModuleList([Downsample(out_ch, halve_time=halve)] if add_downsample else [])

    def forward(self, h: Tensor, emb: Tensor, context: Tensor, num_frames: int,
                frame_stride: int) -> tuple[Tensor, list[Tensor]]:
        states = []
        for j, resnet in enumerate(self.resnets):
            h = resnet(h, emb, num_frames)
            if len(self.attentions):
                h = self.attentions[j](h, context, num_frames, frame_stride)
            states.append(h)
        for downsampler in self.downsamplers:
            h = downsampler(h, num_frames)
            states.append(h)
        return h, states


class MidBlock(nn.Module):
    """SpatioTemporalResBlock -> transformer -> SpatioTemporalResBlock at the deepest stage."""

    def __init__(self, path: str, ch: int, plan: _BuildPlan):
        super().__init__()
        heads = plan.config.num_attention_heads[-1]
        self.resnets = nn.ModuleList(SpatioTemporalResBlock(f"{path}.resnets.{j}", ch, ch, _EPS_OTHER, plan)
                                     for j in range(2))
        self.attentions = nn.ModuleList([TransformerSpatioTemporalModel(f"{path}.attentions.0", ch, heads, plan)])

    def forward(self, h: Tensor, emb: Tensor, context: Tensor, num_frames: int, frame_stride: int) -> Tensor:
        h = self.resnets[0](h, emb, num_frames)
        h = self.attentions[0](h, context, num_frames, frame_stride)
        return self.resnets[1](h, emb, num_frames)


class UpBlock(nn.Module):
    """One up stage: layers_per_block + 1 x (concat skip -> SpatioTemporalResBlock [-> transformer]),
    then an optional Upsample to the next stage's resolution and frame count."""

    def __init__(self, path: str, in_ch: int, skip_chs: list[int], out_ch: int, stage: int, plan: _BuildPlan,
                 add_upsample: bool):
        super().__init__()
        cfg = plan.config
        self.resnets = nn.ModuleList(
            SpatioTemporalResBlock(f"{path}.resnets.{j}", (in_ch if j == 0 else out_ch) + skip, out_ch,
                                   _EPS_ATTN_DOWN_AND_UP, plan)
            for j, skip in enumerate(skip_chs))
        self.attentions = nn.ModuleList(
            TransformerSpatioTemporalModel(f"{path}.attentions.{j}", out_ch, cfg.num_attention_heads[stage], plan)
            for j in range(len(skip_chs) if cfg.cross_attention[stage] else 0))
        # The stage above this one was temporally downsampled into this one: double the frames back.
        double = stage > 0 and bool(cfg.temporal_downsample) and cfg.temporal_downsample[stage - 1]
        self.upsamplers = nn.ModuleList([Upsample(out_ch, double_time=double)] if add_upsample else [])

    def forward(self, h: Tensor, skips: list[Tensor], emb: Tensor, context: Tensor, num_frames: int,
                frame_stride: int, next_frames: int) -> Tensor:
        for j, (resnet, skip) in enumerate(zip(self.resnets, skips)):
            h = resnet(torch.cat([h, skip], dim=1), emb, num_frames)
            if len(self.attentions):
                h = self.attentions[j](h, context, num_frames, frame_stride)
        for upsampler in self.upsamplers:
            h = upsampler(h, num_frames, next_frames)
        return h


class Downsample(nn.Module):
    """Stride-2 3x3 conv, (B*T, C, H, W) -> (B*T', C, H/2, W/2); with halve_time (MobileVD temporal
    multiscaling) T' = ceil(T / 2), else T' = T. Frames are averaged in pairs before the conv: the
    conv is linear, so that equals pooling after it, at half the cost."""

    def __init__(self, ch: int, halve_time: bool = False):
        super().__init__()
        self.halve_time = halve_time
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, h: Tensor, num_frames: int) -> Tensor:
        if self.halve_time:
            h = halve_frames(h, num_frames)
        return self.conv(h)


class Upsample(nn.Module):
    """Nearest x2 then 3x3 conv, (B*T, C, H, W) -> (B*T_out, C, 2H, 2W); with double_time each
    frame is repeated twice, cut to T_out in {2T - 1, 2T} frames (the inverse of Downsample's
    frame count), after the conv (repeating commutes with it)."""

    def __init__(self, ch: int, double_time: bool = False):
        super().__init__()
        self.double_time = double_time
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, h: Tensor, num_frames: int, out_frames: int) -> Tensor:
        h = self.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        if self.double_time:
            h = double_frames(h, num_frames, out_frames)
        return h


def halve_frames(h: Tensor, num_frames: int) -> Tensor:
    """Average frames in pairs (0, 1), (2, 3), ...; an odd last frame is a group of its own.
    (B*T, C, H, W) -> (B*ceil(T/2), C, H, W)."""
    BT, C, H, W = h.shape
    v = h.reshape(BT // num_frames, num_frames, C * H * W)  # (B*T, C, H, W) -> (B, T, CHW): rank <= 5 for Core ML
    if num_frames % 2:
        v = torch.cat([v, v[:, -1:]], dim=1)  # the pair (last, last) averages to the last frame
    return v.unflatten(1, (-1, 2)).mean(dim=2).reshape(-1, C, H, W)  # (B, T/2, 2, CHW) -> (B*T/2, C, H, W)


def double_frames(h: Tensor, num_frames: int, out_frames: int) -> Tensor:
    """Repeat every frame twice and keep the first out_frames (nearest-neighbour in time).
    (B*T, C, H, W) -> (B*out_frames, C, H, W)."""
    BT, C, H, W = h.shape
    v = h.reshape(BT // num_frames, num_frames, C * H * W)  # (B*T, C, H, W) -> (B, T, CHW)
    return v.repeat_interleave(2, dim=1)[:, :out_frames].reshape(-1, C, H, W)  # (B, T_out, CHW) -> (B*T_out, C, H, W)


# --------------------------------------------------------------------------------------
# 3. SpatioTemporalResBlock: spatial resnet, temporal resnet, learned blend
# --------------------------------------------------------------------------------------
class SpatioTemporalResBlock(nn.Module):
    """x_s = ResnetBlock2D(x) per frame; x_t = TemporalResnetBlock(x_s) = x_s + r_t across frames;
    output alpha * x_s + (1 - alpha) * x_t = x_s + (1 - alpha) r_t (MobileVD Fig. 4a). A pruned
    temporal block (SVDUNetConfig.temporal_blocks) is not built and the output is x_s (Fig. 4b
    with gate 0). (B*T, C_in, H, W), emb (B, D) -> (B*T, C_out, H, W)."""

    def __init__(self, path: str, in_ch: int, out_ch: int, eps: float, plan: _BuildPlan):
        super().__init__()
        cfg = plan.config
        self.spatial_res_block = ResnetBlock2D(in_ch, out_ch, cfg.time_embed_dim, cfg.norm_groups, eps)
        self.temporal_res_block = self.time_mixer = None
        if plan.keeps(f"{path}.temporal_res_block"):
            self.temporal_res_block = TemporalResnetBlock(out_ch, cfg.time_embed_dim, cfg.norm_groups, eps)
            self.time_mixer = AlphaBlender()

    def forward(self, h: Tensor, emb: Tensor, num_frames: int) -> Tensor:
        x_s = self.spatial_res_block(h, emb, num_frames)
        if self.temporal_res_block is None:
            return x_s
        BT, C, H, W = x_s.shape
        v = x_s.view(BT // num_frames, num_frames, C, H, W).transpose(1, 2)  # (B*T, C, H, W) -> (B, C, T, H, W), a view
        v = gated(v, self.time_mixer(v, self.temporal_res_block(v, emb)), self.temporal_res_block.gate)
        return v.transpose(1, 2).reshape(BT, C, H, W)  # (B, C, T, H, W) -> (B*T, C, H, W)


class ResnetBlock2D(nn.Module):
    """GroupNorm-SiLU-conv3x3, + time embedding (added, SD style), GroupNorm-SiLU-conv3x3, plus a 1x1
    shortcut when the width changes. h (B*T, C_in, H, W), emb (B, D) -> (B*T, C_out, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, eps: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_emb_proj = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: Tensor, emb: Tensor, num_frames: int) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        BT, C, H, W = h.shape
        t = self.time_emb_proj(F.silu(emb))  # (B, C): one per sample, the same for all its frames
        h = h.view(BT // num_frames, num_frames, C, H, W) + t[:, None, :, None, None]  # (B*T, ...) -> (B, T, C, H, W)
        h = h.view(BT, C, H, W)  # (B, T, C, H, W) -> (B*T, C, H, W)
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class TemporalResnetBlock(nn.Module):
    """The temporal half: GroupNorm-SiLU-Conv3d (3, 1, 1), + time embedding, GroupNorm-SiLU-Conv3d
    (3, 1, 1), residual. GroupNorm statistics span all frames. v (B, C, T, H, W), emb (B, D) -> same."""

    def __init__(self, ch: int, emb_dim: int, groups: int, eps: float):
        super().__init__()
        self.gate: Tensor | None = None  # MobileVD Fig. 4b, set while learning which blocks to prune
        self.norm1 = nn.GroupNorm(groups, ch, eps=eps)
        self.conv1 = nn.Conv3d(ch, ch, (3, 1, 1), padding=(1, 0, 0))
        self.time_emb_proj = nn.Linear(emb_dim, ch)
        self.norm2 = nn.GroupNorm(groups, ch, eps=eps)
        self.conv2 = nn.Conv3d(ch, ch, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, v: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(v)))
        h = h + self.time_emb_proj(F.silu(emb))[:, :, None, None, None]  # (B, C) -> (B, C, 1, 1, 1)
        return v + self.conv2(F.silu(self.norm2(h)))


class AlphaBlender(nn.Module):
    """alpha * x_spatial + (1 - alpha) * x_temporal with alpha = sigmoid(mix_factor), a learned
    scalar (diffusers merge_strategy "learned_with_images" for video: image_only_indicator all 0;
    image-only batches, where alpha is 1, are not supported: give them T = 1 instead)."""

    def __init__(self, alpha: float = 0.5):
        super().__init__()
        self.mix_factor = nn.Parameter(torch.tensor([alpha]))

    def forward(self, x_spatial: Tensor, x_temporal: Tensor) -> Tensor:
        alpha = torch.sigmoid(self.mix_factor).to(x_spatial.dtype)
        return alpha * x_spatial + (1.0 - alpha) * x_temporal


def gated(x_spatial: Tensor, blended: Tensor, gate: Tensor | None) -> Tensor:
    """MobileVD Fig. 4b: x_s + z (1 - alpha) r_t, where blended = x_s + (1 - alpha) r_t is the
    AlphaBlender's output and z the block's 0/1 gate (a straight-through sample while pruning is
    learned, edgevid.compress.mobilevd); no gate = 1."""
    if gate is None:
        return blended
    return x_spatial + gate.to(blended.dtype) * (blended - x_spatial)


# --------------------------------------------------------------------------------------
# 4. TransformerSpatioTemporalModel: per-frame transformer, per-position temporal transformer
# --------------------------------------------------------------------------------------
class TransformerSpatioTemporalModel(nn.Module):
    """GroupNorm, proj_in, then per layer k: spatial BasicTransformerBlock over each frame's H*W
    tokens, then the temporal block over each position's T tokens (after adding a sinusoid-MLP
    embedding of the frame position) blended by one AlphaBlender, shared by the layers as in
    diffusers; proj_out and residual. h (B*T, C, H, W), context (B, L, D) -> same.

    A pruned temporal layer (SVDUNetConfig.temporal_blocks) is not built and that layer's output is
    the spatial one; with none kept, neither the position MLP nor the blender is built."""

    def __init__(self, path: str, ch: int, heads: int, plan: _BuildPlan):
        super().__init__()
        cfg = plan.config
        K, ctx = cfg.transformer_layers_per_block, cfg.cross_attention_dim
        self.norm = nn.GroupNorm(cfg.norm_groups, ch, eps=1e-6)
        self.proj_in = nn.Linear(ch, ch)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(f"{path}.transformer_blocks.{k}", ch, heads, ctx, plan) for k in range(K))
        # Keyed by layer index, so a kept layer has the state-dict keys of diffusers' ModuleList.
        self.temporal_transformer_blocks = nn.ModuleDict({
            str(k): TemporalBasicTransformerBlock(f"{path}.temporal_transformer_blocks.{k}", ch, heads, ctx, plan)
            for k in range(K) if plan.keeps(f"{path}.temporal_transformer_blocks.{k}")})
        self.time_pos_embed = self.time_mixer = None
        if len(self.temporal_transformer_blocks):
            self.time_pos_embed = TimestepMLP(ch, 4 * ch, ch)
            self.time_mixer = AlphaBlender()
        self.proj_out = nn.Linear(ch, ch)

    def forward(self, h: Tensor, context: Tensor, num_frames: int, frame_stride: int) -> Tensor:
        BT, C, H, W = h.shape
        B, T = BT // num_frames, num_frames
        x = self.norm(h).permute(0, 2, 3, 1).reshape(BT, H * W, C)  # (B*T, C, H, W) -> (B*T, H*W, C)
        x = self.proj_in(x)
        pos = None
        if self.time_pos_embed is not None:  # frame positions in input frames (SVDUNet.frame_counts)
            frames = torch.arange(T, device=h.device) * frame_stride
            pos = self.time_pos_embed(timestep_sinusoid(frames, C).to(x.dtype))  # (T, C)
        for k, block in enumerate(self.transformer_blocks):
            x = block(x, context)
            if str(k) in self.temporal_transformer_blocks:
                x_mix = (x.view(B, T, H * W, C) + pos[None, :, None, :]).view(BT, H * W, C)  # via (B, T, H*W, C)
                temporal = self.temporal_transformer_blocks[str(k)]
                x = gated(x, self.time_mixer(x, temporal(x_mix, context, T)), temporal.gate)
        x = self.proj_out(x)
        return x.view(BT, H, W, C).permute(0, 3, 1, 2) + h  # (B*T, H*W, C) -> (B*T, C, H, W)


class BasicTransformerBlock(nn.Module):
    """Pre-LayerNorm per-frame block: self-attention over H*W tokens, cross-attention to the context,
    GEGLU feed-forward. x (B*T, H*W, C), context (B, L, D) -> same."""

    def __init__(self, path: str, dim: int, heads: int, context_dim: int, plan: _BuildPlan):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, None, *plan.dims(f"{path}.attn1"))
        self.norm2, self.attn2 = make_cross_attention(dim, heads, context_dim, plan, f"{path}.attn2")
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        x = x + self.attn1(self.norm1(x))
        x = cross_attend(x, self.norm2, self.attn2, context)
        return x + self.ff(self.norm3(x))


class TemporalBasicTransformerBlock(nn.Module):
    """The same block across time: tokens are the T frames of one spatial position, with a GEGLU
    feed-forward (ff_in) before the attention. Cross-attention sees the sample's context (diffusers:
    the first frame's, which is the same tensor). x (B*T, S, C) with S = H*W, context (B, L, D) -> same."""

    def __init__(self, path: str, dim: int, heads: int, context_dim: int, plan: _BuildPlan):
        super().__init__()
        self.gate: Tensor | None = None  # MobileVD Fig. 4b, set while learning which blocks to prune
        self.norm_in = nn.LayerNorm(dim)
        self.ff_in = FeedForward(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, None, *plan.dims(f"{path}.attn1"))
        self.norm2, self.attn2 = make_cross_attention(dim, heads, context_dim, plan, f"{path}.attn2")
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: Tensor, context: Tensor, num_frames: int) -> Tensor:
        BT, S, C = x.shape
        B, T = BT // num_frames, num_frames
        h = x.view(B, T, S, C).transpose(1, 2).reshape(B * S, T, C)  # (B*T, S, C) -> (B*S, T, C)
        h = h + self.ff_in(self.norm_in(h))
        h = h + self.attn1(self.norm1(h))
        h = cross_attend(h, self.norm2, self.attn2, context)
        h = h + self.ff(self.norm3(h))
        return h.view(B, S, T, C).transpose(1, 2).reshape(BT, S, C)  # (B*S, T, C) -> (B*T, S, C)


# --------------------------------------------------------------------------------------
# 5. Attention and feed-forward
# --------------------------------------------------------------------------------------
class Attention(nn.Module):
    """Multi-head attention through F.scaled_dot_product_attention, without biases on q/k/v (as SD).
    Self-attention when context is None. x (N, L, C), context (N, S, D) -> (N, L, C).

    qk_dim / vo_dim (0 = C) are the inner widths of q/k and of v/out: a merged channel funnel
    (MobileVD Fig. 3) is a narrower inner width with the same heads, and the softmax keeps the full
    width's scale 1/sqrt(C / heads) so that the merged layer computes what the funnelled one did."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, qk_dim: int = 0, vo_dim: int = 0):
        super().__init__()
        qk_dim, vo_dim, context_dim = qk_dim or dim, vo_dim or dim, context_dim or dim
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.to_q = nn.Linear(dim, qk_dim, bias=False)
        self.to_k = nn.Linear(context_dim, qk_dim, bias=False)
        self.to_v = nn.Linear(context_dim, vo_dim, bias=False)
        self.to_out = nn.Linear(vo_dim, dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        context = x if context is None else context
        N, L, _ = x.shape
        q = self.to_q(x).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (N, L, qk) -> (N, heads, L, qk/heads)
        k = self.to_k(context).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (N, S, qk) -> (N, heads, S, qk/heads)
        v = self.to_v(context).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (N, S, vo) -> (N, heads, S, vo/heads)
        o = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (N, heads, L, vo/heads)
        return self.to_out(o.transpose(1, 2).reshape(N, L, -1))  # (N, heads, L, d) -> (N, L, vo)


class SingleTokenCrossAttention(nn.Module):
    """Cross-attention to a context of one token (MobileVD Fig. 2, "optimized cross-attention"): the
    softmax over one key is identically 1, so every query gets to_out(to_v(context)); there is no q,
    no k and no similarity map. context (B, 1, D) -> (B, 1, C), to broadcast over the queries."""

    def __init__(self, dim: int, context_dim: int, vo_dim: int = 0):
        super().__init__()
        self.to_v = nn.Linear(context_dim, vo_dim or dim, bias=False)
        self.to_out = nn.Linear(vo_dim or dim, dim)

    def forward(self, context: Tensor) -> Tensor:
        if context.shape[1] != 1:
            raise ValueError(f"SingleTokenCrossAttention needs a context of one token, got {context.shape[1]}; "
                             "build the model with optimized_cross_attention=False for longer contexts")
        return self.to_out(self.to_v(context))


def make_cross_attention(dim: int, heads: int, context_dim: int, plan: _BuildPlan,
                         path: str) -> tuple[nn.LayerNorm | None, nn.Module]:
    """(norm, attention) of a block's cross-attention; the optimized one needs no norm: its output
    does not depend on the queries."""
    qk_dim, vo_dim = plan.dims(path)
    if plan.config.optimized_cross_attention:
        return None, SingleTokenCrossAttention(dim, context_dim, vo_dim)
    return nn.LayerNorm(dim), Attention(dim, heads, context_dim, qk_dim, vo_dim)


def cross_attend(x: Tensor, norm: nn.LayerNorm | None, attn: nn.Module, context: Tensor) -> Tensor:
    """x + cross-attention of x's tokens to their sample's context. x (B*G, N, C) sample-major (frames
    or positions of one sample are consecutive), context (B, L, D). All G*N queries of a sample go
    in one call, so the context is never repeated per frame or per position."""
    B = context.shape[0]
    xs = x.reshape(B, -1, x.shape[-1])  # (B*G, N, C) -> (B, G*N, C)
    if norm is None:  # SingleTokenCrossAttention: (B, 1, C) broadcasts over the queries
        return (xs + attn(context)).view_as(x)
    return (xs + attn(norm(xs), context)).view_as(x)


class FeedForward(nn.Module):
    """GEGLU feed-forward (Shazeer 2020): proj to 2 x 4C, value * GELU(gate), out to C. (..., C) -> (..., C)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * mult * dim)
        self.out = nn.Linear(mult * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(value * F.gelu(gate))


# --------------------------------------------------------------------------------------
# 6. diffusers interop
# --------------------------------------------------------------------------------------
_DOWN_TYPES = {"CrossAttnDownBlockSpatioTemporal": True, "DownBlockSpatioTemporal": False}
_UP_TYPES = {True: "CrossAttnUpBlockSpatioTemporal", False: "UpBlockSpatioTemporal"}
_DIFFUSERS_KEYS = {"sample_size", "in_channels", "out_channels", "down_block_types", "up_block_types",
                   "block_out_channels", "addition_time_embed_dim", "projection_class_embeddings_input_dim",
                   "layers_per_block", "cross_attention_dim", "transformer_layers_per_block", "num_attention_heads",
                   "num_frames"}
# diffusers' module names that differ from ours: Attention.to_out is [Linear, Dropout], FeedForward.net
# is [GEGLU(proj), Dropout, Linear]. Everything else has the same name.
_DIFFUSERS_RENAMES = ((re.compile(r"\.to_out\.0\."), ".to_out."),
                      (re.compile(r"\.net\.0\.proj\."), ".proj."),
                      (re.compile(r"\.net\.2\."), ".out."))


def config_from_diffusers(diffusers_config: dict, **overrides: Any) -> SVDUNetConfig:
    """SVDUNetConfig of a diffusers UNetSpatioTemporalConditionModel config (its config.json), with
    `overrides` replacing fields (e.g. the MobileVD ones)."""
    cfg = {k: v for k, v in diffusers_config.items() if not k.startswith("_")}
    unknown = set(cfg) - _DIFFUSERS_KEYS
    if unknown:
        raise ValueError(f"diffusers config has keys SVDUNet does not know: {sorted(unknown)}; is it a "
                         "UNetSpatioTemporalConditionModel config?")
    default = SVDUNetConfig()
    down = tuple(cfg.get("down_block_types", ("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",)))
    if any(t not in _DOWN_TYPES for t in down):
        raise ValueError(f"diffusers down_block_types {down}: SVDUNet builds only {sorted(_DOWN_TYPES)}")
    cross = tuple(_DOWN_TYPES[t] for t in down)
    up = tuple(cfg.get("up_block_types", tuple(_UP_TYPES[c] for c in reversed(cross))))
    if up != tuple(_UP_TYPES[c] for c in reversed(cross)):
        raise ValueError(f"diffusers up_block_types {up} must mirror down_block_types {down}")
    n = len(down)
    add_dim = cfg.get("addition_time_embed_dim", default.addition_time_embed_dim)
    proj_dim = cfg.get("projection_class_embeddings_input_dim", 768)
    if proj_dim % add_dim:
        raise ValueError(f"diffusers projection_class_embeddings_input_dim={proj_dim} must be a multiple of "
                         f"addition_time_embed_dim={add_dim} (one sinusoid per added time id)")
    heads = cfg.get("num_attention_heads", default.num_attention_heads)
    fields = dict(
        in_channels=cfg.get("in_channels", default.in_channels),
        out_channels=cfg.get("out_channels", default.out_channels),
        block_out_channels=tuple(cfg.get("block_out_channels", default.block_out_channels)),
        layers_per_block=_one_value(cfg, "layers_per_block", default.layers_per_block),
        cross_attention=cross,
        num_attention_heads=(heads,) * n if isinstance(heads, int) else tuple(heads),
        cross_attention_dim=_one_value(cfg, "cross_attention_dim", default.cross_attention_dim),
        transformer_layers_per_block=_one_value(cfg, "transformer_layers_per_block", 1),
        addition_time_embed_dim=add_dim,
        num_added_time_ids=proj_dim // add_dim,
        norm_groups=32,  # hard-coded in diffusers
        num_frames=cfg.get("num_frames", default.num_frames),
    )
    return SVDUNetConfig(**{**fields, **overrides})


def load_diffusers_state_dict(model: SVDUNet, state_dict: dict[str, Tensor]) -> None:
    """Load a diffusers UNetSpatioTemporalConditionModel state dict (or an SVDUNet one) into `model`.

    Keys of modules that model.config does not build (pruned temporal blocks, the q/k and norm of
    optimized cross-attention) are dropped; any other missing or unexpected key, or a shape that
    does not fit (e.g. a funnelled layer given full-width weights: merge the funnels first), is a
    ValueError."""
    renamed = {}
    for key, value in state_dict.items():
        for pattern, new in _DIFFUSERS_RENAMES:
            key = pattern.sub(new, key)
        renamed[key] = value
    removed = removed_module_prefixes(model.config)
    kept = {k: v for k, v in renamed.items() if not k.startswith(removed)}
    own = model.state_dict()
    missing, unexpected = sorted(own.keys() - kept.keys()), sorted(kept.keys() - own.keys())
    if missing or unexpected:
        raise ValueError(f"state dict does not fit this SVDUNetConfig: {len(missing)} missing keys {missing[:3]}, "
                         f"{len(unexpected)} unexpected keys {unexpected[:3]}; build the config from the "
                         "checkpoint's config.json (SVDUNet.from_diffusers)")
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in kept.items() if v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"{len(wrong)} weights have the wrong shape, e.g. {wrong[0]}; funnelled layers "
                         "(funnel_qk_dims / funnel_vo_dims) need merged weights, not full-width ones")
    model.load_state_dict(kept, strict=True)


def removed_module_prefixes(config: SVDUNetConfig) -> tuple[str, ...]:
    """State-dict key prefixes of the modules that the full SVD layout has and `config` does not
    build: pruned temporal blocks (and the blender and position MLP of a transformer left with no
    temporal layer), and the q, k and norm of optimized cross-attention."""
    kept = set(config.temporal_block_names())
    prefixes = []
    transformers: dict[str, bool] = {}  # transformer path -> keeps a temporal layer
    for name in config.temporal_block_names(all_blocks=True):
        if name.endswith(".temporal_res_block"):
            if name not in kept:
                resnet = name.rsplit(".", 1)[0]
                prefixes += [f"{resnet}.temporal_res_block.", f"{resnet}.time_mixer."]
        else:
            transformer = name.rsplit(".", 2)[0]
            transformers[transformer] = transformers.get(transformer, False) or name in kept
            if name not in kept:
                prefixes.append(f"{name}.")
    for transformer, keeps_one in transformers.items():
        if not keeps_one:
            prefixes += [f"{transformer}.time_pos_embed.", f"{transformer}.time_mixer."]
    if config.optimized_cross_attention:
        for layer in config.attention_layer_names(all_layers=True):
            if layer.endswith(".attn2"):
                block = layer.rsplit(".", 1)[0]
                prefixes += [f"{layer}.to_q.", f"{layer}.to_k.", f"{block}.norm2."]
    return tuple(prefixes)


def _one_value(cfg: dict, key: str, default: int) -> int:
    """An int field that diffusers also accepts per block; SVDUNet needs one value for all blocks."""
    value = cfg.get(key, default)
    if isinstance(value, (list, tuple)):
        if len(set(map(str, value))) != 1:
            raise ValueError(f"diffusers {key}={value}: SVDUNet needs the same value for every block")
        value = value[0]
    if not isinstance(value, int):
        raise ValueError(f"diffusers {key}={value!r}: SVDUNet needs an int")
    return value


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"missing {path}: point from_diffusers at a folder written by save_pretrained") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"corrupt {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"corrupt {path}: expected a JSON object")
    return data


def _read_safetensors(folder: Path, variant: str | None) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    stem = "diffusion_pytorch_model" + (f".{variant}" if variant else "")
    single, index = folder / f"{stem}.safetensors", folder / f"{stem}.safetensors.index.json"
    if single.exists():
        return load_file(single)
    if index.exists():  # sharded: {"weight_map": {key: shard file}}
        state_dict = {}
        for shard in sorted(set(_read_json(index)["weight_map"].values())):
            state_dict.update(load_file(folder / shard))
        return state_dict
    raise ValueError(f"no {single.name} or {index.name} in {folder}; pass variant= for e.g. an fp16 checkpoint")
