"""Losses of latent adversarial step distillation (SnapGen-V §3.3), small functions outside the loop.

Sign convention. SnapGen-V writes the hinge loss with the discriminator pushed *down* on real
samples and *up* on fake ones (Eq. 4: max(0, 1 + D(real)) + max(0, 1 - D(fake))), so a low score
means "real". The generator's loss, Eq. 5, is then E[D(fake)]: minimising it moves fakes towards
the real side. This is the usual hinge GAN (Lim & Ye 2017: relu(1 - D(real)) + relu(1 + D(fake)),
generator loss -D(fake)) with D negated; we keep the paper's signs so that Eq. 4 and 5 read as
printed, and the two are consistent with each other (tested).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def discriminator_hinge_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """SnapGen-V Eq. 4: E[max(0, 1 + D(x_t'))] + E[max(0, 1 - D(x̂_t'))]. Logits of any shape."""
    return torch.relu(1 + real_logits.float()).mean() + torch.relu(1 - fake_logits.float()).mean()


def generator_adversarial_loss(fake_logits: Tensor) -> Tensor:
    """SnapGen-V Eq. 5: E[D(x̂_t')] (low = judged real, see the module docstring)."""
    return fake_logits.float().mean()


def huber_c_default(dim: int) -> float:
    """c = 0.00054 * sqrt(d) for samples of dimension d (consistency training, used by SF-V)."""
    return 0.00054 * math.sqrt(dim)


def pseudo_huber_loss(x_hat: Tensor, x: Tensor, c: float | None = None) -> Tensor:
    """SnapGen-V Eq. 6: sqrt(||x̂0 - x0||_2^2 + c^2) - c per sample, averaged over the batch.

    The norm runs over every axis but the batch, so the loss grows like sqrt(d) with the sample
    dimension d; `normalized_pseudo_huber_loss` divides that out for mixed-size batches.
    c=None: huber_c_default(d).
    """
    diff = (x_hat.float() - x.float()).flatten(1)  # (B, C, T, H, W) -> (B, d)
    if c is None:
        c = huber_c_default(diff.shape[1])
    sq = diff.pow(2).sum(dim=1)  # ||x̂0 - x0||^2, (B,)
    # sqrt(sq + c^2) - c, written as sq / (sqrt(sq + c^2) + c): the same value without the
    # cancellation that loses small errors in float32.
    return (sq / (torch.sqrt(sq + c * c) + c)).mean()


def normalized_pseudo_huber_loss(x_hat: Tensor, x: Tensor, c: float | None = None) -> Tensor:
    """Eq. 6 divided by sqrt(d): the same gradient direction, but a weight that means the same for
    a 1-frame 64x64 image and a 121-frame video (buckets of very different d mix in training)."""
    return pseudo_huber_loss(x_hat, x, c) / math.sqrt(x[0].numel())


def fake_sample(x_t: Tensor, t: Tensor, t_prime: Tensor, velocity: Tensor) -> Tensor:
    """SnapGen-V §3.3: x̂_t' = x_t + (t' - t) G(x_t, t). t and t' are (B,)."""
    dt = (t_prime - t).reshape(-1, *([1] * (x_t.dim() - 1)))  # (B,) -> (B, 1, 1, 1, 1)
    return x_t + dt * velocity


def predicted_x0(x_t: Tensor, t: Tensor, velocity: Tensor) -> Tensor:
    """SnapGen-V §3.3: x̂0 = x_t - t G(x_t, t) (exact when G is the true velocity eps - x0)."""
    return x_t - t.reshape(-1, *([1] * (x_t.dim() - 1))) * velocity
