"""The memory and time estimates made before generating, evaluating and training (edgevid.estimate)."""
import json
import math
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
    flops = trace_unet(pipe.unet, 2, 3, 8, 8).flops
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


# The training probes measure the growth of the peak RSS. glibc's malloc keeps freed heap pages
# resident and hands them out again, so how much a training run grew depended on what the process
# had freed before (103 to 183 MB for one t2v probe on two machines). With every allocation over
# 64 KiB mmap'ed and unmapped on free, the RSS follows the live tensors: 113-116 MB for that probe,
# whatever the SIMD path or the run. (The generation probes, whose estimate counts the frames'
# float copies as the default allocator keeps them, measure with it.)
PROBE_ENV = {"OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


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


# ----------------------------------------------------------------------------- training and eval
def _tiny_t2v(**train):
    import dataclasses

    from edgevid.config import TrainConfig

    pipe = make_tiny_pipeline()
    return pipe.unet, pipe.vae, dataclasses.replace(TrainConfig(), **{"buckets": ((5, 32, 32),), "batch_size": 2,
                                                                      **train})


def test_a_training_step_costs_3x_the_forward_flops_of_what_trains(monkeypatch):
    """With the latents cached (no encoder in the step, nothing rendered) a t2v step is the UNet's
    forward and backward: 3x the forward FLOPs the independent flop counter counts, at the rate."""
    import edgevid.estimate as estimate

    monkeypatch.setattr(estimate, "call_rate", lambda *a: 1e9)
    unet, vae, cfg = _tiny_t2v(cache_latents=True, num_clips=2)
    est10, est20 = (estimate.estimate_train_t2v(unet, vae, cfg, n) for n in (10, 20))
    c = unet.config
    forward = count_flops(unet, torch.randn(2, c.in_channels, 2, 4, 4), torch.rand(2), torch.randn(2, 16, c.text_dim),
                          None)
    assert est20.seconds - est10.seconds == pytest.approx(10 * 3 * forward / 1e9, rel=1e-9)
    assert est10.how.startswith("10 steps x ~")


def test_training_estimates_grow_with_batch_buckets_and_the_discriminator(monkeypatch):
    import dataclasses

    import edgevid.estimate as estimate
    from edgevid.config import DistillConfig, VAETrainConfig

    monkeypatch.setattr(estimate, "call_rate", lambda *a: 1e9)
    unet, vae, cfg = _tiny_t2v()
    base = estimate.estimate_train_t2v(unet, vae, cfg, 10)
    bigger = estimate.estimate_train_t2v(unet, vae, dataclasses.replace(cfg, batch_size=4), 10)
    longer = estimate.estimate_train_t2v(unet, vae, dataclasses.replace(cfg, buckets=((5, 32, 32), (17, 64, 64))), 10)
    for other in (bigger, longer):
        assert other.peak_bytes > base.peak_bytes and other.seconds > base.seconds
    distill = DistillConfig(buckets=((5, 32, 32),), batch_size=2, head_channels=8)
    no_adv = estimate.estimate_distill(unet, vae, dataclasses.replace(distill, adv_weight=0.0, recon_weight=1.0), 10)
    adv = estimate.estimate_distill(unet, vae, distill, 10)
    assert adv.seconds > no_adv.seconds and adv.peak_bytes > no_adv.peak_bytes
    vae_cfg = VAETrainConfig(buckets=((9, 64, 64),), batch_size=2)
    cropped = estimate.estimate_train_vae(vae, dataclasses.replace(vae_cfg, crop_size=32), 10)
    assert cropped.seconds < estimate.estimate_train_vae(vae, vae_cfg, 10).seconds
    with pytest.raises(ValueError, match="divisible by 2"):  # a latent the tiny UNet cannot halve, before any trace
        estimate.estimate_train_t2v(unet, vae, dataclasses.replace(cfg, buckets=((5, 40, 40),)), 10)


def test_a_run_that_does_not_fit_is_not_timed(monkeypatch):
    import edgevid.estimate as estimate

    def no_measuring(*a):
        raise AssertionError("measured a rate for a run that does not fit")

    monkeypatch.setattr(estimate, "call_rate", no_measuring)
    for train in ({}, {"cache_latents": True, "num_clips": 4}):  # the latent cache is timed after the check too
        unet, vae, cfg = _tiny_t2v(**train)
        est = estimate.estimate_train_t2v(unet, vae, cfg, 10, available=10 * 2**20)
        assert est.peak_bytes > 10 * 2**20 and math.isnan(est.seconds)


def test_eval_is_n_generations_plus_scoring():
    from edgevid.estimate import SCORE_S_PER_PIXEL, estimate_eval

    pipe = make_tiny_pipeline()
    kw = dict(num_frames=9, height=32, width=32, num_inference_steps=2, guidance_scale=2.0, window_latent_frames=0,
              overlap_latent_frames=4, first_window_latent_frames=0, rates=RATES)
    one, ten = estimate_eval(pipe, 1, **kw), estimate_eval(pipe, 10, **kw)
    gen = estimate_generation(pipe, **kw)
    assert ten.seconds == pytest.approx(10 * one.seconds)
    assert one.seconds > gen.denoise_s + gen.decode_s + 2 * 9 * 32 * 32 * SCORE_S_PER_PIXEL * 0.99
    assert ten.peak_bytes - one.peak_bytes == 9 * 9 * 32 * 32 * 3  # every video is kept for the report


@pytest.mark.parametrize("task", ["vae", "t2v"])
def test_training_estimate_is_within_2x_of_the_measured_memory_and_3x_of_the_time(tmp_path, task):
    """A few steps of `edgevid train` in a fresh process: the estimated peak against the growth of
    the peak RSS, the estimated seconds per step against the logged ones (both measured on this
    machine, seconds apart)."""
    probe = Path(__file__).with_name("_train_estimate_probe.py")
    env = {**os.environ, **PROBE_ENV, "EDGEVID_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, str(probe), task, str(tmp_path), "17x128x128", "2", "4"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["measured_bytes"] / 2 <= r["predicted_bytes"] <= 2 * r["measured_bytes"], r
    assert r["measured_s"] / 3 <= r["predicted_s"] <= 3 * r["measured_s"], r


def test_distill_on_teacher_samples_counts_the_sampler_for_the_uncached_ones(monkeypatch, tmp_path):
    """--teacher-data: no encoder or renderer per step; once, the teacher's guided sampler (both
    branches in one call, 4 clips a call) for each sample the steps draw that the cache lacks."""
    import dataclasses

    import edgevid.estimate as estimate
    from edgevid.config import DistillConfig
    from edgevid.distill.synthetic import sample_name, samples_to_draw

    monkeypatch.setattr(estimate, "call_rate", lambda *a: 1e9)
    unet, vae, _ = _tiny_t2v()
    cfg = DistillConfig(buckets=((5, 32, 32),), batch_size=2, head_channels=8, teacher_data=True, num_clips=6,
                        teacher_sample_steps=3, teacher_guidance=3.0)
    cache = tmp_path / "teacher_cache"
    empty = estimate.estimate_distill(unet, vae, cfg, 10, cache_dir=cache)
    (todo,) = samples_to_draw(cfg.seed, cfg.buckets, 6, 2, range(10)).values()
    c = unet.config
    call = count_flops(unet, torch.randn(8, c.in_channels, 2, 4, 4), torch.rand(8), torch.randn(8, 16, c.text_dim), None)
    cache.mkdir()
    for i in range(6):
        (cache / sample_name(i, (5, 32, 32))).touch()
    cached = estimate.estimate_distill(unet, vae, cfg, 10, cache_dir=cache)
    assert empty.seconds - cached.seconds == pytest.approx(math.ceil(todo / 4) * 3 * call / 1e9, rel=1e-9)
    assert "once" in empty.how and "once" not in cached.how
    rendered = estimate.estimate_distill(unet, vae, dataclasses.replace(cfg, teacher_data=False), 10)
    assert cached.seconds < rendered.seconds  # the per-step render and encode are gone
