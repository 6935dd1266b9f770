"""The rectified-flow training loss, a small function outside the trainer (STYLE.md #3)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from edgevid.flow.schedule import interpolate, logit_normal_t

# velocity_fn(x_t (B, C, T, H, W), t (B,)) -> predicted velocity, same shape as x_t
VelocityFn = Callable[[Tensor, Tensor], Tensor]


def rectified_flow_loss(velocity_fn: VelocityFn, x0: Tensor, t_mean: float = 0.0, t_std: float = 1.0,
                        generator: torch.Generator | None = None) -> Tensor:
    """Conditional flow matching, SnapGen-V Eq. 1-3.

    t ~ logit-normal(m, s) (Eq. 3), x_t = (1 - t) x0 + t eps (Eq. 1), and the network
    regresses the conditional velocity u_t = eps - x0 (Eq. 2). Returns the mean squared error.
    """
    batch = x0.shape[0]
    t = logit_normal_t(batch, t_mean, t_std, generator=generator, device=x0.device)  # (B,)
    noise = torch.randn(x0.shape, generator=generator).to(x0)  # eps ~ N(0, I), same shape as x0
    x_t = interpolate(x0, noise, t)
    target = noise - x0  # SnapGen-V Eq. 2: u_t(x_t | x0) = eps - x0
    pred = velocity_fn(x_t, t)
    return torch.mean((pred.float() - target.float()) ** 2)
