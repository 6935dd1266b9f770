"""`edgevid train vae | t2v | i2v`: flags -> a frozen train config -> the training loop in --run-dir
(resumable) -> the trained VAE or pipeline in --output."""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from edgevid.cli.common import (CLIError, shrunk_unet, _add_common_train_flags, _check_training, _device,
                                _export_checkpoint, _given, _run_checkpoint, _source, _train_common)


def add_train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model (vae | t2v)")
    tsub = t.add_subparsers(metavar="MODEL")
    tv = tsub.add_parser("vae", help="train the video VAE on the procedural world or a video folder")
    tv.add_argument("--preset", default="snapgen8", help="VAE architecture preset (tiny, snapgen, snapgen8, hc32; default snapgen8, the shipped one)")
    tv.add_argument("--kl-weight", type=float, help="weight of the KL term per pixel value (default 1e-6)")
    tv.add_argument("--crop-size", type=int, help="train on random CROPxCROP windows of clips rendered at the bucket size")
    _add_common_train_flags(tv)
    tv.set_defaults(func=cmd_train_vae)
    tt = tsub.add_parser("t2v", help="train the text-to-video denoiser (rectified flow)")
    tt.add_argument("--vae", required=True, help="trained VAE folder (from `edgevid train vae --output`)")
    tt.add_argument("--preset", default="small",
                    help="UNet architecture preset (small, the shipped default's; small-searched, the architecture "
                         "search's, 18 %% faster per step; small-pooled, small-refiner, tiny)")
    tt.add_argument("--text-encoder", default="minilm-l6-v2", choices=["minilm-l6-v2", "tiny"],
                    help="frozen text encoder (default: all-MiniLM-L6-v2)")
    tt.add_argument("--num-clips", type=int, help="reuse this many clips (0 = fresh clips every step)")
    tt.add_argument("--cache-latents", action="store_true", help="keep latents of the reused clips in memory")
    tt.add_argument("--ema-decay", type=float, help="EMA decay of the shipped weights (default 0.999)")
    tt.add_argument("--init-from", metavar="MODEL_DIR",
                    help="start from this pipeline's UNet (its architecture replaces --preset): continue "
                         "training a finished model with a new schedule, or fine-tune one")
    tt.add_argument("--shrink-to", metavar="PRESET_OR_PLAN",
                    help="with --init-from: start from that UNet shrunk to a preset (e.g. small-searched) or an "
                         "`edgevid search` plan key, inheriting its weights as the search's candidates do "
                         "(fewer spatial transformers, narrower ResBlocks, its temporal layers where kept)")
    tt.add_argument("--export-checkpoint", action="store_true",
                    help="no training: write the EMA weights of --run-dir's latest checkpoint to --output "
                         "(stop a run early and use it)")
    tt.add_argument("--t-mean", type=float, help="logit-normal time sampling m (SnapGen-V Eq. 3; default 0; > 0 trains noisier t, < 0 cleaner)")
    tt.add_argument("--t-std", type=float, help="logit-normal time sampling s (default 1; larger reaches both ends of [0, 1])")
    tt.add_argument("--foreground-weight", type=float,
                    help="extra loss weight on the latent cells objects cover (procedural data; default 0 = off)")
    _add_channel_weighting_flag(tt)
    tt.add_argument("--spatial-lr-scale", type=float,
                    help="learning rate of every non-temporal layer as a fraction of --lr (SnapGen-V's video "
                         "stage after an image backbone: 0 = frozen, e.g. 0.1 = slowed; default 1)")
    tt.add_argument("--guidance", type=float, default=5.0, help="default guidance stored with the model")
    tt.add_argument("--sample-steps", type=int, default=25, help="default sampling steps stored with the model")
    tt.add_argument("--sample-frames", type=int, default=121, help="default frame count stored with the model")
    tt.add_argument("--sample-size", default="256x256", help="default HEIGHTxWIDTH stored with the model")
    tt.add_argument("--sample-fps", type=int, default=24, help="default playback fps stored with the model")
    tt.add_argument("--sample-shift", type=float, default=1.0,
                    help="default timestep shift of the sampling grid stored with the model (1 = uniform)")
    _add_common_train_flags(tt)
    tt.set_defaults(func=cmd_train_t2v)
    ti = tsub.add_parser("i2v", help="train the image-to-video denoiser (SVD architecture, rectified flow)")
    ti.add_argument("--vae", required=True, help="trained VAE folder (e.g. edgevid/weights/default/vae, the shipped one)")
    ti.add_argument("--preset", default="svd-cpu", help="SVDUNet preset (svd-tiny, svd-cpu, svd; default svd-cpu)")
    ti.add_argument("--num-clips", type=int, help="reuse this many clips (0 = fresh clips every step)")
    ti.add_argument("--cache-latents", action="store_true", help="keep latents of the reused clips (also on disk)")
    ti.add_argument("--ema-decay", type=float, help="EMA decay of the shipped weights (default 0.999)")
    ti.add_argument("--t-mean", type=float, help="logit-normal time sampling m (default 0; < 0 trains the low-noise "
                                                 "steps more, where image-to-video's error is: docs/MOBILEVD.md)")
    ti.add_argument("--t-std", type=float, help="logit-normal time sampling s (default 1)")
    _add_channel_weighting_flag(ti)
    ti.add_argument("--residual-scale", type=float,
                    help="run the flow on the clip's motion residual from its frozen video, (x - image) / S "
                         "(static regions are 0, the model's error reaches the latent S times smaller; "
                         "default 0 = from noise to the latent, or --init-from's own setting)")
    ti.add_argument("--export-checkpoint", action="store_true",
                    help="no training: write the EMA weights of --run-dir's latest checkpoint to --output")
    ti.add_argument("--init-from", metavar="MODEL_DIR",
                    help="start from this image-to-video pipeline's denoiser (its architecture replaces --preset): "
                         "continue a finished or exported model with a new schedule, e.g. on a new machine")
    ti.add_argument("--sample-steps", type=int, default=25, help="default sampling steps stored with the model")
    ti.add_argument("--sample-frames", type=int, default=17, help="default frame count stored with the model")
    ti.add_argument("--sample-size", default="256x512", help="default HEIGHTxWIDTH stored with the model")
    _add_common_train_flags(ti)
    ti.set_defaults(func=cmd_train_i2v)


def _add_channel_weighting_flag(p: argparse.ArgumentParser) -> None:
    from edgevid.config import CHANNEL_WEIGHTINGS

    p.add_argument("--channel-weighting", choices=CHANNEL_WEIGHTINGS,
                   help="loss weight per latent channel: uniform (default), or decoder: by how much the decoder "
                        "shows each channel's error (docs/LADDER.md, dead latent channels)")


def cmd_train_vae(args) -> None:
    from edgevid.config import VAE_PRESETS, VAETrainConfig
    from edgevid.estimate import estimate_train_vae
    from edgevid.models.vae import VideoVAE
    from edgevid.models.weights import save_component
    from edgevid.train.vae import train_vae

    if args.preset not in VAE_PRESETS:
        raise CLIError(f"unknown VAE preset {args.preset!r}; choose from {sorted(VAE_PRESETS)}")
    extra = _given(args, "kl_weight", "crop_size")
    try:
        cfg = _train_common(args, VAETrainConfig, extra)
    except ValueError as e:
        raise CLIError(str(e)) from None
    device = _device(args)
    source, desc = _source(args, cfg.fps, cfg.seed)
    _check_training("train vae", device, args, cfg.steps,  # the traces also check the sizes the VAE takes
                    lambda *a: estimate_train_vae(VideoVAE(VAE_PRESETS[args.preset]), cfg, *a))
    t0 = time.perf_counter()
    vae = train_vae(args.run_dir, VAE_PRESETS[args.preset], cfg, source, data_description=desc, resume=args.resume,
                    progress=not args.no_progress, device=device)
    print(f"trained VAE in {time.perf_counter() - t0:.0f} s (scaling_factor={_fmt(vae.config.scaling_factor)}, "
          f"shift_factor={_fmt(vae.config.shift_factor)})")
    if args.output:
        save_component(vae.cpu(), vae.config, args.output)
        print(f"saved VAE to {args.output}")


def _fmt(value: float | tuple[float, ...]) -> str:
    return ", ".join(f"{v:.4g}" for v in value) if isinstance(value, tuple) else f"{value:.4g}"


def cmd_train_t2v(args) -> None:
    from edgevid.config import UNET_PRESETS, VAEConfig, TrainConfig
    from edgevid.estimate import estimate_train_t2v
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.models.vae import VideoVAE
    from edgevid.models.weights import load_component
    from edgevid.pipeline import EdgeVidPipeline, GenerationDefaults
    from edgevid.text import TinyTextEncoder, MiniLMTextEncoder
    from edgevid.train.t2v import train_t2v

    if args.preset not in UNET_PRESETS:
        raise CLIError(f"unknown UNet preset {args.preset!r}; choose from {sorted(UNET_PRESETS)}")
    extra = _given(args, "num_clips", "ema_decay", "t_mean", "t_std", "foreground_weight", "spatial_lr_scale",
                   "channel_weighting")
    if args.cache_latents:
        extra["cache_latents"] = True
    cfg = _train_common(args, TrainConfig, extra)
    if cfg.foreground_weight and args.data != "procedural":
        raise CLIError("--foreground-weight needs --data procedural (object masks come from the scene specs)")
    device = _device(args)
    vae = load_component(VideoVAE, VAEConfig, args.vae)
    text_encoder = MiniLMTextEncoder.from_package() if args.text_encoder == "minilm-l6-v2" else TinyTextEncoder()
    unet_cfg = dataclasses.replace(UNET_PRESETS[args.preset], text_dim=text_encoder.dim,
                                   in_channels=vae.config.latent_channels, out_channels=vae.config.latent_channels)
    init_unet = None
    if args.init_from:
        from edgevid.config import UNetConfig

        try:
            init_unet = load_component(SpatioTemporalUNet, UNetConfig, Path(args.init_from) / "unet")
        except (ValueError, OSError) as e:
            raise CLIError(f"--init-from: {e}") from None
        unet_cfg = init_unet.config
        if (unet_cfg.in_channels, unet_cfg.text_dim) != (vae.config.latent_channels, text_encoder.dim):
            raise CLIError(f"--init-from: its UNet takes {unet_cfg.in_channels} latent channels and "
                           f"{unet_cfg.text_dim}-d text, but the VAE has {vae.config.latent_channels} channels "
                           f"and the text encoder gives {text_encoder.dim}-d tokens")
        if args.shrink_to:
            init_unet = shrunk_unet(init_unet, args.shrink_to)
            unet_cfg = init_unet.config
    elif args.shrink_to:
        raise CLIError("--shrink-to needs --init-from (the trained UNet to shrink)")
    height, width = _parse_size(args.sample_size)
    defaults = GenerationDefaults(num_frames=args.sample_frames, height=height, width=width, fps=args.sample_fps,
                                  num_inference_steps=args.sample_steps, guidance_scale=args.guidance,
                                  shift=args.sample_shift)
    if args.output:  # fail now, not after training, on defaults the model could not generate
        EdgeVidPipeline(vae, SpatioTemporalUNet(unet_cfg), text_encoder, defaults)
    if args.export_checkpoint:
        _export_checkpoint(args, vae, text_encoder, defaults)
        return
    source, desc = _source(args, cfg.fps, cfg.seed)
    _check_training("train t2v", device, args, cfg.steps, lambda *a: estimate_train_t2v(
        init_unet if init_unet is not None else SpatioTemporalUNet(unet_cfg), vae, cfg, *a))
    t0 = time.perf_counter()
    if args.init_from:
        desc = {**desc, "init_from": str(args.init_from)}
    _, ema_unet = train_t2v(args.run_dir, unet_cfg, cfg, vae, text_encoder, source, data_description=desc,
                            resume=args.resume, progress=not args.no_progress, device=device,
                            init_unet=init_unet)
    print(f"trained text-to-video UNet in {time.perf_counter() - t0:.0f} s")
    if args.output:
        EdgeVidPipeline(vae.cpu(), ema_unet.cpu(), text_encoder.cpu(), defaults).save_pretrained(args.output)
        print(f"saved pipeline to {args.output}")


def cmd_train_i2v(args) -> None:
    from edgevid.config import SVD_UNET_PRESETS, SVDUNetConfig, TrainConfig, VAEConfig, config_from_dict
    from edgevid.models.i2v import Img2VidDenoiser
    from edgevid.models.vae import VideoVAE
    from edgevid.models.weights import load_component, load_state_strict, read_safetensors
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline, Img2VidDefaults
    from edgevid.train.i2v import train_i2v, with_residual_scale

    if args.preset not in SVD_UNET_PRESETS:
        raise CLIError(f"unknown SVDUNet preset {args.preset!r}; choose from {sorted(SVD_UNET_PRESETS)}")
    extra = _given(args, "num_clips", "ema_decay", "t_mean", "t_std", "channel_weighting")
    if args.cache_latents:
        extra["cache_latents"] = True
    extra.setdefault("buckets", ((17, 128, 256), (17, 256, 512)))  # low-res steps are 4x cheaper (MobileVD §4.1)
    cfg = _train_common(args, TrainConfig, extra)
    device = _device(args)
    vae = load_component(VideoVAE, VAEConfig, args.vae)
    c = vae.config.latent_channels
    unet_cfg = dataclasses.replace(SVD_UNET_PRESETS[args.preset], in_channels=2 * c, out_channels=c)
    if args.residual_scale is not None:
        if not args.residual_scale >= 0:
            raise CLIError(f"--residual-scale must be >= 0, got {args.residual_scale}")
        unet_cfg = dataclasses.replace(unet_cfg, residual_scale=args.residual_scale)
    height, width = _parse_size(args.sample_size)
    defaults = Img2VidDefaults(num_frames=args.sample_frames, height=height, width=width, fps=cfg.fps,
                               num_inference_steps=args.sample_steps)
    if args.output:  # fail now, not after training, on defaults the model could not generate
        EdgeVidImg2VidPipeline(vae, Img2VidDenoiser(unet_cfg), defaults)
    if args.export_checkpoint:
        ckpt, run_cfg = _run_checkpoint(args)
        model = Img2VidDenoiser(config_from_dict(SVDUNetConfig, run_cfg["unet"], f"{args.run_dir}/config.json unet"))
        load_state_strict(model, read_safetensors(ckpt / "ema.safetensors"), ckpt)
        if args.fps is None:  # the frame rate the run trained at (a conditioning input), not the flag's default
            defaults = dataclasses.replace(defaults, fps=int(run_cfg["train"]["fps"]))
        defaults = _trained_motion_default(defaults, args.run_dir)
        EdgeVidImg2VidPipeline(vae, model, defaults).save_pretrained(args.output)
        print(f"saved the EMA weights of {ckpt} as an image-to-video pipeline to {args.output}")
        return
    init = None
    if args.init_from:
        try:
            init = EdgeVidImg2VidPipeline.from_pretrained(args.init_from, precision="fp32").unet
        except (ValueError, OSError) as e:
            raise CLIError(f"--init-from: {e}") from None
        if args.residual_scale is not None:  # the same weights, continued in another flow space
            init = with_residual_scale(init, args.residual_scale)
        unet_cfg = init.config
        if unet_cfg.out_channels != c:
            raise CLIError(f"--init-from: its denoiser makes {unet_cfg.out_channels} latent channels, the VAE has {c}")
    source, desc = _source(args, cfg.fps, cfg.seed)
    if args.init_from:
        desc = {**desc, "init_from": str(args.init_from)}
    t0 = time.perf_counter()
    _, ema = train_i2v(args.run_dir, unet_cfg, cfg, vae, source, data_description=desc, resume=args.resume,
                       progress=not args.no_progress, device=device, init_model=init)
    print(f"trained image-to-video denoiser in {time.perf_counter() - t0:.0f} s")
    if args.output:
        defaults = _trained_motion_default(defaults, args.run_dir)
        EdgeVidImg2VidPipeline(vae.cpu(), ema.cpu(), defaults).save_pretrained(args.output)
        print(f"saved pipeline to {args.output}")


def _trained_motion_default(defaults, run_dir):
    """The defaults with the run's median training motion strength as the model's motion default."""
    from edgevid.train.i2v import training_motion

    motion = training_motion(run_dir)
    return defaults if motion is None else dataclasses.replace(defaults, motion_bucket_id=round(motion, 2))


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise CLIError(f"size must look like 256x256 (HEIGHTxWIDTH), got {text!r}") from None
    return height, width
