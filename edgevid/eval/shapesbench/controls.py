"""Negative controls for ShapesBench: videos that do not follow their prompt and must score low.

    smooth_colour_field, white_noise   colour noise (issue 16: colour alone scored 0.96 on these)
    decoded_random_latents             what an untrained denoiser leaves: its initial noise, decoded
    recoloured                         the ground truth with every object in another palette colour

Used by tests/eval/test_shapesbench.py (each must score <= 0.10) and benchmarks/shapesbench_floor.py.
"""
from __future__ import annotations

import numpy as np

from edgevid.data.world import COLOURS, ObjectSpec, SceneSpec, render_video


def smooth_colour_field(rng: np.random.Generator, frames: int, size: int, frozen: bool) -> np.ndarray:
    """(T, S, S, 3) uint8: uniform random colours on a 16x16 grid, bicubic upsampling."""
    import cv2

    n = 1 if frozen else frames
    small = rng.uniform(0, 255, (n, 16, 16, 3)).astype(np.float32)
    big = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in small])
    big = np.clip(big, 0, 255).astype(np.uint8)
    return np.repeat(big, frames, 0) if frozen else big


def white_noise(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    return rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


def recoloured(spec: SceneSpec, frames: int, size: int, fps: float, width: int | None = None) -> np.ndarray:
    """Ground truth with every object in a palette colour that the scene does not use (and that
    stands out from the background, so the object stays visible). (T, size, width or size, 3)."""
    from edgevid.data.splits import contrasts

    used = {o.colour for o in spec.objects} | {spec.background_colour}
    free = [c for c in COLOURS if c not in used and contrasts(c, spec.background_colour, spec.background)]
    free += [c for c in COLOURS if c not in used and c not in free]
    objs = tuple(ObjectSpec(free[i], o.shape, o.motion, o.x, o.y, o.size, o.speed, o.angle)
                 for i, o in enumerate(spec.objects))
    changed = SceneSpec(objs, spec.background, spec.background_colour, spec.camera, spec.camera_speed,
                        spec.duration, spec.seed)
    return render_video(changed, frames, size, width or size, fps)


def decoded_random_latents(vae, rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    import torch

    from edgevid.pipeline import frames_to_uint8

    shape = vae.latent_shape(frames, size, size)  # (C, T', H', W')
    z = torch.from_numpy(rng.standard_normal((1, *shape)).astype(np.float32))
    with torch.no_grad():
        video = vae.decode(vae.denormalize(z))  # (1, 3, T, H, W) in about [-1, 1]
    frames = ((video[0].permute(1, 2, 3, 0) + 1) / 2).numpy()  # (3, T, H, W) -> (T, H, W, 3) in [0, 1]
    return frames_to_uint8(frames)
