"""Training batches in latent space: clips -> frozen VAE -> (B, C, T', H', W') latents + captions.

Shared by the text-to-video trainer and step distillation. Each step draws one (frames, height,
width) bucket, so image-video joint training and several lengths/aspect ratios mix across steps
(SnapGen-V §3.2). With a finite clip set (`num_clips > 0`) and `cache_latents`, each clip's
latent is encoded once and kept in memory and on disk (`cache_dir`), because on a CPU the
encoder costs more per sample than a denoiser training step.
"""
from __future__ import annotations

import json
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
        self._masks: dict[tuple, Tensor] = {}  # (clip index, bucket) -> (1, T', H', W') object mask
        self.last_draw: tuple[list[int], tuple[int, int, int]] | None = None  # (indices, bucket) of the last call

    def object_masks(self) -> Tensor:
        """Latent-grid object masks (B, 1, T', H', W') in [0, 1] of the last batch drawn
        (`latent_object_mask`); the source must render masks (`ProceduralClips.object_mask`)."""
        if self.last_draw is None:
            raise RuntimeError("object_masks() follows a batch draw")
        if not hasattr(self.source, "object_mask"):
            raise ValueError(f"{type(self.source).__name__} has no object masks: foreground weighting needs "
                             "procedural clips")
        indices, bucket = self.last_draw
        for i in {i for i in indices if (i, bucket) not in self._masks}:
            pixels = torch.from_numpy(self.source.object_mask(i, *bucket))  # (T, H, W)
            self._masks[(i, bucket)] = latent_object_mask(pixels, self.vae.config.spatial_compression,
                                                          self.vae.config.temporal_compression)
        return torch.stack([self._masks[(i, bucket)] for i in indices]).to(self.device)

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
        self.last_draw = (indices, bucket)
        if not self.cache_latents:
            video, captions = make_batch(self.source, indices, bucket)  # (B, 3, T, H, W) in [-1, 1]
            return self._encode(video, g), captions
        self.fill(indices, bucket)
        x0 = torch.stack([self._cache[(i, bucket)][0] for i in indices])  # (B, C, T', H', W')
        return x0, [self._cache[(i, bucket)][1] for i in indices]

    def latents(self, indices, bucket: tuple[int, int, int]) -> Tensor:
        """The cached latents of clips `indices` of `bucket`, (B, C, T', H', W'), encoded if missing."""
        self.fill(indices, bucket)
        return torch.stack([self._cache[(i, bucket)][0] for i in indices])

    def fill(self, indices, bucket: tuple[int, int, int]) -> None:
        """Make sure clips `indices` of `bucket` are cached: read from cache_dir or encode (and
        write) them. Called per batch; also usable up front to build a shared cache."""
        from edgevid.data import make_batch

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


def latent_object_mask(pixels: Tensor, spatial: int, temporal: int, dilate: int = 1) -> Tensor:
    """Pixel coverage (T, H, W) -> (1, T', H', W') on the causal VAE's latent grid: a latent
    cell is foreground if any pixel of its spatial block, in any frame of its temporal group
    (frame 0 alone, then groups of `temporal`), is covered, widened by `dilate` cells so that
    the objects' edges - where their shape is - count as foreground too."""
    import torch.nn.functional as F

    m = F.max_pool2d(pixels[:, None].float(), spatial)[:, 0]  # (T, H', W')
    first, rest = m[:1], m[1:]
    if rest.shape[0]:
        rest = rest.reshape(-1, temporal, *rest.shape[1:]).amax(dim=1)  # (T' - 1, H', W')
    m = torch.cat([first, rest])  # (T', H', W')
    if dilate:
        m = F.max_pool2d(m[:, None], 2 * dilate + 1, stride=1, padding=dilate)[:, 0]
    return m[None]  # (1, T', H', W')


@torch.no_grad()
def decoder_channel_weights(vae: VideoVAE, z: Tensor, sigma: float = 0.1, floor: float = 0.05,
                            generator: torch.Generator | None = None) -> Tensor:
    """(C,) flow-loss weight per latent channel: how far the decoded video moves per unit of error
    in that channel of the normalised latent, mean 1, at least `floor`.

    Per-channel normalisation gives every channel unit variance, but the decoder does not read them
    alike: in the shipped 8-channel VAE, noise of std 0.3 on channels 1, 4 or 5 leaves the decoded
    PSNR unchanged, and those three invisible channels carry 60-80 % of the teacher's flow loss
    (docs/LADDER.md, "Dead latent channels"). Weighting each channel's squared error by its
    decoder sensitivity is the first-order pixel-space error (the Jacobian's diagonal, per
    channel), so the denoiser's gradient goes where errors can be seen. The floor keeps the
    invisible channels on the data distribution (the UNet reads them at the next step).

    `z`: normalised latents (B, C, T', H', W') of typical clips; measured with additive Gaussian
    noise of std `sigma` on one channel at a time, decoded in full."""
    if not sigma > 0 or not 0 <= floor <= 1:
        raise ValueError(f"sigma must be > 0 and floor in [0, 1], got {sigma}, {floor}")
    base = vae.decode_latents(z)
    moved = []
    for c in range(z.shape[1]):
        zc = z.clone()
        zc[:, c] += sigma * torch.randn(zc[:, c].shape, generator=generator).to(z)
        moved.append((vae.decode_latents(zc) - base).float().square().mean() / sigma**2)
    s = torch.stack(moved)
    return (s / s.mean()).clamp_min(floor)


def run_channel_weights(run_dir: Path, weighting: str, seed: int, vae: VideoVAE, batch_latents: LatentBatches) -> Tensor | None:
    """The run's per-channel loss weights (1, C, 1, 1, 1) for weighting == "decoder",
    else None: measured on (up to 4 clips of) the run's first batch by `decoder_channel_weights`
    and written to run_dir/channel_weights.json, which a resumed run reads back."""
    if weighting == "uniform":
        return None
    path = run_dir / "channel_weights.json"
    if path.is_file():
        weights = torch.tensor(json.loads(path.read_text())["weights"])
    else:
        x0, _ = batch_latents(0, step_generator(seed, 0))  # the first step's own batch
        with torch.no_grad():
            weights = decoder_channel_weights(vae, x0[:4], generator=torch.Generator().manual_seed(seed)).cpu()
        path.write_text(json.dumps({"weights": [round(float(w), 6) for w in weights],
                                    "measured_on": list(x0[:4].shape)}, indent=1) + "\n")
    if len(weights) != vae.config.latent_channels:
        raise ValueError(f"{path}: {len(weights)} channel weights for a {vae.config.latent_channels}-channel VAE")
    return weights.view(1, -1, 1, 1, 1).to(batch_latents.device)


HELDOUT_START = 10**6  # clip indices far past any run's num_clips: never in a training cache


@torch.no_grad()
def heldout_object_latents(vae: VideoVAE, source, n: int, bucket: tuple[int, int, int], dilate: int = 1):
    """n fresh clips of `source` that no cache holds, for paired loss measurements: their latents
    (posterior samples, seed 0), fixed noise (seed 1), object masks on the latent grid and captions.
    -> (x0 (n, C, T', H', W'), noise like x0, masks (n, 1, T', H', W'), captions)."""
    from edgevid.data import make_batch

    idx = list(range(HELDOUT_START, HELDOUT_START + n))
    video, captions = make_batch(source, idx, bucket)
    masks = torch.stack([latent_object_mask(torch.from_numpy(source.object_mask(i, *bucket)),
                                            vae.config.spatial_compression, vae.config.temporal_compression, dilate)
                         for i in idx])
    x0 = vae.encode_latents(video, generator=torch.Generator().manual_seed(0), sample=True)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    return x0, noise, masks, captions


@torch.no_grad()
def masked_flow_error(velocity, x0: Tensor, noise: Tensor, mask: Tensor, t: float,
                      channel_weights: Tensor | None = None) -> tuple[float, float]:
    """The rectified-flow error of velocity(x_t, t) at one t, per latent cell (mean over channels,
    or their `channel_weights`-weighted mean, e.g. `decoder_channel_weights`: the error the decoder
    lets through), averaged inside `mask` and outside it: (inside, outside)."""
    tt = torch.full((len(x0),), t)
    err = (velocity((1 - t) * x0 + t * noise, tt) - (noise - x0)).pow(2)  # (B, C, T', H', W')
    if channel_weights is None:
        err = err.mean(1, keepdim=True)
    else:
        w = channel_weights.to(err).view(1, -1, *([1] * (err.ndim - 2)))
        err = (err * w).sum(1, keepdim=True) / w.sum()
    return float((err * mask).sum() / mask.sum()), float((err * (1 - mask)).sum() / (1 - mask).sum())


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
