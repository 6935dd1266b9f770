"""Samplers as plain functions over a velocity callable (STYLE.md #1).

A 4-step student differs from the 25-step teacher only in its time grid and weights.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

VelocityFn = Callable[[Tensor, Tensor], Tensor]
# callback(step_index, t, x) -> None, called after each step
StepCallback = Callable[[int, Tensor, Tensor], None]


@torch.no_grad()
def sample_euler(velocity_fn: VelocityFn, noise: Tensor, timesteps: Tensor,
                 callback: StepCallback | None = None) -> Tensor:
    """Integrate dx/dt = v(x, t) from timesteps[0] (noise, t=1) down to timesteps[-1] (data, t=0).

    x_{i+1} = x_i + (t_{i+1} - t_i) v(x_i, t_i); exact for a constant velocity field.
    """
    x = noise
    for i in range(len(timesteps) - 1):
        t, t_next = timesteps[i], timesteps[i + 1]
        v = velocity_fn(x, t.to(x.device).expand(x.shape[0]))
        x = x + (t_next - t).item() * v.to(x.dtype)
        if callback is not None:
            callback(i, t_next, x)
    return x


@torch.no_grad()
def sample_euler_with_prefix(velocity_fn: VelocityFn, noise: Tensor, timesteps: Tensor, prefix: Tensor,
                             callback: StepCallback | None = None, start: str = "noise") -> Tensor:
    """Euler integration of a latent clip (B, C, T, H, W) whose first P frames are known: `prefix`
    (B, C, P, H, W), e.g. the last latents of the previous chunk of a long video.

    Before every step the prefix frames are replaced by their forward-process sample at that
    time, (1 - t) prefix + t noise (Eq. 1, with the clip's own noise for those frames), so the
    network sees a consistent x_t and generates the other frames to continue them (temporal
    inpainting by replacement, as in SDEdit / RePaint). The result starts with `prefix` exactly.

    start="noise": the other frames start from pure noise at timesteps[0] (the plain sampler).
    start="hold": they start one step later, at t1 = timesteps[1], from the forward-process
    sample of a held last frame, (1 - t1) prefix[:, :, -1] + t1 noise (SDEdit from a static
    continuation): at a few steps replacement alone leaves the first step blind to the prefix
    (at t = 1 it is pure noise), so the continuation can jump at the border; starting from the
    prefix's own content removes that step, and saves one network call.
    """
    P = prefix.shape[2]
    if P >= noise.shape[2] or prefix.shape[:2] != noise.shape[:2] or prefix.shape[3:] != noise.shape[3:]:
        raise ValueError(f"prefix {tuple(prefix.shape)} must be the first frames of a longer clip {tuple(noise.shape)}")
    if start not in ("noise", "hold"):
        raise ValueError(f"start must be 'noise' or 'hold', got {start!r}")
    x = noise.clone()
    first = 0
    if start == "hold" and len(timesteps) > 2:
        first, t1 = 1, timesteps[1].item()
        x[:, :, P:] = (1 - t1) * prefix[:, :, -1:] + t1 * noise[:, :, P:]  # held last known frame, noised to t1
    for i in range(first, len(timesteps) - 1):
        t, t_next = timesteps[i], timesteps[i + 1]
        x[:, :, :P] = (1 - t.item()) * prefix + t.item() * noise[:, :, :P]
        v = velocity_fn(x, t.to(x.device).expand(x.shape[0]))
        x = x + (t_next - t).item() * v.to(x.dtype)
        if callback is not None:
            callback(i, t_next, x)
    x[:, :, :P] = prefix
    return x


def chunk_plan(num_latents: int, window: int, overlap: int, first: int = 0) -> list[tuple[int, int]]:
    """Latent-frame ranges [start, end) of chunk-wise generation of a long clip: chunks of `window`
    frames (the last one may be shorter), each starting with the last `overlap` frames of the one
    before. window <= 0 or num_latents <= window: one chunk.

    `first` > 0 makes the first chunk only that long (a short first chunk is denoised quickly, so
    streaming can show frames early); the next chunk then starts at max(0, first - overlap), i.e.
    it continues the whole first chunk when first <= overlap, and runs to `window` (or the end)."""
    if first < 0:
        raise ValueError(f"first must be >= 0, got {first}")
    unbounded = window <= 0
    if (unbounded or num_latents <= window) and not 0 < first < num_latents:
        return [(0, num_latents)]
    if not unbounded and not 0 < overlap < window:
        raise ValueError(f"overlap must be in [1, window - 1] = [1, {window - 1}], got {overlap}")
    if overlap < 1:
        raise ValueError(f"overlap must be >= 1, got {overlap}")
    span = num_latents if unbounded else window
    end = first if 0 < first < min(span, num_latents) else min(span, num_latents)
    plan = [(0, end)]
    while end < num_latents:
        start = max(0, end - overlap)
        end = min(start + span, num_latents)
        plan.append((start, end))
    return plan
