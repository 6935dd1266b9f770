"""Time in rectified flow: t = 0 is data, t = 1 is pure noise (SnapGen-V §3.1).

Training draws t from a logit-normal (Eq. 3); sampling walks a decreasing grid from 1 to 0.
"""
from __future__ import annotations

import torch
from torch import Tensor


def interpolate(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """SnapGen-V Eq. 1: x_t = (1 - t) x0 + t eps. `t` is (B,) and broadcasts over the rest."""
    t = t.reshape(-1, *([1] * (x0.dim() - 1)))  # (B,) -> (B, 1, 1, 1, 1)
    return (1 - t) * x0 + t * noise


def logit_normal_t(batch: int, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> Tensor:
    """SnapGen-V Eq. 3: t = sigmoid(u), u ~ N(m, s^2), i.e. t has density pi(t; m, s)."""
    u = torch.randn(batch, generator=generator) * std + mean
    return torch.sigmoid(u).to(device)


def shift_time(t: Tensor, shift: float) -> Tensor:
    """Timestep shift (SD3 §5.3.2): shift > 1 spends more of the grid near the noise end."""
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def time_grid(num_steps: int, shift: float = 1.0) -> Tensor:
    """Decreasing grid 1 = t_0 > t_1 > ... > t_num_steps = 0, optionally shifted. Shape (num_steps + 1,)."""
    if num_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_steps}")
    return shift_time(torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64), shift).float()
