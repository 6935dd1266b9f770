import json
import math

import pytest
import torch

from edgevid.config import DistillConfig
from edgevid.data import ProceduralClips
from edgevid.distill import (
    Discriminator,
    discriminator_hinge_loss,
    distill,
    fake_sample,
    generator_adversarial_loss,
    generator_timesteps,
    normalized_pseudo_huber_loss,
    predicted_x0,
    pseudo_huber_loss,
)
from edgevid.flow.schedule import interpolate, time_grid
from edgevid.train.latents import LatentBatches
from edgevid.train.loop import step_generator
from tests.conftest import make_tiny_pipeline

TINY = dict(batch_size=2, buckets=((1, 32, 32), (5, 32, 32)), head_channels=8, num_clips=4, cache_latents=True,
            log_every=1, checkpoint_every=4)


# ---------------------------------------------------------------------------- losses, by hand
def test_hinge_loss_hand_computed():
    real = torch.tensor([-2.0, 0.5])  # relu(1 + r): 0, 1.5 -> mean 0.75
    fake = torch.tensor([0.5, 3.0])  # relu(1 - f): 0.5, 0 -> mean 0.25
    assert discriminator_hinge_loss(real, fake).item() == pytest.approx(1.0)
    # A discriminator that puts real at <= -1 and fake at >= +1 has zero loss (Eq. 4's convention).
    assert discriminator_hinge_loss(torch.tensor([-1.0, -5.0]), torch.tensor([1.0, 2.0])).item() == 0.0


def test_generator_and_discriminator_pull_fake_logits_in_opposite_directions():
    fake = torch.tensor([0.3, -0.2], requires_grad=True)
    discriminator_hinge_loss(torch.zeros(2), fake).backward()
    d_grad = fake.grad.clone()
    fake.grad = None
    generator_adversarial_loss(fake).backward()
    assert (d_grad < 0).all()  # D descends: raises fake logits (fake = high)
    assert (fake.grad > 0).all()  # G descends: lowers them towards the real side
    assert generator_adversarial_loss(torch.tensor([1.0, 2.0, 3.0])).item() == pytest.approx(2.0)


def test_pseudo_huber_hand_computed():
    x = torch.zeros(2, 1, 1, 1, 2)
    x_hat = torch.tensor([3.0, 4.0]).expand(2, 1, 1, 1, 2)  # ||x_hat - x|| = 5 per sample
    assert pseudo_huber_loss(x_hat, x, c=1.0).item() == pytest.approx(math.sqrt(26) - 1)
    assert pseudo_huber_loss(x, x, c=1.0).item() == 0.0
    # Default c = 0.00054 * sqrt(d), d = 2; normalised = Eq. 6 / sqrt(d).
    c = 0.00054 * math.sqrt(2)
    assert pseudo_huber_loss(x_hat, x).item() == pytest.approx(math.sqrt(25 + c * c) - c)
    assert normalized_pseudo_huber_loss(x_hat, x, 1.0).item() == pytest.approx((math.sqrt(26) - 1) / math.sqrt(2))
    # Quadratic near zero, linear far away.
    small = pseudo_huber_loss(torch.full((1, 4), 1e-3), torch.zeros(1, 4), c=1.0).item()
    assert small == pytest.approx(0.5 * 4e-6, rel=1e-3)


def test_fake_sample_and_x0_formulas_with_the_exact_velocity():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, 2, 4, 4, generator=g), torch.randn(3, 4, 2, 4, 4, generator=g)
    t, t_prime = torch.tensor([1.0, 0.5, 0.25]), torch.tensor([0.1, 0.9, 0.25])
    x_t = interpolate(x0, eps, t)
    v = eps - x0  # the true rectified-flow velocity
    # x̂_t' = x_t + (t' - t) v lands exactly on the forward process at t'.
    torch.testing.assert_close(fake_sample(x_t, t, t_prime, v), interpolate(x0, eps, t_prime))
    torch.testing.assert_close(predicted_x0(x_t, t, v), x0)
    # By hand for one element: x_t = 0.5 x0 + 0.5 eps, t' = 0.9 -> x_t + 0.4 (eps - x0).
    i = (1, 0, 0, 0, 0)
    assert fake_sample(x_t, t, t_prime, v)[i].item() == pytest.approx((0.5 * x0 + 0.5 * eps + 0.4 * (eps - x0))[i].item())


def test_student_grid_is_the_pipeline_grid():
    for k in (1, 2, 4):
        grid = generator_timesteps(DistillConfig(num_steps=k))
        assert grid[0].item() == 1.0 and len(grid) == k
        torch.testing.assert_close(torch.cat([grid, torch.zeros(1)]), time_grid(k))
    assert generator_timesteps(DistillConfig(num_steps=4)).tolist() == [1.0, 0.75, 0.5, 0.25]


# ---------------------------------------------------------------------------- discriminator
@pytest.mark.parametrize("head", ["unified", "separate"])
def test_discriminator_shapes_and_images(head):
    pipe = make_tiny_pipeline()
    disc = Discriminator(pipe.unet, head=head, head_channels=8)
    text = pipe.text_encoder.encode(["a red circle", "a blue square"])
    for T in (1, 3):  # images and videos go through the same heads
        x = torch.randn(2, pipe.unet.config.in_channels, T, 8, 8)
        logits = disc(x, torch.tensor([0.2, 0.9]), text.tokens, text.mask, text.pooled)
        per_stage = 2 if head == "separate" else 1
        assert len(logits) == per_stage * (len(pipe.unet.config.channels) + 1)
        assert logits[0].shape == (2 * T, 8, 8) and logits[-1].shape == (2 * T, 4, 4)
        assert all(torch.isfinite(l).all() for l in logits)


def test_discriminator_text_projection_changes_the_score():
    pipe = make_tiny_pipeline()
    disc = Discriminator(pipe.unet, head_channels=8)
    for p in disc.heads.parameters():
        torch.nn.init.normal_(p, std=0.1) if p.dim() > 1 else None
    x = torch.randn(1, pipe.unet.config.in_channels, 3, 8, 8)
    a, b = (pipe.text_encoder.encode([p]) for p in ("a red circle", "a green triangle moving left"))
    la = disc(x, torch.tensor([0.5]), a.tokens, a.mask, a.pooled)[0]
    lb = disc(x, torch.tensor([0.5]), b.tokens, b.mask, b.pooled)[0]
    assert not torch.allclose(la, lb)


def test_bad_head_config_is_refused():
    pipe = make_tiny_pipeline()
    with pytest.raises(ValueError, match="head"):
        Discriminator(pipe.unet, head="both")
    with pytest.raises(ValueError, match="divisible"):
        Discriminator(pipe.unet, head_channels=6)
    with pytest.raises(ValueError, match="adv_weight"):
        DistillConfig(adv_weight=0, recon_weight=0)


# ---------------------------------------------------------------------------- training
def _run(tmp_path, name="run", resume=False, **changes):
    pipe = make_tiny_pipeline()
    cfg = DistillConfig(**{**TINY, "steps": 8, **changes})
    student, records = distill(tmp_path / name, pipe.unet, pipe.vae, pipe.text_encoder, ProceduralClips(seed=0),
                               cfg, resume=resume, progress=False)
    return pipe, student, records


def test_backbone_gets_no_gradient_and_stays_the_teachers(tmp_path, monkeypatch):
    import edgevid.distill.train as train_mod

    made, initial_heads = [], []
    original = train_mod.Discriminator

    def spy(*args, **kwargs):
        made.append(original(*args, **kwargs))
        initial_heads.append({k: v.clone() for k, v in made[-1].heads.state_dict().items()})
        return made[-1]

    monkeypatch.setattr(train_mod, "Discriminator", spy)
    pipe, student, records = _run(tmp_path, steps=4)
    disc = made[0]
    teacher_state = pipe.unet.state_dict()
    backbone = {f"{name}.{k}": v for name in ("time_embed", "conv_in", "down_blocks", "downsamplers", "mid_block",
                                               "mid_res") for k, v in getattr(disc, name).state_dict().items()}
    assert backbone and all(torch.equal(v, teacher_state[k]) for k, v in backbone.items())
    for module in disc.backbone_modules():
        assert all(p.grad is None and not p.requires_grad for p in module.parameters())
    heads_now = disc.heads.state_dict()
    assert any(not torch.equal(v, heads_now[k]) for k, v in initial_heads[0].items())  # the heads did train
    # The generator moved away from the teacher; the teacher itself is untouched.
    assert any(not torch.equal(p, q) for p, q in zip(student.parameters(), pipe.unet.parameters()))
    assert all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"]) for r in records)


def _student_recon(unet, pipe, cfg, n=4):
    """The student's Eq. 6 loss on fixed batches at its own grid points (no adversarial term)."""
    batches = LatentBatches(pipe.vae, ProceduralClips(seed=1), cfg.buckets, 4, 0, False, 1, None)
    grid, total = generator_timesteps(cfg), 0.0
    with torch.no_grad():
        for i in range(n):
            g = step_generator(99, i)
            x0, captions = batches(i, g)
            text = pipe.text_encoder.encode(captions)
            for t in grid:
                tt = t.expand(x0.shape[0])
                x_t = interpolate(x0, torch.randn(x0.shape, generator=g), tt)
                v = unet(x_t, tt, text.tokens, text.mask)
                total += normalized_pseudo_huber_loss(predicted_x0(x_t, tt, v), x0).item()
    return total / (n * len(grid))


def test_tiny_distillation_reduces_the_generator_loss(tmp_path):
    changes = dict(steps=30, generator_lr=3e-3, ema_decay=0.5, num_clips=0, cache_latents=False)
    pipe, student, records = _run(tmp_path, **changes)
    cfg = DistillConfig(**{**TINY, **changes})
    before, after = _student_recon(pipe.unet, pipe, cfg), _student_recon(student, pipe, cfg)
    assert after < 0.95 * before, (before, after)  # 0.726 -> 0.666 when written
    assert all(all(math.isfinite(v) for v in r.values()) for r in records)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 30 and {"d_loss", "g_adv", "recon", "sec_per_step"} <= set(log[0])


def test_reconstruction_only_ablation_skips_the_discriminator(tmp_path):
    _, _, records = _run(tmp_path, steps=3, adv_weight=0.0)
    assert "d_loss" not in records[0] and "g_adv" not in records[0]
    assert records[0]["g_loss"] == pytest.approx(records[0]["recon"])


def test_resume_replays_the_same_run(tmp_path):
    import shutil

    _, full, _ = _run(tmp_path, "run", steps=8)
    # Pretend the session died after step 4: drop the step-8 checkpoint, point `latest` back.
    ckpts = tmp_path / "run" / "checkpoints"
    shutil.rmtree(ckpts / "step-0000008")
    (ckpts / "latest").write_text("step-0000004\n")
    _, resumed, records = _run(tmp_path, "run", resume=True, steps=8)
    assert [r["step"] for r in records] == [5, 6, 7, 8]
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(p, q)  # same path, same seed, same machine: exact


# ---------------------------------------------------------------------------- teacher samples (LADD's synthetic data)
def _teacher_samples(pipe, cache_dir, **changes):
    from edgevid.distill.synthetic import TeacherSamples
    from edgevid.text import PromptCache

    kw = {**dict(buckets=((5, 32, 32),), batch_size=2, num_clips=3, seed=0, cache_dir=cache_dir, guidance=3.0,
                 shift=3.0, sample_steps=2, precision="fp32"), **changes}
    return TeacherSamples(pipe.unet, pipe.vae, PromptCache(pipe.text_encoder), ProceduralClips(seed=0), **kw)


def test_teacher_samples_are_the_pipelines_guided_samples_for_the_clips_captions(tmp_path):
    pipe = make_tiny_pipeline()
    data = _teacher_samples(pipe, tmp_path / "cache")
    x0, captions = data(0, step_generator(0, 0))
    g = step_generator(0, 0)
    torch.randint(1, (1,), generator=g)  # the bucket draw comes first
    indices = [int(i) for i in torch.randint(3, (2,), generator=g)]
    assert captions == [ProceduralClips(seed=0).clip(i, 5, 32, 32).caption for i in indices]
    # The same caption and noise through the pipeline's own sampler give the same x0.
    out = pipe.set_precision("fp32")(captions, num_frames=5, height=32, width=32, num_inference_steps=2, guidance_scale=3.0, shift=3.0,
               latents=data.last_noise.clone(), output_type="latent").frames
    torch.testing.assert_close(x0, out, rtol=1e-4, atol=1e-5)
    assert x0.shape == data.last_noise.shape == (2, *pipe.vae.latent_shape(5, 32, 32))
    # Cached on disk: a new reader gets the same tensors without sampling, and a changed sampler is refused.
    reread = _teacher_samples(pipe, tmp_path / "cache")
    reread.sample = None  # would fail if called
    again, _ = reread(0, step_generator(0, 0))
    assert torch.equal(again, x0) and torch.equal(reread.last_noise, data.last_noise)
    with pytest.raises(ValueError, match="another cache folder"):
        _teacher_samples(pipe, tmp_path / "cache", guidance=2.0)(0, step_generator(0, 0))


def test_distillation_on_teacher_samples_with_paired_noise(tmp_path, monkeypatch):
    import edgevid.distill.train as train_mod

    seen = []
    original = train_mod.interpolate

    def spy(x0, noise, t):
        seen.append(noise)
        return original(x0, noise, t)

    monkeypatch.setattr(train_mod, "interpolate", spy)
    _, student, records = _run(tmp_path, steps=2, teacher_data=True, teacher_sample_steps=2, paired_noise=True,
                               cache_latents=False)
    assert len(records) == 2 and all(math.isfinite(r["g_loss"]) for r in records)
    files = sorted((tmp_path / "run" / "teacher_cache").glob("*.safetensors"))
    assert files  # sampled once, kept for a resumed run
    from safetensors.torch import load_file

    stored = [load_file(f)["noise"] for f in files]
    # The generator's x_t (the first interpolate of each step) uses noise the teacher started from.
    first_of_step = seen[0::2]
    assert all(any(torch.equal(n, s) for s in stored) for batch in first_of_step for n in batch)


def test_teacher_data_config_errors():
    with pytest.raises(ValueError, match="num_clips"):
        DistillConfig(teacher_data=True, num_clips=0)
    with pytest.raises(ValueError, match="paired_noise needs teacher_data"):
        DistillConfig(paired_noise=True, num_clips=4)


def test_verifier_passes_the_clips_own_render_and_fails_a_recoloured_one():
    from edgevid.distill.synthetic import StaticAttributeVerifier
    from edgevid.eval.shapesbench.controls import recoloured

    source = ProceduralClips(seed=0, fps=24)
    index, bucket = 3, (17, 128, 128)

    class RenderingVAE:  # "decodes" to a fixed video in [-1, 1]: the verifier's decode step is the VAE's job
        video = None

        def parameters(self):
            yield torch.zeros(1)

        def decode_latents(self, z):
            return torch.from_numpy(self.video).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None]

    vae = RenderingVAE()
    verifier = StaticAttributeVerifier(vae, source, fps=24)
    vae.video = source.clip(index, *bucket).video
    assert verifier(torch.zeros(1), index, bucket) == 1.0
    vae.video = recoloured(source.scene(index, 17), 17, 128, 24)
    assert verifier(torch.zeros(1), index, bucket) < verifier.threshold


def test_rejection_sampling_keeps_the_first_draw_that_passes(tmp_path):
    from safetensors import safe_open

    pipe = make_tiny_pipeline()

    class Stub:  # fails every clip's first draw, passes its second
        name, threshold, calls = "stub", 0.75, {}

        def __call__(self, z, index, bucket):
            self.calls[index] = self.calls.get(index, 0) + 1
            return 0.2 if self.calls[index] == 1 else 0.9

    plain = _teacher_samples(pipe, tmp_path / "plain")
    plain(0, step_generator(0, 0))
    stub = Stub()
    kept = _teacher_samples(pipe, tmp_path / "kept", verifier=stub, attempts=3)
    kept(0, step_generator(0, 0))
    assert set(stub.calls.values()) == {2}  # two draws per clip, no third
    assert not torch.equal(kept.last_noise, plain.last_noise)  # the second draw's noise, not the first's
    with safe_open(str(next((tmp_path / "kept").glob("*.safetensors"))), framework="pt") as f:
        assert f.metadata()["verifier_score"] == "0.9000"
    with pytest.raises(ValueError, match="attempts"):
        _teacher_samples(pipe, tmp_path / "x", attempts=2)  # more than one draw needs a verifier


def test_filter_trains_only_on_passing_samples_and_scores_each_once(tmp_path):
    pipe = make_tiny_pipeline()

    class Stub:  # passes clips 0 and 2 only
        name, threshold = "stub", 0.75

        def __init__(self):
            self.calls = []

        def __call__(self, z, index, bucket):
            self.calls.append(index)
            return 0.9 if index in (0, 2) else 0.1

    stub = Stub()
    data = _teacher_samples(pipe, tmp_path / "cache", num_clips=4, batch_size=3, keep_passing=stub)
    seen = set()
    for step in range(6):
        _, captions = data(step, step_generator(0, step))
        seen |= set(captions)
    source = ProceduralClips(seed=0)
    assert seen <= {source.clip(i, 5, 32, 32).caption for i in (0, 2)} and data.redraws > 0
    assert len(stub.calls) == len(set(stub.calls)) <= 4 and data.kept_failing == 0  # each sample scored once
    # The scores survive in the cache folder: a new reader scores nothing again, and draws the same batches.
    again = _teacher_samples(pipe, tmp_path / "cache", num_clips=4, batch_size=3, keep_passing=Stub())
    x0, _ = again(0, step_generator(0, 0))
    first, _ = _teacher_samples(pipe, tmp_path / "cache", num_clips=4, batch_size=3, keep_passing=stub)(
        0, step_generator(0, 0))
    assert again.keep_passing.calls == [] and torch.equal(x0, first)
    with pytest.raises(ValueError, match="teacher_filter needs teacher_data"):
        DistillConfig(teacher_filter=True)
    # filter_buckets: a bucket left out of it is drawn unfiltered, and its samples are never scored
    other = Stub()
    loose = _teacher_samples(pipe, tmp_path / "loose", num_clips=4, batch_size=3, keep_passing=other,
                             filter_buckets={(9, 32, 32)})
    _, captions = loose(0, step_generator(0, 0))
    assert other.calls == [] and loose.redraws == 0
    with pytest.raises(ValueError, match="teacher_filter_buckets"):
        DistillConfig(teacher_data=True, num_clips=4, teacher_filter=True, buckets=((5, 32, 32),),
                      teacher_filter_buckets=((9, 32, 32),))


def test_teacher_targets_continue_the_teachers_own_trajectory():
    from edgevid.distill.synthetic import TeacherTargets
    from edgevid.text import PromptCache

    pipe = make_tiny_pipeline().set_precision("fp32")
    captions = ["a red circle", "a blue square"]
    noise = torch.randn(2, *pipe.vae.latent_shape(5, 32, 32), generator=torch.Generator().manual_seed(0))
    states = {}
    x0 = pipe(captions, num_frames=5, height=32, width=32, num_inference_steps=6, guidance_scale=3.0, shift=3.0,
              latents=noise.clone(), output_type="latent",
              callback_on_step_end=lambda p, i, t, kw: states.__setitem__(t, kw["latents"].clone())).frames
    targets = TeacherTargets(pipe.unet, PromptCache(pipe.text_encoder), 3.0, 3.0, 6, precision="fp32")
    grid = time_grid(6, 3.0)
    # From the noise (t = 1) and from the teacher's own state at a grid point, per row.
    x_t = torch.stack([noise[0], states[float(grid[3])][1]])
    t = torch.tensor([1.0, float(grid[3])])
    torch.testing.assert_close(targets(x_t, t, captions), x0, rtol=1e-4, atol=1e-5)


def test_distillation_with_teacher_targets(tmp_path):
    _, student, records = _run(tmp_path, steps=2, teacher_targets=True, teacher_sample_steps=3)
    assert len(records) == 2 and all(math.isfinite(r["recon"]) for r in records)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["distill"]["teacher_targets"] is True


def test_samples_to_draw_counts_what_a_run_samples_and_skips_the_cache(tmp_path):
    """The draws are seeded, so the samples a run will sample are known before it starts
    (distill's work estimate): exactly the files the run then writes, none once they are cached."""
    from edgevid.distill.synthetic import samples_to_draw

    buckets = ((5, 32, 32), (1, 32, 32))
    cache = tmp_path / "cache"
    data = _teacher_samples(make_tiny_pipeline(), cache, buckets=buckets, num_clips=4)

    def written():
        return {b: len(list(cache.glob(f"*_{b[0]}x{b[1]}x{b[2]}.safetensors"))) for b in buckets}

    first = samples_to_draw(0, buckets, 4, 2, range(3), cache)
    for step in range(3):
        data(step, step_generator(0, step))
    assert first == written() and sum(first.values()) > 0
    assert samples_to_draw(0, buckets, 4, 2, range(3), cache) == {b: 0 for b in buckets}
    before, more = written(), samples_to_draw(0, buckets, 4, 2, range(3, 6), cache)
    for step in range(3, 6):
        data(step, step_generator(0, step))
    assert {b: written()[b] - before[b] for b in buckets} == more
