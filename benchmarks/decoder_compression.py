"""Compressed VAE decoders against the full one: decode speed, fidelity, flicker, ShapesBench.

    .venv/bin/python benchmarks/decoder_compression.py --model full=default --model fast=models/fast \
        --num 16 --repeats 5 --shapesbench 50 --output runs/eval/decoders.json

For each pipeline (a shipped name or a folder; the first row is the reference decoder):
  - decode seconds for the default video's latents (121 frames of 256x256: 31 x 32 x 32
    latents), warm, median of --repeats, and the speed-up against the first row;
  - decoder parameters and GFLOP per default video (FlopCounterMode);
  - on --num held-out clips of --frames frames at --size (split "holdout"): per-frame PSNR of
    the reconstruction against the source and against the first row's decoder (the
    distillation target), on uint8 frames, and the added flicker (mean abs frame difference of
    the reconstruction minus the source's; 0 = none);
  - with --shapesbench N: ShapesBench prompt adherence of the pipeline on the first N specs at
    49 frames of 128x128 (same UNet and seeds, only the decoder differs).
Prints a Markdown table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(1, 3, T, H, W) in [-1, 1] -> (T, H, W, 3) float64 of uint8 values."""
    return ((video[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 3, 0).double().numpy()


def psnr_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    mse = ((a - b) ** 2).mean(axis=(1, 2, 3))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


def decode_seconds(vae, repeats: int) -> float:
    z = vae.denormalize(torch.randn(1, vae.config.latent_channels, 31, 32, 32, generator=torch.Generator().manual_seed(0)))
    with torch.inference_mode():
        vae.decode(z)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            vae.decode(z)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def decode_gflop(vae) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    z = torch.zeros(1, vae.config.latent_channels, 31, 32, 32)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        vae.decode(z)
    return counter.get_total_flops() / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=PIPELINE (shipped name or folder); repeat")
    ap.add_argument("--num", type=int, default=16, help="held-out clips for fidelity")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shapesbench", type=int, default=0, help="also score the first N ShapesBench specs (0 = skip)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from edgevid.compress.decoder import decoder_parameters
    from edgevid.data import ProceduralClips
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

    pipes = []
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--model must look like NAME=PIPELINE, got {spec!r}")
        pipes.append((name, path, EdgeVidPipeline.from_pretrained(resolve_model_dir(path))))

    source = ProceduralClips(split="holdout", seed=0, fps=args.fps)
    clips = [source.clip(i, args.frames, args.size, args.size).video for i in range(args.num)]  # (T, H, W, 3) uint8
    reference: list[np.ndarray] = []
    rows = []
    for k, (name, path, pipe) in enumerate(pipes):
        vae = pipe.vae.eval()
        psnr_src, psnr_ref, flicker = [], [], []
        for i, clip in enumerate(clips):
            video = torch.from_numpy(clip).permute(3, 0, 1, 2)[None].float() / 127.5 - 1  # (1, 3, T, H, W)
            with torch.inference_mode():
                rec = to_uint8(vae.decode(vae.encode(video).mode()))
            src = clip.astype(np.float64)
            psnr_src.extend(psnr_per_frame(rec, src))
            if k == 0:
                reference.append(rec)
            else:
                psnr_ref.extend(psnr_per_frame(rec, reference[i]))
            flicker.append(np.abs(np.diff(rec, axis=0)).mean() - np.abs(np.diff(src, axis=0)).mean())
        row = {"name": name, "model": path, "decoder_params_k": decoder_parameters(vae) / 1e3,
               "decode_gflop_5s": decode_gflop(vae), "decode_s_5s": decode_seconds(vae, args.repeats),
               "psnr_vs_source": float(np.mean(psnr_src)),
               "psnr_vs_reference": float(np.mean(psnr_ref)) if psnr_ref else None,  # row 0 is the reference
               "flicker_added": float(np.mean(flicker))}
        if args.shapesbench:
            from edgevid.eval.shapesbench.run import evaluate

            result, _ = evaluate(pipe, limit=args.shapesbench, num_frames=49, height=128, width=128, progress=False)
            row["prompt_adherence"] = result["summary"]["prompt_adherence"]
            row["temporal_flickering"] = result["summary"]["temporal_flickering"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    for row in rows:
        row["decode_speedup"] = rows[0]["decode_s_5s"] / row["decode_s_5s"]
    out = {"settings": {**{k: v for k, v in vars(args).items() if k != "model"}, "torch": torch.__version__},
           "rows": rows}
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    cols = ["name", "decoder_params_k", "decode_gflop_5s", "decode_s_5s", "decode_speedup", "psnr_vs_source",
            "psnr_vs_reference", "flicker_added"] + (["prompt_adherence", "temporal_flickering"] if args.shapesbench else [])
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c] or "-") for c in cols) + " |")


if __name__ == "__main__":
    main()
