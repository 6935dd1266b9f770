"""VAE reconstruction quality on held-out procedural clips: per-frame PSNR and flicker.

    python benchmarks/vae_reconstruction.py --vae edgevid/weights/default/vae --num 16 \
        --frames 17 --size 128 --output vae_recon.json

Clips come from the "holdout" split (attribute combinations never seen in training). PSNR
is computed per frame on uint8-quantised frames (what a viewer sees) and averaged; the
flicker figure is the mean absolute frame-to-frame difference of the reconstruction minus
that of the source (0 = no added flicker).

With `--latent-noise S`, Gaussian noise of std S is added to the *normalised* latent (the space
the denoiser works in) before decoding: how a decoder treats a denoiser's residual error
(issue 16: the decoder must not turn it into rainbow speckle). Noise is seeded per clip.

With `--shapesbench N` it also scores the reconstructions of the first N ShapesBench specs
(rendered at --frames x --size x --size and --fps) with the benchmark's own scorer: the
adherence a perfect denoiser could reach through this VAE, the ceiling for `edgevid eval`.

    python benchmarks/vae_reconstruction.py --vae models/vae2 --frames 49 --size 128 --fps 24 \
        --shapesbench 200 --output vae_shapesbench.json
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vae", required=True, help="VAE folder (config.json + model.safetensors)")
    p.add_argument("--num", type=int, default=16, help="held-out clips")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shapesbench", type=int, default=0, metavar="N",
                   help="also score reconstructions of the first N ShapesBench specs (0 = skip)")
    p.add_argument("--latent-noise", type=float, default=0.0,
                   help="std of Gaussian noise added to the normalised latents before decoding (default 0)")
    p.add_argument("--output", help="write the figures as JSON here")
    args = p.parse_args()
    if not args.latent_noise >= 0:
        p.error(f"--latent-noise must be >= 0, got {args.latent_noise}")
    if args.shapesbench < 0:
        p.error(f"--shapesbench must be >= 0, got {args.shapesbench}")

    from edgevid.config import VAEConfig
    from edgevid.data import ProceduralClips
    from edgevid.models.vae import VideoVAE
    from edgevid.models.weights import load_component

    torch.set_num_threads(args.threads)
    vae = load_component(VideoVAE, VAEConfig, args.vae).eval()

    noise_g = torch.Generator().manual_seed(args.seed)

    def reconstruct(clip: np.ndarray) -> tuple[np.ndarray, float, float]:
        """uint8 (T, H, W, 3) -> its uint8 reconstruction, encode and decode seconds."""
        video = torch.from_numpy(clip).permute(3, 0, 1, 2)[None].float() / 127.5 - 1  # (1, 3, T, H, W)
        with torch.inference_mode():
            t0 = time.perf_counter()
            z = vae.encode(video).mode()
            if args.latent_noise:
                z = vae.denormalize(vae.normalize(z) + args.latent_noise * torch.randn(z.shape, generator=noise_g))
            t1 = time.perf_counter()
            recon = vae.decode(z)
            t2 = time.perf_counter()
        rec = ((recon[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 3, 0).numpy()  # (T, H, W, 3)
        return rec.astype(np.uint8), t1 - t0, t2 - t1

    source = ProceduralClips(split="holdout", seed=args.seed, fps=args.fps)
    psnrs, flicker_added, t_enc, t_dec = [], [], 0.0, 0.0
    for i in range(args.num):
        clip = source.clip(i, args.frames, args.size, args.size).video  # (T, H, W, 3) uint8
        rec, dt_enc, dt_dec = reconstruct(clip)
        rec = rec.astype(np.float64)
        t_enc, t_dec = t_enc + dt_enc, t_dec + dt_dec
        src = clip.astype(np.float64)
        mse = ((rec - src) ** 2).mean(axis=(1, 2, 3))  # per frame
        psnrs.extend(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10)))
        if args.frames > 1:
            flicker_added.append(np.abs(np.diff(rec, axis=0)).mean() - np.abs(np.diff(src, axis=0)).mean())
    result = {
        "vae": args.vae, "latent_noise": args.latent_noise, "clips": args.num, "frames": args.frames, "size": args.size, "split": "holdout",
        "psnr_per_frame_mean": float(np.mean(psnrs)), "psnr_per_frame_min": float(np.min(psnrs)),
        "flicker_added_mean_abs_diff": float(np.mean(flicker_added)) if flicker_added else 0.0,
        "encode_s_per_clip": t_enc / args.num, "decode_s_per_clip": t_dec / args.num,
    }
    if args.shapesbench:
        result["shapesbench"] = shapesbench_ceiling(reconstruct, args.shapesbench, args.frames, args.size, args.fps)
    for k, v in result.items():
        print(f"{k:32s} {v:.4f}" if isinstance(v, float) else f"{k:32s} {v}")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)


def shapesbench_ceiling(reconstruct, n: int, frames: int, size: int, fps: int) -> dict:
    """ShapesBench summary of VAE reconstructions of the first n specs' ground-truth renders."""
    from tqdm.auto import tqdm

    from edgevid.data.world import render_video
    from edgevid.eval.shapesbench.benchmark import benchmark_specs
    from edgevid.eval.shapesbench.score import aggregate, score_video

    scores = []
    for spec, _ in tqdm(benchmark_specs(n=max(200, n))[:n], desc="ShapesBench on reconstructions"):
        rec, _, _ = reconstruct(render_video(spec, frames, size, size, fps))
        scores.append(score_video(rec, spec, fps))
    return json.loads(json.dumps(aggregate(scores), default=float))  # numpy scalars -> floats


if __name__ == "__main__":
    main()
