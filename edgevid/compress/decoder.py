"""VAE decoder compression: distil a smaller, faster decoder from the full one (SnapGen-V §3.2, App. B).

SnapGen-V freezes the VAE encoder, swaps the decoder's convolutions for depthwise-separable
ones and trains the decoder with a distillation loss. Here a compressed decoder is the same
`VideoVAE` class with other decoder fields in its config (`config.DECODER_PRESETS`): narrower
widths, fewer ResBlocks, separable convs in the spatial and temporal decoders. Per step:

    x (B, 3, T, H, W) clip -> z = frozen encoder(x) (+ latent noise) -> teacher decoder(z) = y_T
                                                                    -> student decoder(z) = y_S
    loss = decoder_distillation_loss(y_S, y_T, x)

Only the student's temporal and spatial decoders train; the result keeps the teacher's
encoder and latent normalisation, so it plugs into any pipeline built on that VAE.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from edgevid.config import DECODER_PRESETS, DecoderCompressConfig
from edgevid.models.vae import VideoVAE
from edgevid.models.vae_loss import psnr, temporal_difference_loss
from edgevid.train.ema import EMA
from edgevid.train.loop import prepare_run_dir, step_generator, train_loop
from edgevid.train.vae import random_crop


def compressed_vae(teacher: VideoVAE, preset: str | dict) -> VideoVAE:
    """A VideoVAE with the teacher's encoder (weights copied) and a decoder per `preset`.

    Decoder tensors whose name and shape match the teacher's are copied too (e.g. the first
    conv when widths agree); the rest start as the residual-shortcut decoder of a fresh VAE.
    """
    fields = decoder_fields(preset)
    student = VideoVAE(dataclasses.replace(teacher.config, **fields))
    teacher_state = teacher.state_dict()
    state = student.state_dict()
    for name, tensor in state.items():
        if name in teacher_state and teacher_state[name].shape == tensor.shape:
            tensor.copy_(teacher_state[name])
    assert same_latent_space(student, teacher), "the encoder must be the teacher's"
    return student


def same_latent_space(a: VideoVAE, b: VideoVAE) -> bool:
    """Whether two VAEs encode a video to the same latents: equal encoder weights, shift and scale
    (e.g. a compressed decoder's VAE and its teacher's), so either decoder fits a model of the other."""
    encoders = [{n: t for n, t in vae.state_dict().items() if n.startswith(("spatial_encoder.", "temporal_encoder."))}
                for vae in (a, b)]
    ea, eb = encoders
    return (a.config.shift_factor == b.config.shift_factor and a.config.scaling_factor == b.config.scaling_factor
            and ea.keys() == eb.keys() and all(ea[n].shape == eb[n].shape and torch.equal(ea[n], eb[n]) for n in ea))


def decoder_fields(preset: str | dict) -> dict:
    """A DECODER_PRESETS name or a dict of VAEConfig decoder fields -> the dict."""
    if isinstance(preset, dict):
        return preset
    if preset not in DECODER_PRESETS:
        raise ValueError(f"unknown decoder preset {preset!r}; choose from {sorted(DECODER_PRESETS)}")
    return DECODER_PRESETS[preset]


def decoder_parameters(vae: VideoVAE) -> int:
    return sum(p.numel() for m in (vae.temporal_decoder, vae.spatial_decoder) for p in m.parameters())


def decoder_distillation_loss(student_out: Tensor, teacher_out: Tensor, video: Tensor, cfg: DecoderCompressConfig,
                              weight: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """(loss, logs) for decoded clips (B, 3, T, H, W) in about [-1, 1].

    distill: L1 + MSE to the full decoder's output (the paper's distillation loss); pixel: the
    same against the source clip (keeps the student from copying the teacher's errors only),
    as a weighted mean when `weight` (B, 1, T, H, W) is given (`object_pixel_weight`);
    temporal: L1 between frame-to-frame differences of student and teacher (against flicker).
    """
    distill = (student_out - teacher_out).abs().mean() + (student_out - teacher_out).square().mean()
    err = (student_out - video).abs() + (student_out - video).square()  # (B, 3, T, H, W)
    pixel = err.mean() if weight is None else (weight * err).sum() / (weight.expand_as(err).sum())
    temporal = temporal_difference_loss(student_out, teacher_out)
    loss = cfg.distill_weight * distill + cfg.pixel_weight * pixel + cfg.temporal_weight * temporal
    return loss, {"distill": distill.item(), "pixel": pixel.item(), "temporal": temporal.item(),
                  "psnr_vs_teacher": psnr(student_out.detach(), teacher_out).item(),
                  "psnr_vs_source": psnr(student_out.detach(), video).item()}


def object_pixel_weight(source, indices: list[int], bucket: tuple[int, int, int], object_weight: float,
                        margin: int) -> Tensor:
    """(B, 1, T, H, W) pixel weights 1 + object_weight * coverage, the coverage of clips `indices`
    of a procedural `source` widened by `margin` pixels (a shape lives in its edges)."""
    import torch.nn.functional as F

    _require_object_masks(source)
    cover = torch.from_numpy(np.stack([source.object_mask(i, *bucket) for i in indices]))[:, None]  # (B, 1, T, H, W)
    if margin:
        cover = F.max_pool3d(cover, (1, 2 * margin + 1, 2 * margin + 1), stride=1, padding=(0, margin, margin))
    return 1.0 + object_weight * cover


def _require_object_masks(source) -> None:
    if not hasattr(source, "object_mask"):
        raise ValueError("object_weight needs procedural data (object coverage comes from the scene spec)")


def compress_decoder(run_dir: str | Path, teacher: VideoVAE, preset: str | dict, source, cfg: DecoderCompressConfig,
                     *, data_description: dict | None = None, resume: bool = False, progress: bool = True,
                     device: str | torch.device = "cpu") -> VideoVAE:
    """Train (or resume) a compressed decoder for `teacher`; returns the VAE with the EMA decoder."""
    from edgevid.data import make_batch

    fields = decoder_fields(preset)
    if cfg.object_weight:
        _require_object_masks(source)  # before the run folder is made
    run_dir = prepare_run_dir(Path(run_dir), {
        "task": "compress_decoder", "teacher_vae": teacher.config, "decoder": {
            k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()},
        "compress": cfg, "data": data_description or {}}, resume)
    for frames, height, width in cfg.buckets:  # fail before training on sizes the VAE cannot take
        teacher.latent_shape(frames, cfg.crop_size or height, cfg.crop_size or width)
    torch.manual_seed(cfg.seed)
    teacher = teacher.to(device).eval().requires_grad_(False)
    student = compressed_vae(teacher, fields).to(device)
    decoder = nn.ModuleDict({"temporal": student.temporal_decoder, "spatial": student.spatial_decoder})
    ema = EMA(decoder, cfg.ema_decay)
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))

    def step_fn(step: int):
        g = step_generator(cfg.seed, step)
        bucket = cfg.buckets[int(torch.randint(len(cfg.buckets), (1,), generator=g))]
        indices = [step * cfg.batch_size + i for i in range(cfg.batch_size)]
        video, _ = make_batch(source, indices, bucket)  # (B, 3, T, H, W) in [-1, 1]
        weight = None
        if cfg.object_weight:
            weight = object_pixel_weight(source, indices, bucket, cfg.object_weight, cfg.object_margin)
            video = torch.cat([video, weight], dim=1)  # crop clip and weights with one window
        if cfg.crop_size:
            video = random_crop(video, cfg.crop_size, g)
        if weight is not None:
            video, weight = video[:, :3], video[:, 3:].to(device)
        video = video.to(device)
        with torch.no_grad():
            z = teacher.normalize(teacher.encode(video).mode())  # (B, C, T', H', W'), about unit variance
            if cfg.latent_noise:
                std = torch.full((z.shape[0],), cfg.latent_noise)  # (B,)
                if cfg.latent_noise_mode == "uniform":
                    std = std * torch.rand(z.shape[0], generator=g)
                z = z + std.view(-1, 1, 1, 1, 1).to(device) * torch.randn(z.shape, generator=g).to(device)
            z = teacher.denormalize(z)
            target = teacher.decode(z, chunk_frames=0)
        return decoder_distillation_loss(student.decode(z, chunk_frames=0), target, video, cfg, weight)

    train_loop(run_dir=run_dir, model=decoder, optimizer=optimizer, ema=ema, step_fn=step_fn, total_steps=cfg.steps,
               base_lr=cfg.lr, warmup_steps=cfg.warmup_steps, lr_schedule=cfg.lr_schedule, grad_clip=cfg.grad_clip,
               checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, bf16=cfg.bf16, resume=resume,
               progress=progress, desc="compress decoder")
    final = compressed_vae(teacher.cpu(), fields)
    final.temporal_decoder.load_state_dict(ema.model["temporal"].state_dict())
    final.spatial_decoder.load_state_dict(ema.model["spatial"].state_dict())
    return final.eval()
