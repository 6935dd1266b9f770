"""The step-distillation table (SnapGen-V Tab. 5/6 on ShapesBench): quality and CPU seconds per video.

    .venv/bin/python benchmarks/step_distillation.py \
        --model teacher=teacher --model student4=models/student4 --model student2=models/student2 \
        --limit 200 --num-frames 49 --size 128 --output runs/eval/distill_table.json

For each model (a shipped name or a folder, sampled with its own stored defaults: the teacher with
25 steps and CFG, students with k steps and no guidance; `NAME=DIR:STEPS` overrides the steps):
  - ShapesBench on the first --limit benchmark specs at --num-frames x --size x --size: prompt
    adherence, per-attribute accuracies, flicker, smoothness, dynamic degree (edgevid.eval);
  - seconds per default video (121 frames, 256x256, 24 fps = 5 s): warm pipeline, text encoding +
    sampling + decoding, median of --repeats runs after one warm-up, in this process, on
    --threads threads. File writing is left out (it is the same for every row).
`--limit 0` times without ShapesBench (e.g. a student sampled at fewer steps: same network,
fewer calls). Prints a Markdown table and writes the JSON (rows in the order given; speed-up against row 1).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


QUALITY = ("prompt_adherence", "object_colour_present", "object_shape_correct", "object_motion_correct",
           "count_correct", "background_correct", "temporal_flickering", "motion_smoothness", "dynamic_degree")


def parse_model(text: str) -> tuple[str, str, int | None]:
    if "=" not in text:
        raise SystemExit(f"--model must look like NAME=DIR or NAME=DIR:STEPS, got {text!r}")
    name, rest = text.split("=", 1)
    path, _, steps = rest.partition(":")
    return name, path, int(steps) if steps else None


def seconds_per_video(pipe, steps: int | None, repeats: int) -> float:
    prompt = "a red circle bouncing on a blue background"
    pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(0))  # warm-up
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        pipe(prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(i))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    from edgevid.eval.shapesbench.run import evaluate
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=DIR[:STEPS]; repeat, first = reference")
    ap.add_argument("--limit", type=int, default=200, help="ShapesBench specs per model (0 = timing only)")
    ap.add_argument("--num-frames", type=int, default=49)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per model (median)")
    ap.add_argument("--no-timing", action="store_true", help="ShapesBench only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    if args.limit == 0 and args.no_timing:
        raise SystemExit("--limit 0 with --no-timing measures nothing")
    torch.set_num_threads(args.threads)

    rows = []
    for spec in args.model:
        name, path, steps = parse_model(spec)
        pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(path))
        row = {"name": name, "model": path, "steps": steps or pipe.defaults.num_inference_steps,
               "guidance": pipe.defaults.guidance_scale}
        if args.limit:
            t0 = time.perf_counter()
            result, _ = evaluate(pipe, limit=args.limit, num_frames=args.num_frames, height=args.size, width=args.size,
                                 num_inference_steps=steps, progress=False)
            row.update({k: result["summary"][k] for k in QUALITY}, eval_wall_s=round(time.perf_counter() - t0, 1))
        if not args.no_timing:
            row["s_per_5s_video"] = seconds_per_video(pipe, steps, args.repeats)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if not args.no_timing:
        for row in rows:
            row["speedup_vs_first"] = rows[0]["s_per_5s_video"] / row["s_per_5s_video"]
    out = {"settings": {"limit": args.limit, "num_frames": args.num_frames, "size": args.size,
                        "repeats": args.repeats, "threads": args.threads, "torch": torch.__version__},
           "ground_truth": result["ground_truth"] if args.limit else None, "rows": rows}
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")

    cols = ["name", "steps", "guidance", *(QUALITY if args.limit else ())] + \
        ([] if args.no_timing else ["s_per_5s_video", "speedup_vs_first"])
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
