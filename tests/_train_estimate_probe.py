"""Run in a fresh process by tests/test_estimate.py: `edgevid train vae` or `train t2v` on the tiny
presets for a few steps; print JSON {predicted, measured} of the memory growth (after a warm-up
run at a small bucket, which loads the libraries and kernels) and of the seconds per step."""
import dataclasses
import json
import sys
from pathlib import Path

import torch
from _rss import peak, reset_peak

from edgevid.cli import _parse_buckets, main
from edgevid.config import UNET_PRESETS, VAE_PRESETS, TrainConfig, VAETrainConfig
from edgevid.estimate import OVERHEAD_BYTES, estimate_train_t2v, estimate_train_vae
from edgevid.models.unet import SpatioTemporalUNet
from edgevid.models.vae import VideoVAE
from edgevid.models.weights import save_component
from edgevid.text import TinyTextEncoder

task, work, buckets, batch, steps = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(1)
vae = VideoVAE(VAE_PRESETS["tiny"])
common = ["--batch-size", str(batch), "--no-progress", "--threads", "1", "--checkpoint-every", "1000000"]
if task == "vae":
    argv = ["train", "vae", "--preset", "tiny", *common]
    cfg = VAETrainConfig(buckets=_parse_buckets(buckets), batch_size=batch, )
    estimate = estimate_train_vae(vae, cfg, steps)
else:
    save_component(vae, vae.config, work / "vae")
    argv = ["train", "t2v", "--vae", str(work / "vae"), "--preset", "tiny", "--text-encoder", "tiny", *common]
    cfg = TrainConfig(buckets=_parse_buckets(buckets), batch_size=batch, )
    unet_cfg = dataclasses.replace(UNET_PRESETS["tiny"], text_dim=TinyTextEncoder().dim,
                                   in_channels=vae.config.latent_channels, out_channels=vae.config.latent_channels)
    estimate = estimate_train_t2v(SpatioTemporalUNet(unet_cfg), vae, cfg, steps)
assert main([*argv, "--run-dir", str(work / "warm"), "--steps", "1", "--buckets", "1x32x32"]) == 0
base = reset_peak()
assert main([*argv, "--run-dir", str(work / "run"), "--steps", str(steps), "--buckets", buckets]) == 0
grown = peak() - base
logged = [json.loads(line)["sec_per_step"] for line in (work / "run" / "log.jsonl").read_text().splitlines()]
print(json.dumps({"predicted_bytes": estimate.peak_bytes - OVERHEAD_BYTES, "measured_bytes": grown,
                  "predicted_s": estimate.seconds / steps, "measured_s": sorted(logged)[len(logged) // 2]}))
