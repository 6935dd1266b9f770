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
