"""`edgevid distill`: a teacher pipeline -> adversarial step distillation in --run-dir -> a few-step
student pipeline without guidance in --output."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from edgevid.cli.common import (CLIError, shrunk_unet, _add_common_train_flags, _check_training, _device,
                                _export_checkpoint, _given, _parse_buckets, _source, _steps_done, _train_common)


def add_distill_parser(sub) -> None:
    ds = sub.add_parser("distill", help="adversarial step distillation: teacher -> few-step student without guidance")
    ds.add_argument("--teacher", default="teacher",
                    help="teacher pipeline folder, or a shipped model name (default: 'teacher', the 25-step CFG "
                         "model the shipped 4-step default was distilled from)")
    ds.add_argument("--student-steps", type=int, default=4, help="k, the student's sampling steps (default 4)")
    ds.add_argument("--head", choices=["unified", "separate"], default="unified",
                    help="discriminator heads: SnapGen-V's spatial-temporal (unified) or SF-V's separate ones")
    ds.add_argument("--disc-t-mean", type=float, help="m of the discriminator's logit-normal t' (default -1)")
    ds.add_argument("--disc-t-std", type=float, help="s of the discriminator's logit-normal t' (default 1)")
    ds.add_argument("--adv-weight", type=float, help="adversarial loss weight; 0 = reconstruction only (default 1)")
    ds.add_argument("--recon-weight", type=float, help="pseudo-Huber reconstruction weight (default 1)")
    ds.add_argument("--huber-c", type=float, help="c of the pseudo-Huber loss (default 0.00054*sqrt(d))")
    ds.add_argument("--generator-lr", type=float, help="generator learning rate (default 1e-5)")
    ds.add_argument("--discriminator-lr", type=float, help="discriminator-head learning rate (default 1e-4)")
    ds.add_argument("--head-channels", type=int, help="width of each discriminator head (default 64)")
    ds.add_argument("--ema-decay", type=float, help="EMA decay of the student (default 0.95)")
    ds.add_argument("--num-clips", type=int, help="reuse this many clips (0 = fresh clips every step)")
    ds.add_argument("--cache-latents", action="store_true", help="keep latents of the reused clips (memory + run dir)")
    ds.add_argument("--teacher-data", action="store_true",
                    help="train on the teacher's guided samples for the clips' captions (LADD's synthetic data; "
                         "sampled once per clip and bucket, cached in RUN_DIR/teacher_cache; needs --num-clips)")
    ds.add_argument("--sample-teacher-only", nargs="?", const="1/1", metavar="K/N",
                    help="no training: draw the teacher samples the run's steps will read into "
                         "RUN_DIR/teacher_cache and stop; K/N draws only shard K of N, so N processes "
                         "(e.g. one per core) sample in parallel before the run (same flags for all)")
    ds.add_argument("--teacher-guidance", type=float, help="guidance scale of those samples (default 3)")
    ds.add_argument("--teacher-shift", type=float, help="timestep shift of their sampling grid (default 3)")
    ds.add_argument("--teacher-sample-steps", type=int, help="Euler steps per teacher sample (default 25)")
    ds.add_argument("--paired-noise", action="store_true",
                    help="with --teacher-data: noise the teacher samples with the noise they came from "
                         "(the reflow coupling)")
    ds.add_argument("--teacher-attempts", type=int,
                    help="with --teacher-data: draw up to N samples per clip and keep the first whose decoded video "
                         "passes the static-attribute verifier against the training clip's scene (else the best; "
                         "default 1 = no verifier)")
    ds.add_argument("--teacher-filter", action="store_true",
                    help="with --teacher-data: train only on the teacher samples that pass the static-attribute "
                         "verifier (draws of failing clips are redrawn; each sample is scored once, "
                         "RUN_DIR/teacher_cache/verifier_scores.json)")
    ds.add_argument("--teacher-filter-buckets", metavar="BUCKETS",
                    help="with --teacher-filter: filter only these of --buckets, e.g. 1x256x256,17x256x256 "
                         "(default: all)")
    ds.add_argument("--teacher-verify-threshold", type=float,
                    help="share of colour/shape/count/background checks a sample must pass (default 0.75)")
    ds.add_argument("--teacher-targets", action="store_true",
                    help="reconstruction target = the teacher's guided solve from the student's x_t (its "
                         "--teacher-guidance/-shift/-sample-steps) instead of the clean latent")
    ds.add_argument("--student-shift", type=float, help="timestep shift of the student's grid (default 1)")
    ds.add_argument("--init-student", metavar="MODEL",
                    help="start the student from this model's UNet (an earlier student, to continue it on more "
                         "data or steps) instead of the teacher's")
    ds.add_argument("--shrink-to", metavar="PRESET_OR_PLAN",
                    help="shrink the student's start (--init-student's UNet, else the teacher's) to a preset "
                         "(e.g. small-searched) or an `edgevid search` plan key, inheriting its weights")
    ds.add_argument("--export-checkpoint", action="store_true",
                    help="no training: write the student EMA of --run-dir's latest checkpoint to --output")
    _add_common_train_flags(ds, lr_and_bf16=False)
    ds.set_defaults(func=cmd_distill)


def cmd_distill(args) -> None:
    from edgevid.config import DistillConfig
    from edgevid.distill import distill
    from edgevid.estimate import estimate_distill
    from edgevid.pipeline import EdgeVidPipeline, replace_defaults, resolve_model_dir

    try:
        teacher = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.teacher))
    except ValueError as e:
        raise CLIError(f"--teacher: {e}") from None
    extra = {"num_steps": args.student_steps, "head": args.head,
             **_given(args, "disc_t_mean", "disc_t_std", "adv_weight", "recon_weight", "huber_c", "generator_lr",
                      "discriminator_lr", "head_channels", "ema_decay", "num_clips", "teacher_guidance",
                      "teacher_shift", "teacher_sample_steps", "teacher_attempts", "teacher_verify_threshold")}
    if args.student_shift is not None:
        extra["shift"] = args.student_shift
    for flag in ("cache_latents", "teacher_data", "paired_noise", "teacher_targets", "teacher_filter"):
        if getattr(args, flag):
            extra[flag] = True
    if args.teacher_data and not args.num_clips:
        raise CLIError("--teacher-data needs --num-clips N (each clip's teacher sample is drawn once and cached)")
    if args.paired_noise and not args.teacher_data:
        raise CLIError("--paired-noise needs --teacher-data")
    if args.teacher_attempts is not None and args.teacher_attempts > 1 and not args.teacher_data:
        raise CLIError("--teacher-attempts needs --teacher-data")
    if args.teacher_filter and not args.teacher_data:
        raise CLIError("--teacher-filter needs --teacher-data")
    if args.sample_teacher_only and not args.teacher_data:
        raise CLIError("--sample-teacher-only needs --teacher-data")
    shard = _parse_shard(args.sample_teacher_only) if args.sample_teacher_only else None
    if args.teacher_filter_buckets:
        if not args.teacher_filter:
            raise CLIError("--teacher-filter-buckets needs --teacher-filter")
        extra["teacher_filter_buckets"] = _parse_buckets(args.teacher_filter_buckets)
    if args.teacher_verify_threshold is not None and not 0 < args.teacher_verify_threshold <= 1:
        raise CLIError(f"--teacher-verify-threshold must be in (0, 1], got {args.teacher_verify_threshold}")
    if args.student_shift is not None and not args.student_shift > 0:
        raise CLIError(f"--student-shift must be > 0, got {args.student_shift}")
    if args.teacher_shift is not None and not args.teacher_shift > 0:
        raise CLIError(f"--teacher-shift must be > 0, got {args.teacher_shift}")
    cfg = _train_common(args, DistillConfig, extra)
    init_pipe = None
    if args.init_student:
        try:
            init_pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.init_student))
        except ValueError as e:
            raise CLIError(f"--init-student: {e}") from None
    # The student decodes with --init-student's VAE (e.g. the default's compressed decoder) when it
    # shares the teacher's latent space; distillation trains the UNet only.
    out_vae = _student_vae(teacher.vae, init_pipe.vae if init_pipe is not None else None)
    student_pipe = replace_defaults(teacher, num_inference_steps=cfg.num_steps, guidance_scale=1.0, shift=cfg.shift)
    if args.export_checkpoint:
        _export_checkpoint(args, out_vae, student_pipe.text_encoder, student_pipe.defaults)
        return
    device = _device(args)
    source, desc = _source(args, cfg.fps, cfg.seed)
    if shard is not None:
        _sample_teacher_only(args, teacher, cfg, source, device, *shard)
        return
    desc = {**desc, "teacher": str(args.teacher)}
    init = None
    if init_pipe is not None:
        init = getattr(init_pipe.unet, "eager", init_pipe.unet)
        desc["init_student"] = str(args.init_student)
    if args.shrink_to:
        init = shrunk_unet(init if init is not None else getattr(teacher.unet, "eager", teacher.unet), args.shrink_to)
        desc["shrink_to"] = args.shrink_to
    _check_training("distill", device, args, cfg.steps,
                    lambda *a: estimate_distill(teacher.unet, teacher.vae, cfg, *a, student=init,
                                                cache_dir=Path(args.run_dir) / "teacher_cache"))
    t0 = time.perf_counter()
    student, _ = distill(args.run_dir, teacher.unet, teacher.vae, teacher.text_encoder, source, cfg, student=init,
                         data_description=desc, resume=args.resume, progress=not args.no_progress, device=device)
    print(f"distilled a {cfg.num_steps}-step student in {time.perf_counter() - t0:.0f} s")
    if args.output:
        EdgeVidPipeline(out_vae.cpu(), student.cpu(), teacher.text_encoder.cpu(),
                        student_pipe.defaults).save_pretrained(args.output)
        print(f"saved pipeline to {args.output} ({cfg.num_steps} steps, no guidance)")


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise CLIError(f"--sample-teacher-only takes K/N (shard K of N, e.g. 1/2), got {text!r}") from None
    if not 1 <= k <= n:
        raise CLIError(f"--sample-teacher-only K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def _sample_teacher_only(args, teacher, cfg, source, device, k: int, n: int) -> None:
    """--sample-teacher-only K/N: every K-th of the samples the run's steps will read (they are
    seeded), written to RUN_DIR/teacher_cache where the run then finds them."""
    from edgevid.distill.synthetic import samples_drawn
    from edgevid.distill.train import teacher_samples
    from edgevid.text import PromptCache

    start = _steps_done(args)
    keys = samples_drawn(cfg.seed, cfg.buckets, cfg.num_clips, cfg.batch_size, range(start, cfg.steps))[k - 1::n]
    samples = teacher_samples(teacher.unet, teacher.vae, PromptCache(teacher.text_encoder), source, cfg,
                              args.run_dir, device)
    t0 = time.perf_counter()
    drawn = samples.sample_all(keys, progress=not args.no_progress)
    print(f"shard {k}/{n}: sampled {drawn} teacher samples in {time.perf_counter() - t0:.0f} s, "
          f"{len(keys) - drawn} were cached ({len(keys)} of this shard) -> {samples.cache_dir}")


def _student_vae(teacher_vae, init_vae):
    """The VAE a distilled student ships with: --init-student's when it encodes to the teacher's
    latents (its decoder, often a compressed one, then fits the student), else the teacher's."""
    from edgevid.compress.decoder import same_latent_space

    if init_vae is None:
        return teacher_vae
    if not same_latent_space(init_vae, teacher_vae):
        print("note: --init-student's VAE encodes to other latents than the teacher's; the student ships "
              "with the teacher's VAE", file=sys.stderr)
        return teacher_vae
    return init_vae
