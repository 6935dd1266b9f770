"""VAE training loss: a small function outside any trainer (STYLE.md #3).

No pretrained perceptual network (LPIPS) can be obtained here, so reconstruction is L1 + MSE
in pixel space; a temporal term on frame differences fights flicker.
"""
from __future__ import annotations

import torch
from torch import Tensor

from edgevid.models.vae import VideoVAE


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """PSNR in dB of two tensors in [-1, 1] (peak-to-peak 2), over all their values."""
    mse = (a.float() - b.float()).square().mean()
    return 10.0 * torch.log10(4.0 / mse.clamp_min(1e-10))


def temporal_difference_loss(recon: Tensor, target: Tensor) -> Tensor:
    """L1 between the frame-to-frame differences of recon and target, (B, C, T, H, W).

    Zero for single frames. Penalises flicker that a per-frame loss barely sees: a
    reconstruction whose error changes from frame to frame.
    """
    if recon.shape[2] < 2:
        return recon.new_zeros(())
    d_recon = recon[:, :, 1:] - recon[:, :, :-1]  # (B, C, T-1, H, W)
    d_target = target[:, :, 1:] - target[:, :, :-1]
    return (d_recon - d_target).abs().mean()


def vae_loss(
    vae: VideoVAE,
    video: Tensor,
    kl_weight: float,
    temporal_weight: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """(scalar loss, logs) for one batch of videos (B, 3, T, H, W) in [-1, 1].

    loss = L1 + MSE + kl_weight * KL / (values per sample) + temporal_weight * temporal.
    The KL is a per-sample sum divided by the number of pixel values, i.e. on the same
    per-value footing as the mean reconstruction loss; this is the SD/LDM VAE's ratio
    (summed NLL and summed KL, weight 1e-6), so VAETrainConfig.kl_weight=1e-6 means the same.
    """
    recon, posterior = vae(video, generator=generator)
    l1 = (recon - video).abs().mean()
    mse = (recon - video).square().mean()
    rec = l1 + mse
    kl = posterior.kl().mean()  # nats per sample
    kl_term = kl / video[0].numel()
    temporal = temporal_difference_loss(recon, video)
    loss = rec + kl_weight * kl_term + temporal_weight * temporal
    logs = {
        "rec": rec.item(),
        "kl": kl.item(),
        "temporal": temporal.item(),
        "psnr": psnr(recon.detach(), video).item(),
    }
    return loss, logs
