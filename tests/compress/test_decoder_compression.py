"""Decoder compression (SnapGen-V App. B) on the tiny VAE: shapes, chunking, the loss, a short run."""
import json

import pytest
import torch

from conftest import network_reorder_tol, randomize_
from edgevid.compress.decoder import (compress_decoder, compressed_vae, decoder_distillation_loss, decoder_parameters,
                                      object_pixel_weight)
from edgevid.config import VAE_PRESETS, DecoderCompressConfig
from edgevid.models.vae import VideoVAE


def _teacher() -> VideoVAE:
    return randomize_(VideoVAE(VAE_PRESETS["tiny"])).eval()


def test_compressed_vae_keeps_the_encoder_and_the_output_geometry():
    teacher = _teacher()
    student = compressed_vae(teacher, "tiny-fast").eval()
    assert decoder_parameters(student) < decoder_parameters(teacher) / 2
    for (name, a), b in zip(teacher.state_dict().items(), student.state_dict().values()):
        if name.startswith(("spatial_encoder.", "temporal_encoder.")):
            assert torch.equal(a, b)
    video = torch.rand(1, 3, 17, 32, 64) * 2 - 1
    with torch.no_grad():
        z = teacher.encode(video).mode()
        assert torch.equal(z, student.encode(video).mode())
        out = student.decode(z)
        assert out.shape == teacher.decode(z).shape == video.shape
        # chunked decoding (causal caches, separable convs included) equals decoding whole
        for n in (1, 2):
            # other conv shapes per chunk, so other sums: the decoder's reorder tolerance
            torch.testing.assert_close(student.decode(z, chunk_frames=n), student.decode(z, chunk_frames=0),
                                       **network_reorder_tol(student))
    with pytest.raises(ValueError, match="unknown decoder preset"):
        compressed_vae(teacher, "nope")


def test_decoder_distillation_loss_by_hand():
    cfg = DecoderCompressConfig(distill_weight=1.0, pixel_weight=0.5, temporal_weight=0.0)
    video = torch.zeros(1, 3, 2, 4, 4)
    teacher_out = torch.zeros_like(video)
    student_out = torch.full_like(video, 0.5)
    loss, logs = decoder_distillation_loss(student_out, teacher_out, video, cfg)
    # distill = |0.5| + 0.5^2 = 0.75; pixel the same, weighted 0.5
    assert loss.item() == pytest.approx(0.75 + 0.5 * 0.75)
    assert logs["temporal"] == 0.0  # a constant offset does not flicker
    loss, _ = decoder_distillation_loss(teacher_out, teacher_out, video, cfg)
    assert loss.item() == 0.0


def test_the_full_preset_copies_the_whole_vae():
    teacher = _teacher()
    student = compressed_vae(teacher, "full")
    assert student.config == teacher.config
    for a, b in zip(teacher.state_dict().values(), student.state_dict().values()):
        assert torch.equal(a, b)


def test_object_pixel_weight_covers_the_objects_and_their_margin():
    from edgevid.data import ProceduralClips

    source = ProceduralClips(split="train", seed=0, fps=8)
    cover = torch.from_numpy(source.object_mask(3, 5, 64, 64))  # (T, H, W)
    w0 = object_pixel_weight(source, [3], (5, 64, 64), object_weight=4.0, margin=0)  # (1, 1, T, H, W)
    assert w0.shape == (1, 1, 5, 64, 64)
    torch.testing.assert_close(w0[0, 0], 1 + 4 * cover)
    w2 = object_pixel_weight(source, [3], (5, 64, 64), object_weight=4.0, margin=2)
    assert (w2 >= w0).all() and (w2 == 5).sum() > (w0 == 5).sum()  # edges widened...
    assert (w2 == 1).sum() > 0  # ...but the background stays at weight 1
    with pytest.raises(ValueError, match="procedural data"):
        object_pixel_weight(object(), [0], (1, 8, 8), 1.0, 0)


def test_weighted_pixel_term_is_a_weighted_mean():
    cfg = DecoderCompressConfig(distill_weight=0.0, pixel_weight=1.0, temporal_weight=0.0)
    video = torch.zeros(1, 3, 1, 2, 2)
    out = torch.zeros_like(video)
    out[..., 0, 0] = 1.0  # error 1 + 1^2 = 2 at one pixel of four
    plain, _ = decoder_distillation_loss(out, video, video, cfg)
    assert plain.item() == pytest.approx(2 / 4)
    uniform, _ = decoder_distillation_loss(out, video, video, cfg, torch.full((1, 1, 1, 2, 2), 3.0))
    assert uniform.item() == pytest.approx(plain.item())  # a constant weight changes nothing
    weight = torch.ones(1, 1, 1, 2, 2)
    weight[..., 0, 0] = 9.0  # the wrong pixel counts 9 times: 2 * 9 / (9 + 3)
    weighted, _ = decoder_distillation_loss(out, video, video, cfg, weight)
    assert weighted.item() == pytest.approx(18 / 12)


def test_a_short_compression_run_moves_the_student_towards_the_teacher(tmp_path):
    from edgevid.data import ProceduralClips

    teacher = _teacher()
    cfg = DecoderCompressConfig(steps=30, batch_size=2, lr=3e-3, buckets=((5, 32, 32),), crop_size=0, fps=8,
                                warmup_steps=2, checkpoint_every=15, log_every=5, ema_decay=0.5, latent_noise=0.0)
    source = ProceduralClips(split="train", seed=0, fps=8)
    student = compress_decoder(tmp_path / "run", teacher, "tiny-fast", source, cfg, progress=False)
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor([r["loss"] for r in logs])))
    assert logs[-1]["psnr_vs_teacher"] > logs[0]["psnr_vs_teacher"] + 1.0
    assert student.config.decoder_separable == (False, False, True)
    # the object-weighted variant fine-tunes the full decoder on cropped clips and their weights
    weighted = DecoderCompressConfig(**{**cfg.__dict__, "steps": 4, "crop_size": 16, "object_weight": 8.0})
    tuned = compress_decoder(tmp_path / "weighted", teacher, "full", source, weighted, progress=False)
    assert tuned.config == teacher.config
    pairs = list(zip(tuned.state_dict().items(), teacher.state_dict().values()))
    assert all(torch.equal(a, b) for (n, a), b in pairs if n.startswith(("spatial_encoder.", "temporal_encoder.")))
    assert any(not torch.equal(a, b) for (n, a), b in pairs if n.startswith("spatial_decoder."))
    # per-clip noise levels (uniform in [0, latent_noise]) train and differ from one fixed level
    runs = {}
    for mode in ("fixed", "uniform"):
        noisy = DecoderCompressConfig(**{**cfg.__dict__, "steps": 2, "latent_noise": 0.4, "latent_noise_mode": mode})
        runs[mode] = compress_decoder(tmp_path / mode, teacher, "full", source, noisy, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(runs["fixed"].state_dict().values(),
                                                     runs["uniform"].state_dict().values()))
    with pytest.raises(ValueError, match="latent_noise_mode"):
        DecoderCompressConfig(latent_noise_mode="gamma")
    with pytest.raises(ValueError, match="procedural data"):  # no spec, no coverage: refused before any output
        compress_decoder(tmp_path / "folder", teacher, "full", object(), weighted, progress=False)
    assert not (tmp_path / "folder").exists()
    # the run resumes from its last checkpoint to the same result
    again = compress_decoder(tmp_path / "run", teacher, "tiny-fast", source, cfg, progress=False, resume=True)
    for a, b in zip(student.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_cli_compress_decoder_writes_a_working_pipeline(tiny_model_dir, tmp_path, capsys):
    from edgevid.cli import main
    from edgevid.pipeline import EdgeVidPipeline

    out = tmp_path / "fast"
    argv = ["compress", "decoder", "--model", str(tiny_model_dir), "--preset", "tiny-fast", "--steps", "4",
            "--batch-size", "1", "--buckets", "5x32x32", "--crop-size", "0", "--run-dir", str(tmp_path / "run"),
            "--no-progress", "--threads", "1"]
    assert main([*argv, "--output", str(out)]) == 0
    assert "trained the decoder" in capsys.readouterr().out
    pipe = EdgeVidPipeline.from_pretrained(out)
    assert pipe.vae.config.temporal_decoder_separable
    frames = pipe("a red circle", generator=torch.Generator().manual_seed(0)).frames
    assert frames.shape == (1, 5, 32, 32, 3)
    assert main([*argv[:5], "nope", *argv[6:-3], "--run-dir", str(tmp_path / "r2")]) == 1
    assert "unknown decoder preset" in capsys.readouterr().err and not (tmp_path / "r2").exists()
