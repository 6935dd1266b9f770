"""Does the denoiser use the prompt for the objects? The text-binding probe of
`edgevid/eval/binding.py` on the ShapesBench scenes, for one or more models.

`object colour gain` = err(recolour) / err(true) - 1 on the latent cells the objects cover
(0 = the object colour words are ignored); `object text gain` is the same against the empty
caption; `background text gain` shows how much of the prompt goes to the background.

    python benchmarks/text_binding.py --model teacher --model v6=models/t2v6 --num 64 --threads 2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgevid.eval.binding import binding_errors, scene_inputs, summarise
from edgevid.eval.shapesbench.benchmark import benchmark_specs
from edgevid.io.atomic import atomic_write_text
from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", required=True,
                   help="NAME=DIR or a shipped model's name / a folder; repeat to compare")
    p.add_argument("--num", type=int, default=64, help="benchmark scenes (default 64)")
    p.add_argument("--split", default="holdout", choices=("holdout", "train"),
                   help="the benchmark's scenes or the training stream's own (see `edgevid eval --split`)")
    p.add_argument("--frames", type=int, default=9, help="frames per clip, 1 + 4k (default 9)")
    p.add_argument("--size", type=int, default=128, help="height = width, a multiple of 32 (default 128)")
    p.add_argument("--t", default="0.3,0.5,0.7,0.9", help="noise levels (comma-separated, in (0, 1])")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--output", help="write the figures as JSON here")
    args = p.parse_args(argv)
    try:
        ts = [float(x) for x in args.t.split(",")]
    except ValueError:
        p.error(f"--t must be comma-separated numbers, got {args.t!r}")
    if not all(0 < t <= 1 for t in ts):
        p.error(f"--t values must be in (0, 1], got {args.t!r}")
    if args.num < 1 or args.frames < 1 or (args.frames - 1) % 4 or args.size < 32 or args.size % 32:
        p.error("need --num >= 1, --frames = 1 + 4k and --size a multiple of 32")
    if args.output and not Path(args.output).resolve().parent.is_dir():
        p.error(f"--output: folder {Path(args.output).parent} does not exist")
    if args.threads:
        torch.set_num_threads(args.threads)
    models = []
    for item in args.model:
        name, _, path = item.partition("=") if "=" in item else (item, "", item)
        try:
            folder = resolve_model_dir(path)
        except ValueError as e:
            p.error(str(e))
        if not folder.is_dir():
            p.error(f"--model {item!r}: no model folder at {folder}")
        models.append((name, folder))

    specs = [s for s, _ in benchmark_specs(args.num, split=args.split)]
    results = {"settings": {"num": args.num, "split": args.split, "frames": args.frames, "size": args.size,
                            "t": ts, "seed": args.seed}, "models": {}}
    print(f"{args.num} {args.split} scenes, {args.frames} frames of {args.size}x{args.size}, t = {ts}")
    print("| model | object colour gain | object text gain | background text gain | object err (true caption) |")
    print("|---|---|---|---|---|")
    for name, path in models:
        t0 = time.perf_counter()
        pipe = EdgeVidPipeline.from_pretrained(path)
        x0, mask, captions = scene_inputs(pipe, specs, args.frames, args.size)
        summary = summarise(binding_errors(pipe, x0, mask, captions, ts, args.seed), ts)
        summary["model_dir"], summary["wall_s"] = str(path), round(time.perf_counter() - t0, 1)
        results["models"][name] = summary
        m = summary["mean"]
        err = np.mean([r["object_err"]["true"] for r in summary["per_t"].values()])
        print(f"| {name} | {m['object_colour_gain']:+.4f} | {m['object_text_gain']:+.4f} | "
              f"{m['background_text_gain']:+.4f} | {err:.4f} |", flush=True)
    if args.output:
        atomic_write_text(Path(args.output), json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
