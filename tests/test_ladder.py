"""benchmarks/ladder.py: recipes that start from a trained UNet must start from exactly its function."""
import argparse
import dataclasses
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ladder  # noqa: E402
from edgevid.config import UNET_PRESETS  # noqa: E402
from edgevid.models.unet import SpatioTemporalUNet  # noqa: E402


def _trained_tiny():
    torch.manual_seed(0)
    unet = SpatioTemporalUNet(UNET_PRESETS["tiny"])
    for m in unet.modules():  # a "trained" model: no zero layers left
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)) and not m.weight.any():
            m.reset_parameters()
    return unet.eval()


@pytest.mark.parametrize("change", [{"pooled_text": True}, {"text_refiner_layers": 1},
                                    {"spatial_attention": (True, True)}])
def test_inflate_starts_every_added_path_as_the_identity(change):
    source = _trained_tiny()
    model = ladder.inflate(source, dataclasses.replace(source.config, **change)).eval()
    x, t = torch.randn(2, source.config.in_channels, 3, 8, 8), torch.rand(2)
    ctx, mask = torch.randn(2, 5, source.config.text_dim), torch.tensor([[1, 1, 1, 0, 0], [1] * 5]).bool()
    with torch.no_grad():
        assert torch.equal(model(x, t, ctx, mask), source(x, t, ctx, mask))
    assert sum(p.numel() for p in model.parameters()) > sum(p.numel() for p in source.parameters())


def test_inflate_refuses_a_changed_layer():
    source = _trained_tiny()
    with pytest.raises(ValueError, match="cannot start"):
        ladder.inflate(source, dataclasses.replace(source.config, channels=(16, 48)))


def test_a_recipe_that_changes_the_captions_gets_its_own_latent_cache():
    args = argparse.Namespace(cache_root="/c", rung="a", recipe="teacher-init")
    assert ladder.cache_dir(args) == Path("/c/rung_a")
    args.recipe = "teacher-init-canon50"
    assert ladder.cache_dir(args) == Path("/c/rung_a_canonical_fraction0.5")


def test_inflate_widens_a_trained_unet_exactly():
    source = _trained_tiny()
    model = ladder.inflate(source, dataclasses.replace(source.config, res_hidden_channels=(32, 32))).eval()
    x, t = torch.randn(2, source.config.in_channels, 3, 8, 8), torch.rand(2)
    ctx = torch.randn(2, 4, source.config.text_dim)
    with torch.no_grad():
        assert torch.allclose(model(x, t, ctx), source(x, t, ctx), atol=1e-4)


def test_sdedit_sampler_starts_from_the_ground_truth():
    """start_t near 0 leaves the encoded ground truth almost untouched: the output is its VAE
    reconstruction; start_t = 1 is the plain sampler (pure noise, far from it)."""
    from conftest import make_tiny_pipeline

    from edgevid.data.world import render_video

    pipe = make_tiny_pipeline(num_frames=5, size=32)
    rung = ladder.Rung(5, 32, 1, ("solid",), steps=1, batch_size=1, num_clips=1)
    spec, caption = ladder.rung_specs(rung, 1)[0]
    truth = torch.from_numpy(render_video(spec, 5, 32, 32, 24)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        recon = pipe.decode_latents(pipe.vae.encode_latents(truth))[0].permute(0, 2, 3, 1).numpy()
    near = ladder.Sampler(steps=4, guidance=2.0, start_t=0.01)(pipe, caption, rung, 0, spec)
    far = ladder.Sampler(steps=4, guidance=2.0)(pipe, caption, rung, 0, spec)
    assert near.shape == far.shape == recon.shape == (5, 32, 32, 3)
    assert abs(near - recon).mean() < 0.2 * abs(far - recon).mean()
    with pytest.raises(ValueError, match="spec"):
        ladder.Sampler(start_t=0.5)(pipe, caption, rung, 0)


def test_guidance_interval_sampler_matches_the_pipeline_when_off_and_changes_when_on():
    from conftest import make_tiny_pipeline

    pipe = make_tiny_pipeline(num_frames=5, size=32)
    rung = ladder.Rung(5, 32, 1, ("solid",), steps=1, batch_size=1, num_clips=1)
    _, caption = ladder.rung_specs(rung, 1)[0]
    plain = ladder.Sampler(steps=4, guidance=3.0)(pipe, caption, rung, 0)
    zero = ladder.Sampler(steps=4, guidance=3.0, guidance_min_t=1e-9)(pipe, caption, rung, 0)  # manual path, same function
    half = ladder.Sampler(steps=4, guidance=3.0, guidance_min_t=0.5)(pipe, caption, rung, 0)
    assert abs(zero - plain).max() < 1e-4
    assert abs(half - plain).max() > 1e-3


def test_score_rung_writes_per_video_scores_that_average_to_the_adherence_and_pair_up():
    """Each video's adherence is kept, their mean is the run's, and two scorings of the same
    specs pass `edgevid compare`'s pairing check (a sampler that is not the model: fast)."""
    from edgevid.eval.compare import paired_difference

    rung = ladder.Rung(5, 32, 1, ("solid",), steps=1, batch_size=1, num_clips=1)

    def sampler(scale):
        return lambda pipe, caption, rung, i, spec: torch.full((5, 32, 32, 3), scale * (i % 3) / 2).numpy()

    a, b = (ladder.score_rung(None, rung, 6, progress=False, sampler=sampler(s)) for s in (1.0, 0.5))
    for scores in (a, b):
        assert [v["index"] for v in scores["per_video"]] == list(range(6))
        assert sum(v["adherence"] for v in scores["per_video"]) / 6 == pytest.approx(scores["adherence"])
    c = paired_difference(a, b, metric="adherence")
    assert c["videos"] == 6 and c["difference"] == pytest.approx(b["adherence"] - a["adherence"])


def test_a_rung_runs_config_takes_the_recipe_then_the_command_lines_steps_and_seed():
    from edgevid.config import TrainConfig

    rung, recipe = ladder.RUNGS["d"], ladder.RECIPES["video-stage"]
    cfg = ladder.train_config(rung, recipe)
    assert (cfg.steps, cfg.seed, cfg.batch_size, cfg.buckets) == (rung.steps, TrainConfig().seed, rung.batch_size,
                                                                 ((rung.frames, rung.size, rung.size),))
    assert all(getattr(cfg, k) == v for k, v in recipe.train.items())
    second = ladder.train_config(rung, recipe, steps=1196, seed=1)
    assert (second.steps, second.seed) == (1196, 1)
    assert dataclasses.replace(second, steps=cfg.steps, seed=cfg.seed) == cfg  # nothing else moves
