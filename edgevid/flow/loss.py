"""The rectified-flow training loss, a small function outside the trainer (STYLE.md #3)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from edgevid.flow.schedule import interpolate, logit_normal_t

# velocity_fn(x_t (B, C, T, H, W), t (B,)) -> predicted velocity, same shape as x_t
VelocityFn = Callable[[Tensor, Tensor], Tensor]


def rectified_flow_loss(velocity_fn: VelocityFn, x0: Tensor, t_mean: float = 0.0, t_std: float = 1.0,
                        generator: torch.Generator | None = None, weight: Tensor | None = None) -> Tensor:
    """Conditional flow matching, SnapGen-V Eq. 1-3.

    t ~ logit-normal(m, s) (Eq. 3), x_t = (1 - t) x0 + t eps (Eq. 1), and the network
    regresses the conditional velocity u_t = eps - x0 (Eq. 2). Returns the mean squared error.

    `weight` (broadcastable to x0, e.g. (B, 1, T, H, W), > 0) makes it a weighted mean: each
    latent element's squared error counts `weight` times. The minimiser at every element is
    still the conditional mean velocity (a positive per-element weight does not move the
    optimum of a pointwise MSE); it only shifts the gradient - and so a small model's capacity
    - towards the weighted regions (here: the objects, `latent_object_mask`).
    """
    batch = x0.shape[0]
    t = logit_normal_t(batch, t_mean, t_std, generator=generator, device=x0.device)  # (B,)
    noise = torch.randn(x0.shape, generator=generator).to(x0)  # eps ~ N(0, I), same shape as x0
    x_t = interpolate(x0, noise, t)
    target = noise - x0  # SnapGen-V Eq. 2: u_t(x_t | x0) = eps - x0
    pred = velocity_fn(x_t, t)
    err = (pred.float() - target.float()) ** 2  # (B, C, T, H, W)
    if weight is None:
        return torch.mean(err)
    weight = weight.float().expand_as(err)
    return torch.sum(weight * err) / torch.sum(weight)
