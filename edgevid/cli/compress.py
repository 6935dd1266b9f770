"""`edgevid compress decoder | mobilevd`: a trained pipeline -> a faster one: a smaller VAE decoder
distilled from the full one, or MobileVD's recipe on an image-to-video denoiser."""
from __future__ import annotations

import time

from edgevid.cli.common import (CLIError, _add_common_train_flags, _check_training, _device, _given, _source,
                                _train_common)


def add_compress_parser(sub) -> None:
    cp = sub.add_parser("compress", help="make a model faster: distil a compressed VAE decoder (SnapGen-V App. B)")
    csub = cp.add_subparsers(dest="what", required=True)
    cd = csub.add_parser("decoder", help="freeze the VAE encoder, distil a smaller decoder from the full one, "
                                         "write the pipeline with it")
    cd.add_argument("--model", default="default",
                    help="pipeline whose VAE decoder is compressed: a shipped name or a folder (default: default)")
    cd.add_argument("--preset", default="fast", help="decoder preset from config.DECODER_PRESETS (default: fast; "
                                                     "full = fine-tune the model's own decoder)")
    cd.add_argument("--distill-weight", type=float, help="weight of L1+MSE to the full decoder's output (default 1)")
    cd.add_argument("--pixel-weight", type=float, help="weight of L1+MSE to the source clip (default 0.5)")
    cd.add_argument("--temporal-weight", type=float, help="weight of the frame-difference term (default 0.5)")
    cd.add_argument("--latent-noise", type=float, help="std of noise on the normalised latents (default 0.05)")
    cd.add_argument("--latent-noise-mode", choices=("fixed", "uniform"),
                    help="fixed: every clip gets --latent-noise; uniform: each clip draws its std from U(0, --latent-noise)")
    cd.add_argument("--crop-size", type=int, help="train on random windows of this size (default 64; 0 = whole)")
    cd.add_argument("--object-weight", type=float,
                    help="pixels under objects count 1 + W times in the pixel term (procedural data; default 0)")
    cd.add_argument("--ema-decay", type=float, help="EMA decay of the decoder (default 0.999)")
    _add_common_train_flags(cd)
    cd.set_defaults(func=cmd_compress_decoder)
    cm = csub.add_parser("mobilevd", help="MobileVD's recipe on an image-to-video model: optimized cross-attention, "
                                          "temporal multiscaling, learned temporal-block pruning, channel funnels, "
                                          "adversarial fine-tuning to 1 step; every stage written to RUN_DIR/stages")
    cm.add_argument("--model", required=True, help="the trained image-to-video teacher (`edgevid train i2v --output`)")
    cm.add_argument("--no-cross-attention", action="store_true", help="skip the optimized cross-attention")
    cm.add_argument("--temporal-multiscaling", metavar="FLAGS",
                    help="per stage 1/0, frames halved after the 1s (default 1,0,0; 0,0,0 = off)")
    cm.add_argument("--prune-keep", type=float, help="fraction of temporal blocks kept (default 0.3; 1 = no pruning)")
    cm.add_argument("--funnel-factor", type=float, help="channel funnel factor (default 0.5; 1 = no funnels)")
    cm.add_argument("--finetune-steps", type=int, help="rectified-flow steps after each change (default 300)")
    cm.add_argument("--prune-steps", type=int, help="steps that learn the pruning gates (default 300)")
    cm.add_argument("--distill-steps", type=int, help="adversarial steps at the end (default 600; 0 = none)")
    cm.add_argument("--num-steps", type=int, help="sampling steps of the student (default 1)")
    cm.add_argument("--num-clips", type=int, help="clips whose latents are cached and reused (default 1500)")
    cm.add_argument("--select-every", type=int,
                    help="score the adversarial stage's EMA every N steps on validation scenes and keep the best "
                         "(default 100; 0 = keep the last)")
    cm.add_argument("--select-videos", type=int, help="validation scenes per score (default 12)")
    cm.add_argument("--distill-lr", type=float, help="generator lr of the adversarial stage (default 1e-5)")
    cm.add_argument("--adv-weight", type=float, help="weight of the adversarial loss (default 1; 0 = reconstruction only)")
    cm.add_argument("--distill-ema-decay", type=float, help="EMA decay of the adversarial stage (default 0.95)")
    cm.add_argument("--teacher-data", action="store_true",
                    help="the adversarial stage learns the teacher's samples for the clips' first frames, each from "
                         "the noise it came from (sampled once per clip, cached in the stage's run folder), "
                         "instead of the real clips")
    cm.add_argument("--select-metric", choices=("i2v_score", "i2v_graded"),
                    help="what --select-every maximises (default i2v_score; i2v_graded resolves finer)")
    _add_common_train_flags(cm)
    cm.set_defaults(func=cmd_compress_mobilevd)


def cmd_compress_decoder(args) -> None:
    from edgevid.compress.decoder import compress_decoder, compressed_vae, decoder_fields, decoder_parameters
    from edgevid.estimate import estimate_compress_decoder
    from edgevid.config import DecoderCompressConfig
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

    try:
        fields = decoder_fields(args.preset)
        pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model))
    except ValueError as e:
        raise CLIError(str(e)) from None
    extra = _given(args, "distill_weight", "pixel_weight", "temporal_weight", "latent_noise", "crop_size", "ema_decay",
                   "object_weight", "latent_noise_mode")
    cfg = _train_common(args, DecoderCompressConfig, extra)
    device = _device(args)
    source, desc = _source(args, cfg.fps, cfg.seed)
    _check_training("compress decoder", device, args, cfg.steps, lambda *a: estimate_compress_decoder(
        pipe.vae, compressed_vae(pipe.vae, fields), cfg, *a))
    t0 = time.perf_counter()
    vae = compress_decoder(args.run_dir, pipe.vae, fields, source, cfg, data_description={**desc, "model": str(args.model)},
                           resume=args.resume, progress=not args.no_progress, device=device)
    print(f"trained the decoder ({decoder_parameters(pipe.vae) / 1e3:.0f} k -> {decoder_parameters(vae) / 1e3:.0f} k "
          f"parameters) in {time.perf_counter() - t0:.0f} s")
    if args.output:
        EdgeVidPipeline(vae, pipe.unet.cpu(), pipe.text_encoder.cpu(), pipe.defaults).save_pretrained(args.output)
        print(f"saved pipeline with the compressed decoder to {args.output}")


def cmd_compress_mobilevd(args) -> None:
    from edgevid.compress.mobilevd import compress_mobilevd
    from edgevid.config import MobileVDConfig
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline

    extra = _given(args, "finetune_steps", "prune_steps", "distill_steps", "num_steps", "num_clips", "select_every",
                   "select_videos", "distill_lr", "adv_weight", "distill_ema_decay", "select_metric")
    if args.teacher_data:
        extra["teacher_data"] = True
    if args.prune_keep is not None:
        extra["prune_keep_fraction"] = args.prune_keep
    if args.funnel_factor is not None:
        extra["funnel_factor"] = args.funnel_factor
    if args.no_cross_attention:
        extra["optimized_cross_attention"] = False
    try:
        pipe = EdgeVidImg2VidPipeline.from_pretrained(args.model, precision="fp32")
    except ValueError as e:
        raise CLIError(f"--model: {e}") from None
    n_stages = len(pipe.unet.config.block_out_channels)
    if args.temporal_multiscaling is not None:
        flags = [f.strip() for f in args.temporal_multiscaling.split(",")]
        if len(flags) != n_stages or any(f not in ("0", "1") for f in flags) or flags[-1] == "1":
            raise CLIError(f"--temporal-multiscaling needs {n_stages} comma-separated 0/1 flags (the last 0), "
                           f"got {args.temporal_multiscaling!r}")
        extra["temporal_downsample"] = tuple(f == "1" for f in flags)
    try:
        cfg = _train_common(args, MobileVDConfig, extra)
    except TypeError as e:  # a flag that MobileVDConfig has no field for
        raise CLIError(str(e)) from None
    device = _device(args)
    source, _ = _source(args, cfg.fps, cfg.seed)
    t0 = time.perf_counter()
    out = compress_mobilevd(args.run_dir, pipe, cfg, source, resume=args.resume, progress=not args.no_progress,
                            device=device)
    print(f"compressed in {time.perf_counter() - t0:.0f} s: {sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.2f} M"
          f" -> {sum(p.numel() for p in out.unet.parameters()) / 1e6:.2f} M parameters, "
          f"{out.defaults.num_inference_steps} step(s)")
    if args.output:
        out.save_pretrained(args.output)
        print(f"saved the compressed image-to-video pipeline to {args.output}")
