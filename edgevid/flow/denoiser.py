"""A thin wrapper that turns the velocity network into the callable samplers use (STYLE.md #2).

The UNet knows nothing about guidance or text; this wrapper binds the prompt embeddings
and applies classifier-free guidance.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class GuidedVelocity:
    """v(x, t) for one batch of prompts, with classifier-free guidance (Ho & Salimans 2022).

    v = v_uncond + g * (v_cond - v_uncond). With g == 1 (or no unconditional embeddings)
    it runs the network once per step; otherwise conditional and unconditional branches
    share one batched forward pass. Below `guidance_min_t` only the conditional branch runs, at
    half the cost (guidance in a limited interval, Kynkäänniemi et al. 2024; on ShapesBench,
    skipping it below t = 0.3 left the score unchanged: docs/LADDER.md).
    """

    def __init__(self, net: nn.Module, context: Tensor, context_mask: Tensor | None,
                 uncond_context: Tensor | None = None, uncond_mask: Tensor | None = None,
                 guidance_scale: float = 1.0, guidance_min_t: float = 0.0):
        self.net = net
        self.guidance_scale = float(guidance_scale)
        self.guidance_min_t = float(guidance_min_t)
        self.use_cfg = uncond_context is not None and self.guidance_scale != 1.0
        if self.use_cfg:
            context, context_mask = _stack_contexts(context, context_mask, uncond_context, uncond_mask)
        self.context, self.context_mask = context, context_mask
        self.time_embeddings: dict[float, Tensor] = {}

    @torch.no_grad()
    def precompute_time_embeddings(self, timesteps: Tensor) -> None:
        """The sampler's grid is fixed, so are the network's time embeddings: compute them once
        (SnapGen-V App. F) and pass them to every step instead of t. Needs `net.time_embedding`."""
        emb = self.net.time_embedding(timesteps.to(self.context.device))  # (S, D)
        self.time_embeddings = {float(t): e for t, e in zip(timesteps.tolist(), emb)}

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        if t.dim() == 0:
            t = t.expand(x.shape[0])  # scalar -> (B,)
        if self.use_cfg and float(t.max()) < self.guidance_min_t:  # conditional branch only
            B = x.shape[0]
            mask = None if self.context_mask is None else self.context_mask[:B]
            return self.net(x, t, self.context[:B], mask, **self._time_embedding(t, B))
        temb = self._time_embedding(t, 2 * x.shape[0] if self.use_cfg else x.shape[0])
        if not self.use_cfg:
            return self.net(x, t, self.context, self.context_mask, **temb)
        v = self.net(torch.cat([x, x]), torch.cat([t, t]), self.context, self.context_mask, **temb)  # (2B, C, T, H, W)
        v_cond, v_uncond = v.chunk(2)
        return v_uncond + self.guidance_scale * (v_cond - v_uncond)


    def _time_embedding(self, t: Tensor, batch: int) -> dict:
        """{"temb": (batch, D)} when every sample is at one precomputed time, else {} (computed in the net)."""
        if not self.time_embeddings:
            return {}
        key = float(t[0])
        if key not in self.time_embeddings or not bool((t == t[0]).all()):
            return {}
        return {"temb": self.time_embeddings[key].expand(batch, -1)}


def _stack_contexts(cond: Tensor, cond_mask: Tensor | None, uncond: Tensor, uncond_mask: Tensor | None):
    """Concatenate (B, L1, D) and (B, L2, D) text tokens along batch, padding to a common L."""
    batch = cond.shape[0]
    if uncond.shape[0] == 1 and batch > 1:
        uncond = uncond.expand(batch, -1, -1)
        uncond_mask = None if uncond_mask is None else uncond_mask.expand(batch, -1)
    if cond_mask is None:
        cond_mask = torch.ones(cond.shape[:2], dtype=torch.bool, device=cond.device)
    if uncond_mask is None:
        uncond_mask = torch.ones(uncond.shape[:2], dtype=torch.bool, device=uncond.device)
    length = max(cond.shape[1], uncond.shape[1])
    ctx = torch.cat([_pad_tokens(cond, length), _pad_tokens(uncond, length)])  # (2B, L, D)
    mask = torch.cat([_pad_mask(cond_mask, length), _pad_mask(uncond_mask, length)])  # (2B, L)
    return ctx, mask


def _pad_tokens(x: Tensor, length: int) -> Tensor:
    return torch.nn.functional.pad(x, (0, 0, 0, length - x.shape[1]))


def _pad_mask(m: Tensor, length: int) -> Tensor:
    return torch.nn.functional.pad(m, (0, length - m.shape[1]), value=False)
