"""A picture of image-to-video models against the world: per hold-out scene, frames of the ground
truth continuation, then each model's clip from the same first frame, with its graded score.

    python benchmarks/i2v_grid.py --models campaign/i2v_teacher i2v --scenes 0 1 2 3 \
        --output docs/images/i2v_grid.png

Each row is one model on one scene (the scene's first benchmark index, the evaluation's seed for
it), so the models read against each other and against the truth directly above them. The label
gives `i2v_graded` and its two factors (edgevid/eval/i2v.py), scored as `edgevid eval` does.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRAMES_SHOWN = 5
TILE_H = 96  # the 2:1 clip shown at 96 x 192


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True, help="image-to-video model folders or shipped names")
    p.add_argument("--labels", nargs="+", help="one label per model (default: the names given)")
    p.add_argument("--scenes", nargs="+", type=int, default=[0, 1, 2, 3], help="hold-out benchmark indices")
    p.add_argument("--output", required=True, help="PNG path")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if Path(args.output).suffix.lower() != ".png":
        p.error("--output must end in .png")
    if args.labels and len(args.labels) != len(args.models):
        p.error("--labels needs one label per model")
    import torch
    from PIL import Image, ImageDraw

    from edgevid.data.world import render_video
    from edgevid.eval.i2v import score_i2v
    from edgevid.eval.shapesbench import benchmark_specs
    from edgevid.data.preview import paste_frames, save_sheet
    from edgevid.pipeline import frames_to_uint8, resolve_model_dir
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline

    torch.set_num_threads(args.threads)
    pipes = [EdgeVidImg2VidPipeline.from_pretrained(resolve_model_dir(m), precision="fp32") for m in args.models]
    labels = args.labels or args.models
    d = pipes[0].defaults
    T, H, W, fps = d.num_frames, d.height, d.width, d.fps
    specs = benchmark_specs(max(200, max(args.scenes) + 1))
    rows = []  # (label, frames)
    for i in args.scenes:
        spec, caption = specs[i]
        truth = render_video(spec, T, H, W, fps)
        rows.append((f"scene {i}: {caption} - ground truth", truth))
        for pipe, label in zip(pipes, labels):
            video = frames_to_uint8(pipe(truth[0], generator=torch.Generator().manual_seed(i)).frames[0])
            s = score_i2v(video, truth[0], spec, fps, truth)
            rows.append((f"{label} ({pipe.defaults.num_inference_steps} steps): i2v_graded {s['i2v_graded']:.3f} "
                         f"(objects {s['objects_graded']:.2f}, motion {s['motion_graded']:.2f})", video))

    tile_w = TILE_H * W // H
    text_h, gap = 14, 4
    img = Image.new("RGB", (FRAMES_SHOWN * (tile_w + 2) + 8, 22 + len(rows) * (TILE_H + text_h + gap)), "white")
    draw = ImageDraw.Draw(img)
    draw.text((4, 4), f"image-to-video: frames 0..{T - 1} of {W}x{H} at {fps} fps, each model from the scene's frame 0",
              fill="black")
    for r, (label, frames) in enumerate(rows):
        y = 22 + r * (TILE_H + text_h + gap)
        draw.text((4, y), label[:120], fill="black")
        paste_frames(img, frames, FRAMES_SHOWN, 4, y + text_h, tile_w, TILE_H)
    save_sheet(img, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
