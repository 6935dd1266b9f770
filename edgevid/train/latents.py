"""Training batches in latent space: clips -> frozen VAE -> (B, C, T', H', W') latents + captions.

Shared by the text-to-video trainer and step distillation. Each step draws one (frames, height,
width) bucket, so image-video joint training and several lengths/aspect ratios mix across steps
(SnapGen-V §3.2). With a finite clip set (`num_clips > 0`) and `cache_latents`, each clip's
latent is encoded once and kept in memory and on disk (`cache_dir`), because on a CPU the
encoder costs more per sample than a denoiser training step.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from edgevid.models.vae import VideoVAE
from edgevid.train.loop import step_generator


class LatentBatches:
    """`batches(step, g)` -> (x0 (B, C, T', H', W'), captions). All randomness comes from `g`
    (the step's generator) or from (seed, clip, bucket), so a resumed run replays the same batches."""

    def __init__(self, vae: VideoVAE, source, buckets: tuple[tuple[int, int, int], ...], batch_size: int,
                 num_clips: int, cache_latents: bool, seed: int, cache_dir: str | Path | None,
                 device: str | torch.device = "cpu"):
        if cache_latents and num_clips <= 0:
            raise ValueError("cache_latents needs num_clips > 0 (a finite set of clips to cache)")
        self.vae, self.source, self.buckets = vae, source, buckets
        self.batch_size, self.num_clips, self.cache_latents = batch_size, num_clips, cache_latents
        self.seed, self.device = seed, device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._cache: dict[tuple, tuple[Tensor, str]] = {}  # (clip index, bucket) -> (latent, caption)

    def _encode(self, video: Tensor, g: torch.Generator) -> Tensor:
        with torch.no_grad():
            return self.vae.encode_latents(video.to(self.device), generator=g, sample=True)  # (B, C, T', H', W')

    def __call__(self, step: int, g: torch.Generator) -> tuple[Tensor, list[str]]:
        from edgevid.data import make_batch

        bucket = self.buckets[int(torch.randint(len(self.buckets), (1,), generator=g))]
        if self.num_clips > 0:
            indices = [int(i) for i in torch.randint(self.num_clips, (self.batch_size,), generator=g)]
        else:
            indices = [step * self.batch_size + i for i in range(self.batch_size)]
        if not self.cache_latents:
            video, captions = make_batch(self.source, indices, bucket)  # (B, 3, T, H, W) in [-1, 1]
            return self._encode(video, g), captions
        missing = []
        for i in sorted({i for i in indices if (i, bucket) not in self._cache}):
            path = _cache_file(self.cache_dir, i, bucket) if self.cache_dir is not None else None
            if path is not None and path.is_file():
                latent, caption = _read_cached(path)
                self._cache[(i, bucket)] = (latent.to(self.device), caption)
            else:
                missing.append(i)
        if missing:
            video, captions = make_batch(self.source, missing, bucket)
            for i, clip, caption in zip(missing, video, captions):
                # Each clip's posterior sample depends only on (seed, clip, bucket), not on the
                # step that first met it, so a resumed run refills the cache identically.
                clip_g = step_generator(self.seed, hash((i, *bucket)) % (2**31))
                self._cache[(i, bucket)] = (self._encode(clip[None], clip_g)[0], caption)
                if self.cache_dir is not None:
                    _write_cached(_cache_file(self.cache_dir, i, bucket), *self._cache[(i, bucket)])
        x0 = torch.stack([self._cache[(i, bucket)][0] for i in indices])  # (B, C, T', H', W')
        return x0, [self._cache[(i, bucket)][1] for i in indices]


def _cache_file(cache_dir: Path, index: int, bucket: tuple[int, int, int]) -> Path:
    return cache_dir / f"clip{index:07d}_{bucket[0]}x{bucket[1]}x{bucket[2]}.safetensors"


def _write_cached(path: Path, latent: Tensor, caption: str) -> None:
    from edgevid.io.atomic import atomic_save_safetensors

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors({"latent": latent.detach().cpu().contiguous()}, path, metadata={"caption": caption})


def _read_cached(path: Path) -> tuple[Tensor, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor("latent"), f.metadata()["caption"]
