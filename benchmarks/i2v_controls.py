"""The image-to-video evaluation's controls: what clips that must pass or fail score (issue 18).

    python benchmarks/i2v_controls.py --num 24 --output i2v_controls.json     # the shipped i2v size, ~30 min on 1 core

On the first NUM hold-out scenes, at the I2V model's size, length and fps, scores (with the truth
given, so the graded factors too): the ground-truth continuation, its VAE reconstruction (the
model's ceiling), the same scene at half speed, the truth blurred, the frozen image, the frames
shuffled after the first, white noise, the image followed by noise, the scene recoloured, and
another scene's clip. Prints a table of i2v_score and i2v_graded with their factors.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgevid.data.world import render_video  # noqa: E402
from edgevid.eval.i2v import aggregate_i2v, score_i2v  # noqa: E402
from edgevid.eval.shapesbench import benchmark_specs  # noqa: E402
from edgevid.eval.shapesbench.controls import recoloured  # noqa: E402

COLUMNS = ("i2v_score", "i2v_graded", "fidelity", "objects_graded", "motion_graded")


def _blurred(video: np.ndarray) -> np.ndarray:
    v = video.astype(np.float32)
    taps = v + np.roll(v, 2, 1) + np.roll(v, -2, 1) + np.roll(v, 2, 2) + np.roll(v, -2, 2)
    return np.clip(taps / 5, 0, 255).astype(np.uint8)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num", type=int, default=24, help="hold-out scenes (default 24)")
    p.add_argument("--model", default="i2v", help="the I2V model whose size and VAE are used (default: the shipped i2v)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--output", help="JSON with every row")
    args = p.parse_args(argv)
    if args.num < 1:
        p.error("--num must be >= 1")
    import torch

    from edgevid.pipeline import frames_to_uint8, resolve_model_dir
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline

    torch.set_num_threads(args.threads)
    pipe = EdgeVidImg2VidPipeline.from_pretrained(resolve_model_dir(args.model))
    d = pipe.defaults
    T, H, W, fps = d.num_frames, d.height, d.width, d.fps
    rng = np.random.default_rng(0)
    specs = [spec for spec, _ in benchmark_specs(max(200, args.num))[:args.num]]
    clips = [(spec, render_video(spec, T, H, W, fps)) for spec in specs]
    others = {id(v): o for (_, v), (_, o) in zip(clips, clips[1:] + clips[:1])}

    def vae(spec, video):
        with torch.no_grad():
            x = torch.from_numpy(video).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None]
            recon = pipe.vae.decode_latents(pipe.vae.encode_latents(x))
        return frames_to_uint8(((recon[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) / 2).numpy())

    controls = {
        "ground truth": lambda spec, video: video,
        "VAE ceiling": vae,
        "half speed": lambda spec, video: render_video(spec, T, H, W, fps * 2),
        "blurred": lambda spec, video: _blurred(video),
        "frozen image": lambda spec, video: np.repeat(video[:1], T, 0),
        "shuffled after frame 0": lambda spec, video: np.concatenate([video[:1], video[1:][rng.permutation(T - 1)]]),
        "white noise": lambda spec, video: rng.integers(0, 256, video.shape, dtype=np.uint8),
        "image, then noise": lambda spec, video: np.concatenate(
            [video[:1], rng.integers(0, 256, video[1:].shape, dtype=np.uint8)]),
        "recoloured": lambda spec, video: recoloured(spec, T, H, fps, width=W),
        "another scene": lambda spec, video: others[id(video)],
    }
    rows = {}
    print(f"| clip ({args.num} scenes, {T}x{H}x{W} at {fps} fps) | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name, make in controls.items():
        rows[name] = aggregate_i2v([score_i2v(make(spec, video), video[0], spec, fps, truth=video)
                                    for spec, video in clips])
        print(f"| {name} | " + " | ".join(f"{rows[name][c]:.3f}" for c in COLUMNS) + " |", flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps({"settings": {"num": args.num, "frames": T, "height": H, "width": W,
                                                             "fps": fps, "model": args.model}, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
