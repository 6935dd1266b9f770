"""The README's picture: a model's videos for six prompts beside the ground-truth renders.

    python benchmarks/readme_grid.py --model default --output docs/images/default_grid.png

Six benchmark hold-out scenes (one per background type and the two-object case), each a row:
four frames of the ground truth render, then four frames of the model's video for the scene's
canonical caption, and the row's ShapesBench adherence. Generated at the model's default size
and frame count (what `edgevid generate` gives), seed = row index.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROWS = 6
FRAMES_SHOWN = 4
TILE = 128


def pick_specs(n: int = ROWS):
    """The first benchmark scene of each background type, then the first two-object scene."""
    from edgevid.eval.shapesbench import benchmark_specs

    chosen, seen = [], set()
    pool = benchmark_specs(200)
    for spec, caption in pool:
        if spec.background not in seen and len(spec.objects) == 1:
            chosen.append((spec, caption))
            seen.add(spec.background)
    chosen += [(s, c) for s, c in pool if len(s.objects) == 2][: n - len(chosen)]
    return chosen[:n]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--output", required=True, help="PNG path")
    p.add_argument("--num-frames", type=int)
    p.add_argument("--size", type=int, help="height = width (default: the model's)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if Path(args.output).suffix.lower() != ".png":
        p.error("--output must end in .png")
    import torch
    from PIL import Image, ImageDraw

    from edgevid.data.world import render_video
    from edgevid.eval.shapesbench import score_video
    from edgevid.data.preview import paste_frames, save_sheet
    from edgevid.pipeline import EdgeVidPipeline, frames_to_uint8, resolve_model_dir

    torch.set_num_threads(args.threads)
    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model))
    T = args.num_frames or pipe.defaults.num_frames
    H = W = args.size or pipe.defaults.height
    fps = pipe.defaults.fps
    rows = []
    for i, (spec, caption) in enumerate(pick_specs()):
        video = frames_to_uint8(pipe(caption, num_frames=T, height=H, width=W,
                                     generator=torch.Generator().manual_seed(i)).frames[0])
        truth = render_video(spec, T, H, W, fps)
        rows.append((caption, truth, video, score_video(video, spec, fps)["prompt_adherence"]))

    gap, text_h = 6, 16
    width = 2 * FRAMES_SHOWN * (TILE + 2) + gap + 8
    img = Image.new("RGB", (width, 24 + ROWS * (TILE + text_h + 6)), "white")
    draw = ImageDraw.Draw(img)
    draw.text((8, 6), f"left: ground truth  |  right: edgevid --model {args.model} ({T} frames {H}x{W})", fill="black")
    for r, (caption, truth, video, score) in enumerate(rows):
        y = 24 + r * (TILE + text_h + 6)
        draw.text((8, y), f"{caption}   [ShapesBench {score:.2f}]"[:110], fill="black")
        for half, frames in enumerate((truth, video)):
            paste_frames(img, frames, FRAMES_SHOWN, 4 + half * (FRAMES_SHOWN * (TILE + 2) + gap), y + text_h, TILE, TILE)
    save_sheet(img, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
