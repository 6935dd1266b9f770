"""MobileVD's ablation on the CPU (issue 18; MobileVD Tab. 8): each optimisation added in turn to the
image-to-video teacher, with FLOPs per NFE, CPU latency per NFE and of the whole clip.

    python benchmarks/mobilevd.py --threads 2                      # architectures, random weights
    python benchmarks/mobilevd.py --teacher ~/runs/i2v/teacher-1-model --threads 2
    python benchmarks/mobilevd.py --pipelines campaign/i2v_teacher edgevid/weights/i2v --threads 2

Rows (cumulative, as the paper's table):
    teacher (svd-cpu)          25 NFE
    + optimized cross-attn     25 NFE, exact (edgevid.compress.mobilevd.optimize_cross_attention)
    + 1-step student           1 NFE (adversarial fine-tuning; the architecture does not change)
    + temporal multiscaling    frames halved after stage 0
    + temporal block pruning   keep --keep-fraction of the temporal blocks (the paper removes 70 %)
    + channel funnels          fun-factor --funnel-factor on every attention layer, merged

The clip: 17 frames of 512x256 (5 latent frames of 32x64 with the causal 4x VAE, the nearest
1 + 4k to MobileVD's 14). Latency = median of --repeats timed calls after one warm-up, on
--threads threads; "clip" = VAE-encode the image + NFE x denoiser + decode 17 frames. Only the
architecture is timed here: weights do not change the cost. Quality per row comes from
`edgevid eval --model DIR` on the models `edgevid compress mobilevd` writes (docs/MOBILEVD.md).

--pipelines DIR...: trained image-to-video pipelines timed end to end instead, as a user gets them:
`pipe(image)` from a uint8 image to decoded frames at the model's own defaults (steps, size, frames),
i.e. preprocessing + VAE encode + NFE x denoiser + decode, without writing a file.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgevid.compress.mobilevd import (  # noqa: E402
    add_funnels, add_temporal_multiscaling, merge_funnels, optimize_cross_attention, prune_temporal_blocks,
)
from edgevid.config import SVD_UNET_PRESETS, VAE_PRESETS  # noqa: E402
from edgevid.eval.flops import count_flops  # noqa: E402
from edgevid.models.i2v import Img2VidDenoiser, added_time_ids  # noqa: E402
from edgevid.models.vae import VideoVAE  # noqa: E402
from edgevid.search.lut import median_seconds  # noqa: E402


def ablation_rows(teacher: Img2VidDenoiser, keep_fraction: float, funnel_factor: float):
    """(name, NFE, Img2VidDenoiser) per row, each built from the row before."""
    unet = teacher.unet
    rows = [("teacher (svd-cpu)", 25, unet)]
    unet = optimize_cross_attention(unet)
    rows += [("+ optimized cross-attention", 25, unet), ("+ 1-step student (adversarial)", 1, unet)]
    stages = tuple(i == 0 for i in range(len(unet.config.block_out_channels)))
    unet = add_temporal_multiscaling(unet, stages)
    rows.append(("+ temporal multiscaling", 1, unet))
    n = len(unet.config.temporal_block_names())
    keep = max(1, round(keep_fraction * n))
    # Without learned importances (a trained run has them) keep the first blocks: same cost either way.
    unet = prune_temporal_blocks(unet, tuple(i < keep for i in range(n)))
    rows.append((f"+ temporal block pruning ({n - keep} of {n} removed)", 1, unet))
    unet = merge_funnels(add_funnels(unet, funnel_factor))
    rows.append((f"+ channel funnels (factor {funnel_factor})", 1, unet))
    return [(name, nfe, teacher.with_unet(u).eval()) for name, nfe, u in rows]


def time_pipelines(paths: list[str], repeats: int) -> None:
    """The end-to-end clip time of each trained pipeline folder (median of `repeats` after a warm-up)."""
    import numpy as np

    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline

    print("| pipeline | steps | frames | size | params M | GFLOPs / NFE | clip s (median, warm) |")
    print("|---|---|---|---|---|---|---|")
    image = np.random.default_rng(0).integers(0, 256, (256, 512, 3), dtype=np.uint8)
    for path in paths:
        pipe = EdgeVidImg2VidPipeline.from_pretrained(path, precision="fp32")
        d = pipe.defaults
        C, T, H, W = pipe.vae.latent_shape(d.num_frames, d.height, d.width)
        x, latent = torch.randn(1, C, T, H, W), torch.randn(1, C, H, W)
        gflop = count_flops(pipe.unet, x, torch.tensor([0.5]), latent, added_time_ids(1, d.fps, 7.0, 0.02)) / 1e9
        clip_s = median_seconds(lambda: pipe(image, generator=torch.Generator().manual_seed(0)), repeats)
        params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
        print(f"| {path} | {d.num_inference_steps} | {d.num_frames} | {d.width}x{d.height} | {params:.2f} | "
              f"{gflop:.2f} | {clip_s:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", help="an image-to-video model folder (default: random svd-cpu weights)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--keep-fraction", type=float, default=0.3, help="temporal blocks kept (MobileVD: 0.3)")
    p.add_argument("--funnel-factor", type=float, default=0.5, help="MobileVD's fun-factor (0.5)")
    p.add_argument("--pipelines", nargs="+", metavar="DIR",
                   help="time these trained pipelines end to end instead of the architecture ablation")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.pipelines:
        print(f"{args.threads} threads, torch {torch.__version__}")
        with torch.no_grad():
            time_pipelines(args.pipelines, args.repeats)
        return
    if args.teacher:
        from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline

        pipe = EdgeVidImg2VidPipeline.from_pretrained(args.teacher, precision="fp32")
        teacher, vae = pipe.unet, pipe.vae
    else:
        teacher, vae = Img2VidDenoiser(SVD_UNET_PRESETS["svd-cpu"]).eval(), VideoVAE(VAE_PRESETS["snapgen8"]).eval()
    frames, height, width = 17, 256, 512
    C, T, H, W = vae.latent_shape(frames, height, width)
    x, image = torch.randn(1, C, T, H, W), torch.randn(1, C, H, W)
    t, ids = torch.tensor([0.5]), added_time_ids(1, 8, 30, 0.02)
    pixels = torch.rand(1, 3, 1, height, width) * 2 - 1
    with torch.no_grad():
        encode_s = median_seconds(lambda: vae.encode_latents(pixels), args.repeats)
        decode_s = median_seconds(lambda: vae.decode_latents(x), args.repeats)
        rows = []
        for name, nfe, model in ablation_rows(teacher, args.keep_fraction, args.funnel_factor):
            gflop = count_flops(model, x, t, image, ids) / 1e9
            step_s = median_seconds(lambda: model(x, t, image, ids), args.repeats)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            rows.append((name, nfe, params, gflop, step_s, encode_s + nfe * step_s + decode_s))
    print(f"{frames} frames {width}x{height} (latent {C}x{T}x{H}x{W}), {args.threads} threads, "
          f"torch {torch.__version__}; VAE encode (1 frame) {encode_s * 1e3:.0f} ms, decode {decode_s * 1e3:.0f} ms")
    print("\n| model | NFE | params M | GFLOPs / NFE | ms / NFE | clip s (encode + NFE x step + decode) |")
    print("|---|---|---|---|---|---|")
    for name, nfe, params, gflop, step_s, clip_s in rows:
        print(f"| {name} | {nfe} | {params:.2f} | {gflop:.2f} | {step_s * 1e3:.0f} | {clip_s:.2f} |")
    base, last = rows[0], rows[-1]
    print(f"\nFLOPs per NFE: {base[3] / last[3]:.1f}x fewer; whole sampling (NFE x FLOPs): "
          f"{base[1] * base[3] / (last[1] * last[3]):.0f}x fewer (MobileVD: 523x from SVD at 1024x576, 50 NFE)")


if __name__ == "__main__":
    main()
