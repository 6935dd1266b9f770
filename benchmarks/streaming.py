"""Streaming: time to first frame against the length of the first window, and seams at chunk borders.

    .venv/bin/python benchmarks/streaming.py --first-windows 0,1,2,3 --repeats 5 --seam-specs 50 \\
        --output runs/eval/streaming.json

1. Time to first frame (TTFF) of `pipe.stream` for the default 5-s video (121 frames, 256x256),
   for each first window (latent frames denoised alone first; 0 = the whole clip first), and the
   total seconds to drain the stream (what the short first window costs: it is denoised twice,
   once alone and once as the next chunk's known prefix). Warm, median of --repeats.
2. Seams: on the first --seam-specs ShapesBench specs at 49 frames of 128x128, the jump at a
   chunk border: mean |frame[b] - frame[b-1]| at the first frame b of each later chunk divided by
   the mean of that jump at the clip's other latent-group borders (frames 1 + 4k; 1 = no seam;
   the same frames of the clip generated whole, and of ground-truth renders, are the references),
   with a short first window and, for long videos, chunk-wise generation in windows (--window,
   --overlap). ShapesBench
   adherence and temporal metrics of the same settings come from `edgevid eval --first-window`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from edgevid.data.world import render_video
from edgevid.eval.shapesbench.benchmark import benchmark_specs
from edgevid.flow.sample import chunk_plan
from edgevid.pipeline import EdgeVidPipeline, frames_to_uint8, resolve_model_dir

PROMPT = "a red circle moving right on a blue background"


def stream_times(pipe, first: int, repeats: int) -> tuple[float, float]:
    """(median seconds to the first frame, median seconds to the last) of pipe.stream."""
    ttff, total = [], []
    for i in range(repeats + 1):  # the first run warms up
        pipe.prompt_cache.clear()
        t0 = time.perf_counter()
        it = pipe.stream(PROMPT, generator=torch.Generator().manual_seed(i), first_window_latent_frames=first)
        next(it)
        t1 = time.perf_counter()
        for _ in it:
            pass
        if i:
            ttff.append(t1 - t0)
            total.append(time.perf_counter() - t0)
    return statistics.median(ttff), statistics.median(total)


def border_frames(pipe, num_frames: int, first: int, window: int, overlap: int) -> list[int]:
    """Video-frame indices b where a new chunk's own frames start (frame b-1 is the chunk before's)."""
    K = pipe.vae.latent_shape(num_frames, 128, 128)[1]
    plan = chunk_plan(K, window, overlap, first)
    tc = pipe.vae.config.temporal_compression
    # the chunk ending at latent e hands out frames up to 1 + tc*(e-1) - 1
    return [1 + tc * (end - 1) for _, end in plan[:-1]]


def seam_ratio(video: np.ndarray, borders: list[int], tc: int = 4) -> float:
    """Mean jump |frame[b] - frame[b-1]| at the chunk borders b over the mean jump at the other
    latent-group borders (frames 1 + tc*k, where the causal decoder starts a new latent's frames:
    the places a chunk border can fall, so the comparison is like for like)."""
    diffs = np.abs(np.diff(video.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))  # diffs[i]: frame i -> i+1
    others = [g for g in range(1 + tc, len(video), tc) if g not in borders]
    return float(np.mean([diffs[b - 1] for b in borders]) / max(np.mean([diffs[g - 1] for g in others]), 1e-3))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--first-windows", default="0,1,2,3", help="comma-separated first windows to time (\"\" = skip timing)")
    p.add_argument("--seam-specs", type=int, default=50, help="ShapesBench specs for the seam measure (0 = skip)")
    p.add_argument("--seam-first-window", type=int, default=2)
    p.add_argument("--window", type=int, default=6, help="window for the long-video seam check (latent frames)")
    p.add_argument("--overlap", type=int, default=2)
    p.add_argument("--output", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model))
    result = {"settings": {**vars(args), "output": str(args.output) if args.output else None}, "ttff": {}, "seams": {}}
    for first in (int(f) for f in args.first_windows.split(",") if f.strip()):
        ttff, total = stream_times(pipe, first, args.repeats)
        result["ttff"][first] = {"time_to_first_frame_s": ttff, "stream_total_s": total}
        print(f"first window {first}: first frame after {ttff:.2f} s, all 121 frames after {total:.2f} s", flush=True)
    if args.seam_specs:
        fps, T = pipe.defaults.fps, 49
        specs = benchmark_specs(n=max(200, args.seam_specs))[:args.seam_specs]
        settings = {"first_window": dict(first=args.seam_first_window, window=0, overlap=pipe.defaults.overlap_latent_frames),
                    "windows": dict(first=0, window=args.window, overlap=args.overlap)}
        plain = [frames_to_uint8(pipe(caption, num_frames=T, height=128, width=128,
                                      generator=torch.Generator().manual_seed(i)).frames[0])
                 for i, (_, caption) in enumerate(specs)]  # the same seeds generated whole
        truth = [render_video(spec, T, 128, 128, fps) for spec, _ in specs]
        for name, s in settings.items():
            borders = border_frames(pipe, T, s["first"], s["window"], s["overlap"])
            gen = []
            for i, (spec, caption) in enumerate(specs):
                frames = pipe(caption, num_frames=T, height=128, width=128, generator=torch.Generator().manual_seed(i),
                              first_window_latent_frames=s["first"], window_latent_frames=s["window"],
                              overlap_latent_frames=s["overlap"]).frames[0]
                gen.append(seam_ratio(frames_to_uint8(frames), borders))
            row = {**s, "border_frames": borders, "seam_ratio": float(np.mean(gen)),
                   "seam_ratio_unchunked": float(np.mean([seam_ratio(v, borders) for v in plain])),
                   "seam_ratio_ground_truth": float(np.mean([seam_ratio(v, borders) for v in truth]))}
            result["seams"][name] = row
            print(f"{name} {s}: borders at frames {borders}; seam ratio {row['seam_ratio']:.2f} (same frames of the "
                  f"clip generated whole {row['seam_ratio_unchunked']:.2f}, ground truth "
                  f"{row['seam_ratio_ground_truth']:.2f})", flush=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
