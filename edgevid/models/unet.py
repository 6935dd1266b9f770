"""The denoiser: a spatio-temporal UNet predicting the rectified-flow velocity (SnapGen-V §3.2).

The network knows nothing about flow math (DESIGN.md): it maps (x_t, t, text) to a tensor of the
shape of x_t; edgevid.flow turns it into a denoiser. Spatial layers see frames merged into the
batch, (B*T, C, H, W); the temporal layers of each stage (any mix from blocks.TEMPORAL_LAYERS,
chosen by the config) see (B, C, T, H, W). Time is never downsampled, so any T >= 1 works.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgevid.config import UNetConfig
from edgevid.models.blocks import (
    TEMPORAL_LAYERS,
    AttnSpec,
    Downsample,
    ResBlock,
    SpatialTransformer,
    TextRefinerLayer,
    TimestepEmbedding,
    Upsample,
)


class SpatioTemporalBlock(nn.Module):
    """ResBlock -> [spatial transformer] -> temporal layers. h (B*T, C_in, H, W) -> (B*T, C_out, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, attention: bool, temporal: tuple[str, ...],
                 config: UNetConfig, spec: AttnSpec, hidden_ch: int | None = None):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, config.time_embed_dim, config.norm_groups, hidden_ch)
        self.transformer = SpatialTransformer(out_ch, config.text_dim, spec) if attention else None
        self.temporal = nn.ModuleList(
            TEMPORAL_LAYERS[kind](out_ch, context_dim=config.text_dim, spec=spec, groups=config.norm_groups)
            for kind in temporal
        )

    def forward(self, h: Tensor, emb: Tensor, context: Tensor, context_mask: Tensor | None,
                num_frames: int) -> Tensor:
        h = self.res(h, emb)
        if self.transformer is not None:
            h = self.transformer(h, context, context_mask, num_frames)
        if len(self.temporal):
            BT, C, H, W = h.shape
            x = h.view(BT // num_frames, num_frames, C, H, W).transpose(1, 2)  # (B*T, C, H, W) -> (B, C, T, H, W), a view
            for layer in self.temporal:
                x = layer(x, context, context_mask)
            h = x.transpose(1, 2).reshape(BT, C, H, W).contiguous()  # (B, C, T, H, W) -> (B*T, C, H, W)
        return h


class SpatioTemporalUNet(nn.Module):
    """x (B, in_channels, T, H, W), t (B,) in [0, 1] (t=1 is pure noise), context (B, L, text_dim),
    context_mask (B, L) bool (True = real token), float (1 = real token, 0 = padding; each row with
    one real token at least) or None -> velocity (B, out_channels, T, H, W).

    Stage i works at resolution / 2**i: num_res_blocks[i] SpatioTemporalBlocks, then a stride-2
    Downsample (except after the last stage). Mid: block (ResBlock, [transformer], mid temporal
    layers) + ResBlock. Up path mirrors it with num_res_blocks[i] + 1 blocks per stage, each
    concatenating one skip (SD UNet layout). The output conv is zero-initialised.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        spec = AttnSpec(head_dim=config.head_dim, qk_norm=config.qk_norm, rope=config.rope)
        ch = config.channels
        n = len(ch)
        hidden = config.res_hidden_channels or ch

        self.time_embed = TimestepEmbedding(config.time_embed_dim)
        self.text_embed = None
        if config.pooled_text:  # pooled prompt -> time-embedding space; zero output at init
            self.text_embed = nn.Sequential(nn.Linear(config.text_dim, config.time_embed_dim), nn.SiLU(),
                                            nn.Linear(config.time_embed_dim, config.time_embed_dim))
            nn.init.zeros_(self.text_embed[2].weight)
            nn.init.zeros_(self.text_embed[2].bias)
        # Trainable layers over the frozen text tokens (binding); identity at init.
        text_spec = AttnSpec(head_dim=config.head_dim, qk_norm=config.qk_norm, rope=False)
        self.text_refiner = nn.ModuleList(TextRefinerLayer(config.text_dim, text_spec)
                                          for _ in range(config.text_refiner_layers))
        self.conv_in = nn.Conv2d(config.in_channels, ch[0], 3, padding=1)

        # Down path; skip_ch records the width of every skip in push order.
        self.down_blocks, self.downsamplers = nn.ModuleList(), nn.ModuleList()
        skip_ch, width = [ch[0]], ch[0]
        for i in range(n):
            blocks = nn.ModuleList()
            for _ in range(config.num_res_blocks[i]):
                blocks.append(SpatioTemporalBlock(width, ch[i], config.spatial_attention[i],
                                                  config.temporal_layers[i], config, spec, hidden[i]))
                width = ch[i]
                skip_ch.append(width)
            self.down_blocks.append(blocks)
            if i < n - 1:
                self.downsamplers.append(Downsample(width))
                skip_ch.append(width)

        self.mid_block = SpatioTemporalBlock(width, width, config.mid_attention, config.mid_temporal_layers,
                                             config, spec)
        self.mid_res = ResBlock(width, width, config.time_embed_dim, config.norm_groups)

        # Up path, deepest stage first; each block eats one skip.
        self.up_blocks, self.upsamplers = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(n)):
            blocks = nn.ModuleList()
            for _ in range(config.num_res_blocks[i] + 1):
                blocks.append(SpatioTemporalBlock(width + skip_ch.pop(), ch[i], config.spatial_attention[i],
                                                  config.temporal_layers[i], config, spec, hidden[i]))
                width = ch[i]
            self.up_blocks.append(blocks)
            if i > 0:
                self.upsamplers.append(Upsample(width))
        assert not skip_ch, "every skip must be consumed"

        self.norm_out = nn.GroupNorm(config.norm_groups, width)
        self.conv_out = nn.Conv2d(width, config.out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # start by predicting zero velocity
        nn.init.zeros_(self.conv_out.bias)

    def time_embedding(self, t: Tensor) -> Tensor:
        """(B,) time in [0, 1] -> (B, time_embed_dim). Precompute it for a fixed step grid and
        pass it to forward(..., temb=...) to skip the MLP (SnapGen-V App. F)."""
        return self.time_embed(t)

    def forward(self, x: Tensor, t: Tensor, context: Tensor, context_mask: Tensor | None = None,
                temb: Tensor | None = None) -> Tensor:
        self._check_inputs(x, t, context, context_mask, temb)
        B, _, T, H, W = x.shape
        for layer in self.text_refiner:
            context = layer(context, context_mask)  # (B, L, text_dim)
        if temb is None:
            temb = self.time_embedding(t.expand(B) if t.ndim == 0 else t)
        if self.text_embed is not None:
            temb = temb + self.text_embed(pooled_tokens(context, context_mask))  # (B, D)
        # (B, D) -> (B*T, D), frame-major like h; one sample's (1, D) broadcasts over its frames
        emb = temb if B == 1 else temb.repeat_interleave(T, dim=0)
        # (B, C, T, H, W) -> (B*T, C, H, W), as a 4-D transpose: litert-torch 0.10 miscompiles a 5-D
        # transpose of a graph input that feeds a conv (docs/EXPORT.md)
        h = x.reshape(B, -1, T, H * W).transpose(1, 2).reshape(B * T, -1, H, W)
        h = self.conv_in(h)

        skips = [h]
        for i, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, emb, context, context_mask, T)
                skips.append(h)
            if i < len(self.downsamplers):
                h = self.downsamplers[i](h)
                skips.append(h)

        h = self.mid_block(h, emb, context, context_mask, T)
        h = self.mid_res(h, emb)

        for i, blocks in enumerate(self.up_blocks):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb, context, context_mask, T)
            if i < len(self.upsamplers):
                h = self.upsamplers[i](h)

        h = self.conv_out(F.silu(self.norm_out(h)))  # (B*T, C_out, H, W)
        return h.view(B, T, -1, H, W).transpose(1, 2).contiguous()  # (B*T, C, H, W) -> (B, C, T, H, W)

    def _check_inputs(self, x: Tensor, t: Tensor, context: Tensor, context_mask: Tensor | None,
                      temb: Tensor | None) -> None:
        cfg = self.config
        if x.ndim != 5:
            raise ValueError(f"x must be a video latent (B, C, T, H, W), got shape {tuple(x.shape)}; "
                             "add a frame axis of size 1 for images")
        B, C, T, H, W = x.shape
        if C != cfg.in_channels:
            raise ValueError(f"x has {C} channels but UNetConfig.in_channels={cfg.in_channels}; "
                             "check the VAE's latent_channels against the UNet config")
        f = cfg.downsample_factor
        if H % f or W % f:
            raise ValueError(f"latent H, W = {H}, {W} must be divisible by {f} (2 ** (stages - 1)); "
                             f"pick a pixel size divisible by {f} x the VAE's spatial compression, "
                             f"e.g. latent {H + (-H) % f}x{W + (-W) % f}")
        if temb is None and not (t.ndim == 0 or t.shape == (B,)):
            raise ValueError(f"t must have shape ({B},) or be a scalar, got {tuple(t.shape)}")
        if temb is not None and tuple(temb.shape) != (B, cfg.time_embed_dim):
            raise ValueError(f"temb must have shape ({B}, {cfg.time_embed_dim}) as returned by "
                             f"time_embedding(t), got {tuple(temb.shape)}")
        if context.ndim != 3 or context.shape[0] != B or context.shape[2] != cfg.text_dim:
            raise ValueError(f"context must have shape ({B}, L, {cfg.text_dim}) (text_dim from UNetConfig), "
                             f"got {tuple(context.shape)}; is the text encoder's width the one the UNet was built for?")
        if context_mask is not None and ((context_mask.dtype != torch.bool and not context_mask.is_floating_point())
                                         or tuple(context_mask.shape) != tuple(context.shape[:2])):
            raise ValueError(f"context_mask must be a bool (True = real token) or float (1 = real token) tensor of "
                             f"shape {tuple(context.shape[:2])}, got {context_mask.dtype} {tuple(context_mask.shape)}")


def pooled_tokens(context: Tensor, mask: Tensor | None) -> Tensor:
    """Masked mean of text tokens (B, L, D) -> (B, D); an all-padding row (no text) gives zeros."""
    if mask is None:
        return context.mean(dim=1)
    m = mask.to(context.dtype)[..., None]  # (B, L, 1)
    return (context * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
