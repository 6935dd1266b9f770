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

With cfg.teacher_data, x0 is the teacher's own sample for the clip's first frame
(`I2VTeacherSamples`, LADD's synthetic data) and the student's x_1 is the very noise that sample
came from (the reflow coupling, as DistillConfig.paired_noise for text-to-video): from pure noise
a 1-step student trained against real clips can only regress to the mean of every continuation
of the image, which blurs motion away; against the teacher's deterministic answer for its noise
there is one target per input.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from edgevid.config import DistillConfig
from edgevid.distill.discriminator import HEADS
from edgevid.distill.losses import fake_sample, normalized_pseudo_huber_loss, predicted_x0
from edgevid.distill.synthetic import read_cached
from edgevid.distill.train import AdversarialBatch, adversarial_loop, generator_timesteps
from edgevid.flow.sample import sample_euler
from edgevid.flow.schedule import interpolate, logit_normal_t, time_grid
from edgevid.models.blocks import AttnSpec
from edgevid.models.i2v import Img2VidDenoiser, added_time_ids, latent_motion
from edgevid.models.vae import VideoVAE
from edgevid.train.i2v import NOISE_AUG_DEFAULT, NOISE_AUG_MAX, ImageAnchor
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


class I2VTeacherSamples:
    """`samples(step, g)` -> (x0, noise, cond, ids) for a batch of the clips `batches` (LatentBatches)
    draws: x0 (B, C, T', H', W') is the teacher's sample for the clip's first latent frame (the
    image), `noise` the flow-space noise it was integrated from, `cond` (B, C, H', W') the
    noise-augmented image the teacher was given and `ids` (B, 3) its added time ids (the clip's
    own motion strength, NOISE_AUG_DEFAULT). The teacher samples as the pipeline does (Euler on
    `time_grid(steps, shift)`, the image held in frame 0, in its flow space), in bf16 where the
    CPU has it natively. Each (clip, bucket) is sampled once, from noise that is a pure function of
    (seed, clip, bucket), and cached in `cache_dir`, so a resumed run sees the same data."""

    def __init__(self, teacher: Img2VidDenoiser, batches: LatentBatches, fps: float, steps: int, shift: float,
                 seed: int, cache_dir: str | Path, chunk: int = 4, precision: str | None = "auto",
                 device: str | torch.device = "cpu"):
        from edgevid.precision import resolve_precision

        if steps < 1 or not shift > 0:
            raise ValueError(f"the teacher's sampler needs steps >= 1 and shift > 0, got {steps}, {shift}")
        self.teacher, self.batches, self.fps, self.seed = teacher, batches, float(fps), seed
        self.cache_dir, self.chunk, self.device = Path(cache_dir), chunk, device
        self.precision = resolve_precision(precision, torch.device(device).type)
        # What a cached sample must match (the precision is recorded, not matched).
        self.sampler = {"steps": int(steps), "shift": float(shift), "fps": self.fps,
                        "residual_scale": float(teacher.config.residual_scale), "noise_aug": NOISE_AUG_DEFAULT}
        self._cache: dict[tuple, tuple[Tensor, ...]] = {}  # (clip, bucket) -> (x0, noise, cond, ids)

    def __call__(self, step: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        self.batches(step, g)  # draws the clips (and consumes g as the real-clip path does)
        indices, bucket = self.batches.last_draw
        self.fill(indices, bucket)
        parts = zip(*(self._cache[(i, bucket)] for i in indices))
        return tuple(torch.stack(p).to(self.device) for p in parts)

    def fill(self, indices, bucket: tuple[int, int, int]) -> None:
        """Make sure clips `indices` of `bucket` have their teacher sample (read, or drawn `chunk`
        at a time and written)."""
        missing = read_cached(self._cache, indices, bucket, self._file, self._read)
        for start in range(0, len(missing), self.chunk):
            part = missing[start:start + self.chunk]
            clips = self.batches.latents(part, bucket).cpu()  # (b, C, T', H', W')
            # Per clip, from (seed, clip, bucket), apart from the encoder's posterior draw of the clip.
            gens = [step_generator(self.seed, hash((i, *bucket, 1)) % 2**31) for i in part]
            noise = torch.stack([torch.randn(clips.shape[1:], generator=gen) for gen in gens])
            aug_noise = torch.stack([torch.randn(clips.shape[1:2] + clips.shape[3:], generator=gen) for gen in gens])
            image = clips[:, :, 0]
            cond = image + NOISE_AUG_DEFAULT * aug_noise
            ids = added_time_ids(len(part), self.fps, 0.0, NOISE_AUG_DEFAULT)
            ids[:, 1] = latent_motion(clips)
            x0 = self.sample(image, noise, cond, ids)
            for k, i in enumerate(part):
                self._cache[(i, bucket)] = (x0[k], noise[k], cond[k], ids[k])
                self._write(self._file(i, bucket), *self._cache[(i, bucket)])

    @torch.no_grad()
    def sample(self, image: Tensor, noise: Tensor, cond: Tensor, ids: Tensor) -> Tensor:
        """The teacher's sampler (as EdgeVidImg2VidPipeline.__call__) -> x0 (b, C, T', H', W') in latent space."""
        was_training = self.teacher.training
        self.teacher.eval()
        d = self.device
        image, noise, cond, ids = image.to(d), noise.to(d), cond.to(d), ids.to(d)
        space = ImageAnchor(image, self.teacher.config.residual_scale)
        velocity = space.velocity(lambda x, t: self.teacher(x, t, cond, ids))
        with torch.autocast(torch.device(d).type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            r = sample_euler(velocity, noise, time_grid(self.sampler["steps"], self.sampler["shift"]))
        x = space.from_flow(r.float())
        x[:, :, 0] = image
        self.teacher.train(was_training)
        return x.cpu()

    def _file(self, index: int, bucket: tuple[int, int, int]) -> Path:
        return self.cache_dir / f"sample{index:07d}_{bucket[0]}x{bucket[1]}x{bucket[2]}.safetensors"

    def _write(self, path: Path, x0: Tensor, noise: Tensor, cond: Tensor, ids: Tensor) -> None:
        from edgevid.io.atomic import atomic_save_safetensors

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors({"x0": x0.float().contiguous(), "noise": noise.contiguous(),
                                 "cond": cond.contiguous(), "ids": ids.float().contiguous()}, path,
                                metadata={"sampler": json.dumps(self.sampler, sort_keys=True),
                                          "precision": self.precision})

    def _read(self, path: Path) -> tuple[Tensor, ...]:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            if json.loads(f.metadata()["sampler"]) != self.sampler:
                raise ValueError(f"{path} was sampled with {f.metadata()['sampler']}, this run asks for "
                                 f"{json.dumps(self.sampler, sort_keys=True)}: use another cache folder")
            return tuple(f.get_tensor(k) for k in ("x0", "noise", "cond", "ids"))


def distill_i2v(run_dir: str | Path, teacher: Img2VidDenoiser, vae: VideoVAE, source, cfg: DistillConfig, *,
                student: Img2VidDenoiser | None = None, data_description: dict | None = None, resume: bool = False,
                progress: bool = True, device: str | torch.device = "cpu",
                cache_dir: str | Path | None = None,
                validate: Callable[[Img2VidDenoiser], float] | None = None) -> tuple[Img2VidDenoiser, list[dict]]:
    """Fine-tune `student` (default: a copy of `teacher`) into a cfg.num_steps-step image-to-video
    model against `teacher`'s discriminator; returns (EMA student, log records of this call).
    With `validate` and cfg.select_every, the best-scoring EMA is returned (adversarial_loop)."""
    student = student if student is not None else teacher
    if teacher.config.out_channels != vae.config.latent_channels:
        raise ValueError("the teacher does not match the VAE's latent channels")
    if teacher.config.residual_scale != student.config.residual_scale:
        raise ValueError(f"the student's flow runs at residual_scale {student.config.residual_scale}, its teacher's "
                         f"at {teacher.config.residual_scale}: the discriminator reads the teacher at the student's "
                         "noise levels, so both must match")
    run_dir = prepare_run_dir(Path(run_dir), {
        "task": "distill_i2v", "distill": cfg, "unet": student.config, "teacher_unet": teacher.config,
        "vae": vae.config, "data": data_description or {},
    }, resume)
    torch.manual_seed(cfg.seed)
    generator = copy.deepcopy(student).to(device).train().requires_grad_(True)
    disc = I2VDiscriminator(teacher, cfg.head, cfg.head_channels).to(device).train()
    vae = vae.to(device).eval().requires_grad_(False)
    batches = LatentBatches(vae, source, cfg.buckets, cfg.batch_size, cfg.num_clips, cfg.cache_latents, cfg.seed,
                            Path(cache_dir or Path(run_dir) / "latent_cache"), device)
    samples = (I2VTeacherSamples(teacher.to(device), batches, source.fps, cfg.teacher_sample_steps, cfg.teacher_shift,
                                 cfg.seed, Path(run_dir) / "teacher_cache", device=device)
               if cfg.teacher_data else None)
    grid = generator_timesteps(cfg)  # (k,): [1.0] for one step

    def make_batch(step: int, g: torch.Generator) -> AdversarialBatch:
        if samples is not None:  # the teacher's answers, with the noise, image and ids they came from
            x0, noise, image_aug, ids = samples(step, g)
        else:
            x0, _ = batches(step, g)  # (B, C, T', H', W')
        B = x0.shape[0]
        image = x0[:, :, 0]  # (B, C, H', W'): the given first frame
        if samples is None:
            aug = NOISE_AUG_MAX * torch.rand(B, generator=g)
            image_aug = image + aug[:, None, None, None] * torch.randn(image.shape, generator=g)
            ids = added_time_ids(B, source.fps, 0.0, aug)
            ids[:, 1] = latent_motion(x0)

        # Everything below is in the flow's space (ImageAnchor: the latent itself, or a residual
        # model's motion residual); networks read latents, through space.from_flow.
        space = ImageAnchor(image, generator.config.residual_scale)
        r0 = space.to_flow(x0)

        def with_image(x):
            return torch.cat([r0[:, :, :1], x[:, :, 1:]], dim=2)  # frame 0 <- the clean image (in the flow's space)

        t = grid[torch.randint(len(grid), (B,), generator=g)].to(device)
        eps = torch.randn(x0.shape, generator=g).to(x0)
        if samples is not None and cfg.paired_noise:
            eps = noise  # on the line from the teacher's noise to its answer
        x_t = with_image(interpolate(r0, eps, t))
        t_prime = logit_normal_t(B, cfg.disc_t_mean, cfg.disc_t_std, generator=g, device=device)
        x_real = with_image(interpolate(r0, torch.randn(x0.shape, generator=g).to(x0), t_prime))
        velocity = space.velocity(lambda x, tt: generator(x, tt, image_aug, ids))(x_t, t)
        x0_hat = predicted_x0(x_t, t, velocity)  # the given frame 0 is excluded from the reconstruction
        return AdversarialBatch(
            x_real=x_real, x_fake=with_image(fake_sample(x_t, t, t_prime, velocity)),
            recon=normalized_pseudo_huber_loss(x0_hat[:, :, 1:], r0[:, :, 1:], cfg.huber_c or None),
            discriminate=lambda x: disc(space.from_flow(x), t_prime, image_aug, ids), frames=x0.shape[2])

    return adversarial_loop(run_dir, generator, disc.heads, cfg, make_batch, resume=resume, progress=progress,
                            desc="distill i2v", validate=validate)
