"""The discriminator of latent adversarial fine-tuning (SnapGen-V §3.3, Fig. 2).

Backbone: a frozen copy of the teacher UNet's encoder (conv_in, down blocks, mid), run at the
discriminator's noise level t' with the prompt's tokens. Heads (the only trainable part): one
after each down stage and one after the mid block, each

    unified (SnapGen-V):  1x1 proj -> 2D ResBlock on frames (B*T merged) -> temporal self-attention
                          (H*W merged into the batch) -> per-position logit
    separate (SF-V):      a spatial head (1x1 proj -> 2D ResBlock -> logit) and a temporal head
                          (1x1 proj -> temporal 1D conv -> logit), each scored on its own

and conditioned on the pooled text embedding through a linear projection, as a projection
discriminator (Miyato & Koyama 2018): logit = w·h + <proj(text), h> / sqrt(C) at each position.
Low logits mean "real" (the paper's Eq. 4 convention; see losses.py).
"""
from __future__ import annotations

import copy
import math

from torch import Tensor, nn

from edgevid.models.blocks import AttnSpec, Conv1D, ResBlock, SelfAttention1D
from edgevid.models.unet import SpatioTemporalUNet


class _Logit(nn.Module):
    """h (N, C, H, W) per frame, text (N, D) per frame -> (N, H, W) logits with text projection."""

    def __init__(self, ch: int, text_dim: int):
        super().__init__()
        self.out = nn.Conv2d(ch, 1, 1)
        self.text = nn.Linear(text_dim, ch)

    def forward(self, h: Tensor, text: Tensor) -> Tensor:
        proj = self.text(text)[:, :, None, None]  # (N, D) -> (N, C, 1, 1)
        return self.out(h)[:, 0] + (h * proj).sum(dim=1) / math.sqrt(h.shape[1])  # (N, H, W)


def _frames_to_video(h: Tensor, T: int) -> Tensor:
    BT, C, H, W = h.shape
    return h.view(BT // T, T, C, H, W).transpose(1, 2)  # (B*T, C, H, W) -> (B, C, T, H, W)


def _video_to_frames(x: Tensor) -> Tensor:
    B, C, T, H, W = x.shape
    return x.transpose(1, 2).reshape(B * T, C, H, W)  # (B, C, T, H, W) -> (B*T, C, H, W)


class UnifiedHead(nn.Module):
    """SnapGen-V's spatial-temporal head: works for images (T = 1) and videos alike."""

    def __init__(self, in_ch: int, ch: int, emb_dim: int, text_dim: int, groups: int, spec: AttnSpec):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, ch, 1)
        self.res = ResBlock(ch, ch, emb_dim, groups)
        self.temporal = SelfAttention1D(ch, context_dim=text_dim, spec=spec, groups=groups)
        self.logit = _Logit(ch, text_dim)

    def forward(self, h: Tensor, emb: Tensor, text: Tensor, T: int) -> list[Tensor]:
        h = self.res(self.proj(h), emb)  # (B*T, ch, H, W)
        h = _video_to_frames(self.temporal(_frames_to_video(h, T), text))  # attention over T per position
        return [self.logit(h, text.repeat_interleave(T, dim=0))]  # [(B*T, H, W)]


class SeparateHeads(nn.Module):
    """SF-V's heads: a spatial one on frames and a temporal one (1D conv over T), scored apart."""

    def __init__(self, in_ch: int, ch: int, emb_dim: int, text_dim: int, groups: int, spec: AttnSpec):
        super().__init__()
        self.spatial_proj, self.temporal_proj = nn.Conv2d(in_ch, ch, 1), nn.Conv2d(in_ch, ch, 1)
        self.spatial = ResBlock(ch, ch, emb_dim, groups)
        self.temporal = Conv1D(ch, context_dim=text_dim, spec=spec, groups=groups)
        nn.init.normal_(self.temporal.conv.weight, std=0.02)  # Conv1D starts as identity; a head must see time
        self.spatial_logit, self.temporal_logit = _Logit(ch, text_dim), _Logit(ch, text_dim)

    def forward(self, h: Tensor, emb: Tensor, text: Tensor, T: int) -> list[Tensor]:
        text_frames = text.repeat_interleave(T, dim=0)  # (B, D) -> (B*T, D)
        s = self.spatial(self.spatial_proj(h), emb)
        tmp = _video_to_frames(self.temporal(_frames_to_video(self.temporal_proj(h), T), text))
        return [self.spatial_logit(s, text_frames), self.temporal_logit(tmp, text_frames)]


HEADS = {"unified": UnifiedHead, "separate": SeparateHeads}


class Discriminator(nn.Module):
    """D(x (B, C, T, H, W), t' (B,), context (B, L, D), mask (B, L), pooled (B, D)) -> list of
    logit maps, one or two per backbone stage, each (B*T, H_s, W_s). Only `heads` train."""

    def __init__(self, teacher: SpatioTemporalUNet, head: str = "unified", head_channels: int = 64):
        super().__init__()
        cfg = teacher.config
        if head not in HEADS:
            raise ValueError(f"discriminator head must be one of {sorted(HEADS)}, got {head!r}")
        if head_channels % cfg.norm_groups or head_channels % cfg.head_dim:
            raise ValueError(f"head_channels={head_channels} must be divisible by the UNet's norm_groups="
                             f"{cfg.norm_groups} and head_dim={cfg.head_dim}")
        # The backbone: deep copies, so that the generator (initialised from the same teacher)
        # can change while the discriminator's features stay those of the teacher.
        self.time_embed = copy.deepcopy(teacher.time_embed)
        self.conv_in = copy.deepcopy(teacher.conv_in)
        self.down_blocks = copy.deepcopy(teacher.down_blocks)
        self.downsamplers = copy.deepcopy(teacher.downsamplers)
        self.mid_block = copy.deepcopy(teacher.mid_block)
        self.mid_res = copy.deepcopy(teacher.mid_res)
        for module in self.backbone_modules():
            module.requires_grad_(False).eval()
        spec = AttnSpec(head_dim=cfg.head_dim, qk_norm=cfg.qk_norm, rope=cfg.rope)
        widths = list(cfg.channels) + [cfg.channels[-1]]  # one head per down stage, one after mid
        self.heads = nn.ModuleList(HEADS[head](w, head_channels, cfg.time_embed_dim, cfg.text_dim, cfg.norm_groups,
                                               spec) for w in widths)

    def backbone_modules(self) -> list[nn.Module]:
        return [self.time_embed, self.conv_in, self.down_blocks, self.downsamplers, self.mid_block, self.mid_res]

    def train(self, mode: bool = True) -> "Discriminator":
        super().train(mode)
        for module in self.backbone_modules():
            module.eval()  # frozen: never in training mode
        return self

    def forward(self, x: Tensor, t: Tensor, context: Tensor, context_mask: Tensor | None,
                pooled: Tensor) -> list[Tensor]:
        B, _, T, H, W = x.shape
        emb = self.time_embed(t).repeat_interleave(T, dim=0)  # (B, D) -> (B*T, D)
        h = self.conv_in(x.transpose(1, 2).reshape(B * T, -1, H, W))  # (B, C, T, H, W) -> (B*T, C, H, W)
        logits = []
        for i, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, emb, context, context_mask, T)
            logits += self.heads[i](h, emb, pooled, T)
            if i < len(self.downsamplers):
                h = self.downsamplers[i](h)
        h = self.mid_res(self.mid_block(h, emb, context, context_mask, T), emb)
        logits += self.heads[-1](h, emb, pooled, T)
        return logits
