"""The image-to-video denoiser: SVD's conditioning around an SVDUNet (MobileVD §3, SVD §4).

    image latent z_img (B, C, H', W') --+--> repeated over frames, concatenated to x_t on channels
                                        +--> LatentImageEmbedder --> one context token (B, 1, D)
    x_t (B, C, T', H', W'), t, added_time_ids (fps, motion, noise_aug) --> SVDUNet --> velocity

SVD takes its single context token from CLIP's image encoder. No CLIP weights can be had here
(DESIGN.md), so a small conv net over the same conditioning latent learns that token with the
denoiser. The network knows nothing about flow math; edgevid.flow and edgevid.train.i2v do.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from edgevid.config import SVDUNetConfig
from edgevid.models.svd_unet import SVDUNet


class LatentImageEmbedder(nn.Module):
    """(B, C, H', W') conditioning latent -> (B, 1, dim): two 3x3 convs (the second stride 2), a
    global mean over positions, a linear layer and a LayerNorm (the token's scale is then that of
    a normalised text/CLIP embedding)."""

    def __init__(self, latent_channels: int, dim: int, width: int = 64):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(latent_channels, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),
        )
        self.proj = nn.Linear(2 * width, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, z: Tensor) -> Tensor:
        h = self.convs(z).mean(dim=(2, 3))  # (B, 2w, H'/2, W'/2) -> (B, 2w)
        return self.norm(self.proj(h))[:, None]  # (B, 1, dim)


class Img2VidDenoiser(nn.Module):
    """x (B, C, T', H', W'), t (B,) or scalar, image_latent (B, C, H', W') (the clean, or
    noise-augmented, latent of the first frame), added_time_ids (B, num_added_time_ids)
    -> velocity (B, C, T', H', W'). config.in_channels must be 2 * out_channels (SVD's concat)."""

    def __init__(self, config: SVDUNetConfig):
        super().__init__()
        if config.in_channels != 2 * config.out_channels:
            raise ValueError(f"an image-to-video SVDUNetConfig takes the noisy latent and the image latent "
                             f"concatenated: in_channels must be 2 * out_channels = {2 * config.out_channels}, "
                             f"got {config.in_channels}")
        self.config = config
        self.unet = SVDUNet(config)
        self.image_embed = LatentImageEmbedder(config.out_channels, config.cross_attention_dim)

    def with_unet(self, unet: SVDUNet) -> "Img2VidDenoiser":
        """The same image embedder around another SVDUNet (a compressed one: edgevid.compress.mobilevd)."""
        model = Img2VidDenoiser(unet.config)
        model.unet = unet
        model.image_embed.load_state_dict(self.image_embed.state_dict())
        return model.train(self.training)

    def forward(self, x: Tensor, t: Tensor, image_latent: Tensor, added_time_ids: Tensor) -> Tensor:
        if image_latent.ndim != 4 or image_latent.shape[:2] != x.shape[:2] or image_latent.shape[2:] != x.shape[3:]:
            raise ValueError(f"image_latent must be (B, C, H', W') = {(x.shape[0], x.shape[1], *x.shape[3:])} for "
                             f"x {tuple(x.shape)}, got {tuple(image_latent.shape)}")
        cond = image_latent[:, :, None].expand(-1, -1, x.shape[2], -1, -1)  # (B, C, H', W') -> (B, C, T', H', W')
        return self.unet(torch.cat([x, cond], dim=1), t, self.image_embed(image_latent), added_time_ids)


def added_time_ids(batch: int, fps: float, motion_bucket_id: float, noise_aug_strength: float | Tensor,
                   device: torch.device | str = "cpu") -> Tensor:
    """SVD's micro-conditioning, (B, 3): fps, motion bucket and the conditioning noise level."""
    aug = torch.as_tensor(noise_aug_strength, dtype=torch.float32, device=device).expand(batch)
    ids = torch.tensor([fps, motion_bucket_id], dtype=torch.float32, device=device).expand(batch, 2)
    return torch.cat([ids, aug[:, None]], dim=1)


def latent_motion(z: Tensor) -> Tensor:
    """(B, C, T', H', W') -> (B,): how far the clip moves from its first frame, the mean absolute
    difference of the later latent frames from the first, x 100 (a motion bucket id in ~[0, 255]
    for normalised latents). SVD derives its motion bucket from optical flow; the latent is what
    the denoiser sees anyway."""
    if z.shape[2] < 2:
        return torch.zeros(z.shape[0], device=z.device)
    return 100.0 * (z[:, :, 1:] - z[:, :, :1]).abs().mean(dim=(1, 2, 3, 4))
