"""Image-to-video: tiny train -> pipeline -> animate, the clean-image wrapper, save/load, bad inputs."""
import dataclasses
import json
import statistics

import numpy as np
import pytest
import torch

from edgevid.config import SVD_UNET_PRESETS, VAE_PRESETS, TrainConfig
from edgevid.data import ProceduralClips
from edgevid.models.i2v import Img2VidDenoiser, added_time_ids, latent_motion
from edgevid.models.vae import VideoVAE
from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline, Img2VidDefaults
from edgevid.train.i2v import train_i2v, with_clean_image

TINY = SVD_UNET_PRESETS["svd-tiny"]  # 8 = 4 noisy + 4 image channels: the tiny VAE's latents


def _tiny_pipeline(frames=5, size=32, steps=2):
    torch.manual_seed(0)
    return EdgeVidImg2VidPipeline(VideoVAE(VAE_PRESETS["tiny"]), Img2VidDenoiser(TINY),
                                  Img2VidDefaults(num_frames=frames, height=size, width=size, num_inference_steps=steps))


def test_clean_image_wrapper_replaces_only_the_first_frame():
    seen = {}

    def velocity(x, t):
        seen["x"] = x
        return torch.zeros_like(x)

    x, image = torch.randn(2, 4, 3, 4, 4), torch.randn(2, 4, 4, 4)
    with_clean_image(velocity, image)(x, torch.zeros(2))
    assert torch.equal(seen["x"][:, :, 0], image) and torch.equal(seen["x"][:, :, 1:], x[:, :, 1:])


def test_denoiser_checks_and_micro_conditioning():
    with pytest.raises(ValueError, match="2 \\* out_channels"):
        Img2VidDenoiser(dataclasses.replace(TINY, in_channels=4))
    model = Img2VidDenoiser(TINY)
    x = torch.randn(1, 4, 2, 4, 4)
    with pytest.raises(ValueError, match="image_latent"):
        model(x, torch.zeros(1), torch.randn(1, 4, 8, 8), added_time_ids(1, 8, 30, 0.02))
    assert model(x, torch.zeros(1), torch.randn(1, 4, 4, 4), added_time_ids(1, 8, 30, 0.02)).shape == x.shape
    assert added_time_ids(3, 8, 30, torch.tensor([0.0, 0.1, 0.2])).tolist()[2] == pytest.approx([8, 30, 0.2])
    still = torch.randn(2, 4, 1, 4, 4).expand(-1, -1, 3, -1, -1)
    assert latent_motion(still).tolist() == [0.0, 0.0] and latent_motion(torch.randn(2, 4, 3, 4, 4)).min() > 0


def test_tiny_train_then_animate_round_trip(tmp_path):
    vae = VideoVAE(VAE_PRESETS["tiny"])
    cfg = TrainConfig(steps=3, batch_size=2, buckets=((5, 32, 32),), warmup_steps=1, checkpoint_every=3,
                      log_every=1, num_clips=4, cache_latents=True)
    model, ema = train_i2v(tmp_path / "run", TINY, cfg, vae, ProceduralClips(seed=0), progress=False)
    assert (tmp_path / "run" / "checkpoints").is_dir()
    pipe = EdgeVidImg2VidPipeline(vae, ema, Img2VidDefaults(num_frames=5, height=32, width=32, num_inference_steps=2),
                                  precision="fp32")
    image = ProceduralClips(seed=1).clip(0, 5, 32, 32).video[0]  # (32, 32, 3) uint8
    out = pipe(image, generator=torch.Generator().manual_seed(0)).frames
    assert out.shape == (1, 5, 32, 32, 3) and np.isfinite(out).all()
    again = pipe(image, generator=torch.Generator().manual_seed(0)).frames
    np.testing.assert_array_equal(out, again)  # deterministic for a seed
    u8 = pipe(image, generator=torch.Generator().manual_seed(0), output_type="uint8").frames  # `animate`'s path
    from edgevid.pipeline import frames_to_uint8
    assert u8.dtype == np.uint8 and np.array_equal(u8[0], frames_to_uint8(out[0]))
    pipe.save_pretrained(tmp_path / "model")
    loaded = EdgeVidImg2VidPipeline.from_pretrained(tmp_path / "model", precision="fp32")
    np.testing.assert_allclose(loaded(image, generator=torch.Generator().manual_seed(0)).frames, out, atol=1e-6)
    # The first latent frame is the image's: the first decoded frame is the VAE's reconstruction.
    latents = pipe(image, generator=torch.Generator().manual_seed(0), output_type="latent").frames
    assert torch.equal(latents[:, :, 0], pipe.vae.encode_latents(pipe.prepare_image(image, 32, 32))[:, :, 0])


def test_bad_inputs_say_what_to_do(tmp_path):
    pipe = _tiny_pipeline()
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="resize it first"):
        pipe(np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        pipe(image.astype(np.float32))
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        pipe(image, num_frames=6)
    with pytest.raises(ValueError, match="multiples of 16"):
        pipe(np.zeros((24, 24, 3), np.uint8), height=24, width=24)
    with pytest.raises(ValueError, match="not an image-to-video model"):
        from tests.conftest import make_tiny_pipeline

        make_tiny_pipeline().save_pretrained(tmp_path / "t2v")
        EdgeVidImg2VidPipeline.from_pretrained(tmp_path / "t2v")
    with pytest.raises(ValueError, match=">= 2 latent frames"):
        train_i2v(tmp_path / "r", TINY, TrainConfig(steps=1, buckets=((1, 32, 32),)), pipe.vae, ProceduralClips())


def test_animate_cli_writes_a_video_and_rejects_bad_inputs(tmp_path, capsys):
    from PIL import Image

    from edgevid.cli import main
    from edgevid.io.video import read_video

    _tiny_pipeline().save_pretrained(tmp_path / "model")
    Image.fromarray(np.full((50, 70, 3), 200, np.uint8)).save(tmp_path / "still.png")  # any size: resized + cropped
    out = tmp_path / "out.mp4"
    assert main(["animate", str(tmp_path / "still.png"), "-o", str(out), "--model", str(tmp_path / "model"),
                 "--threads", "1", "--quiet"]) == 0
    assert read_video(out)[0].shape[:3] == (5, 32, 32)
    (tmp_path / "notes.png").write_text("not an image")
    cases = {
        "no such image": ["animate", str(tmp_path / "missing.png")],
        "cannot read as an image": ["animate", str(tmp_path / "notes.png")],
        "no image-to-video model": ["animate", str(tmp_path / "still.png"), "--model", str(tmp_path)],
        "is a text-to-video model": ["animate", str(tmp_path / "still.png"), "--model", "default"],
        "--num-frames must be": ["animate", str(tmp_path / "still.png"), "--num-frames", "2"],
    }
    for message, argv in cases.items():
        argv = argv + ["-o", str(tmp_path / "bad.mp4")] + (["--model", str(tmp_path / "model")] if "--model" not in argv else [])
        assert main(argv) == 1, message
        assert message in capsys.readouterr().err, message
        assert not (tmp_path / "bad.mp4").exists()


def test_eval_detects_an_image_to_video_model(tmp_path, capsys):
    import json

    from edgevid.cli import main

    _tiny_pipeline().save_pretrained(tmp_path / "model")
    out = tmp_path / "i2v.json"
    assert main(["eval", "--model", str(tmp_path / "model"), "--limit", "2", "--output", str(out),
                 "--threads", "1", "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert result["ground_truth"]["i2v_score"] >= 0.5 and result["frozen"]["motion"] == 0.0
    assert 0.0 <= result["i2v_score"] <= 1.0 and len(result["per_video"]) == 2
    assert "i2v_score" in capsys.readouterr().out
    assert main(["eval", "--model", str(tmp_path / "model"), "--guidance", "2", "--output", str(out)]) == 1
    assert "text-to-video flags" in capsys.readouterr().err


def test_one_step_adversarial_distillation_of_a_compressed_student(tmp_path):
    from edgevid.compress.mobilevd import optimize_cross_attention
    from edgevid.config import DistillConfig
    from edgevid.distill.i2v import I2VDiscriminator, distill_i2v

    torch.manual_seed(0)
    teacher = Img2VidDenoiser(TINY).eval()
    student = teacher.with_unet(optimize_cross_attention(teacher.unet))
    disc = I2VDiscriminator(teacher, head_channels=32)
    x, image = torch.randn(2, 4, 2, 8, 8), torch.randn(2, 4, 8, 8)
    logits = disc(x, torch.rand(2), image, added_time_ids(2, 8, 30, 0.02))
    assert len(logits) == len(TINY.block_out_channels) + 1 and all(torch.isfinite(l).all() for l in logits)
    assert not any(p.requires_grad for p in disc.backbone.parameters())
    cfg = DistillConfig(num_steps=1, steps=2, batch_size=2, buckets=((5, 32, 32),), head_channels=32, warmup_steps=1,
                        checkpoint_every=2, log_every=1)
    ema, records = distill_i2v(tmp_path / "d", teacher, VideoVAE(VAE_PRESETS["tiny"]), ProceduralClips(seed=0), cfg,
                               student=student, progress=False)
    assert len(records) == 2 and all(np.isfinite(r["g_loss"]) and "d_loss" in r for r in records)
    assert ema.config.optimized_cross_attention  # the student's architecture, not the teacher's
    pipe = EdgeVidImg2VidPipeline(VideoVAE(VAE_PRESETS["tiny"]), ema,
                                  Img2VidDefaults(num_frames=5, height=32, width=32, num_inference_steps=1))
    assert pipe(np.zeros((32, 32, 3), np.uint8)).frames.shape == (1, 5, 32, 32, 3)


def test_adversarial_stage_returns_its_best_scored_ema_and_keeps_it_across_resume(tmp_path):
    from edgevid.config import DistillConfig
    from edgevid.distill.i2v import distill_i2v

    torch.manual_seed(0)
    teacher = Img2VidDenoiser(TINY).eval()
    cfg = DistillConfig(num_steps=1, steps=3, batch_size=2, buckets=((5, 32, 32),), head_channels=8, warmup_steps=1,
                        checkpoint_every=1, log_every=1, generator_lr=1e-2, select_every=1, select_videos=1)
    scores, seen = iter([0.1, 0.9, 0.3]), []

    def validate(model):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    vae = VideoVAE(VAE_PRESETS["tiny"])
    best, _ = distill_i2v(tmp_path / "d", teacher, vae, ProceduralClips(seed=0), cfg, progress=False, validate=validate)
    assert len(seen) == 3 and any(not torch.equal(seen[1][k], seen[2][k]) for k in seen[1])  # the EMA moved
    assert all(torch.equal(v, seen[1][k]) for k, v in best.state_dict().items())  # step 2's, not the last
    log = [json.loads(line) for line in (tmp_path / "d" / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["best_step"]) for r in log if "val_score" in r] == [(1, 1), (2, 2), (3, 2)]
    # a finished run resumed: nothing is scored again and the best is still returned
    again, _ = distill_i2v(tmp_path / "d", teacher, vae, ProceduralClips(seed=0), cfg, progress=False, resume=True,
                           validate=lambda m: pytest.fail("scored again"))
    assert all(torch.equal(v, seen[1][k]) for k, v in again.state_dict().items())


def test_compress_mobilevd_cli_writes_every_stage(tmp_path, capsys):
    from edgevid.cli import main

    _tiny_pipeline().save_pretrained(tmp_path / "teacher")
    argv = ["compress", "mobilevd", "--model", str(tmp_path / "teacher"), "--run-dir", str(tmp_path / "run"),
            "--output", str(tmp_path / "student"), "--temporal-multiscaling", "1,0", "--prune-keep", "0.5",
            "--finetune-steps", "1", "--prune-steps", "2", "--distill-steps", "1", "--batch-size", "2",
            "--buckets", "5x32x32", "--num-clips", "4", "--select-videos", "2", "--threads", "1", "--no-progress",
            "--distill-lr", "2e-5", "--adv-weight", "0.5", "--distill-ema-decay", "0.9"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "validation i2v_score" in capsys.readouterr().out  # the adversarial stage scored its EMA
    distill = json.loads((tmp_path / "run" / "runs" / "05_adversarial_1step" / "config.json").read_text())["distill"]
    assert (distill["generator_lr"], distill["adv_weight"], distill["ema_decay"]) == (2e-5, 0.5, 0.9)
    stages = sorted(p.name for p in (tmp_path / "run" / "stages").iterdir())
    assert stages == ["01_cross_attention", "02_temporal_multiscaling", "03_temporal_pruning", "04_channel_funnels",
                      "05_adversarial_1step"]
    student = EdgeVidImg2VidPipeline.from_pretrained(tmp_path / "student", precision="fp32")
    teacher = EdgeVidImg2VidPipeline.from_pretrained(tmp_path / "teacher", precision="fp32")
    cfg = student.unet.config
    assert cfg.optimized_cross_attention and cfg.temporal_downsample == (True, False) and cfg.funnel_vo_dims
    assert len(cfg.temporal_block_names()) == round(0.5 * len(teacher.unet.config.temporal_block_names()))
    assert student.defaults.num_inference_steps == 1
    assert student(np.zeros((32, 32, 3), np.uint8)).frames.shape == (1, 5, 32, 32, 3)
    # resume reads the finished stages back instead of training them again
    assert main(argv + ["--resume"]) == 0 and "read back" in capsys.readouterr().out
    # a k-step student: the architecture stages are reused, and the stage folder samples in k steps;
    # here on the teacher's samples, selected by the graded score
    assert main(argv + ["--resume", "--num-steps", "2", "--teacher-data", "--select-metric", "i2v_graded"]) == 0, \
        capsys.readouterr().err
    assert "validation i2v_graded" in capsys.readouterr().out
    two = EdgeVidImg2VidPipeline.from_pretrained(tmp_path / "run" / "stages" / "05_adversarial_2step")
    assert two.defaults.num_inference_steps == 2
    distill = json.loads((tmp_path / "run" / "runs" / "05_adversarial_2step" / "config.json").read_text())["distill"]
    assert distill["teacher_data"] and distill["paired_noise"] and distill["teacher_sample_steps"] == 2
    assert list((tmp_path / "run" / "runs" / "05_adversarial_2step" / "teacher_cache").glob("*.safetensors"))
    assert main(argv[:4] + ["--run-dir", str(tmp_path / "r2"), "--temporal-multiscaling", "1,1"]) == 1
    assert "--temporal-multiscaling needs 2" in capsys.readouterr().err


def test_train_i2v_cli_exports_a_checkpoint_and_continues_from_it(tmp_path):
    from edgevid.cli import main
    from edgevid.models.weights import save_component

    save_component(VideoVAE(VAE_PRESETS["tiny"]), VAE_PRESETS["tiny"], tmp_path / "vae")
    common = ["--vae", str(tmp_path / "vae"), "--preset", "svd-tiny", "--batch-size", "2", "--buckets", "5x32x32",
              "--sample-size", "32x32", "--sample-frames", "5", "--threads", "1", "--no-progress"]
    assert main(["train", "i2v", *common, "--steps", "2", "--checkpoint-every", "2", "--fps", "24",
                 "--run-dir", str(tmp_path / "a")]) == 0
    assert main(["train", "i2v", *common, "--run-dir", str(tmp_path / "a"), "--export-checkpoint",
                 "--output", str(tmp_path / "m")]) == 0
    # fps conditions the model: the export keeps the run's, without --fps again
    assert EdgeVidImg2VidPipeline.from_pretrained(tmp_path / "m").defaults.fps == 24
    # the exported model's motion default is the motion its training clips had, not SVD's scale
    logged = [json.loads(line)["motion"] for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    motion = EdgeVidImg2VidPipeline.from_pretrained(tmp_path / "m").defaults.motion_bucket_id
    assert logged and motion == pytest.approx(statistics.median(logged), abs=0.01) and motion != Img2VidDefaults().motion_bucket_id
    assert main(["train", "i2v", *common, "--steps", "1", "--run-dir", str(tmp_path / "b"), "--t-mean", "-0.5",
                 "--init-from", str(tmp_path / "m"), "--output", str(tmp_path / "m2"), "--channel-weighting", "decoder"]) == 0
    assert EdgeVidImg2VidPipeline.from_pretrained(tmp_path / "m2").defaults.num_frames == 5
    # a negative logit-normal mean (more low-noise steps) is a valid setting and reaches the run's config
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["t_mean"] == -0.5
    # decoder channel weighting reaches the image-to-video trainer too (measured once, kept in the run)
    assert len(json.loads((tmp_path / "b" / "channel_weights.json").read_text())["weights"]) == VAE_PRESETS["tiny"].latent_channels


# ---------------------------------------------------------------------------- the residual flow (ImageAnchor)
def test_frozen_video_latent_is_the_image_latent_at_every_frame():
    """What the residual flow's anchor rests on: the causal VAE encodes a still image repeated
    over the clip as its first latent again at every later latent frame (shipped-VAE-sized
    channels are not needed for this: it is the architecture's, so random weights show it)."""
    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"]).eval()
    image = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        z = vae.encode_latents(image.expand(-1, -1, 9, -1, -1).contiguous())  # (1, C, 3, 4, 4)
    for k in range(1, z.shape[2]):
        torch.testing.assert_close(z[:, :, k], z[:, :, 0], rtol=0, atol=1e-6)


def test_image_anchor_maps_and_the_oracle_velocity_reproduces_the_clip():
    from edgevid.train.i2v import ImageAnchor

    image, x0 = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 3, 4, 4)
    x0[:, :, 0] = image
    plain, space = ImageAnchor(image, 0.0), ImageAnchor(image, 0.5)
    assert plain.to_flow(x0) is x0 and plain.from_flow(x0) is x0
    r0 = space.to_flow(x0)
    torch.testing.assert_close(space.from_flow(r0), x0)
    assert r0[:, :, 0].abs().max() == 0  # the given frame is the anchor: 0 in the residual
    torch.testing.assert_close(r0[:, :, 1:], 2 * (x0[:, :, 1:] - image[:, :, None]))
    # A pipeline whose network is the flow-space oracle (r_t - r0) / t returns x0 exactly: the sampler
    # integrates in the residual space and maps back, with the network reading latent-space inputs.
    pipe = _tiny_pipeline(frames=9, size=32, steps=3)
    pipe.set_precision("fp32")
    img = ProceduralClips(seed=1).clip(0, 9, 32, 32).video[0]
    z_img = pipe.vae.encode_latents(pipe.prepare_image(img, 32, 32))[:, :, 0]
    target = torch.randn(1, *pipe.vae.latent_shape(9, 32, 32))
    target[:, :, 0] = z_img
    seen = []

    class Oracle(torch.nn.Module):
        config = dataclasses.replace(TINY, residual_scale=0.5)

        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))  # the pipeline reads its device from a parameter

        def forward(self, x, t, cond, ids):
            seen.append(x)
            s = ImageAnchor(z_img, 0.5)
            return (s.to_flow(x) - s.to_flow(target)) / t.view(-1, 1, 1, 1, 1)

    pipe.unet = Oracle()
    out = pipe(img, output_type="latent", generator=torch.Generator().manual_seed(0)).frames
    torch.testing.assert_close(out, target, rtol=0, atol=1e-5)
    assert seen[0][:, :, 1:].std() < 1.0  # the network's first input is the image plus 0.5 x noise, not noise


def test_residual_training_distillation_and_their_checks(tmp_path):
    from edgevid.config import DistillConfig
    from edgevid.distill.i2v import distill_i2v
    from edgevid.train.i2v import with_residual_scale

    residual = dataclasses.replace(TINY, residual_scale=0.5)
    vae = VideoVAE(VAE_PRESETS["tiny"])
    cfg = TrainConfig(steps=2, batch_size=2, buckets=((5, 32, 32),), warmup_steps=1, checkpoint_every=2,
                      log_every=1, num_clips=4, cache_latents=True)
    _, ema = train_i2v(tmp_path / "run", residual, cfg, vae, ProceduralClips(seed=0), progress=False)
    assert ema.config.residual_scale == 0.5
    dcfg = DistillConfig(num_steps=1, steps=1, batch_size=2, buckets=((5, 32, 32),), head_channels=32,
                         warmup_steps=1, checkpoint_every=1, log_every=1)
    student, records = distill_i2v(tmp_path / "d", ema, vae, ProceduralClips(seed=0), dcfg, progress=False)
    assert student.config.residual_scale == 0.5 and np.isfinite(records[0]["g_loss"])
    pipe = EdgeVidImg2VidPipeline(vae, student, Img2VidDefaults(num_frames=5, height=32, width=32, num_inference_steps=1))
    pipe.save_pretrained(tmp_path / "m")
    assert EdgeVidImg2VidPipeline.from_pretrained(tmp_path / "m").unet.config.residual_scale == 0.5
    with pytest.raises(ValueError, match="residual_scale"):
        distill_i2v(tmp_path / "x", Img2VidDenoiser(TINY), vae, ProceduralClips(seed=0), dcfg, student=student,
                    progress=False)
    with pytest.raises(ValueError, match="residual_scale"):
        dataclasses.replace(TINY, residual_scale=-1.0)
    model = with_residual_scale(Img2VidDenoiser(TINY), 0.25)
    assert model.config.residual_scale == model.unet.config.residual_scale == 0.25


def test_teacher_samples_are_the_pipelines_answers_and_the_student_starts_from_their_noise(tmp_path):
    from edgevid.config import DistillConfig
    from edgevid.distill.i2v import I2VTeacherSamples, distill_i2v
    from edgevid.train.latents import LatentBatches
    from edgevid.train.loop import step_generator

    torch.manual_seed(0)
    teacher = Img2VidDenoiser(dataclasses.replace(TINY, residual_scale=0.5)).eval()
    vae = VideoVAE(VAE_PRESETS["tiny"]).eval()
    source, bucket = ProceduralClips(seed=0, fps=24), (5, 32, 32)

    def samples(cache):
        batches = LatentBatches(vae, source, (bucket,), 2, 4, True, 0, tmp_path / "latents")
        return I2VTeacherSamples(teacher, batches, 24, steps=3, shift=1.0, seed=0, cache_dir=cache, precision="fp32")

    first = samples(tmp_path / "cache")
    x0, noise, cond, ids = first(0, step_generator(0, 0))
    assert x0.shape == noise.shape == (2, 4, 2, 4, 4) and cond.shape == (2, 4, 4, 4) and ids.shape == (2, 3)
    # the teacher's pipeline, given the same noise, conditioning and ids, answers the same x0
    indices, _ = first.batches.last_draw
    image = first.batches.latents(indices, bucket)[:, :, 0]
    assert torch.equal(x0[:, :, 0], image)  # frame 0 is the clip's image
    assert torch.allclose(first.sample(image, noise, cond, ids), x0)
    # ... which is the pipeline's sampler (25 steps there, 3 here) with this noise and conditioning
    from edgevid.flow.sample import sample_euler
    from edgevid.flow.schedule import time_grid
    from edgevid.train.i2v import ImageAnchor

    space = ImageAnchor(image, 0.5)
    with torch.no_grad():
        direct = space.from_flow(sample_euler(space.velocity(lambda x, t: teacher(x, t, cond, ids)), noise,
                                              time_grid(3, 1.0)))
    assert torch.allclose(direct[:, :, 1:], x0[:, :, 1:], atol=1e-6)
    # cached on disk: a new reader (a resumed run) gets the very same tensors without sampling
    again = samples(tmp_path / "cache")
    again.sample = lambda *a: pytest.fail("sampled again")
    for a, b in zip(again(0, step_generator(0, 0)), (x0, noise, cond, ids)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="another cache folder"):
        I2VTeacherSamples(teacher, again.batches, 24, steps=4, shift=1.0, seed=0, cache_dir=tmp_path / "cache",
                          precision="fp32")(0, step_generator(0, 0))

    # the 1-step distillation on them (its batches are those samples, its x_1 their noise)
    cfg = DistillConfig(num_steps=1, steps=2, batch_size=2, buckets=(bucket,), fps=24, head_channels=8,
                        warmup_steps=1, checkpoint_every=2, log_every=1, num_clips=4, cache_latents=True,
                        teacher_data=True, paired_noise=True, teacher_sample_steps=3, teacher_shift=1.0)
    ema, records = distill_i2v(tmp_path / "d", teacher, vae, source, cfg, progress=False,
                               cache_dir=tmp_path / "latents")
    assert len(records) == 2 and all(np.isfinite(r["recon"]) for r in records)
    assert len(list((tmp_path / "d" / "teacher_cache").glob("*.safetensors"))) >= 2
