import dataclasses

import numpy as np

import pytest
import torch

from conftest import reorder_tol
from edgevid.config import UNET_PRESETS, VAE_PRESETS, TrainConfig, VAETrainConfig
from edgevid.data import ProceduralClips
from edgevid.flow import rectified_flow_loss, sample_euler, time_grid
from edgevid.models.unet import SpatioTemporalUNet
from edgevid.models.vae import VideoVAE
from edgevid.text import TinyTextEncoder
from edgevid.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from edgevid.train.t2v import train_t2v
from edgevid.train.vae import train_vae

TINY_TRAIN = TrainConfig(steps=4, batch_size=2, buckets=((1, 32, 32), (5, 32, 32)), checkpoint_every=2, log_every=1,
                         warmup_steps=1)


def _tiny_unet_config():
    return dataclasses.replace(UNET_PRESETS["tiny"], text_dim=32)


def _train(run_dir, cfg=TINY_TRAIN, resume=False, source=None):
    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"])
    return train_t2v(run_dir, _tiny_unet_config(), cfg, vae, TinyTextEncoder(dim=32),
                     source or ProceduralClips(seed=0), resume=resume, progress=False)


def _same_state(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


class _CrashingSource(ProceduralClips):
    """Simulates a crash (e.g. the session being killed) when step 3's batch is built."""

    def clip(self, index, *args, **kw):
        if index >= 3 * TINY_TRAIN.batch_size:
            raise RuntimeError("simulated crash")
        return super().clip(index, *args, **kw)


def test_resume_after_crash_continues_with_identical_state(tmp_path):
    model_a, ema_a = _train(tmp_path / "a")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(tmp_path / "b", source=_CrashingSource(seed=0))
    assert latest_checkpoint(tmp_path / "b").name == "step-0000002"
    model_b, ema_b = _train(tmp_path / "b", resume=True)
    _same_state(model_a, model_b)
    _same_state(ema_a, ema_b)
    assert (tmp_path / "a" / "config.json").read_text() == (tmp_path / "b" / "config.json").read_text()


def test_run_dir_guards(tmp_path):
    _train(tmp_path / "r", dataclasses.replace(TINY_TRAIN, steps=2))
    with pytest.raises(ValueError, match="--resume"):
        _train(tmp_path / "r", dataclasses.replace(TINY_TRAIN, steps=2))  # would overwrite a run
    with pytest.raises(ValueError, match="config differs"):
        _train(tmp_path / "r", dataclasses.replace(TINY_TRAIN, steps=2, lr=1e-3), resume=True)
    with pytest.raises(ValueError, match="holds no run"):
        _train(tmp_path / "empty", resume=True)


def test_checkpoint_round_trip_and_torn_write_is_ignored(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, 7, model, opt)
    # A crash while writing the next checkpoint leaves only a temp folder behind.
    (tmp_path / "checkpoints" / ".step-0000008.tmp").mkdir()
    (tmp_path / "checkpoints" / ".step-0000008.tmp" / "model.safetensors").write_bytes(b"torn")
    path = latest_checkpoint(tmp_path)
    assert path.name == "step-0000007"
    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=0.1)
    assert load_checkpoint(path, model2, opt2)["step"] == 7
    _same_state(model, model2)
    s1, s2 = opt.state_dict()["state"][0], opt2.state_dict()["state"][0]
    assert all(torch.equal(torch.as_tensor(s1[k]), torch.as_tensor(s2[k])) for k in s1)


def test_tiny_model_overfits_one_clip_and_sampling_reproduces_it():
    """Loss drops >= 10x on one latent clip, then 25-step Euler from fresh noise lands on it."""
    torch.manual_seed(0)
    cfg = _tiny_unet_config()
    net = SpatioTemporalUNet(cfg)
    x0 = torch.randn(1, 4, 3, 8, 8)  # one latent clip (C=4, T'=3, 8x8)
    ctx, mask = torch.randn(1, 4, 32), torch.ones(1, 4, dtype=torch.bool)
    velocity = lambda x, t: net(x, t, ctx.expand(x.shape[0], -1, -1), mask.expand(x.shape[0], -1))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    batch = x0.expand(8, -1, -1, -1, -1)
    g = torch.Generator().manual_seed(0)

    def eval_loss():
        with torch.no_grad():
            return rectified_flow_loss(velocity, batch, generator=torch.Generator().manual_seed(99)).item()

    first = eval_loss()
    for _ in range(150):
        loss = rectified_flow_loss(velocity, batch, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = eval_loss()
    assert last < first / 10, (first, last)
    with torch.no_grad():
        sample = sample_euler(velocity, torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(5)),
                              time_grid(25))
    rel_err = ((sample - x0) ** 2).mean() / (x0 ** 2).mean()
    assert rel_err < 0.05, rel_err.item()


def test_vae_training_runs_and_fits_normalization(tmp_path):
    cfg = VAETrainConfig(steps=3, batch_size=2, buckets=((5, 32, 32),), checkpoint_every=3, log_every=1, warmup_steps=1)
    vae = train_vae(tmp_path / "vae", VAE_PRESETS["tiny"], cfg, ProceduralClips(seed=0), progress=False,
                    normalization_batches=2)
    scale = vae.config.scaling_factor  # fitted per latent channel by default
    assert isinstance(scale, tuple) and len(scale) == 4 and all(s > 0 and s != 1.0 for s in scale)
    assert (tmp_path / "vae" / "log.jsonl").read_text().count("\n") == 3
    assert latest_checkpoint(tmp_path / "vae").name == "step-0000003"


def test_cached_latents_reuse_a_finite_clip_set(tmp_path):
    calls = []

    class CountingSource(ProceduralClips):
        def clip(self, index, *args, **kw):
            calls.append(index)
            return super().clip(index, *args, **kw)

    cfg = dataclasses.replace(TINY_TRAIN, steps=6, num_clips=1, cache_latents=True, buckets=((5, 32, 32),),
                              checkpoint_every=6)
    _, ema = _train(tmp_path / "c", cfg, source=CountingSource(seed=0))
    assert calls == [0]  # rendered and encoded once, then served from the cache
    assert len(list((tmp_path / "c" / "latent_cache").glob("*.safetensors"))) == 1
    # A resumed run (a new process: empty memory cache) reads the latents back from disk,
    # renders nothing, and ends where the uninterrupted run ended.
    import shutil
    shutil.rmtree(tmp_path / "c" / "checkpoints" / "step-0000006")
    (tmp_path / "c" / "checkpoints" / "latest").unlink(missing_ok=True)
    calls.clear()
    _, ema2 = _train(tmp_path / "c", cfg, resume=True, source=CountingSource(seed=0))
    assert calls == []
    for a, b in zip(ema.state_dict().values(), ema2.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="num_clips"):
        dataclasses.replace(TINY_TRAIN, cache_latents=True)


def test_random_crop_keeps_one_window_per_clip_and_vae_trains_on_crops(tmp_path):
    from edgevid.train.vae import random_crop

    video = torch.arange(2 * 3 * 2 * 8 * 8, dtype=torch.float32).reshape(2, 3, 2, 8, 8)
    crop = random_crop(video, 4, torch.Generator().manual_seed(0))
    assert crop.shape == (2, 3, 2, 4, 4)
    for clip, window in zip(video, crop):  # every crop is a contiguous window of its own clip, same for all frames
        y, x = divmod(int(window[0, 0, 0, 0] - clip[0, 0, 0, 0]), 8)
        assert torch.equal(window, clip[..., y:y + 4, x:x + 4])
    with pytest.raises(ValueError, match="crop_size"):
        VAETrainConfig(crop_size=128, buckets=((1, 64, 64),))
    cfg = VAETrainConfig(steps=2, batch_size=2, buckets=((5, 64, 64),), crop_size=32, checkpoint_every=2,
                         log_every=1, warmup_steps=1)
    vae = train_vae(tmp_path / "vae", VAE_PRESETS["tiny"], cfg, ProceduralClips(seed=0), progress=False,
                    normalization_batches=1)
    assert vae(torch.zeros(1, 3, 5, 64, 64))[0].shape == (1, 3, 5, 64, 64)  # trained on crops, runs at full size


def test_resume_accepts_config_fields_added_by_a_later_version(tmp_path):
    """A run's stored config lacks the fields a later edgevid added (with defaults that keep the
    old behaviour): resuming it still works; a changed value still does not."""
    import json

    from edgevid.train.loop import prepare_run_dir

    old = {"train": {"lr": 1e-3, "steps": 10}, "vae": {"decoder_channels": [16, 32]}}
    prepare_run_dir(tmp_path / "run", old, resume=False)
    new = {"train": {"lr": 1e-3, "steps": 10}, "vae": {"decoder_channels": [16, 32], "decoder_separable": None}}
    prepare_run_dir(tmp_path / "run", new, resume=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == old  # the stored config is kept
    with pytest.raises(ValueError, match="config differs"):
        prepare_run_dir(tmp_path / "run", {**new, "train": {"lr": 2e-3, "steps": 10}}, resume=True)
    with pytest.raises(ValueError, match="config differs"):
        prepare_run_dir(tmp_path / "run", {"train": {"lr": 1e-3, "steps": 10}}, resume=True)  # a field went away
    # An added field whose default is known must have it: resuming must not switch a new option on.
    defaults = {"train": {"lr": 3e-4, "steps": 5, "foreground_weight": 0.0}}
    plus = {**old, "train": {"lr": 1e-3, "steps": 10, "foreground_weight": 0.0}}
    prepare_run_dir(tmp_path / "run", plus, resume=True, defaults=defaults)
    with pytest.raises(ValueError, match="config differs"):
        prepare_run_dir(tmp_path / "run", {**old, "train": {"lr": 1e-3, "steps": 10, "foreground_weight": 4.0}},
                        resume=True, defaults=defaults)


def test_object_mask_covers_exactly_the_rendered_objects():
    from edgevid.data.world import ObjectSpec, SceneSpec, render_object_mask, render_video

    spec = SceneSpec(objects=(ObjectSpec("red", "triangle", "right", 0.3, 0.5, 0.15, speed=0.2),
                              ObjectSpec("blue", "circle", "bounce", 0.75, 0.6, 0.1)), background="stripes",
                     camera="pan_left", camera_speed=0.05)
    video = render_video(spec, 9, 48, 64, fps=8)
    # The same scene with other object colours: exactly the object pixels change.
    recoloured = SceneSpec(objects=tuple(dataclasses.replace(o, colour="green") for o in spec.objects),
                           background="stripes", camera="pan_left", camera_speed=0.05)
    other = render_video(recoloured, 9, 48, 64, fps=8)
    mask = render_object_mask(spec, 9, 48, 64, fps=8)
    assert mask.shape == (9, 48, 64) and mask.min() >= 0 and mask.max() == 1
    changed = np.abs(video.astype(int) - other.astype(int)).max(-1) > 0  # pixels the objects' colour reaches
    assert not changed[mask == 0].any()  # no object pixel outside the mask
    assert changed[mask == 1].all() and changed[mask > 0.05].all()  # and every covered pixel is object
    # The source's mask belongs to the clip it renders, at every bucket size.
    src = ProceduralClips(seed=0, fps=24)
    clip, m = src.clip(7, 5, 32, 48), src.object_mask(7, 5, 32, 48)
    spec7 = SceneSpec.from_dict(clip.spec)
    assert np.array_equal(m, render_object_mask(spec7, 5, 32, 48, fps=24))


def test_latent_object_mask_follows_the_causal_latent_grid():
    from edgevid.train.latents import latent_object_mask

    pixels = torch.zeros(9, 32, 32)  # 9 frames -> latent frames {0}, {1-4}, {5-8}
    pixels[0, 0, 0] = 1.0  # frame 0, top-left block
    pixels[6, 20, 20] = 0.5  # frame 6 (third latent frame), block (2, 2)
    m = latent_object_mask(pixels, spatial=8, temporal=4, dilate=0)
    assert m.shape == (1, 3, 4, 4)
    assert m[0, 0, 0, 0] == 1 and m[0, 2, 2, 2] == 0.5 and m.sum() == 1.5
    assert m[0, 1].sum() == 0  # nothing covered in frames 1-4
    d = latent_object_mask(pixels, spatial=8, temporal=4, dilate=1)
    assert d[0, 2, 1:4, 1:4].eq(0.5).all() and d[0, 0, :2, :2].eq(1).all() and d[0, 1].sum() == 0


def test_weighted_flow_loss_is_a_weighted_mean_and_foreground_training_runs(tmp_path):
    x0 = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    seen = {}

    def fn(x, t):
        seen["x"], seen["t"] = x, t
        return torch.zeros_like(x)

    def loss(w=None):
        return rectified_flow_loss(fn, x0, generator=torch.Generator().manual_seed(0), weight=w)

    assert torch.allclose(loss(torch.ones(2, 1, 3, 4, 4)), loss())
    assert torch.allclose(loss(torch.full((2, 1, 3, 4, 4), 7.0)), loss())  # scale-free
    w = torch.zeros(2, 1, 3, 4, 4)
    w[:, :, :, :2] = 1.0  # only the top half counts
    weighted = loss(w)
    t = seen["t"].view(-1, 1, 1, 1, 1)
    noise = (seen["x"] - (1 - t) * x0) / t  # x_t = (1 - t) x0 + t eps
    expected = ((noise - x0)[..., :2, :] ** 2).mean()  # the zero predictor's error, summed in another order
    torch.testing.assert_close(weighted, expected, **reorder_tol(x0.numel(), scale=float(expected)))
    cfg = dataclasses.replace(TINY_TRAIN, steps=2, foreground_weight=4.0)
    model, _ = _train(tmp_path / "fg", cfg)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with pytest.raises(ValueError, match="foreground_weight"):
        TrainConfig(foreground_weight=-1.0)


def test_staged_training_freezes_or_slows_the_spatial_layers(tmp_path):
    """SnapGen-V's video stage: spatial_lr_scale=0 leaves every non-temporal weight exactly as it
    started and trains the temporal layers; 0.1 moves the spatial weights, less than scale 1 does."""
    from edgevid.train.t2v import is_temporal

    torch.manual_seed(0)
    start = SpatioTemporalUNet(_tiny_unet_config()).state_dict()
    start = {k: v.clone() for k, v in start.items()}

    def run(scale, name):
        torch.manual_seed(0)
        init = SpatioTemporalUNet(_tiny_unet_config())
        init.load_state_dict(start)
        cfg = dataclasses.replace(TINY_TRAIN, spatial_lr_scale=scale, lr=1e-2, warmup_steps=1)
        model, _ = train_t2v(tmp_path / name, _tiny_unet_config(), cfg, VideoVAE(VAE_PRESETS["tiny"]),
                             TinyTextEncoder(dim=32), ProceduralClips(seed=0), progress=False, init_unet=init)
        moved = {"temporal": 0.0, "spatial": 0.0}
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                moved["temporal" if is_temporal(k) else "spatial"] += (v - start[k]).abs().sum().item()
        return moved

    frozen, slow, full = run(0.0, "frozen"), run(0.1, "slow"), run(1.0, "full")
    assert frozen["spatial"] == 0.0 and frozen["temporal"] > 0
    assert 0 < slow["spatial"] < full["spatial"]
    assert slow["temporal"] > 0
    with pytest.raises(ValueError, match="spatial_lr_scale"):
        TrainConfig(spatial_lr_scale=1.5)


class _LinearDecoder:
    """A stand-in VAE whose decoder reads latent channel c with gain g[c] (a known sensitivity)."""

    def __init__(self, gains):
        self.gains = torch.tensor(gains).view(1, -1, 1, 1, 1)

    def decode_latents(self, z):
        return (z * self.gains).sum(1, keepdim=True)


def test_decoder_channel_weights_follow_the_decoders_gain_per_channel():
    """Weights ∝ gain² (the decoded squared error per unit latent error), mean 1, floored: an
    invisible channel gets the floor, not zero, and a channel read twice as strongly gets 4x."""
    from edgevid.train.latents import decoder_channel_weights

    z = torch.randn(2, 3, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    w = decoder_channel_weights(_LinearDecoder([2.0, 1.0, 0.0]), z, generator=torch.Generator().manual_seed(1))
    # gains² 4, 1, 0 -> mean 5/3 -> 2.4, 0.6, 0 (floored to 0.05); the noise draw's own spread is ~2 %.
    torch.testing.assert_close(w[:2], torch.tensor([2.4, 0.6]), rtol=0.06, atol=0.0)
    assert w[2] == 0.05
    with pytest.raises(ValueError, match="sigma"):
        decoder_channel_weights(_LinearDecoder([1.0]), z[:, :1], sigma=0.0)


def test_channel_weighting_is_measured_once_per_run_and_kept_on_resume(tmp_path):
    """channel_weighting="decoder" writes the run's weights (one per latent channel, from the first
    batch), trains finite, and a resumed run reads the same file instead of measuring again."""
    import json

    cfg = dataclasses.replace(TINY_TRAIN, steps=2, channel_weighting="decoder")
    model, _ = _train(tmp_path / "chw", cfg)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    path = tmp_path / "chw" / "channel_weights.json"
    weights = json.loads(path.read_text())["weights"]
    assert len(weights) == VAE_PRESETS["tiny"].latent_channels and min(weights) >= 0.05
    assert abs(np.mean(weights) - 1.0) < 0.2  # mean 1 before the floor lifts the smallest
    path.write_text(json.dumps({"weights": [1.0] * len(weights)}))  # a resume must read this, not re-measure
    _train(tmp_path / "chw", cfg, resume=True)
    assert json.loads(path.read_text())["weights"] == [1.0] * len(weights)
    uniform = tmp_path / "uniform"
    _train(uniform, dataclasses.replace(TINY_TRAIN, steps=1))
    assert not (uniform / "channel_weights.json").exists()
    with pytest.raises(ValueError, match="channel_weighting"):
        TrainConfig(channel_weighting="pixels")


def test_masked_flow_error_weights_channels():
    """With channel weights the per-cell error is their weighted mean: weight on one channel alone
    gives that channel's error; equal weights give the plain mean."""
    from edgevid.train.latents import masked_flow_error

    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 3, 1, 4, 4, generator=g), torch.randn(2, 3, 1, 4, 4, generator=g)
    mask = torch.zeros(2, 1, 1, 4, 4)
    mask[..., :2, :] = 1
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731 - its error is (noise - x0)²
    err = (noise - x0).pow(2)
    inside, outside = masked_flow_error(zero, x0, noise, mask, 0.5, torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(inside, err[:, 1, :, :2].mean().item())
    torch.testing.assert_close(outside, err[:, 1, :, 2:].mean().item())
    plain = masked_flow_error(zero, x0, noise, mask, 0.5)
    torch.testing.assert_close(masked_flow_error(zero, x0, noise, mask, 0.5, torch.full((3,), 2.0)), plain)
