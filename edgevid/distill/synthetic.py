"""Distillation data drawn from the teacher's own guided sampler (LADD's synthetic data).

A guidance-free student trained on encoded real clips learns the *unguided* distribution: on
ShapesBench that is the teacher at guidance 1, which rarely draws one coherent object. The
teacher at its shipped sampler (guidance 3, shift 3) scores 0.19 on the 49-frame hold-out.
`TeacherSamples` gives the student that distribution instead: each (clip, bucket) keeps the
caption of the source's clip and x0 = the teacher's sample for that caption from a fixed noise,
drawn once and cached on disk (the cost is the teacher's full sampler per sample, about 1-3.5 s
on one thread for the distillation buckets).

With a `verifier` (`StaticAttributeVerifier`), each clip keeps the first of up to `attempts`
teacher samples that the verifier passes (else the best one): rejection sampling, so that the
student learns from the teacher's good draws rather than all of them. The verifier reads the
decoded sample against the *training* clip's scene spec (known by construction), never a
benchmark spec.

With `keep_passing` (a verifier), training sees only the cached samples that pass it: a drawn
clip whose sample fails is redrawn (up to MAX_REDRAWS times, from the same generator, so the
batches stay a pure function of the step); `filter_buckets` limits it to some buckets (at 128 px
the VAE loses most shapes, and 4 % of 33x128x128 samples pass). No extra teacher samples are drawn for it, so it
filters an existing cache; each sample is scored once (`verifier_scores.json` beside the cache).

With `paired_noise`, the distillation's x_t is built from the very noise the teacher started
from, so x_t lies on the straight line between the noise and the teacher's answer (the
rectified-flow "reflow" coupling): at t = 1 the reconstruction target is a function of the
input instead of the blurry mean over all samples for the caption.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from edgevid.flow.denoiser import GuidedVelocity
from edgevid.flow.sample import sample_euler
from edgevid.flow.schedule import time_grid
from edgevid.models.unet import SpatioTemporalUNet
from edgevid.models.vae import VideoVAE
from edgevid.train.loop import step_generator


CHUNK = 4  # teacher samples drawn per sampler call
MAX_REDRAWS = 64  # keep_passing: draws per batch slot before a failing sample is used anyway


class TeacherSamples:
    """`batches(step, g)` -> (x0 (B, C, T', H', W'), captions), like `LatentBatches`, with x0 from
    the teacher's sampler; `last_noise` is the noise each x0 of the last draw was sampled from.
    Everything is a pure function of (seed, clip, bucket), so a resumed run sees the same data."""

    def __init__(self, teacher: SpatioTemporalUNet, vae: VideoVAE, prompts, source,
                 buckets: tuple[tuple[int, int, int], ...], batch_size: int, num_clips: int, seed: int,
                 cache_dir: str | Path, guidance: float, shift: float, sample_steps: int, chunk: int = CHUNK,
                 precision: str | None = "auto", verifier: "StaticAttributeVerifier | None" = None,
                 attempts: int = 1, keep_passing: "StaticAttributeVerifier | None" = None,
                 filter_buckets: tuple[tuple[int, int, int], ...] | None = None, device: str | torch.device = "cpu"):
        if num_clips <= 0:
            raise ValueError("teacher samples need num_clips > 0: each of a finite set of clips is sampled once")
        if sample_steps < 1 or not guidance >= 0 or not shift > 0:
            raise ValueError(f"need sample_steps >= 1, guidance >= 0 and shift > 0, got {sample_steps}, "
                             f"{guidance}, {shift}")
        self.teacher, self.vae, self.prompts, self.source = teacher, vae, prompts, source
        self.buckets, self.batch_size, self.num_clips, self.seed = buckets, batch_size, num_clips, seed
        self.cache_dir, self.chunk, self.device = Path(cache_dir), chunk, device
        if attempts < 1 or (attempts > 1 and verifier is None):
            raise ValueError(f"attempts must be >= 1, and > 1 only with a verifier; got {attempts}")
        # What a cached sample must match; the precision (bf16 autocast where the CPU has native
        # bf16, as the pipeline runs) is recorded but not matched: both are the teacher's draws.
        self.sampler = {"guidance": float(guidance), "shift": float(shift), "steps": int(sample_steps)}
        if verifier is not None:
            self.sampler.update(verifier=verifier.name, attempts=int(attempts))
        self.verifier, self.attempts = verifier, attempts
        self.keep_passing = keep_passing
        self.filter_buckets = None if filter_buckets is None else set(filter_buckets)  # None: every bucket
        self._scores_path = self.cache_dir / "verifier_scores.json"
        self._scores: dict[str, float] = {}
        if keep_passing is not None and self._scores_path.is_file():
            saved = json.loads(self._scores_path.read_text())
            if saved.get("verifier") == keep_passing.name:
                self._scores = saved["scores"]
        self.redraws = 0  # keep_passing: failing draws replaced so far
        self.kept_failing = 0  # keep_passing: slots where MAX_REDRAWS draws all failed
        from edgevid.precision import resolve_precision

        self.precision = resolve_precision(precision, torch.device(device).type)
        self._cache: dict[tuple, tuple[Tensor, Tensor, str]] = {}  # (clip, bucket) -> (x0, noise, caption)
        self.last_noise: Tensor | None = None

    def __call__(self, step: int, g: torch.Generator) -> tuple[Tensor, list[str]]:
        bucket, indices = draw_batch(g, self.buckets, self.num_clips, self.batch_size)
        if self.keep_passing is not None and (self.filter_buckets is None or bucket in self.filter_buckets):
            indices = [self._passing(i, bucket, g) for i in indices]
        self.fill(indices, bucket)
        x0, noise, captions = zip(*(self._cache[(i, bucket)] for i in indices))
        self.last_noise = torch.stack(noise).to(self.device)
        return torch.stack(x0).to(self.device), list(captions)

    def _passing(self, index: int, bucket: tuple[int, int, int], g: torch.Generator) -> int:
        """`index`, or the first redraw (from `g`) whose sample passes `keep_passing`."""
        for _ in range(MAX_REDRAWS):
            if self.score(index, bucket) >= self.keep_passing.threshold:
                return index
            self.redraws += 1
            index = int(torch.randint(self.num_clips, (1,), generator=g))
        self.kept_failing += 1
        return index

    def score(self, index: int, bucket: tuple[int, int, int]) -> float:
        """`keep_passing`'s score of the clip's sample (drawn if not cached), computed once."""
        name = self._file(index, bucket).name
        if name not in self._scores:
            self.fill([index], bucket)
            self._scores[name] = round(float(self.keep_passing(self._cache[(index, bucket)][0], index, bucket)), 4)
            self._scores_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._scores_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"verifier": self.keep_passing.name, "scores": self._scores}, sort_keys=True))
            tmp.replace(self._scores_path)
        return self._scores[name]

    def caption(self, index: int, num_frames: int) -> str:
        if hasattr(self.source, "caption"):
            return self.source.caption(index, num_frames)
        return self.source.clip(index, num_frames, 64, 64).caption  # a folder of videos: read a small frame

    def fill(self, indices, bucket: tuple[int, int, int]) -> None:
        """Make sure clips `indices` of `bucket` have their teacher sample: read it from the cache
        folder or sample it (`chunk` at a time) and write it."""
        missing = read_cached(self._cache, indices, bucket, self._file, self._read)
        shape = self.vae.latent_shape(*bucket)
        for start in range(0, len(missing), self.chunk):
            part = missing[start:start + self.chunk]
            captions = [self.caption(i, bucket[0]) for i in part]
            best: dict[int, tuple[float, Tensor, Tensor]] = {}  # clip -> (verifier score, x0, noise)
            todo = list(part)
            for attempt in range(self.attempts):
                # The noise of each attempt is a pure function of (seed, clip, bucket, attempt).
                noise = torch.stack([torch.randn(shape, generator=self._noise_generator(i, bucket, attempt))
                                     for i in todo])  # (b, C, T', H', W')
                x0 = self.sample(noise, [captions[part.index(i)] for i in todo])
                for i, z, n in zip(todo, x0, noise):
                    score = self.verifier(z, i, bucket) if self.verifier is not None else 1.0
                    if i not in best or score > best[i][0]:
                        best[i] = (score, z, n)
                todo = [i for i in todo if best[i][0] < (self.verifier.threshold if self.verifier else 0)]
                if not todo:
                    break
            for i, c in zip(part, captions):
                score, z, n = best[i]
                self._cache[(i, bucket)] = (z, n, c)
                self._write(self._file(i, bucket), z, n, c, score)

    def sample_all(self, keys, progress: bool = True) -> int:
        """Sample and write every (clip, bucket) of `keys` the cache folder lacks, `chunk` clips a
        call (before a run, e.g. in parallel processes on shards of `samples_drawn`); returns how
        many were sampled. Nothing is kept in memory."""
        from tqdm.auto import tqdm

        missing: dict[tuple[int, int, int], list[int]] = {}
        for i, b in keys:
            if not self._file(i, b).is_file():
                missing.setdefault(b, []).append(i)
        total = sum(map(len, missing.values()))
        with tqdm(total=total, desc="teacher samples", disable=not progress, dynamic_ncols=True) as bar:
            for bucket, indices in missing.items():
                for start in range(0, len(indices), self.chunk):
                    part = indices[start:start + self.chunk]
                    self.fill(part, bucket)
                    for i in part:
                        del self._cache[(i, bucket)]
                    bar.update(len(part))
        return total

    def _noise_generator(self, index: int, bucket: tuple[int, int, int], attempt: int) -> torch.Generator:
        key = (index, *bucket) if attempt == 0 else (index, *bucket, attempt)
        return step_generator(self.seed, hash(key) % 2**31)

    def sample(self, noise: Tensor, captions: list[str]) -> Tensor:
        """The teacher's guided Euler sampler from `noise` (b, C, T', H', W') -> x0 of the same shape."""
        return guided_solve(self.teacher, self.prompts, noise.to(self.device), captions,
                            time_grid(self.sampler["steps"], self.sampler["shift"]), self.sampler["guidance"],
                            self.precision).cpu()

    def _file(self, index: int, bucket: tuple[int, int, int]) -> Path:
        return self.cache_dir / sample_name(index, bucket)

    def _write(self, path: Path, x0: Tensor, noise: Tensor, caption: str, score: float) -> None:
        from edgevid.io.atomic import atomic_save_safetensors

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors({"x0": x0.float().contiguous(), "noise": noise.contiguous()}, path,
                                metadata={"caption": caption, "sampler": json.dumps(self.sampler, sort_keys=True),
                                          "precision": self.precision, "verifier_score": f"{score:.4f}"})

    def _read(self, path: Path) -> tuple[Tensor, Tensor, str]:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            if json.loads(meta["sampler"]) != self.sampler:
                raise ValueError(f"{path} was sampled with {meta['sampler']}, this run asks for "
                                 f"{json.dumps(self.sampler, sort_keys=True)}: use another cache folder")
            return f.get_tensor("x0"), f.get_tensor("noise"), meta["caption"]


def sample_name(index: int, bucket: tuple[int, int, int]) -> str:
    """The cache file of clip `index`'s teacher sample in `bucket`."""
    return f"sample{index:07d}_{bucket[0]}x{bucket[1]}x{bucket[2]}.safetensors"


def draw_batch(g: torch.Generator, buckets, num_clips: int, batch_size: int) -> tuple[tuple[int, int, int], list[int]]:
    """A step's bucket and clips, drawn first from its generator (TeacherSamples' draw)."""
    bucket = buckets[int(torch.randint(len(buckets), (1,), generator=g))]
    return bucket, [int(i) for i in torch.randint(num_clips, (batch_size,), generator=g)]


def samples_drawn(seed: int, buckets, num_clips: int, batch_size: int,
                  steps: range) -> list[tuple[int, tuple[int, int, int]]]:
    """Every (clip, bucket) the training `steps` read, in the order first read: the draws are a
    pure function of (seed, step), so they are known before the run. Redraws of `keep_passing`
    (--teacher-filter) depend on the samples' scores and are not included."""
    drawn = {}
    for step in steps:
        bucket, indices = draw_batch(step_generator(seed, step), buckets, num_clips, batch_size)
        drawn.update(((i, bucket), None) for i in indices)
    return list(drawn)


def samples_to_draw(seed: int, buckets, num_clips: int, batch_size: int, steps: range,
                    cache_dir: str | Path | None = None) -> dict[tuple[int, int, int], int]:
    """Per bucket, how many of the samples the training `steps` read `cache_dir` does not hold
    yet (`edgevid distill`'s work estimate)."""
    cached = {p.name for p in Path(cache_dir).glob("sample*.safetensors")} if cache_dir else set()
    counts = {tuple(b): 0 for b in buckets}
    for i, b in samples_drawn(seed, buckets, num_clips, batch_size, steps):
        counts[b] += sample_name(i, b) not in cached
    return counts


def read_cached(cache: dict, indices, bucket: tuple[int, int, int], file_of, read) -> list[int]:
    """Fill `cache[(i, bucket)]` for clips `indices` from their files (`read(file_of(i, bucket))`)
    where written; returns the sorted clips that have none yet (to be sampled)."""
    missing = []
    for i in sorted({i for i in indices if (i, bucket) not in cache}):
        path = file_of(i, bucket)
        if path.is_file():
            cache[(i, bucket)] = read(path)
        else:
            missing.append(i)
    return missing


class StaticAttributeVerifier:
    """`verifier(x0, clip, bucket)` -> the share of ShapesBench's static checks that the decoded
    teacher sample passes against the training clip's own scene spec: each object's colour found
    as one coherent object, its shape, the object count and the background colour (motion is
    left out: a still has none, and short clips judge it poorly). `threshold`: the score a sample
    needs to be kept without further attempts."""

    name = "static-attributes-v1"

    def __init__(self, vae: VideoVAE, source, fps: float, threshold: float = 0.75):
        if not hasattr(source, "scene"):
            raise ValueError("the verifier needs scene specs: procedural clips")
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.vae, self.source, self.fps, self.threshold = vae, source, fps, threshold

    @torch.no_grad()
    def __call__(self, x0: Tensor, index: int, bucket: tuple[int, int, int]) -> float:
        from edgevid.eval.shapesbench.score import score_video
        from edgevid.pipeline import frames_to_uint8

        video = self.vae.decode_latents(x0[None].float().to(next(self.vae.parameters()).device))[0]  # (3, T, H, W)
        frames = frames_to_uint8(((video.float().cpu() + 1) / 2).permute(1, 2, 3, 0).numpy())  # (T, H, W, 3)
        if len(frames) == 1:
            frames = np.concatenate([frames, frames])  # a still: one frame shown twice
        result = score_video(frames, self.source.scene(index, bucket[0]), self.fps)
        return float(np.mean([result["colour_acc"], result["shape_acc"], result["count_correct"],
                              result["background_correct"]]))


@torch.no_grad()
def guided_solve(teacher: SpatioTemporalUNet, prompts, x: Tensor, captions: list[str], timesteps: Tensor,
                 guidance: float, precision: str = "fp32") -> Tensor:
    """Integrate the teacher's classifier-free-guided flow from x at timesteps[0] along `timesteps`
    (Euler, as the pipeline samples), in eval mode, bf16 autocast if `precision` is "bf16"."""
    device = x.device
    was_training = teacher.training
    teacher.eval()
    text = prompts.encode(captions)
    uncond = prompts.encode([""]) if guidance != 1.0 else None
    velocity = GuidedVelocity(teacher, text.tokens.to(device), text.mask.to(device),
                              None if uncond is None else uncond.tokens.to(device),
                              None if uncond is None else uncond.mask.to(device), guidance)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = sample_euler(velocity, x, timesteps)
    teacher.train(was_training)
    return out


class TeacherTargets:
    """`targets(x_t, t, captions)` -> the teacher's guided answer x0 from each x_t: its sampler's
    grid (steps, shift) below t, started at t. As the student's x0 target (consistency distillation
    with the teacher's full solve), every training step gets fresh noise and exact targets, where
    a cache of teacher samples repeats a finite set. The cost is the teacher's sampler from t:
    on average about half of a full sample per example for a 4-step student at shift 3."""

    def __init__(self, teacher: SpatioTemporalUNet, prompts, guidance: float, shift: float, sample_steps: int,
                 precision: str | None = "auto"):
        from edgevid.precision import resolve_precision

        self.teacher, self.prompts, self.guidance = teacher, prompts, float(guidance)
        self.grid = time_grid(sample_steps, shift)  # (steps + 1,) from 1 to 0
        self.precision = resolve_precision(precision, next(teacher.parameters()).device.type)

    def __call__(self, x_t: Tensor, t: Tensor, captions: list[str]) -> Tensor:
        out = torch.empty_like(x_t)
        for value in t.unique():
            rows = (t == value).nonzero().flatten()
            timesteps = torch.cat([value.reshape(1).cpu().float(), self.grid[self.grid < float(value) - 1e-6]])
            out[rows] = guided_solve(self.teacher, self.prompts, x_t[rows], [captions[i] for i in rows.tolist()],
                                     timesteps, self.guidance, self.precision).to(out)
        return out
