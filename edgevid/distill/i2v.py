"""Adversarial fine-tuning of an image-to-video denoiser to 1 (or k) steps (MobileVD §3.5, SF-V).

The recipe of edgevid.distill.train (SnapGen-V §3.3) with the image as the condition:
  1. t from the student's grid ({1} for one step), x_t = (1 - t) x0 + t eps, frame 0 = the image
  2. v = G(x_t, t | image); fake x̂_t' = x_t + (t' - t) v, real x_t' from x0, t' ~ logit-normal
  3. discriminator: hinge loss on the heads (Eq. 4)
  4. generator: adv_weight * E[D(x̂_t')] + recon_weight * pseudo-Huber(x̂0, x0) (Eq. 5-6), the
     given frame 0 excluded; then the EMA.
The discriminator (I2VDiscriminator) is the frozen teacher's encoder (conv_in over [x, image],
the down stages and the mid block, with the teacher's image token) and SnapGen-V's unified heads,
conditioned on the image token (projection discriminator) where the text-to-video heads take the
pooled prompt. SF-V and MobileVD use the same kind of discriminator: a frozen copy of the
teacher's encoder with trainable heads; SF-V's separate spatial/temporal heads are
DistillConfig.head = "separate".

The student need not share the teacher's architecture: `student` may be a compressed model
(edgevid.compress.mobilevd), trained from its own weights against the teacher's discriminator.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from edgevid.config import DistillConfig
from edgevid.distill.discriminator import HEADS
from edgevid.distill.losses import (
    discriminator_hinge_loss, fake_sample, generator_adversarial_loss, normalized_pseudo_huber_loss, predicted_x0,
)
from edgevid.distill.train import _check_finite, _mean, generator_timesteps
from edgevid.flow.schedule import interpolate, logit_normal_t
from edgevid.models.blocks import AttnSpec
from edgevid.models.i2v import Img2VidDenoiser, added_time_ids, latent_motion
from edgevid.models.vae import VideoVAE
from edgevid.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from edgevid.train.ema import EMA
from edgevid.train.i2v import NOISE_AUG_MAX, with_clean_image
from edgevid.train.latents import LatentBatches
from edgevid.train.loop import prepare_run_dir, step_generator


class I2VDiscriminator(nn.Module):
    """D(x (B, C, T, H, W), t' (B,), image_latent (B, C, H', W'), added_time_ids (B, 3)) -> a list of
    logit maps, one per down stage and one after the mid block, each (B*T_s, H_s, W_s). Only
    `heads` train; the backbone is a frozen copy of the teacher."""

    def __init__(self, teacher: Img2VidDenoiser, head: str = "unified", head_channels: int = 64):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"discriminator head must be one of {sorted(HEADS)}, got {head!r}")
        self.backbone = copy.deepcopy(teacher).requires_grad_(False).eval()
        cfg = teacher.config
        groups = 8 if head_channels % 8 == 0 else 1
        spec = AttnSpec(head_dim=min(32, head_channels), qk_norm=True, rope=True)
        widths = list(cfg.block_out_channels) + [cfg.block_out_channels[-1]]
        self.heads = nn.ModuleList(HEADS[head](w, head_channels, cfg.time_embed_dim, cfg.cross_attention_dim, groups,
                                               spec) for w in widths)

    def train(self, mode: bool = True) -> "I2VDiscriminator":
        super().train(mode)
        self.backbone.eval()  # frozen: never in training mode
        return self

    def forward(self, x: Tensor, t: Tensor, image_latent: Tensor, ids: Tensor) -> list[Tensor]:
        unet = self.backbone.unet
        B, C, T, H, W = x.shape
        token = self.backbone.image_embed(image_latent)  # (B, 1, D)
        cond = image_latent[:, :, None].expand(-1, -1, T, -1, -1)  # (B, C, H', W') -> (B, C, T, H', W')
        v = torch.cat([x, cond], dim=1)
        emb = unet.embed_time(t, ids)  # (B, D)
        h = unet.conv_in(v.reshape(B, 2 * C, T, H * W).transpose(1, 2).reshape(B * T, 2 * C, H, W))  # -> (B*T, 2C, H, W)
        stages = unet.frame_counts(T)
        logits = []
        for i, block in enumerate(unet.down_blocks):
            frames = stages[i][0]
            h, states = block(h, emb, token, *stages[i])
            feature = states[unet.config.layers_per_block - 1]  # the stage's output before its downsampler
            logits += self.heads[i](feature, emb.repeat_interleave(frames, dim=0), token[:, 0], frames)
        h = unet.mid_block(h, emb, token, *stages[-1])
        logits += self.heads[-1](h, emb.repeat_interleave(stages[-1][0], dim=0), token[:, 0], stages[-1][0])
        return logits


def distill_i2v(run_dir: str | Path, teacher: Img2VidDenoiser, vae: VideoVAE, source, cfg: DistillConfig, *,
                student: Img2VidDenoiser | None = None, data_description: dict | None = None, resume: bool = False,
                progress: bool = True, device: str | torch.device = "cpu",
                cache_dir: str | Path | None = None) -> tuple[Img2VidDenoiser, list[dict]]:
    """Fine-tune `student` (default: a copy of `teacher`) into a cfg.num_steps-step image-to-video
    model against `teacher`'s discriminator; returns (EMA student, log records of this call)."""
    from tqdm.auto import tqdm

    student = student if student is not None else teacher
    if teacher.config.out_channels != vae.config.latent_channels:
        raise ValueError("the teacher does not match the VAE's latent channels")
    run_dir = prepare_run_dir(Path(run_dir), {
        "task": "distill_i2v", "distill": cfg, "unet": student.config, "teacher_unet": teacher.config,
        "vae": vae.config, "data": data_description or {},
    }, resume)
    torch.manual_seed(cfg.seed)
    generator = copy.deepcopy(student).to(device).train().requires_grad_(True)
    disc = I2VDiscriminator(teacher, cfg.head, cfg.head_channels).to(device).train()
    vae = vae.to(device).eval().requires_grad_(False)
    ema = EMA(generator, cfg.ema_decay)
    optimizer = torch.optim.AdamW([
        {"params": list(generator.parameters()), "lr": cfg.generator_lr, "betas": cfg.generator_betas},
        {"params": list(disc.heads.parameters()), "lr": cfg.discriminator_lr, "betas": cfg.discriminator_betas},
    ], weight_decay=cfg.weight_decay)
    base_lrs = [cfg.generator_lr, cfg.discriminator_lr]
    trained = nn.ModuleDict({"generator": generator, "heads": disc.heads})  # what a checkpoint holds
    start = 0
    if resume and (ckpt := latest_checkpoint(run_dir)) is not None:
        start = int(load_checkpoint(ckpt, trained, optimizer, ema.model)["step"])
    batches = LatentBatches(vae, source, cfg.buckets, cfg.batch_size, cfg.num_clips, cfg.cache_latents, cfg.seed,
                            Path(cache_dir or Path(run_dir) / "latent_cache"), device)
    grid = generator_timesteps(cfg)  # (k,): [1.0] for one step
    records, log_path = [], Path(run_dir) / "log.jsonl"
    tick, tick_step = time.perf_counter(), start
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="distill i2v", disable=not progress,
               dynamic_ncols=True)
    for step in bar:
        warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        for group, lr in zip(optimizer.param_groups, base_lrs):
            group["lr"] = lr * warm
        g = step_generator(cfg.seed, step)
        x0, _ = batches(step, g)  # (B, C, T', H', W')
        B = x0.shape[0]
        image = x0[:, :, 0]  # (B, C, H', W'): the given first frame
        aug = NOISE_AUG_MAX * torch.rand(B, generator=g)
        image_aug = image + aug[:, None, None, None] * torch.randn(image.shape, generator=g)
        ids = added_time_ids(B, source.fps, 0.0, aug)
        ids[:, 1] = latent_motion(x0)

        def with_image(x):
            return torch.cat([image[:, :, None], x[:, :, 1:]], dim=2)  # frame 0 <- the clean image latent

        t = grid[torch.randint(len(grid), (B,), generator=g)].to(device)
        x_t = with_image(interpolate(x0, torch.randn(x0.shape, generator=g).to(x0), t))
        t_prime = logit_normal_t(B, cfg.disc_t_mean, cfg.disc_t_std, generator=g, device=device)
        x_real = with_image(interpolate(x0, torch.randn(x0.shape, generator=g).to(x0), t_prime))

        velocity = with_clean_image(lambda x, tt: generator(x, tt, image_aug, ids), image)(x_t, t)
        x_fake = with_image(fake_sample(x_t, t, t_prime, velocity))

        logs = {}
        optimizer.zero_grad(set_to_none=True)
        if cfg.adv_weight > 0:  # Eq. 4: only the heads get gradients
            real_logits = disc(x_real, t_prime, image_aug, ids)
            fake_logits = disc(x_fake.detach(), t_prime, image_aug, ids)
            d_loss = _mean([discriminator_hinge_loss(r, f) for r, f in zip(real_logits, fake_logits)])
            _check_finite(d_loss, step, "discriminator")
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(disc.heads.parameters(), cfg.grad_clip)
            optimizer.step()
            logs.update(d_loss=d_loss.item(), d_real=_mean([r.mean() for r in real_logits]).item(),
                        d_fake=_mean([f.mean() for f in fake_logits]).item())

        optimizer.zero_grad(set_to_none=True)  # Eq. 5 + 6, the given frame excluded from the reconstruction
        x0_hat = predicted_x0(x_t, t, velocity)
        recon = normalized_pseudo_huber_loss(x0_hat[:, :, 1:], x0[:, :, 1:], cfg.huber_c or None)
        g_loss = cfg.recon_weight * recon
        if cfg.adv_weight > 0:
            disc.heads.requires_grad_(False)
            adv = _mean([generator_adversarial_loss(f) for f in disc(x_fake, t_prime, image_aug, ids)])
            disc.heads.requires_grad_(True)
            g_loss = g_loss + cfg.adv_weight * adv
            logs["g_adv"] = adv.item()
        _check_finite(g_loss, step, "generator")
        g_loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(generator.parameters(), cfg.grad_clip)
        optimizer.step()
        ema.update(generator, step)

        done = step + 1
        record = {"step": done, "g_loss": g_loss.item(), "recon": recon.item(), **logs,
                  "grad_norm": grad_norm.item(), "frames": float(x0.shape[2])}
        records.append(record)
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            with open(log_path, "a") as f:
                f.write(json.dumps({**record, "sec_per_step": (now - tick) / (done - tick_step)}) + "\n")
            tick, tick_step = now, done
            bar.set_postfix(recon=f"{record['recon']:.4f}", d=f"{logs.get('d_loss', 0):.3f}")
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            save_checkpoint(run_dir, done, trained, optimizer, ema.model)
    bar.close()
    return ema.model, records
