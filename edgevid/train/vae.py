"""Video VAE training: clips -> vae_loss (reconstruction + KL + temporal) -> AdamW + EMA.

After training, the latent scale/shift are fitted so diffusion sees unit-variance latents.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from edgevid.config import VAEConfig, VAETrainConfig
from edgevid.models.vae import VideoVAE, fit_latent_normalization
from edgevid.models.vae_loss import vae_loss
from edgevid.train.ema import EMA
from edgevid.train.loop import prepare_run_dir, step_generator, train_loop


def train_vae(run_dir: str | Path, vae_config: VAEConfig, train_config: VAETrainConfig, source, *,
              data_description: dict | None = None, resume: bool = False, progress: bool = True,
              device: str | torch.device = "cpu", ema_decay: float = 0.999,
              normalization_batches: int = 8) -> VideoVAE:
    """Train (or resume) a VAE and return the EMA model with fitted latent normalisation."""
    from edgevid.data import make_batch

    cfg = train_config
    run_dir = prepare_run_dir(Path(run_dir), {
        "task": "vae", "vae": vae_config, "train": cfg, "data": data_description or {},
    }, resume)
    torch.manual_seed(cfg.seed)
    model = VideoVAE(vae_config).to(device)
    for frames, height, width in cfg.buckets:
        model.latent_shape(frames, cfg.crop_size or height, cfg.crop_size or width)  # fail before training on sizes the VAE cannot take
    ema = EMA(model, ema_decay)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))

    def sample_batch(step: int, g: torch.Generator) -> torch.Tensor:
        bucket = cfg.buckets[int(torch.randint(len(cfg.buckets), (1,), generator=g))]
        video, _ = make_batch(source, [step * cfg.batch_size + i for i in range(cfg.batch_size)], bucket)
        if cfg.crop_size:
            video = random_crop(video, cfg.crop_size, g)
        return video.to(device)  # (B, 3, T, H, W) in [-1, 1]

    def step_fn(step: int):
        g = step_generator(cfg.seed, step)
        return vae_loss(model, sample_batch(step, g), kl_weight=cfg.kl_weight, temporal_weight=cfg.temporal_weight,
                        generator=g)

    train_loop(run_dir=run_dir, model=model, optimizer=optimizer, ema=ema, step_fn=step_fn, total_steps=cfg.steps,
               base_lr=cfg.lr, warmup_steps=cfg.warmup_steps, lr_schedule=cfg.lr_schedule, grad_clip=cfg.grad_clip,
               checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, bf16=cfg.bf16, resume=resume,
               progress=progress, desc="train vae")

    trained = ema.model
    # Fit z_model = (z - shift) * scale on held-apart batches (steps beyond the training range).
    batches = (sample_batch(cfg.steps + i, step_generator(cfg.seed, cfg.steps + i)) for i in range(normalization_batches))
    scale, shift = fit_latent_normalization(trained, batches, per_channel=cfg.per_channel_normalization)
    final = VideoVAE(dataclasses.replace(vae_config, scaling_factor=scale, shift_factor=shift))
    final.load_state_dict(trained.state_dict())
    return final.eval()


def random_crop(video: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One random size x size window per clip (same window for all frames): (B, C, T, H, W) -> (B, C, T, size, size)."""
    B, _, _, H, W = video.shape
    ys = torch.randint(H - size + 1, (B,), generator=generator).tolist()
    xs = torch.randint(W - size + 1, (B,), generator=generator).tolist()
    return torch.stack([v[..., y:y + size, x:x + size] for v, y, x in zip(video, ys, xs)])
