"""Streaming: time to first frame against the length of the first window, and seams at chunk borders.

    .venv/bin/python benchmarks/streaming.py --first-windows 0,1,2,3 --repeats 5 --seam-specs 50 \\
        --output runs/eval/streaming.json

1. Time to first frame (TTFF) of `pipe.stream` for the default 5-s video (121 frames, 256x256),
   for each first window (latent frames denoised alone first; 0 = the whole clip first), and the
   total seconds to drain the stream (what the short first window costs: it is denoised twice,
   once alone and once as the next chunk's known prefix). Warm, median of --repeats.
2. Seams: on the first --seam-specs ShapesBench specs at 49 frames of 128x128, the jump at a
   chunk border: mean |frame[b] - frame[b-1]| (uint8 levels) at the first frame b of each later
   chunk, against that jump at the clip's other latent-group borders (frames 1 + 4k). Their ratio
   is the seam ratio (1 = no seam); the same frames of the clip generated whole and of the
   ground-truth renders are the references. Measured for the short first window of streaming
   (--seam-first-windows) and, for long videos, chunk-wise generation (--window, --overlap).
   ShapesBench adherence and temporal metrics of the same settings: `edgevid eval --first-window`.
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
from edgevid.pipeline import EdgeVidPipeline, frames_to_uint8, replace_defaults, resolve_model_dir

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


def border_jumps(video: np.ndarray, borders: list[int], tc: int = 4) -> tuple[float, float]:
    """(mean jump |frame[b] - frame[b-1]| at the chunk borders b, the same at the other
    latent-group borders: frames 1 + tc*k, where the causal decoder starts a new latent's frames,
    i.e. the places a chunk border can fall, so the comparison is like for like), in uint8 levels."""
    diffs = np.abs(np.diff(video.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))  # diffs[i]: frame i -> i+1
    others = [g for g in range(1 + tc, len(video), tc) if g not in borders]
    return float(np.mean([diffs[b - 1] for b in borders])), float(np.mean([diffs[g - 1] for g in others]))


def seam_stats(videos: list[np.ndarray], borders: list[int]) -> dict:
    """Mean jumps over the clips and their ratio (1 = a chunk border looks like any other latent border)."""
    at, other = np.mean([border_jumps(v, borders) for v in videos], axis=0)
    return {"jump_at_borders": float(at), "jump_at_other_latent_borders": float(other),
            "seam_ratio": float(at / max(other, 1e-3))}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--first-windows", default="0,1,2,3", help="comma-separated first windows to time (\"\" = skip timing)")
    p.add_argument("--seam-specs", type=int, default=50, help="ShapesBench specs for the seam measure (0 = skip)")
    p.add_argument("--seam-first-windows", default="2", help="comma-separated first windows for the seam measure")
    p.add_argument("--window", type=int, default=6, help="window for the long-video seam check (latent frames; 0 = skip)")
    p.add_argument("--overlap", type=int, default=2)
    p.add_argument("--continuation", choices=("noise", "hold"), help="how continuing chunks start (default: the model's)")
    p.add_argument("--output", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model))
    if args.continuation:
        pipe = replace_defaults(pipe, continuation_start=args.continuation)
    result = {"settings": {**vars(args), "output": str(args.output) if args.output else None}, "ttff": {}, "seams": {}}
    for first in (int(f) for f in args.first_windows.split(",") if f.strip()):
        ttff, total = stream_times(pipe, first, args.repeats)
        result["ttff"][first] = {"time_to_first_frame_s": ttff, "stream_total_s": total}
        print(f"first window {first}: first frame after {ttff:.2f} s, all 121 frames after {total:.2f} s", flush=True)
    if args.seam_specs:
        fps, T = pipe.defaults.fps, 49
        specs = benchmark_specs(n=max(200, args.seam_specs))[:args.seam_specs]
        settings = {f"first_window_{f}": dict(first=int(f), window=0, overlap=pipe.defaults.overlap_latent_frames)
                    for f in args.seam_first_windows.split(",") if f.strip()}
        if args.window:
            settings["windows"] = dict(first=0, window=args.window, overlap=args.overlap)
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
                gen.append(frames_to_uint8(frames))
            row = {**s, "border_frames": borders, "generated": seam_stats(gen, borders),
                   "generated_whole": seam_stats(plain, borders), "ground_truth": seam_stats(truth, borders)}
            result["seams"][name] = row
            print(f"{name} {s}: borders at frames {borders}; jump at the borders / at other latent borders "
                  f"(uint8 levels): " + "; ".join(f"{k} {v['jump_at_borders']:.2f} / {v['jump_at_other_latent_borders']:.2f}"
                                                 f" = {v['seam_ratio']:.2f}" for k, v in row.items()
                                                 if isinstance(v, dict)), flush=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
