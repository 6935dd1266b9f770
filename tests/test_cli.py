import json
import subprocess
import sys

import pytest

from edgevid.cli import main
from edgevid.io.video import probe_video

SMALL = ["--num-frames", "5", "--height", "32", "--width", "32", "--steps", "2"]


def test_generate_writes_mp4_and_gif(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert main(["generate", "a red circle moving left", "-o", str(out), "--model", str(tiny_model_dir), "--fps", "10",
                 *SMALL]) == 0
    info = probe_video(out)
    assert info["frames"] == 5 and info["height"] == 32 and info["width"] == 32 and round(info["fps"]) == 10
    assert "wrote" in capsys.readouterr().out
    gif = tmp_path / "out.gif"
    assert main(["generate", "a blue square", "-o", str(gif), "--model", str(tiny_model_dir), *SMALL, "--quiet"]) == 0
    assert gif.stat().st_size > 0


def test_generate_stream_writes_the_same_video(tiny_model_dir, tmp_path, capsys):
    from edgevid.io.video import read_video

    argv = ["a red circle moving left", "--model", str(tiny_model_dir), "--num-frames", "17", "--height", "32",
            "--width", "32", "--steps", "2", "--seed", "4"]
    assert main(["generate", argv[0], "-o", str(tmp_path / "a.mp4"), *argv[1:]]) == 0
    assert main(["generate", argv[0], "-o", str(tmp_path / "b.mp4"), *argv[1:], "--stream", "--first-window", "0"]) == 0
    assert "first frame after" in capsys.readouterr().out
    a, _ = read_video(tmp_path / "a.mp4")
    b, _ = read_video(tmp_path / "b.mp4")
    assert a.shape == b.shape == (17, 32, 32, 3) and (a == b).all()  # same frames, same encoder settings
    assert main(["generate", "a red circle", "-o", str(tmp_path / "c.gif"), "--stream", "--model",
                 str(tiny_model_dir)]) == 1
    assert "--stream writes MP4" in capsys.readouterr().err and not (tmp_path / "c.gif").exists()
    # --stream's default short first window (1 latent) is a different sampling; the same flag
    # without --stream reproduces it.
    assert main(["generate", argv[0], "-o", str(tmp_path / "d.mp4"), *argv[1:], "--stream"]) == 0
    assert main(["generate", argv[0], "-o", str(tmp_path / "e.mp4"), *argv[1:], "--first-window", "1"]) == 0
    d, _ = read_video(tmp_path / "d.mp4")
    e, _ = read_video(tmp_path / "e.mp4")
    assert d.shape == (17, 32, 32, 3) and (d == e).all() and not (d == a).all()


def test_generate_long_video_in_chunks(tiny_model_dir, tmp_path, capsys):
    from edgevid.io.video import read_video

    argv = ["a red circle moving left", "--model", str(tiny_model_dir), "--num-frames", "33", "--height", "32",
            "--width", "32", "--steps", "2", "--window", "4", "--overlap", "2"]
    assert main(["generate", argv[0], "-o", str(tmp_path / "a.mp4"), *argv[1:]]) == 0
    assert main(["generate", argv[0], "-o", str(tmp_path / "b.mp4"), *argv[1:], "--stream", "--first-window", "0"]) == 0
    a, _ = read_video(tmp_path / "a.mp4")
    b, _ = read_video(tmp_path / "b.mp4")
    assert a.shape == (33, 32, 32, 3) and (a == b).all()
    assert main(["generate", argv[0], "-o", str(tmp_path / "c.mp4"), *argv[1:-1], "9"]) == 1
    assert "overlap" in capsys.readouterr().err and not (tmp_path / "c.mp4").exists()


@pytest.mark.parametrize("args, message", [
    (["", ], "prompt"),
    (["   "], "prompt"),
    (["%%%"], "prompt"),
    (["a red circle", "--height", "40"], "multiples"),
    (["a red circle", "--width", "33"], "multiples"),
    (["a red circle", "--num-frames", "6"], "1 \\+ 4"),
    (["a red circle", "--num-frames", "0"], "num-frames"),
    (["a red circle", "--steps", "0"], "steps"),
    (["a red circle", "--guidance", "-1"], "guidance"),
])
def test_generate_bad_input_one_line_error_no_file(tiny_model_dir, tmp_path, capsys, args, message):
    out = tmp_path / "out.mp4"
    # Put the SMALL sizes first so that the case's own flag wins (argparse keeps the last).
    argv = ["generate", args[0], "-o", str(out), "--model", str(tiny_model_dir), *SMALL, *args[1:]]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgevid: error:") and "\n" not in err and __import__("re").search(message, err)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_generate_bad_paths_and_weights(tiny_model_dir, tmp_path, capsys):
    cases = [
        (["-o", str(tmp_path / "x.avi"), "--model", str(tiny_model_dir)], ".mp4 or .gif"),
        (["-o", str(tmp_path / "missing" / "x.mp4"), "--model", str(tiny_model_dir)], "does not exist"),
        (["-o", str(tmp_path), "--model", str(tiny_model_dir)], ".mp4 or .gif"),
        (["-o", "/proc/edgevid-test.mp4", "--model", str(tiny_model_dir)], ""),  # unwritable even for root
        (["-o", str(tmp_path / "x.mp4"), "--model", str(tmp_path / "no-model")], "does not exist"),
    ]
    for extra, message in cases:
        assert main(["generate", "a red circle", *extra, *SMALL]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("edgevid: error:") and "\n" not in err and message in err
    assert list(tmp_path.iterdir()) == []


def test_help_is_fast_and_has_examples():
    proc = subprocess.run([sys.executable, "-m", "edgevid.cli", "generate", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "examples:" in proc.stdout and "--num-frames" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "edgevid.cli", "generate", "x"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "--output" in proc.stderr  # argparse: missing required flag


def test_dataset_preview(tmp_path, capsys):
    out = tmp_path / "grid.mp4"
    assert main(["dataset", "preview", "-o", str(out), "--num", "2", "--frames", "5", "--size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "[0]" in printed and "[1]" in printed
    assert probe_video(out)["frames"] == 5


def test_train_vae_then_t2v_then_generate_then_eval(tmp_path, capsys):
    """The documented workflow end to end on tiny configs: train vae -> train t2v -> generate -> eval."""
    common = ["--steps", "2", "--batch-size", "1", "--buckets", "5x32x32", "--no-progress", "--threads", "1"]
    assert main(["train", "vae", "--preset", "tiny", "--run-dir", str(tmp_path / "rv"), "--output",
                 str(tmp_path / "vae"), *common]) == 0
    assert main(["train", "t2v", "--vae", str(tmp_path / "vae"), "--preset", "tiny", "--text-encoder", "tiny",
                 "--run-dir", str(tmp_path / "rt"), "--output", str(tmp_path / "model"), "--sample-frames", "5",
                 "--sample-size", "32x32", "--sample-steps", "2", "--sample-fps", "8", *common]) == 0
    out = tmp_path / "x.mp4"
    assert main(["generate", "a red circle", "-o", str(out), "--model", str(tmp_path / "model")]) == 0
    info = probe_video(out)
    assert (info["frames"], info["height"], info["width"], round(info["fps"])) == (5, 32, 32, 8)
    # A run's latest checkpoint can be packaged without training (stop early, ship the EMA).
    assert main(["train", "t2v", "--vae", str(tmp_path / "vae"), "--preset", "tiny", "--text-encoder", "tiny",
                 "--run-dir", str(tmp_path / "rt"), "--output", str(tmp_path / "early"), "--export-checkpoint",
                 "--sample-frames", "5", "--sample-size", "32x32"]) == 0
    assert (tmp_path / "early" / "unet" / "model.safetensors").is_file()
    # ... and a finished model can be trained further from its weights with a new schedule.
    assert main(["train", "t2v", "--vae", str(tmp_path / "vae"), "--text-encoder", "tiny", "--init-from",
                 str(tmp_path / "model"), "--run-dir", str(tmp_path / "rt3"), "--output", str(tmp_path / "more"),
                 "--sample-frames", "5", "--sample-size", "32x32", "--channel-weighting", "decoder", *common]) == 0
    assert (tmp_path / "more" / "unet" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "rt3" / "config.json").read_text())["train"]["channel_weighting"] == "decoder"
    assert (tmp_path / "rt3" / "channel_weights.json").is_file()
    # ... or shrunk first to a plan of the architecture search (`edgevid search run --spatial`)
    shrink = ["train", "t2v", "--vae", str(tmp_path / "vae"), "--text-encoder", "tiny", "--init-from",
              str(tmp_path / "model"), "--sample-frames", "5", "--sample-size", "32x32", *common]
    assert main([*shrink, "--shrink-to", "conv1d1-self_attn1d1|none+sa010-h8.32", "--run-dir", str(tmp_path / "rt4"),
                 "--output", str(tmp_path / "shrunk")]) == 0
    shrunk = json.loads((tmp_path / "shrunk" / "unet" / "config.json").read_text())
    assert shrunk["res_hidden_channels"] == [8, 32] and shrunk["mid_attention"] is False
    assert main([*shrink, "--shrink-to", "small-searched", "--run-dir", str(tmp_path / "rt5")]) == 1
    assert "--shrink-to small-searched" in capsys.readouterr().err and not (tmp_path / "rt5").exists()
    bench = tmp_path / "bench.json"
    assert main(["eval", "--model", str(tmp_path / "model"), "--limit", "1", "--output", str(bench),
                 "--no-progress", "--threads", "1"]) == 0
    assert 0.0 <= json.loads(bench.read_text())["prompt_adherence"] <= 1.0 and bench.with_suffix(".png").is_file()
    # Bad defaults are refused before any training happens.
    assert main(["train", "t2v", "--vae", str(tmp_path / "vae"), "--preset", "tiny", "--text-encoder", "tiny",
                 "--run-dir", str(tmp_path / "rt2"), "--output", str(tmp_path / "m2"), "--sample-frames", "6",
                 *common]) == 1
    assert "1 + 4" in capsys.readouterr().err and not (tmp_path / "rt2").exists()


def test_eval_writes_json_and_report(tiny_model_dir, tmp_path, capsys):
    import json

    out = tmp_path / "bench.json"
    assert main(["eval", "--model", str(tiny_model_dir), "--limit", "2", "--output", str(out), "--no-progress",
                 "--num-frames", "9", "--height", "32", "--width", "32", "--steps", "1", "--threads", "1"]) == 0
    result = json.loads(out.read_text())
    assert 0.0 <= result["prompt_adherence"] <= 1.0 and len(result["per_video"]) == 2
    assert result["settings"]["num_frames"] == 9 and "object_shape_correct" in result["summary"]
    gt = result["ground_truth"]  # the world's own renders of the same specs, same size and fps
    assert gt["prompt_adherence"] > result["prompt_adherence"] and "temporal_flickering" in gt
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert "prompt adherence" in capsys.readouterr().out
    seen = tmp_path / "seen.json"  # the diagnostic split: the training stream's own scenes
    assert main(["eval", "--model", str(tiny_model_dir), "--limit", "1", "--output", str(seen), "--no-progress",
                 "--split", "train", "--num-frames", "5", "--height", "32", "--width", "32", "--steps", "1"]) == 0
    from edgevid.eval.shapesbench import benchmark_specs

    result = json.loads(seen.read_text())
    assert result["settings"]["split"] == "train"
    assert result["per_video"][0]["caption"] == benchmark_specs(1, split="train")[0][1]
    assert "training scenes" in capsys.readouterr().out
    for bad in (["--limit", "0"], ["--report", str(tmp_path / "r.jpg")]):
        assert main(["eval", "--model", str(tiny_model_dir), "--output", str(tmp_path / "x.json"), *bad]) == 1
    assert main(["eval", "--output", str(tmp_path / "x.txt")]) == 1
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "x.txt").exists()


def test_distill_then_generate_with_the_student(tiny_model_dir, tmp_path, capsys):
    """edgevid distill: tiny teacher -> 2-step student whose defaults are 2 steps without guidance."""
    common = ["--teacher", str(tiny_model_dir), "--run-dir", str(tmp_path / "rd"), "--student-steps", "2",
              "--head-channels", "8", "--buckets", "1x32x32,5x32x32", "--batch-size", "1", "--no-progress",
              "--threads", "1"]
    assert main(["distill", *common, "--steps", "2", "--output", str(tmp_path / "student")]) == 0
    defaults = json.loads((tmp_path / "student" / "model_index.json").read_text())["defaults"]
    assert (defaults["num_inference_steps"], defaults["guidance_scale"]) == (2, 1.0)
    out = tmp_path / "s.mp4"
    assert main(["generate", "a red circle", "-o", str(out), "--model", str(tmp_path / "student")]) == 0
    assert probe_video(out)["frames"] == 5
    assert main(["distill", *common, "--steps", "2", "--export-checkpoint", "--output", str(tmp_path / "early")]) == 0
    assert (tmp_path / "early" / "unet" / "model.safetensors").is_file()
    # Continue the student (not the teacher) on more steps: the generator starts from its weights.
    more = [*common[:2], "--run-dir", str(tmp_path / "rd2"), *common[4:]]
    assert main(["distill", *more, "--steps", "1", "--init-student", str(tmp_path / "student"),
                 "--generator-lr", "0", "--discriminator-lr", "0", "--ema-decay", "0", "--output", str(tmp_path / "s2")]) == 0
    run = json.loads((tmp_path / "rd2" / "config.json").read_text())
    assert run["data"]["init_student"] == str(tmp_path / "student") and "teacher_unet" in run
    import torch
    from safetensors.torch import load_file

    st, s2, te = (load_file(d / "unet" / "model.safetensors")
                  for d in (tmp_path / "student", tmp_path / "s2", tiny_model_dir))
    assert all(torch.equal(st[k], s2[k]) for k in st)  # lr 0: the student's weights ...
    assert not all(torch.equal(st[k], te[k]) for k in st)  # ... which are not the teacher's
    # ... or shrink it first to a plan of the architecture search, its weights inherited.
    plan = "conv1d1-self_attn1d1|none+sa010-h8.32"
    shrink = [*common[:2], "--run-dir", str(tmp_path / "rd3"), *common[4:], "--steps", "1"]
    assert main(["distill", *shrink, "--init-student", str(tmp_path / "student"), "--shrink-to", plan,
                 "--output", str(tmp_path / "s3")]) == 0
    shrunk = json.loads((tmp_path / "s3" / "unet" / "config.json").read_text())
    assert shrunk["res_hidden_channels"] == [8, 32] and shrunk["mid_attention"] is False
    assert json.loads((tmp_path / "rd3" / "config.json").read_text())["data"]["shrink_to"] == plan
    capsys.readouterr()
    assert main(["distill", *shrink[:-2], "--run-dir", str(tmp_path / "rd4"), "--shrink-to", "small-searched"]) == 1
    assert "--shrink-to small-searched" in capsys.readouterr().err and not (tmp_path / "rd4").exists()
    assert main(["distill", *more, "--init-student", str(tmp_path / "nope")]) == 1
    assert "--init-student" in capsys.readouterr().err
    # One-line errors: a missing teacher, bad ablation settings.
    assert main(["distill", "--teacher", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "r2")]) == 1
    assert "--teacher" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(tiny_model_dir), "--adv-weight", "0", "--recon-weight", "0",
                 "--run-dir", str(tmp_path / "r3")]) == 1
    assert "weight" in capsys.readouterr().err


def test_distilled_student_keeps_its_init_students_decoder(tiny_model_dir, tmp_path, capsys):
    """--init-student with a compressed decoder (the shipped default's case): distillation trains the
    UNet only, so the output decodes with that decoder, not the teacher's full one; a VAE of another
    latent space is not taken (the teacher's, with a note)."""
    import dataclasses

    import torch

    from edgevid.compress.decoder import compressed_vae, same_latent_space
    from edgevid.models.vae import VideoVAE
    from edgevid.pipeline import EdgeVidPipeline

    teacher = EdgeVidPipeline.from_pretrained(tiny_model_dir)
    small = compressed_vae(teacher.vae, "tiny-fast")
    EdgeVidPipeline(small, teacher.unet, teacher.text_encoder, teacher.defaults).save_pretrained(tmp_path / "init")
    common = ["distill", "--teacher", str(tiny_model_dir), "--init-student", str(tmp_path / "init"), "--steps", "1",
              "--student-steps", "2", "--head-channels", "8", "--buckets", "5x32x32", "--batch-size", "1",
              "--no-progress", "--threads", "1"]
    assert main([*common, "--run-dir", str(tmp_path / "rd"), "--output", str(tmp_path / "out")]) == 0
    assert main([*common, "--run-dir", str(tmp_path / "rd"), "--export-checkpoint", "--output", str(tmp_path / "ck")]) == 0
    for out in ("out", "ck"):
        vae = EdgeVidPipeline.from_pretrained(tmp_path / out).vae
        assert vae.config == small.config != teacher.vae.config
        assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), small.state_dict().values()))
    # another latent space: a fresh VAE of the same layout
    other = VideoVAE(dataclasses.replace(teacher.vae.config))
    assert same_latent_space(small, teacher.vae) and not same_latent_space(other, teacher.vae)
    EdgeVidPipeline(other, teacher.unet, teacher.text_encoder, teacher.defaults).save_pretrained(tmp_path / "init2")
    capsys.readouterr()
    common[common.index(str(tmp_path / "init"))] = str(tmp_path / "init2")
    assert main([*common, "--run-dir", str(tmp_path / "rd2"), "--output", str(tmp_path / "out2")]) == 0
    assert "other latents" in capsys.readouterr().err
    assert EdgeVidPipeline.from_pretrained(tmp_path / "out2").vae.config == teacher.vae.config


def test_distill_on_teacher_samples(tiny_model_dir, tmp_path, capsys):
    """--teacher-data: the student learns from the teacher's guided samples; flags that need it are refused."""
    common = ["--teacher", str(tiny_model_dir), "--student-steps", "2", "--head-channels", "8", "--buckets",
              "5x32x32", "--batch-size", "1", "--no-progress", "--threads", "1"]
    assert main(["distill", *common, "--run-dir", str(tmp_path / "rd"), "--steps", "1", "--num-clips", "2",
                 "--teacher-data", "--teacher-sample-steps", "2", "--teacher-guidance", "2", "--paired-noise",
                 "--student-shift", "2", "--output", str(tmp_path / "student")]) == 0
    assert list((tmp_path / "rd" / "teacher_cache").glob("sample*.safetensors"))
    defaults = json.loads((tmp_path / "student" / "model_index.json").read_text())["defaults"]
    assert (defaults["num_inference_steps"], defaults["shift"]) == (2, 2.0)
    config = json.loads((tmp_path / "rd" / "config.json").read_text())["distill"]
    assert (config["teacher_data"], config["teacher_guidance"], config["paired_noise"]) == (True, 2.0, True)
    assert main(["distill", *common, "--run-dir", str(tmp_path / "rt"), "--steps", "1", "--teacher-targets",
                 "--teacher-sample-steps", "2"]) == 0
    assert json.loads((tmp_path / "rt" / "config.json").read_text())["distill"]["teacher_targets"] is True
    capsys.readouterr()
    for bad, words in ((["--teacher-data"], "--num-clips"), (["--paired-noise"], "--teacher-data"),
                       (["--student-shift", "0"], "--student-shift"),
                       (["--teacher-data", "--num-clips", "2", "--teacher-shift", "-1"], "--teacher-shift"),
                       (["--teacher-attempts", "3"], "--teacher-data"),
                       (["--teacher-verify-threshold", "1.5"], "--teacher-verify-threshold")):
        assert main(["distill", *common, "--run-dir", str(tmp_path / "bad"), *bad]) == 1
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err


def test_teacher_samples_drawn_in_shards_are_what_the_run_reads(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """--sample-teacher-only K/N: N shards together write every sample the run's steps read (the
    run then samples nothing), no shard repeats another's, and bad shards are refused."""
    from edgevid.distill.synthetic import TeacherSamples

    flags = ["distill", "--teacher", str(tiny_model_dir), "--student-steps", "2", "--head-channels", "8",
             "--buckets", "5x32x32,1x32x32", "--batch-size", "2", "--no-progress", "--threads", "1", "--steps", "4",
             "--num-clips", "5", "--teacher-data", "--teacher-sample-steps", "2", "--paired-noise",
             "--run-dir", str(tmp_path / "rd")]
    cache = tmp_path / "rd" / "teacher_cache"
    seen = []
    for shard in ("1/2", "2/2"):
        assert main([*flags, "--sample-teacher-only", shard]) == 0
        seen.append(sorted(p.name for p in cache.glob("sample*.safetensors")))
        assert "sampled" in capsys.readouterr().out
    assert 0 < len(seen[0]) < len(seen[1]) and not (tmp_path / "rd" / "checkpoints").exists()
    assert main([*flags, "--sample-teacher-only", "1/2"]) == 0
    assert "sampled 0 teacher samples" in capsys.readouterr().out  # all cached: nothing drawn twice

    def no_sampling(*a, **k):
        raise AssertionError("the run sampled a teacher sample the shards should have drawn")

    monkeypatch.setattr(TeacherSamples, "sample", no_sampling)
    assert main(flags) == 0
    assert sorted(p.name for p in cache.glob("sample*.safetensors")) == seen[1]
    for bad, words in ((["--sample-teacher-only", "3/2"], "1 <= K <= N"), (["--sample-teacher-only", "x"], "K/N")):
        assert main([*flags, *bad]) == 1
        assert words in capsys.readouterr().err
    no_data = [f for f in flags if f not in ("--teacher-data", "--paired-noise")]
    assert main([*no_data, "--sample-teacher-only"]) == 1
    assert "needs --teacher-data" in capsys.readouterr().err


def test_generate_rejects_an_unknown_encoder_preset(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "x.mp4"
    assert main(["generate", "a red circle", "-o", str(out), "--model", str(tiny_model_dir), "--encoder-preset",
                 "warp-speed"]) == 1
    assert "--encoder-preset" in capsys.readouterr().err and not out.exists()


def test_generate_prints_a_long_estimate_and_a_progress_bar(tiny_model_dir, tmp_path, capsys, monkeypatch):
    import edgevid.estimate

    monkeypatch.setenv("EDGEVID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(edgevid.estimate, "machine_rates", lambda pipe: {"unet": 1e4, "vae": 1e4})  # a slow machine
    for stream in ([], ["--stream"]):
        out = tmp_path / f"o{len(stream)}.mp4"
        assert main(["generate", "a red circle", "-o", str(out), "--model", str(tiny_model_dir), *SMALL, *stream]) == 0
        err = capsys.readouterr().err
        assert "edgevid: this will take about" in err and "generate: 100%" in err and out.is_file()
    assert main(["generate", "a red circle", "-o", str(tmp_path / "q.mp4"), "--model", str(tiny_model_dir), *SMALL,
                 "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # --quiet: nothing


def test_long_commands_print_their_estimate_and_refuse_what_does_not_fit(tiny_model_dir, tmp_path, capsys,
                                                                          monkeypatch):
    """eval, train vae, train t2v, distill, compress decoder: the estimate is printed when the work
    is longer than 30 s (here: on a machine made slow), and a run whose estimated peak exceeds the
    available memory is refused in one line before anything is written."""
    import edgevid.estimate

    monkeypatch.setenv("EDGEVID_CACHE", str(tmp_path / "cache"))
    small = ["--steps", "1", "--batch-size", "1", "--buckets", "1x32x32", "--no-progress", "--threads", "1"]
    commands = {  # the command's name in its estimate line -> argv without the run folder / output
        "train vae": ["train", "vae", "--preset", "tiny", *small],
        "train t2v": ["train", "t2v", "--vae", str(tiny_model_dir / "vae"), "--preset", "tiny", "--text-encoder",
                      "tiny", *small],
        "distill": ["distill", "--teacher", str(tiny_model_dir), "--student-steps", "2", "--head-channels", "8",
                    *small],
        "compress decoder": ["compress", "decoder", "--model", str(tiny_model_dir), "--preset", "tiny-fast",
                             "--crop-size", "0", *small],
        "eval of 1 video": ["eval", "--model", str(tiny_model_dir), "--limit", "1", "--num-frames", "5", "--height",
                             "32", "--width", "32", "--steps", "1", "--no-progress", "--threads", "1"],
    }

    def where(argv, mode):
        name = f"{mode}-{argv[0]}-{argv[1]}"
        return ["--output", str(tmp_path / f"{name}.json")] if argv[0] == "eval" else ["--run-dir", str(tmp_path / name)]

    def machine(flops_per_s: float, memory: int | None = None):
        monkeypatch.setattr(edgevid.estimate, "call_rate", lambda *a: flops_per_s)
        monkeypatch.setattr(edgevid.estimate, "machine_rates", lambda pipe: {"unet": flops_per_s, "vae": flops_per_s})
        monkeypatch.setattr(edgevid.estimate, "available_memory", lambda: memory)

    machine(1e15)  # a fast machine: nothing printed
    assert main([*commands["train vae"], *where(commands["train vae"], "fast")]) == 0
    assert "will take" not in capsys.readouterr().err
    machine(1e3)
    for what, argv in commands.items():
        assert main([*argv, *where(argv, "slow")]) == 0, what
        err = capsys.readouterr().err
        assert f"edgevid: {what} will take ~" in err and ("steps x ~" in err or "1 videos x ~" in err), err
    machine(1e3, memory=10 * 2**20)  # 10 MB: the clips' own check passes, the estimate does not
    for what, argv in commands.items():
        assert main([*argv, *where(argv, "tight")]) == 1, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"edgevid: error: {what} needs ~" in err and "of memory (estimated)" in err, err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("tight")]
