"""Latent adversarial fine-tuning to a few-step, guidance-free student (SnapGen-V §3.3, Fig. 4).

Per step, for a batch of clean latents x0 and their captions:
  1. t from the generator grid {T_1 = 1, ..., T_k}, x_t = (1 - t) x0 + t eps           (Eq. 1)
  2. v = G(x_t, t); fake x̂_t' = x_t + (t' - t) v, real x_t' = (1 - t') x0 + t' eps',
     t' ~ logit-normal(m, s)                                                         (Eq. 3)
  3. discriminator step on the heads: hinge loss on (x_t', x̂_t'.detach())           (Eq. 4)
  4. generator step: adv_weight * E[D(x̂_t')] + recon_weight * pseudo-Huber(x̂0, x0)  (Eq. 5, 6)
     with x̂0 = x_t - t v; then the generator's EMA (decay 0.95, §4).
x0 are encoded clips, or with cfg.teacher_data the teacher's guided samples for the clips' captions
(LADD's synthetic data; `synthetic.TeacherSamples`; with cfg.teacher_attempts > 1 rejection-sampled
by a verifier), with cfg.paired_noise eps = their own noise. With cfg.teacher_targets the
reconstruction target is the teacher's guided solve from x_t instead of x0 (`synthetic.TeacherTargets`).
One AdamW holds both parameter groups (generator: betas 0.9/0.999, heads: 0.5/0.999, §4); each
phase leaves the other's gradients unset, and AdamW skips parameters without a gradient.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from edgevid.config import DistillConfig
from edgevid.distill.discriminator import Discriminator
from edgevid.distill.losses import (
    discriminator_hinge_loss,
    fake_sample,
    generator_adversarial_loss,
    normalized_pseudo_huber_loss,
    predicted_x0,
)
from edgevid.distill.synthetic import StaticAttributeVerifier, TeacherSamples, TeacherTargets
from edgevid.flow.schedule import interpolate, logit_normal_t, time_grid
from edgevid.models.unet import SpatioTemporalUNet
from edgevid.models.vae import VideoVAE
from edgevid.text.base import TextEncoder
from edgevid.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from edgevid.train.ema import EMA
from edgevid.train.latents import LatentBatches
from edgevid.train.loop import prepare_run_dir, step_generator


def generator_timesteps(cfg: DistillConfig) -> torch.Tensor:
    """T_1 = 1 > T_2 > ... > T_k > 0: the student's sampling grid without its final 0, shape (k,)."""
    return time_grid(cfg.num_steps, cfg.shift)[:-1]


def _mean(losses: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(losses).mean()


def teacher_samples(teacher: SpatioTemporalUNet, vae: VideoVAE, prompts, source, cfg: DistillConfig,
                    run_dir: str | Path, device: str | torch.device = "cpu") -> TeacherSamples:
    """--teacher-data's batches: the teacher's guided samples of the clips' captions, cached in
    RUN_DIR/teacher_cache (with the static-attribute verifier where cfg asks for it)."""
    check = (StaticAttributeVerifier(vae, source, cfg.fps, cfg.teacher_verify_threshold)
             if cfg.teacher_attempts > 1 or cfg.teacher_filter else None)
    return TeacherSamples(teacher.to(device), vae.to(device), prompts, source, cfg.buckets, cfg.batch_size,
                          cfg.num_clips, cfg.seed, Path(run_dir) / "teacher_cache", cfg.teacher_guidance,
                          cfg.teacher_shift, cfg.teacher_sample_steps,
                          verifier=check if cfg.teacher_attempts > 1 else None, attempts=cfg.teacher_attempts,
                          keep_passing=check if cfg.teacher_filter else None,
                          filter_buckets=tuple(map(tuple, cfg.teacher_filter_buckets)) or None, device=device)


def distill(run_dir: str | Path, teacher: SpatioTemporalUNet, vae: VideoVAE, text_encoder: TextEncoder, source,
            cfg: DistillConfig, *, student: SpatioTemporalUNet | None = None, data_description: dict | None = None,
            resume: bool = False, progress: bool = True,
            device: str | torch.device = "cpu") -> tuple[SpatioTemporalUNet, list[dict]]:
    """Distil `teacher` into a cfg.num_steps-step student; returns (EMA student, log records of this call).
    student: the generator's start (an earlier student, to continue it on more data); default the teacher."""
    from edgevid.text import PromptCache

    if teacher.config.in_channels != vae.config.latent_channels or teacher.config.text_dim != text_encoder.dim:
        raise ValueError("the teacher UNet does not match the VAE's latent channels or the text encoder's width")
    student = teacher if student is None else student
    if (student.config.in_channels, student.config.text_dim) != (teacher.config.in_channels, teacher.config.text_dim):
        raise ValueError("the student UNet does not match the teacher's latent channels or text width")
    run_dir = prepare_run_dir(Path(run_dir), {
        "task": "distill", "distill": cfg, "unet": student.config,
        **({"teacher_unet": teacher.config} if student is not teacher else {}), "vae": vae.config,
        "text_encoder": text_encoder.config, "data": data_description or {},
    }, resume)
    torch.manual_seed(cfg.seed)
    generator = copy.deepcopy(student).to(device).train().requires_grad_(True)
    disc = Discriminator(teacher, cfg.head, cfg.head_channels).to(device).train()
    vae = vae.to(device).eval().requires_grad_(False)
    prompts = PromptCache(text_encoder)
    if cfg.teacher_data:
        batches = teacher_samples(teacher, vae, prompts, source, cfg, run_dir, device)
    else:
        batches = LatentBatches(vae, source, cfg.buckets, cfg.batch_size, cfg.num_clips, cfg.cache_latents, cfg.seed,
                                Path(run_dir) / "latent_cache", device)
    grid = generator_timesteps(cfg)  # (k,)
    targets = (TeacherTargets(teacher.to(device), prompts, cfg.teacher_guidance, cfg.teacher_shift,
                              cfg.teacher_sample_steps) if cfg.teacher_targets else None)

    def make_batch(step: int, g: torch.Generator) -> AdversarialBatch:
        x0, captions = batches(step, g)  # (B, C, T', H', W')
        text = prompts.encode(captions)
        ctx, mask, pooled = text.tokens.to(device), text.mask.to(device), text.pooled.to(device)
        B = x0.shape[0]
        t = grid[torch.randint(len(grid), (B,), generator=g)].to(device)  # (B,) from {T_1..T_k}
        noise = torch.randn(x0.shape, generator=g).to(x0)
        if cfg.paired_noise:  # the teacher's own start: x_t on the line from its noise to its sample
            noise = batches.last_noise
        x_t = interpolate(x0, noise, t)
        t_prime = logit_normal_t(B, cfg.disc_t_mean, cfg.disc_t_std, generator=g, device=device)
        x_real = interpolate(x0, torch.randn(x0.shape, generator=g).to(x0), t_prime)
        target = x0 if targets is None else targets(x_t, t, captions)  # the teacher's answer from x_t
        velocity = generator(x_t, t, ctx, mask)
        return AdversarialBatch(
            x_real=x_real, x_fake=fake_sample(x_t, t, t_prime, velocity),
            recon=normalized_pseudo_huber_loss(predicted_x0(x_t, t, velocity), target, cfg.huber_c or None),
            discriminate=lambda x: disc(x, t_prime, ctx, mask, pooled), frames=x0.shape[2])

    return adversarial_loop(run_dir, generator, disc.heads, cfg, make_batch, resume=resume, progress=progress,
                            desc="distill")


@dataclass
class AdversarialBatch:
    """One step's tensors for `adversarial_loop`, built by the task (text or image conditioning)."""
    x_real: torch.Tensor  # real latents noised to t'
    x_fake: torch.Tensor  # the generator's x̂_t' (carries its gradients)
    recon: torch.Tensor  # the reconstruction loss on x̂0 (Eq. 6), scalar
    discriminate: Callable[[torch.Tensor], list[torch.Tensor]]  # x at t' -> logit maps, the conditions bound
    frames: int  # latent frames of the batch (logged)


def adversarial_loop(run_dir: Path, generator: nn.Module, heads: nn.Module, cfg: DistillConfig,
                     make_batch: Callable[[int, torch.Generator], AdversarialBatch], *, resume: bool, progress: bool,
                     desc: str, validate: Callable[[nn.Module], float] | None = None) -> tuple[nn.Module, list[dict]]:
    """Steps 3-4 of the recipe, shared by text- and image-to-video distillation: per step the
    discriminator phase on `heads` (Eq. 4), the generator phase (Eq. 5 + 6), the EMA, the log and
    the checkpoints. One AdamW holds both groups; returns (EMA generator, log records of this call).

    With `validate` (EMA generator -> score, higher is better) and cfg.select_every > 0, the EMA is
    scored every select_every steps and the best one is kept in RUN_DIR/best and returned instead
    of the last: adversarial training can collapse late while its losses look flat."""
    from tqdm.auto import tqdm

    ema = EMA(generator, cfg.ema_decay)
    best = BestEMA(Path(run_dir) / "best") if validate is not None and cfg.select_every > 0 else None
    optimizer = torch.optim.AdamW([
        {"params": list(generator.parameters()), "lr": cfg.generator_lr, "betas": cfg.generator_betas},
        {"params": list(heads.parameters()), "lr": cfg.discriminator_lr, "betas": cfg.discriminator_betas},
    ], weight_decay=cfg.weight_decay)
    base_lrs = [cfg.generator_lr, cfg.discriminator_lr]
    trained = nn.ModuleDict({"generator": generator, "heads": heads})  # what a checkpoint holds
    start = 0
    if resume and (ckpt := latest_checkpoint(run_dir)) is not None:
        start = int(load_checkpoint(ckpt, trained, optimizer, ema.model)["step"])
    records, log_path = [], Path(run_dir) / "log.jsonl"
    tick, tick_step = time.perf_counter(), start
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=desc, disable=not progress,
               dynamic_ncols=True)
    for step in bar:
        warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        for group, lr in zip(optimizer.param_groups, base_lrs):
            group["lr"] = lr * warm
        batch = make_batch(step, step_generator(cfg.seed, step))

        # Discriminator phase (Eq. 4): only the heads get gradients.
        logs = {}
        optimizer.zero_grad(set_to_none=True)
        if cfg.adv_weight > 0:
            real_logits = batch.discriminate(batch.x_real)
            fake_logits = batch.discriminate(batch.x_fake.detach())
            d_loss = _mean([discriminator_hinge_loss(r, f) for r, f in zip(real_logits, fake_logits)])
            _check_finite(d_loss, step, "discriminator")
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(heads.parameters(), cfg.grad_clip)
            optimizer.step()
            logs.update(d_loss=d_loss.item(), d_real=_mean([r.mean() for r in real_logits]).item(),
                        d_fake=_mean([f.mean() for f in fake_logits]).item())

        # Generator phase (Eq. 5 + Eq. 6): gradients flow through the frozen D into x̂_t'.
        optimizer.zero_grad(set_to_none=True)
        g_loss = cfg.recon_weight * batch.recon
        if cfg.adv_weight > 0:
            heads.requires_grad_(False)
            adv = _mean([generator_adversarial_loss(f) for f in batch.discriminate(batch.x_fake)])
            heads.requires_grad_(True)
            g_loss = g_loss + cfg.adv_weight * adv
            logs["g_adv"] = adv.item()
        _check_finite(g_loss, step, "generator")
        g_loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(generator.parameters(), cfg.grad_clip)
        optimizer.step()
        ema.update(generator, step)

        done = step + 1
        record = {"step": done, "g_loss": g_loss.item(), "recon": batch.recon.item(), **logs,
                  "grad_norm": grad_norm.item(), "frames": float(batch.frames)}
        records.append(record)
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            with open(log_path, "a") as f:
                f.write(json.dumps({**record, "sec_per_step": (now - tick) / (done - tick_step)}) + "\n")
            tick, tick_step = now, done
            bar.set_postfix(recon=f"{record['recon']:.4f}", d=f"{logs.get('d_loss', 0):.3f}")
        if best is not None and (done % cfg.select_every == 0 or done == cfg.steps) and done not in best.scores:
            score = best.offer(done, validate(ema.model), ema.model)
            with open(log_path, "a") as f:
                f.write(json.dumps({"step": done, "val_score": score, "best_step": best.step}) + "\n")
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            save_checkpoint(run_dir, done, trained, optimizer, ema.model)
    bar.close()
    if best is not None and best.step is not None:
        best.load_into(ema.model)
    return ema.model, records


class BestEMA:
    """The best-scoring EMA weights of a run and every score so far, in FOLDER (model.safetensors,
    scores.json), so that a resumed run keeps its best."""

    def __init__(self, folder: Path):
        self.folder = folder
        path = folder / "scores.json"
        state = json.loads(path.read_text()) if path.is_file() else {"scores": {}, "step": None}
        self.scores = {int(k): v for k, v in state["scores"].items()}  # step -> score
        self.step = state["step"]  # the step of the best weights, None before the first score

    def offer(self, step: int, score: float, model: nn.Module) -> float:
        from safetensors.torch import save_file

        self.scores[step] = float(score)
        if self.step is None or score > self.scores[self.step]:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                      self.folder / "model.safetensors")
            self.step = step
        (self.folder / "scores.json").write_text(json.dumps({"scores": self.scores, "step": self.step}, indent=1))
        return float(score)

    def load_into(self, model: nn.Module) -> None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(self.folder / "model.safetensors"))


def _check_finite(loss: torch.Tensor, step: int, what: str) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite {what} loss {loss.item()} at distillation step {step}; "
                                 "lower the learning rates or raise recon_weight")
