"""`edgevid animate`: a still image -> the image-to-video pipeline (MobileVD) -> MP4 or GIF."""
from __future__ import annotations

import time
from pathlib import Path

from edgevid.cli.common import (MAX_FPS, MAX_FRAMES, MAX_STEPS, SEED_RANGE, CLIError, _check_int, _check_output_path,
                                _is_i2v_model, _set_threads, add_precision_flag)


def add_animate_parser(sub) -> None:
    a = sub.add_parser("animate", help="animate a still image (image-to-video, MobileVD)")
    a.add_argument("image", help="a png / jpg / webp file; resized to cover the model's size and centre-cropped")
    a.add_argument("-o", "--output", required=True, help="output file (.mp4 or .gif)")
    a.add_argument("--model", help="an image-to-video model folder (`edgevid train i2v --output`, `edgevid compress "
                                   "mobilevd --output`; default: the shipped 1-step one, 'i2v')")
    a.add_argument("--num-frames", type=int, help="frames, 1 + 4k (default: the model's, 17)")
    a.add_argument("--height", type=int, help="pixels (default: the model's, 256)")
    a.add_argument("--width", type=int, help="pixels (default: the model's, 512)")
    a.add_argument("--fps", type=int, help="frames per second of the written file (default: the model's)")
    a.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    a.add_argument("--motion", type=float, help="motion strength, SVD's motion bucket id (default: the model's)")
    a.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    a.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    add_precision_flag(a)
    a.add_argument("--quiet", action="store_true", help="print nothing on success")
    a.set_defaults(func=cmd_animate)


def default_i2v_model_dir() -> Path:
    from edgevid.pipeline import default_model_dir

    return default_model_dir().parent / "i2v"


def cmd_animate(args) -> None:
    t0 = time.perf_counter()
    out = _check_output_path(args.output)
    image_path = Path(args.image)
    if not image_path.is_file():
        raise CLIError(f"{args.image}: no such image file")
    for name, lo, hi in (("num_frames", 5, MAX_FRAMES), ("height", 1, 16_384), ("width", 1, 16_384),
                         ("fps", 1, MAX_FPS[out.suffix.lower()]), ("steps", 1, MAX_STEPS)):
        _check_int(args, name, lo, hi)
    _check_int(args, "seed", *SEED_RANGE)
    from edgevid.pipeline import resolve_model_dir

    model = resolve_model_dir(args.model) if args.model else default_i2v_model_dir()
    if not (model / "model_index.json").is_file():
        raise CLIError(f"no image-to-video model at {model}" + ("" if args.model else
                       " (the shipped one is missing: reinstall edgevid, or pass --model DIR)"))
    if not _is_i2v_model(model):
        raise CLIError(f"{args.model} is a text-to-video model; `animate` needs an image-to-video one "
                       "(leave --model out for the shipped one)")
    import torch

    _set_threads(args.threads)
    from edgevid.io.image import load_image
    from edgevid.io.video import export
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline

    pipe = EdgeVidImg2VidPipeline.from_pretrained(model, precision=args.precision)
    height, width = args.height or pipe.defaults.height, args.width or pipe.defaults.width
    image = load_image(image_path, height, width)  # raises one line for files that are not images
    t_load = time.perf_counter()
    frames = pipe(image, num_frames=args.num_frames, height=height, width=width, num_inference_steps=args.steps,
                  motion_bucket_id=args.motion, generator=torch.Generator().manual_seed(args.seed),
                  output_type="uint8").frames[0]  # (T, H, W, 3)
    t_gen = time.perf_counter()
    fps = args.fps or pipe.defaults.fps
    export(frames, out, fps=fps)
    if not args.quiet:
        n = len(frames)
        print(f"wrote {out} ({n} frames, {width}x{height}, {fps} fps) in {time.perf_counter() - t0:.1f} s "
              f"[load {t_load - t0:.1f} s, animate {t_gen - t_load:.2f} s, {pipe.precision}]")
