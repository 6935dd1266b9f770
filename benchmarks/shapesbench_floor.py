"""ShapesBench's noise floor: what videos that do not follow the prompt score (issue 16).

    python benchmarks/shapesbench_floor.py --num 40 --frames 49 --size 128 --fps 24 --output floor.json

Scores, on the first NUM hold-out specs, the ground-truth renders and videos that must fail:
smooth random colour fields (16x16 uniform colours upsampled bicubically, independent per frame
and frozen over time), white noise, random latents decoded by a shipped VAE (what an untrained
denoiser leaves), and the ground truth with every object recoloured to a palette colour the
scene does not use. Prints a table of the new and the legacy (pre-issue-16) prompt adherence.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgevid.data.world import render_video  # noqa: E402
from edgevid.eval.shapesbench import aggregate, benchmark_specs, score_video  # noqa: E402
from edgevid.eval.shapesbench.controls import (  # noqa: E402
    decoded_random_latents, recoloured, smooth_colour_field, white_noise,
)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num", type=int, default=40, help="hold-out specs (default 40)")
    p.add_argument("--frames", type=int, default=49)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--fps", type=float, default=24)
    p.add_argument("--model", default="teacher", help="whose VAE decodes the random latents (default teacher)")
    p.add_argument("--output", help="JSON with every row")
    args = p.parse_args(argv)
    if args.num < 1 or args.frames < 2 or args.size < 16 or not args.fps > 0:
        p.error("need --num >= 1, --frames >= 2, --size >= 16, --fps > 0")
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

    vae = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model)).vae.eval()
    specs = [spec for spec, _ in benchmark_specs(args.num)]
    rng = np.random.default_rng(0)
    T, S, fps = args.frames, args.size, args.fps
    makers = {
        "ground truth": lambda s: render_video(s, T, S, S, fps),
        "smooth random colours (per frame)": lambda s: smooth_colour_field(rng, T, S, frozen=False),
        "smooth random colours (frozen)": lambda s: smooth_colour_field(rng, T, S, frozen=True),
        "white noise": lambda s: white_noise(rng, T, S),
        "random latents, decoded": lambda s: decoded_random_latents(vae, rng, T, S),
        "every object recoloured": lambda s: recoloured(s, T, S, fps),
    }
    rows = {}
    for name, make in makers.items():
        agg = aggregate([score_video(make(s), s, fps) for s in specs])
        rows[name] = {k: agg[k] for k in ("prompt_adherence", "colour_acc", "shape_acc", "motion_acc", "count_correct",
                                          "background_correct", "legacy_prompt_adherence", "legacy_colour_acc")}
    print(f"ShapesBench noise floor: first {args.num} hold-out specs, {T} frames {S}x{S} at {fps:g} fps")
    print(f"{'video':36s} {'adherence':>9s} {'colour':>6s} {'shape':>6s} {'motion':>6s} {'count':>6s} {'bg':>6s} "
          f"{'legacy adh.':>11s} {'legacy col.':>11s}")
    for name, r in rows.items():
        print(f"{name:36s} {r['prompt_adherence']:9.3f} {r['colour_acc']:6.3f} {r['shape_acc']:6.3f} "
              f"{r['motion_acc']:6.3f} {r['count_correct']:6.3f} {r['background_correct']:6.3f} "
              f"{r['legacy_prompt_adherence']:11.3f} {r['legacy_colour_acc']:11.3f}")
    if args.output:
        Path(args.output).write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
