"""Image-to-video training with rectified flow (issue 18; MobileVD's teacher, trained here).

    clips -> frozen VAE latents z (B, C, T', H', W'); the first latent frame z[:, :, 0] is the
    image (the causal VAE encodes frame 0 alone) -> rectified_flow_loss over the later frames,
    with the image latent clean in x_t's first frame, concatenated on channels and embedded as
    the one context token -> AdamW + EMA

Objective: rectified flow, not SVD's EDM. Every other part of edgevid (samplers, 4-step and
1-step adversarial distillation, the exporter's fixed time grid) is written for rectified flow,
and its straight paths are what few-step students need (SnapGen-V §3.1); the SVDUNet itself does
not care, it embeds whatever timestep it is given (timestep_scale).

The first frame is given, not generated: x_t's first latent frame is replaced by the clean image
latent before every network call (`with_clean_image`), in training and in sampling alike, and the
loss skips it. SVD instead noises all frames and relies on the concatenated latent; giving the
frame itself costs nothing and the model spends no capacity re-drawing a frame it was handed.
The concatenated copy gets SVD's noise augmentation (noise_aug_strength, also an added time id).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from edgevid.config import SVDUNetConfig, TrainConfig
from edgevid.flow.loss import rectified_flow_loss
from edgevid.models.i2v import Img2VidDenoiser, added_time_ids, latent_motion
from edgevid.models.vae import VideoVAE
from edgevid.train.ema import EMA
from edgevid.train.latents import LatentBatches, run_channel_weights
from edgevid.train.loop import prepare_run_dir, step_generator, train_loop

# Conditioning noise of the concatenated image latent, drawn per sample in training (SVD draws a
# log-normal sigma; a uniform range up to 0.1 keeps the image readable at every draw). Sampling
# uses NOISE_AUG_DEFAULT, SVD's default of 0.02.
NOISE_AUG_MAX = 0.1
NOISE_AUG_DEFAULT = 0.02


def with_clean_image(velocity_fn: Callable[[Tensor, Tensor], Tensor], image_latent: Tensor):
    """Wrap velocity_fn(x_t, t) so that x_t's first latent frame is always the clean image latent
    (B, C, H', W'): the known frame of image-to-video, at t = 0 whatever the step's t."""
    def velocity(x: Tensor, t: Tensor) -> Tensor:
        x = torch.cat([image_latent[:, :, None].to(x.dtype), x[:, :, 1:]], dim=2)  # frame 0 <- the image
        return velocity_fn(x, t)
    return velocity


class ImageAnchor:
    """The space the flow runs in, for a model with `SVDUNetConfig.residual_scale` s.

    s = 0: the latent itself (identity maps). s > 0: r = (x - a) / s, where a is the image latent
    at every latent frame - exactly the latent of the frozen video (the image repeated), which
    edgevid's causal VAE encodes as its first latent again at every later frame. The flow then
    goes from noise to the clip's *motion residual*: static regions are 0, and whatever error
    the model leaves is s times smaller in the latent the decoder sees. The network still reads
    a latent-space x (`from_flow`), so it sees an image-like input at every t."""

    def __init__(self, image_latent: Tensor, scale: float):
        self.image, self.scale = image_latent, float(scale)  # (B, C, H', W')

    def _anchor(self, x: Tensor) -> Tensor:
        return self.image[:, :, None].to(x.dtype).expand_as(x)

    def to_flow(self, x: Tensor) -> Tensor:
        return x if self.scale == 0 else (x - self._anchor(x)) / self.scale

    def from_flow(self, r: Tensor) -> Tensor:
        return r if self.scale == 0 else self._anchor(r) + self.scale * r

    def velocity(self, velocity_fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
        """A latent-space network call velocity_fn(x, t) as a velocity in the flow's space, with the
        clean image held in the first latent frame (with_clean_image)."""
        held = with_clean_image(velocity_fn, self.image)
        return held if self.scale == 0 else (lambda r, t: held(self.from_flow(r), t))


def with_residual_scale(model: Img2VidDenoiser, scale: float) -> Img2VidDenoiser:
    """`model` (its weights unchanged) declared to run its flow at `residual_scale` = scale."""
    import dataclasses

    config = dataclasses.replace(model.config, residual_scale=float(scale))
    model.config = config
    model.unet.config = config
    return model


def train_i2v(run_dir: str | Path, unet_config: SVDUNetConfig, train_config: TrainConfig, vae: VideoVAE, source, *,
              data_description: dict | None = None, resume: bool = False, progress: bool = True,
              device: str | torch.device = "cpu", init_model: Img2VidDenoiser | None = None,
              prune_keep: int = 0, cache_dir: str | Path | None = None
              ) -> tuple[Img2VidDenoiser, Img2VidDenoiser]:
    """Train (or resume) an image-to-video denoiser; returns (model, ema_model). The buckets of
    train_config must have >= 5 frames (2 latent frames): one given, at least one generated.

    prune_keep > 0 learns which temporal blocks to keep (MobileVD Fig. 4): the model gets a
    `temporal_gates` submodule (edgevid.compress.mobilevd.TemporalBlockGates, trained with it and
    checkpointed with it), and every step samples 0/1 gates for the blocks. `cache_dir` (default:
    RUN_DIR/latent_cache) lets several runs share encoded latents."""
    cfg = train_config
    if unet_config.out_channels != vae.config.latent_channels:
        raise ValueError(f"SVDUNetConfig.out_channels={unet_config.out_channels} but the VAE has "
                         f"{vae.config.latent_channels} latent channels")
    factor = 2 ** (len(unet_config.block_out_channels) - 1)
    for frames, height, width in cfg.buckets:
        _, latent_frames, lh, lw = vae.latent_shape(frames, height, width)  # raises on sizes the VAE cannot take
        if latent_frames < 2:
            raise ValueError(f"bucket {(frames, height, width)}: image-to-video needs >= 2 latent frames "
                             f"(>= {vae.num_frames(2)} video frames): the given one and one to generate")
        if lh % factor or lw % factor:
            raise ValueError(f"bucket {height}x{width}: latent {lh}x{lw} must be divisible by {factor}")
    run_dir = prepare_run_dir(Path(run_dir), {
        "task": "i2v", "unet": unet_config, "train": cfg, "vae": vae.config, "data": data_description or {},
    }, resume)

    torch.manual_seed(cfg.seed)
    model = (init_model if init_model is not None else Img2VidDenoiser(unet_config)).to(device)
    if prune_keep:
        from edgevid.compress.mobilevd import TemporalBlockGates

        model.temporal_gates = TemporalBlockGates(model.unet, prune_keep).to(device)
    vae = vae.to(device).eval().requires_grad_(False)
    ema = EMA(model, cfg.ema_decay)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    batch_latents = LatentBatches(vae, source, cfg.buckets, cfg.batch_size, cfg.num_clips, cfg.cache_latents,
                                  cfg.seed, Path(cache_dir or Path(run_dir) / "latent_cache"), device)

    channel_weight = run_channel_weights(Path(run_dir), cfg.channel_weighting, cfg.seed, vae, batch_latents)

    def step_fn(step: int):
        g = step_generator(cfg.seed, step)
        if prune_keep:
            model.temporal_gates.sample(g)  # 0/1 gates, straight-through gradients to the importances
        x0, _ = batch_latents(step, g)  # (B, C, T', H', W'); captions unused: the image is the prompt
        B = x0.shape[0]
        image = x0[:, :, 0]  # (B, C, H', W'): the causal VAE's first latent = frame 0 alone
        aug = NOISE_AUG_MAX * torch.rand(B, generator=g)  # (B,)
        image_aug = image + aug[:, None, None, None] * torch.randn(image.shape, generator=g)
        ids = added_time_ids(B, source.fps, 0.0, aug)
        ids[:, 1] = latent_motion(x0)  # the clip's own motion strength, (B,)
        weight = torch.ones_like(x0[:, :1])
        weight[:, :, 0] = 0.0  # the given frame is not a prediction
        if channel_weight is not None:
            weight = weight * channel_weight  # (B, C, T', H', W')
        space = ImageAnchor(image, model.config.residual_scale)
        velocity = space.velocity(lambda x, t: model(x, t, image_aug, ids))
        loss = rectified_flow_loss(velocity, space.to_flow(x0), cfg.t_mean, cfg.t_std, generator=g, weight=weight)
        return loss, {"frames": float(x0.shape[2]), "motion": float(ids[:, 1].mean())}

    train_loop(run_dir=run_dir, model=model, optimizer=optimizer, ema=ema, step_fn=step_fn, total_steps=cfg.steps,
               base_lr=cfg.lr, warmup_steps=cfg.warmup_steps, lr_schedule=cfg.lr_schedule, grad_clip=cfg.grad_clip,
               checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, bf16=cfg.bf16, resume=resume,
               progress=progress, desc="train i2v")
    if prune_keep:
        for m in (model, ema.model):
            m.temporal_gates.clear()
    return model, ema.model


def training_motion(run_dir: str | Path) -> float | None:
    """The median motion strength (`latent_motion`) of a train_i2v run's logged batches, or None
    when its log.jsonl has none. A model's default motion strength should be one it was trained
    on: the motion bucket id of its training clips is this data's, not SVD's ~127."""
    import json
    import statistics

    log = Path(run_dir) / "log.jsonl"
    if not log.is_file():
        return None
    values = [r["motion"] for r in map(json.loads, log.read_text().splitlines()) if "motion" in r]
    return float(statistics.median(values)) if values else None
