"""Run ShapesBench on a pipeline: generate each benchmark caption, score it against its spec.

    benchmark_specs -> pipe(caption) -> uint8 video -> score_video(video, spec) -> aggregate
    -> JSON (overall `prompt_adherence`, per-attribute accuracies, temporal metrics) + PNG report
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from edgevid.data.world import render_video
from edgevid.eval.shapesbench.benchmark import benchmark_specs
from edgevid.eval.shapesbench.score import aggregate, score_video, to_builtin
from edgevid.eval.shapesbench.truth import ground_truth_rows

# Bars drawn in the report: (label, key of the aggregate).
REPORT_BARS = (
    ("prompt adherence", "prompt_adherence"), ("colour", "object_colour_present"), ("shape", "object_shape_correct"),
    ("motion", "object_motion_correct"), ("count", "count_correct"), ("background", "background_correct"),
    ("flicker score", "temporal_flickering"), ("smoothness", "motion_smoothness"),
    ("consistency", "subject_consistency"), ("dynamic degree", "dynamic_degree"),
)


def evaluate(pipe, limit: int | None = None, num_frames: int | None = None, height: int | None = None,
             width: int | None = None, num_inference_steps: int | None = None, guidance_scale: float | None = None,
             seed: int = 0, progress: bool = True, shift: float | None = None, first_window_latent_frames: int = 0,
             window_latent_frames: int | None = None, overlap_latent_frames: int | None = None,
             split: str = "holdout", cache_truth: bool = True) -> tuple[dict, list[np.ndarray]]:
    """Score `pipe` on the first `limit` benchmark specs (all 200 by default).

    split="train" scores the training stream's own scenes instead (a diagnostic: see
    `benchmark_specs`).

    Video i is generated with seed `seed + i`. The world's motion is defined in seconds, so
    scoring uses the pipeline's playback fps. The window arguments go to the pipeline (chunk-wise
    generation, e.g. the short first window of streaming). Returns (results JSON, the videos).
    """
    from tqdm.auto import tqdm

    from edgevid.pipeline import frames_to_uint8

    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    specs = benchmark_specs(n=max(200, limit or 0), split=split)[:limit]
    fps = pipe.defaults.fps
    per_video, videos = [], []
    for i, (spec, caption) in enumerate(tqdm(specs, desc="ShapesBench", disable=not progress)):
        frames = pipe(caption, num_frames=num_frames, height=height, width=width,
                      num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, shift=shift,
                      generator=torch.Generator().manual_seed(seed + i),
                      first_window_latent_frames=first_window_latent_frames, window_latent_frames=window_latent_frames,
                      overlap_latent_frames=overlap_latent_frames).frames[0]
        video = frames_to_uint8(frames)  # (T, H, W, 3)
        videos.append(video)
        per_video.append({"index": i, "caption": caption, "seed": seed + i, **score_video(video, spec, fps)})
    summary = aggregate(per_video)
    # The same specs rendered by the world at the same size and fps: the ceiling every figure
    # is read against (temporal metrics of real motion, adherence of a perfect model).
    # Scored once per spec and size (edgevid.eval.shapesbench.truth): the same for every model.
    ground_truth = aggregate(ground_truth_rows([spec for spec, _ in specs], *videos[0].shape[:3], fps, score_video,
                                               render_video, cache=cache_truth, progress=progress))
    settings = {"split": split, "num_videos": len(specs), "num_frames": int(videos[0].shape[0]), "height": int(videos[0].shape[1]),
                "width": int(videos[0].shape[2]), "fps": fps, "seed": seed,
                "num_inference_steps": num_inference_steps or pipe.defaults.num_inference_steps,
                "guidance_scale": pipe.defaults.guidance_scale if guidance_scale is None else guidance_scale,
                "shift": pipe.defaults.shift if shift is None else shift,
                "first_window_latent_frames": first_window_latent_frames,
                "continuation_start": pipe.defaults.continuation_start,
                "window_latent_frames": pipe.defaults.window_latent_frames if window_latent_frames is None
                else window_latent_frames,
                "overlap_latent_frames": pipe.defaults.overlap_latent_frames if overlap_latent_frames is None
                else overlap_latent_frames}
    result = {"prompt_adherence": summary["prompt_adherence"], "settings": settings, "summary": summary,
              "ground_truth": ground_truth, "per_video": per_video}
    return json.loads(json.dumps(result, default=to_builtin)), videos


def write_report(result: dict, videos: list[np.ndarray], path: str | Path, max_videos: int = 8) -> Path:
    """PNG: per-attribute bars on top, then a grid of sample frames (one row per video, 5 frames)."""
    from PIL import Image, ImageDraw

    from edgevid.io.atomic import atomic_write

    summary, width, bar_h = result["summary"], 640, 18
    rows = videos[:max_videos]
    tile = 96
    grid_h = len(rows) * (tile + 14)
    img = Image.new("RGB", (width, 30 + bar_h * len(REPORT_BARS) + 10 + grid_h), "white")
    draw = ImageDraw.Draw(img)
    s = result["settings"]
    draw.text((8, 8), f"ShapesBench: {s['num_videos']} videos, {s['num_frames']} frames {s['height']}x{s['width']}, "
                      f"{s['num_inference_steps']} steps, guidance {s['guidance_scale']}", fill="black")
    for k, (label, key) in enumerate(REPORT_BARS):
        y, value = 30 + k * bar_h, float(summary.get(key, 0.0))
        draw.text((8, y + 3), label, fill="black")
        draw.rectangle((140, y + 2, 140 + int(400 * value), y + bar_h - 3), fill=(70, 110, 200))
        draw.text((548, y + 3), f"{value:.3f}", fill="black")
    y0 = 30 + bar_h * len(REPORT_BARS) + 10
    for r, (video, info) in enumerate(zip(rows, result["per_video"])):
        y = y0 + r * (tile + 14)
        draw.text((8, y), f"{info['prompt_adherence']:.2f}  {info['caption']}"[:100], fill="black")
        for c, t in enumerate(np.linspace(0, len(video) - 1, 5).round().astype(int)):
            frame = Image.fromarray(video[t]).resize((tile, tile), Image.NEAREST)
            img.paste(frame, (8 + c * (tile + 4), y + 12))
    path = Path(path)
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
    return path
