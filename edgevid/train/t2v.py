"""Text-to-video training with rectified flow (SnapGen-V §3.1-3.2).

clips + captions -> frozen VAE latents -> rectified_flow_loss(UNet) -> AdamW + EMA.
Image-video joint: each step draws one (frames, height, width) bucket; 1-frame buckets
are images, so lengths and aspect ratios mix across steps.
"""
from __future__ import annotations

from pathlib import Path

import torch

from edgevid.config import TrainConfig, UNetConfig
from edgevid.flow.loss import rectified_flow_loss
from edgevid.models.unet import SpatioTemporalUNet
from edgevid.models.vae import VideoVAE
from edgevid.text.base import TextEncoder
from edgevid.train.ema import EMA
from edgevid.train.latents import LatentBatches, run_channel_weights
from edgevid.train.loop import prepare_run_dir, step_generator, train_loop


def is_temporal(name: str) -> bool:
    """Whether a SpatioTemporalUNet parameter belongs to a temporal layer (`SpatioTemporalBlock.temporal`)."""
    return ".temporal." in f".{name}"


def parameter_groups(model: torch.nn.Module, spatial_lr_scale: float) -> list[dict]:
    """AdamW groups for SnapGen-V's staged training: temporal layers at the full rate, the rest at
    `spatial_lr_scale` of it (train_loop multiplies each group's lr by its lr_scale). At 0 the
    spatial parameters are frozen (requires_grad off, no optimizer state); at 1 one plain group."""
    if spatial_lr_scale == 1.0:
        return [{"params": list(model.parameters())}]
    temporal = [p for n, p in model.named_parameters() if is_temporal(n)]
    spatial = [p for n, p in model.named_parameters() if not is_temporal(n)]
    if not temporal:
        raise ValueError("spatial_lr_scale < 1 needs a UNet with temporal layers")
    if spatial_lr_scale == 0.0:
        for p in spatial:
            p.requires_grad_(False)
        return [{"params": temporal, "lr_scale": 1.0}]
    return [{"params": temporal, "lr_scale": 1.0}, {"params": spatial, "lr_scale": spatial_lr_scale}]


def train_t2v(run_dir: str | Path, unet_config: UNetConfig, train_config: TrainConfig, vae: VideoVAE,
              text_encoder: TextEncoder, source, *, data_description: dict | None = None, resume: bool = False,
              progress: bool = True, device: str | torch.device = "cpu",
              init_unet: SpatioTemporalUNet | None = None) -> tuple[SpatioTemporalUNet, SpatioTemporalUNet]:
    """Train (or resume) a UNet; returns (model, ema_model). `source` is a clip source (edgevid.data)."""
    from edgevid.text import PromptCache

    cfg = train_config
    if unet_config.text_dim != text_encoder.dim:
        raise ValueError(f"UNetConfig.text_dim={unet_config.text_dim} but the text encoder gives {text_encoder.dim}-d tokens")
    if unet_config.in_channels != vae.config.latent_channels:
        raise ValueError(f"UNetConfig.in_channels={unet_config.in_channels} but the VAE has {vae.config.latent_channels} latent channels")
    for frames, height, width in cfg.buckets:
        vae.latent_shape(frames, height, width)  # raises on sizes the VAE cannot take
        lh, lw = height // vae.config.spatial_compression, width // vae.config.spatial_compression
        if lh % unet_config.downsample_factor or lw % unet_config.downsample_factor:
            raise ValueError(f"bucket {height}x{width}: latent {lh}x{lw} must be divisible by {unet_config.downsample_factor}")
    run_dir = prepare_run_dir(Path(run_dir), {
        "task": "t2v", "unet": unet_config, "train": cfg, "vae": vae.config, "text_encoder": text_encoder.config,
        "data": data_description or {},
    }, resume)

    torch.manual_seed(cfg.seed)
    model = init_unet if init_unet is not None else SpatioTemporalUNet(unet_config)
    model.to(device)
    vae = vae.to(device).eval().requires_grad_(False)
    ema = EMA(model, cfg.ema_decay)
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.spatial_lr_scale), lr=cfg.lr, betas=cfg.betas,
                                  weight_decay=cfg.weight_decay)
    prompts = PromptCache(text_encoder)
    # Cached latents also go to disk inside the run: a resumed run (a new session, say) reads
    # them back instead of re-encoding, which on a CPU costs more than the training steps.
    batch_latents = LatentBatches(vae, source, cfg.buckets, cfg.batch_size, cfg.num_clips, cfg.cache_latents,
                                  cfg.seed, Path(run_dir) / "latent_cache", device)

    channel_weight = run_channel_weights(Path(run_dir), cfg.channel_weighting, cfg.seed, vae, batch_latents)

    def step_fn(step: int):
        g = step_generator(cfg.seed, step)
        x0, captions = batch_latents(step, g)
        # Drop prompts (-> "") at rate text_dropout so the model learns the unconditional
        # velocity that classifier-free guidance needs.
        drop = torch.rand(len(captions), generator=g) < cfg.text_dropout
        captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        text = prompts.encode(captions)
        context, mask = text.tokens.to(device), text.mask.to(device)
        weight = 1.0 + cfg.foreground_weight * batch_latents.object_masks() if cfg.foreground_weight else None
        if channel_weight is not None:
            weight = channel_weight if weight is None else weight * channel_weight
        loss = rectified_flow_loss(lambda x, t: model(x, t, context, mask), x0, cfg.t_mean, cfg.t_std, generator=g,
                                   weight=weight)  # weight: (B, 1 or C, T', H', W') or None
        return loss, {"frames": float(x0.shape[2])}

    train_loop(run_dir=run_dir, model=model, optimizer=optimizer, ema=ema, step_fn=step_fn, total_steps=cfg.steps,
               base_lr=cfg.lr, warmup_steps=cfg.warmup_steps, lr_schedule=cfg.lr_schedule, grad_clip=cfg.grad_clip,
               checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, bf16=cfg.bf16, resume=resume,
               progress=progress, desc="train t2v")
    return model, ema.model

