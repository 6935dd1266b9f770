"""FLOPs per function evaluation (batch 1) of the SVD UNet and its MobileVD variants, against
MobileVD (arXiv 2412.07583) Tab. 1 / Tab. 8.

    .venv/bin/python benchmarks/svd_flops.py [--threads 1]

Counted with edgevid.eval.flops.count_flops (FlopCounterMode, MATH attention backend, one
multiply-add = 2 FLOPs) on the `meta` device: parameters and activations have shapes but no
storage, so the 1.5 B-parameter SVD at 1024x576 costs seconds and no memory. A self-check first
counts svd-tiny on the meta device and on the CPU and requires the same number.

Rows: SVD at 14 frames of 1024x576 and 512x256 (latent = pixels / 8, 4 + 4 channels); at
512x256 the MobileVD steps that change FLOPs: optimized cross-attention, then temporal
multiscaling (temporal downsampling after the first stage, our SVDUNetConfig reading of the
paper); the `svd-cpu` preset on 64x32 snapgen8 latents at 14 latent frames and at the
4 and 5 latent frames that our causal VAE makes of 13 and 17 video frames (1 + 4k -> 1 + k).
Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from edgevid.config import SVD_UNET_PRESETS, SVDUNetConfig
from edgevid.eval.flops import count_flops
from edgevid.models.svd_unet import SVDUNet


def flops_and_params(config: SVDUNetConfig, frames: int, height: int, width: int,
                     device: str = "meta") -> tuple[int, int]:
    """FLOPs of one forward on latents (1, in_channels, frames, height, width) and the parameter count."""
    with torch.device(device):
        model = SVDUNet(config).eval()
        x = torch.randn(1, config.in_channels, frames, height, width)
        context = torch.randn(1, 1, config.cross_attention_dim)
        added_time_ids = torch.zeros(1, config.num_added_time_ids)
        timestep = torch.zeros(1)
    return count_flops(model, x, timestep, context, added_time_ids), sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    tiny = SVD_UNET_PRESETS["svd-tiny"]
    on_meta, on_cpu = flops_and_params(tiny, 5, 16, 16)[0], flops_and_params(tiny, 5, 16, 16, "cpu")[0]
    if on_meta != on_cpu:
        raise SystemExit(f"FLOPs on the meta device ({on_meta}) differ from the CPU ({on_cpu}): "
                         "the table would be wrong")

    svd = SVD_UNET_PRESETS["svd"]
    svd_opt = dataclasses.replace(svd, optimized_cross_attention=True)
    svd_multiscale = dataclasses.replace(svd_opt, temporal_downsample=(True, False, False, False))
    cpu = SVD_UNET_PRESETS["svd-cpu"]
    rows = [  # name, config, latent frames, latent H, latent W, video size, MobileVD TFLOPs (None = not in the paper)
        ("svd", svd, 14, 72, 128, "14 x 1024x576", 45.43),  # Tab. 1 / Tab. 7
        ("svd", svd, 14, 32, 64, "14 x 512x256", 8.60),  # Tab. 1 / Tab. 8
        ("svd + optimized cross-attn", svd_opt, 14, 32, 64, "14 x 512x256", 8.24),  # Tab. 8
        ("svd + opt. cross-attn + temporal multiscaling", svd_multiscale, 14, 32, 64, "14 x 512x256", 5.42),  # Tab. 8
        ("svd-cpu", cpu, 14, 32, 64, "(14 latent frames) x 512x256", None),
        ("svd-cpu", cpu, 4, 32, 64, "13 x 512x256", None),
        ("svd-cpu", cpu, 5, 32, 64, "17 x 512x256", None),
    ]
    print("| model | latent C x T x H x W | video | params | TFLOPs (ours) | MobileVD | ours / paper |")
    print("|---|---|---|---|---|---|---|")
    for name, cfg, T, H, W, video, paper in rows:
        flops, params = flops_and_params(cfg, T, H, W)
        tflops = flops / 1e12
        paper_cols = f"{paper:.2f} | {tflops / paper:.3f}" if paper else "— | —"
        print(f"| {name} | {cfg.in_channels} x {T} x {H} x {W} | {video} | {params / 1e6:,.1f} M | "
              f"{tflops:.4g} | {paper_cols} |")
    print(f"\n({time.perf_counter() - t0:.1f} s on {args.threads} thread(s); meta-device count checked "
          f"against the CPU on svd-tiny: {on_cpu:,} FLOPs both)")


if __name__ == "__main__":
    main()
