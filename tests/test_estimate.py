"""The memory and time estimate made before generating (edgevid.estimate)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_tiny_pipeline
from edgevid.estimate import (OVERHEAD_BYTES, available_memory, estimate_generation, largest_fitting, trace_unet)
from edgevid.eval.flops import count_flops

RATES = {"unet": 1e10, "vae": 1e10}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVID_CACHE", str(tmp_path / "cache"))


def test_available_memory_reads_the_os():
    avail = available_memory()
    assert avail is None or 0 < avail < 2**60


def test_trace_counts_the_flops_the_flop_counter_counts():
    """The meta trace replaces attention by its fused kernel's output and counts its FLOPs by hand:
    the total must equal edgevid.eval.flops (MATH attention, real tensors)."""
    pipe = make_tiny_pipeline()
    c = pipe.unet.config
    x, t, ctx = torch.randn(2, c.in_channels, 3, 8, 8), torch.rand(2), torch.randn(2, 16, c.text_dim)
    _, flops = trace_unet(pipe, 2, 3, 8, 8)
    assert flops == count_flops(pipe.unet, x, t, ctx, None) > 0


def test_estimate_grows_with_the_video_and_names_what_fits():
    pipe = make_tiny_pipeline()
    kw = dict(num_inference_steps=2, guidance_scale=2.0, window_latent_frames=0, overlap_latent_frames=4, rates=RATES)
    small = estimate_generation(pipe, 5, 32, 32, **kw)
    long = estimate_generation(pipe, 65, 32, 32, **kw)
    big = estimate_generation(pipe, 5, 256, 256, **kw)
    assert small.peak_bytes < long.peak_bytes and small.peak_bytes < big.peak_bytes
    assert small.seconds < long.seconds and small.seconds < big.seconds
    streamed = estimate_generation(pipe, 65, 32, 32, stream=True, **kw)
    assert streamed.per_frame_bytes == 0 and streamed.peak_bytes < long.peak_bytes  # no whole video in memory
    # a budget between the two: the frame count it names fits, the next one does not
    budget = (small.peak_bytes + long.peak_bytes) // 2
    hint = largest_fitting(long, budget, 65, 32, 32, pipe.size_multiple, 4)
    frames = int(hint.split("up to ")[1].split(" frames")[0])
    assert 5 <= frames < 65 and (frames - 1) % 4 == 0
    assert estimate_generation(pipe, frames, 32, 32, **kw).peak_bytes <= budget
    assert estimate_generation(pipe, frames + 4, 32, 32, **kw).peak_bytes > budget * 0.98


@pytest.mark.parametrize("frames, size, stream", [(33, 128, "0"), (49, 256, "0"), (17, 256, "1")])
def test_estimated_peak_is_within_2x_of_the_measured_growth(tiny_model_dir, tmp_path, frames, size, stream):
    """Measured in a fresh process: growth of the peak RSS (ru_maxrss / VmHWM, reset after a warm-up that loads
    the libraries and kernels)."""
    probe = Path(__file__).with_name("_estimate_probe.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EDGEVID_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, str(probe), str(tiny_model_dir), str(frames), str(size), str(size), stream,
                          str(tmp_path / "v.mp4")], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["measured_bytes"] / 2 <= r["predicted_bytes"] <= 2 * r["measured_bytes"], r
    assert r["predicted_s"] > 0 and r["measured_s"] > 0


def test_overhead_is_part_of_the_estimate():
    pipe = make_tiny_pipeline()
    est = estimate_generation(pipe, 5, 32, 32, 2, 2.0, 0, 4, rates=RATES)
    assert est.peak_bytes > OVERHEAD_BYTES and set(est.parts) >= {"latents", "unet_window", "decoder_chunk", "frames"}
