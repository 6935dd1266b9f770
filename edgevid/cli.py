"""`edgevid` command line: flags -> configs -> the library functions. Kept thin on purpose.

Heavy imports (torch, models) happen inside the commands, so `edgevid --help` is instant.
Every user error is one line on stderr and a non-zero exit, and no partial output file.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

EXAMPLES = """examples:
  edgevid generate "a red circle bouncing on a blue background" -o out.mp4
  edgevid generate "two green squares drifting left" -o wide.mp4 --width 448 --height 256 --seed 3
  edgevid dataset preview -o preview.mp4 --num 4
  edgevid eval --limit 20 --output shapesbench.json       # ground-truth prompt adherence
  edgevid train vae --steps 3000 --crop-size 64 --buckets 1x256x256,9x256x256 --run-dir runs/vae --output models/vae
  edgevid train t2v --vae models/vae --steps 4000 --fps 24 --num-clips 600 --cache-latents --run-dir runs/t2v --output models/t2v
  edgevid train t2v --vae models/vae --run-dir runs/t2v --output models/t2v --resume
  edgevid animate still.png -o out.mp4 --model models/i2v   # image-to-video (MobileVD)
  edgevid train i2v --vae edgevid/weights/default/vae --steps 3000 --num-clips 1500 --cache-latents --fps 24 --run-dir runs/i2v --output models/i2v
  edgevid export --format executorch -o out/default-et       # on-device artifacts + manifest.json
  edgevid run-exported out/default-et "a red circle moving right" -o out.mp4
"""


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("edgevid: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError, FloatingPointError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"edgevid: error: {msg}", file=sys.stderr)
        return 1
    except MemoryError as e:  # an allocation the checks before it did not foresee: still one line
        print(f"edgevid: error: out of memory ({' '.join(str(e).split()) or 'MemoryError'}); "
              f"try a smaller size, fewer frames or --stream", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgevid", description="Fast text-to-video diffusion on CPUs and phones.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"edgevid {_version()}")
    sub = p.add_subparsers(metavar="COMMAND")

    add_generate_parser(sub)
    add_animate_parser(sub)
    add_train_parser(sub)
    add_distill_parser(sub)
    add_compress_parser(sub)
    add_compile_parser(sub)
    add_bench_parser(sub)
    add_eval_parser(sub)
    add_dataset_parser(sub)

    from edgevid.export.cli import add_export_parser, add_run_exported_parser
    from edgevid.search.cli import add_search_parser

    add_export_parser(sub)
    add_run_exported_parser(sub)
    add_search_parser(sub)
    return p


def add_precision_flag(p: argparse.ArgumentParser, extra: str = "") -> None:
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="denoiser and decoder precision: auto (the default, or $EDGEVID_PRECISION) is bf16 on a CPU "
                        "with native bf16 (AVX512-BF16/AMX), where it is ~1.6x faster, and fp32 elsewhere." + extra)


def _add_common_train_flags(p: argparse.ArgumentParser, lr_and_bf16: bool = True) -> None:
    p.add_argument("--run-dir", required=True, help="run folder: resolved config, log.jsonl, checkpoints")
    p.add_argument("--output", help="write the trained model here when done")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--steps", type=int, help="total optimisation steps")
    p.add_argument("--batch-size", type=int)
    if lr_and_bf16:
        p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--buckets", help="comma-separated FRAMESxHEIGHTxWIDTH, e.g. 1x64x64,9x64x64,17x64x96")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--data", default="procedural", help="'procedural' or a folder of mp4 + captions.jsonl")
    p.add_argument("--seed", type=int)
    if lr_and_bf16:
        p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--fps", type=int, help="frame rate of the training clips (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# ----------------------------------------------------------------------------- generate
def add_generate_parser(sub) -> None:
    g = sub.add_parser("generate", help="generate a video from a text prompt", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("prompt", help="what the video should show")
    g.add_argument("-o", "--output", required=True, help="output file (.mp4 or .gif)")
    g.add_argument("--num-frames", type=int, help="frames, 1 + 4k (default: the model's, 121 = 5 s at 24 fps)")
    g.add_argument("--height", type=int, help="pixels, a multiple of the model's size factor (default 256)")
    g.add_argument("--width", type=int, help="pixels, a multiple of the model's size factor (default 256)")
    g.add_argument("--fps", type=int, help="frames per second of the written file (default: the model's, 24)")
    g.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    g.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's)")
    g.add_argument("--shift", type=float, help="timestep shift of the sampling grid, > 1 spends more steps at high noise (default: the model's)")
    g.add_argument("--negative-prompt", default="", help="what to steer away from (default: empty prompt)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--model", help="a shipped model's name ('default', 'teacher') or a model folder from "
                                   "save_pretrained / train / distill (default: the shipped default)")
    g.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    add_precision_flag(g)
    g.add_argument("--quiet", action="store_true", help="print nothing on success")
    g.add_argument("--compiled", action="store_true",
                   help="use the denoiser `edgevid compile` built for this machine (1.1-1.4x faster warm, but loading it "
                        "adds ~1.5 s: worth it for long videos, not for one short clip)")
    g.add_argument("--window", type=int,
                   help="generate in chunks of this many latent frames (1 latent = 4 video frames), each continuing "
                        "the last --overlap latents of the one before: videos longer than the model was trained on, "
                        "or an earlier first frame with --stream (default: the model's; 0 = all at once)")
    g.add_argument("--overlap", type=int,
                   help="latent frames shared by consecutive chunks (default: the model's; the shipped default's is 1)")
    g.add_argument("--stream", action="store_true",
                   help="write the MP4 chunk by chunk while the rest is still being generated and decoded: the "
                        "first --first-window latents are denoised alone and written first, the rest continues "
                        "them; prints the time to the first frame")
    g.add_argument("--encoder-preset", default=None, metavar="PRESET",
                   help="x264 preset of the MP4: ultrafast (default, fastest to write) ... medium (files about half "
                        "the size) ... veryslow")
    g.add_argument("--first-window", type=int,
                   help="latent frames denoised alone first (n latents = 1 + 4(n-1) frames; default: the model's, 1, "
                        "with --stream, 0 without). The same value with and without --stream gives the same video")
    g.set_defaults(func=cmd_generate)


def cmd_generate(args) -> None:
    t0 = time.perf_counter()
    out, preset = check_generate_args(args)
    import torch

    _set_threads(args.threads)
    from edgevid.io.video import export
    from edgevid.pipeline import EdgeVidPipeline, frames_to_uint8, resolve_model_dir

    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model), precision=args.precision)
    compiled = False
    if args.compiled:
        from edgevid.compiled import load_compiled_unet

        compiled = load_compiled_unet(pipe)  # never compiles here
        if not compiled:
            raise CLIError(f"--compiled: no compiled {pipe.precision} denoiser for this model, machine and thread "
                           "count; run `edgevid compile` (with the same --model, --threads and --precision) first")
    fps = args.fps or pipe.defaults.fps
    kw = resolve_generate_args(pipe, args)
    est = check_generate_resources(pipe, kw, args.stream, out.suffix.lower(), preset)
    _warn_truncated(pipe, args.prompt)
    progress = _progress_bar(est, kw["num_inference_steps"], quiet=args.quiet)
    kw["generator"] = torch.Generator().manual_seed(args.seed)
    t_load = time.perf_counter()
    if args.stream:
        n, h, w, t_first = _generate_streaming(pipe, args.prompt, out, fps, kw, preset, progress)
        t_end = time.perf_counter()
        timing = f"load {t_load - t0:.1f} s, first frame after {t_first - t_load:.2f} s, " \
                 f"generate and write {t_end - t_load:.1f} s"
    else:
        latents = pipe(args.prompt, output_type="latent", callback_on_step_end=progress.step, **kw).frames
        with torch.inference_mode():
            video = pipe.decode_latents(latents, on_chunk=progress.decoded)  # (1, T, 3, H, W) in [0, 1]
        progress.close()
        t_gen = time.perf_counter()
        frames = frames_to_uint8(video[0].permute(0, 2, 3, 1).numpy())  # (T, H, W, 3)
        del video
        export(frames, out, fps=fps, preset=preset)
        t_end = time.perf_counter()
        n, h, w = frames.shape[:3]
        timing = f"load {t_load - t0:.1f} s, generate {t_gen - t_load:.1f} s, write {t_end - t_gen:.1f} s"
    if not args.quiet:
        timing += ", compiled denoiser" if compiled else ""
        timing += f", {pipe.precision}"
        print(f"wrote {out} ({n} frames, {w}x{h}, {fps} fps, {n / fps:.1f} s) in {t_end - t0:.1f} s [{timing}]")


# ----------------------------------------------------------------------------- animate
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
    from edgevid.pipeline import frames_to_uint8
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline

    pipe = EdgeVidImg2VidPipeline.from_pretrained(model, precision=args.precision)
    height, width = args.height or pipe.defaults.height, args.width or pipe.defaults.width
    image = load_image(image_path, height, width)  # raises one line for files that are not images
    t_load = time.perf_counter()
    frames = pipe(image, num_frames=args.num_frames, height=height, width=width, num_inference_steps=args.steps,
                  motion_bucket_id=args.motion, generator=torch.Generator().manual_seed(args.seed)).frames[0]
    frames = frames_to_uint8(frames)  # (T, H, W, 3)
    t_gen = time.perf_counter()
    fps = args.fps or pipe.defaults.fps
    export(frames, out, fps=fps)
    if not args.quiet:
        n = len(frames)
        print(f"wrote {out} ({n} frames, {width}x{height}, {fps} fps) in {time.perf_counter() - t0:.1f} s "
              f"[load {t_load - t0:.1f} s, animate {t_gen - t_load:.2f} s, {pipe.precision}]")


# Limits of the flags, each with its reason. The model's own rules (multiples of 32, 1 + 4k frames)
# are checked by the pipeline; whether the size fits this machine by check_generate_resources.
MAX_FRAMES = 1_000_001  # 11.6 hours at 24 fps; far past anything a model was trained for
MAX_SIDE = {".mp4": 16_384, ".gif": 65_535}  # libx264's limit a side; GIF stores 16-bit sizes
MAX_STEPS = 1000  # rectified-flow samplers need 1-50; more is a typo, not a better video
MAX_FPS = {".mp4": 1000, ".gif": 50}  # GIF stores delays in 1/100 s and players clamp below 2/100
SEED_RANGE = (-2**63, 2**64 - 1)  # torch.Generator.manual_seed's


def check_generate_args(args) -> tuple[Path, str]:
    """Everything about `edgevid generate`'s flags that needs no model: (output path, x264 preset).
    Raises CLIError with a one-line message."""
    out = _check_output_path(args.output)
    _check_prompt(args.prompt, "prompt")
    if args.negative_prompt:
        _check_prompt(args.negative_prompt, "--negative-prompt", need_text=False)
    if args.stream and out.suffix.lower() != ".mp4":
        raise CLIError(f"--stream writes MP4 files, got {out.name!r}")
    from edgevid.io.video import DEFAULT_X264_PRESET, X264_PRESETS

    preset = args.encoder_preset or DEFAULT_X264_PRESET
    if preset not in X264_PRESETS:
        raise CLIError(f"--encoder-preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
    suffix = out.suffix.lower()
    limits = {"num_frames": MAX_FRAMES, "height": MAX_SIDE[suffix], "width": MAX_SIDE[suffix], "steps": MAX_STEPS,
              "fps": MAX_FPS[suffix], "threads": _cores()}
    for name, hi in limits.items():
        _check_int(args, name, 1, hi, "libx264's limit; .gif goes to 65535" if hi == 16_384 else "")
    for name in ("window", "first_window"):
        _check_int(args, name, 0, MAX_FRAMES)
    _check_int(args, "overlap", 1, MAX_FRAMES)
    _check_int(args, "seed", *SEED_RANGE)
    _check_float(args, "guidance", 0.0, 1e3, "scale")  # beyond ~20 guidance only saturates colours
    _check_float(args, "shift", 1e-3, 1e3, "factor")
    return out, preset


def _check_int(args, name: str, lo: int, hi: int, why: str = "") -> None:
    v = getattr(args, name)
    if v is not None and not lo <= v <= hi:
        raise CLIError(f"--{name.replace('_', '-')} must be in [{lo}, {hi}]{f' ({why})' if why else ''}, got {v}")


def _check_float(args, name: str, lo: float, hi: float, what: str) -> None:
    import math

    v = getattr(args, name)
    if v is not None and not (math.isfinite(v) and lo <= v <= hi):
        raise CLIError(f"--{name} must be a {what} in [{lo:g}, {hi:g}], got {v}")


def _check_prompt(text: str, what: str, need_text: bool = True) -> None:
    """Prompts from argv: valid UTF-8 (undecodable bytes arrive as lone surrogates), no control
    characters but tabs and newlines, at least one letter or digit."""
    import unicodedata

    from edgevid.text.base import check_unicode

    try:
        check_unicode(text)
    except ValueError as e:
        raise CLIError(f"{what}: {e}".replace(f"{what}: prompt ", f"{what} ")) from None
    bad = next((i for i, ch in enumerate(text) if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r"), None)
    if bad is not None:
        raise CLIError(f"{what} contains the control character U+{ord(text[bad]):04X} at character {bad}; remove it")
    if need_text and not any(ch.isalnum() for ch in text):
        raise CLIError(f"{what} must be text with at least one letter or digit, got {text!r}")


def resolve_generate_args(pipe, args) -> dict:
    """The flags with the model's defaults filled in, checked against the model (sizes, frame
    count, window): the keywords of `pipe(...)` / `pipe.stream(...)` but the generator."""
    d = pipe.defaults
    kw = dict(num_frames=args.num_frames or d.num_frames, height=args.height or d.height,
              width=args.width or d.width, num_inference_steps=args.steps or d.num_inference_steps,
              guidance_scale=d.guidance_scale if args.guidance is None else args.guidance,
              negative_prompt=args.negative_prompt, shift=d.shift if args.shift is None else args.shift,
              window_latent_frames=d.window_latent_frames if args.window is None else args.window,
              overlap_latent_frames=d.overlap_latent_frames if args.overlap is None else args.overlap)
    first = args.first_window
    if first is None:
        first = d.stream_first_latent_frames if args.stream else 0
    kw["first_window_latent_frames"] = first
    pipe.check_inputs(args.prompt, kw["num_frames"], kw["height"], kw["width"], kw["num_inference_steps"],
                      kw["guidance_scale"])
    from edgevid.flow.sample import chunk_plan

    K = pipe.vae.latent_shape(kw["num_frames"], kw["height"], kw["width"])[1]
    window, overlap = kw["window_latent_frames"], kw["overlap_latent_frames"]
    if window and overlap >= window:
        raise CLIError(f"--overlap must be smaller than --window ({window}), got {overlap}")
    chunk_plan(K, window, overlap, first)  # raises ValueError on the rest
    return kw


def check_generate_resources(pipe, kw: dict, stream: bool, suffix: str, preset: str, rates: dict | None = None):
    """Estimate memory and time (edgevid.estimate); refuse what does not fit this machine's memory,
    naming what would fit. Returns the estimate."""
    from edgevid.estimate import available_memory, estimate_generation, format_bytes, largest_fitting

    args = dict(num_frames=kw["num_frames"], height=kw["height"], width=kw["width"],
                num_inference_steps=kw["num_inference_steps"], guidance_scale=kw["guidance_scale"],
                window_latent_frames=kw["window_latent_frames"], overlap_latent_frames=kw["overlap_latent_frames"],
                first_window_latent_frames=kw["first_window_latent_frames"], output_suffix=suffix, preset=preset,
                rates=rates)
    est = estimate_generation(pipe, stream=stream, **args)
    available = available_memory()
    if available is not None and est.peak_bytes > available:
        T, H, W = kw["num_frames"], kw["height"], kw["width"]
        hint = largest_fitting(est, available, T, H, W, pipe.size_multiple, pipe.vae.config.temporal_compression)
        if not stream and suffix == ".mp4":
            streamed = estimate_generation(pipe, stream=True, **args)
            if streamed.peak_bytes <= available:
                hint = f"--stream needs only ~{format_bytes(streamed.peak_bytes)}; or {hint}"
        raise CLIError(f"{T} frames at {W}x{H} need ~{format_bytes(est.peak_bytes)} of memory, "
                       f"{format_bytes(available)} is available: {hint}")
    return est


SHOW_ESTIMATE_S = 30  # longer than this: print the estimate first and show a progress bar


def check_work_resources(what: str, est, fix: str) -> None:
    """The long commands (eval, train, distill, compress): refuse in one line when the estimated
    peak memory (an edgevid.estimate.WorkEstimate) exceeds what is available, naming `fix`;
    print the estimate when the work takes longer than SHOW_ESTIMATE_S."""
    from edgevid.estimate import available_memory, format_bytes

    available = available_memory()
    if available is not None and est.peak_bytes > available:
        raise CLIError(f"{what} needs ~{format_bytes(est.peak_bytes)} of memory (estimated), "
                       f"{format_bytes(available)} is available: {fix}")
    if est.seconds > SHOW_ESTIMATE_S:
        print(f"edgevid: {what} will take {est.describe()} (an estimate)", file=sys.stderr, flush=True)


def _check_training(what: str, device: str, args, total_steps: int, estimate) -> None:
    """check_work_resources for a training command: `estimate(steps, available memory)` over the
    steps still to run (a resumed run continues from its latest checkpoint). The estimate is of
    this machine's CPU: skipped on a GPU."""
    from edgevid.estimate import available_memory

    steps = total_steps - _steps_done(args)
    if device == "cpu" and steps > 0:
        check_work_resources(what, estimate(steps, available_memory()),
                             "use a smaller --batch-size or smaller buckets (--buckets, --crop-size)")


def _steps_done(args) -> int:
    if not args.resume:
        return 0
    from edgevid.train.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(Path(args.run_dir))
    try:
        return int(ckpt.name.split("-")[1]) if ckpt is not None else 0
    except (IndexError, ValueError):
        return 0


def _progress_bar(est, steps: int, quiet: bool):
    return _Progress(est, steps, enabled=est.seconds > SHOW_ESTIMATE_S and not quiet)


class _Progress:
    """One bar over denoising and decoding, in estimated seconds of work (ETA from tqdm)."""

    def __init__(self, est, steps: int, enabled: bool):
        self.bar = None
        if not enabled:
            return
        from tqdm import tqdm

        from edgevid.estimate import format_bytes, format_seconds

        print(f"edgevid: this will take about {format_seconds(est.seconds)} (denoise "
              f"{format_seconds(est.denoise_s)}, decode {format_seconds(est.decode_s)}, write "
              f"{format_seconds(est.write_s)}) and ~{format_bytes(est.peak_bytes)} of memory", file=sys.stderr,
              flush=True)
        self.denoise_s, self.decode_s = est.denoise_s, est.decode_s
        self.per_step = est.denoise_s / max(1, round(est.denoise_calls))
        self.per_latent = est.decode_s / max(1, est.latent_frames)
        self.denoised = self.decoded_s = 0.0
        self.bar = tqdm(total=est.denoise_s + est.decode_s, unit="s", file=sys.stderr, desc="generate",
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")

    def step(self, pipe, i, t, state):  # callback_on_step_end; a continuing chunk may take a step less
        if self.bar is not None:
            n = min(self.per_step, self.denoise_s - self.denoised)
            self.denoised += n
            self.bar.update(n)
        return None

    def decoded(self, latent_frames: int) -> None:
        if self.bar is not None:
            n = min(self.per_latent * latent_frames, self.decode_s - self.decoded_s)
            self.decoded_s += n
            self.bar.update(n)

    def close(self) -> None:  # the work is done: the bar ends at 100 %
        if self.bar is not None:
            self.bar.update(self.bar.total - self.bar.n)
            self.bar.close()


def _warn_truncated(pipe, prompt: str) -> None:
    encoder = pipe.text_encoder
    n, limit = encoder.num_tokens(prompt), encoder.max_length
    if n > limit:
        print(f"edgevid: warning: the prompt is {n} tokens long; the text encoder reads only the first {limit} "
              f"(the rest is ignored)", file=sys.stderr)


def _generate_streaming(pipe, prompt: str, out: Path, fps: int, kw: dict, preset: str, progress: "_Progress"
                        ) -> tuple[int, int, int, float]:
    """pipe.stream -> StreamingVideoWriter; returns (frames, height, width, perf_counter at the first frame)."""
    from edgevid.io.video import StreamingVideoWriter
    from edgevid.pipeline import frames_to_uint8

    t_first = None
    tc = pipe.vae.config.temporal_compression
    with StreamingVideoWriter(out, fps=fps, preset=preset) as writer:
        for frames in pipe.stream(prompt, callback_on_step_end=progress.step, **kw):  # (t, H, W, 3) in [0, 1]
            if t_first is None:
                t_first = time.perf_counter()
            progress.decoded(-(-len(frames) // tc))
            writer.write(frames_to_uint8(frames))
    progress.close()
    h, w = frames.shape[1:3]
    return writer.num_frames, h, w, t_first


def _check_output_path(path: str) -> Path:
    out = Path(path)
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise CLIError(f"output must end in .mp4 or .gif, got {path!r}")
    if out.is_dir():
        raise CLIError(f"output {path} is a directory")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise CLIError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"output folder {parent} is not writable")
    return out


def _cores() -> int:
    """CPU cores this process may run on (the affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _set_threads(threads: int | None) -> None:
    import torch

    if threads is not None and not 1 <= threads <= _cores():
        raise CLIError(f"--threads must be in [1, {_cores()}] (this machine's cores), got {threads}")
    torch.set_num_threads(threads or _cores())


# ----------------------------------------------------------------------------- train
def _given(args, *names: str) -> dict:
    """The flags among `names` that were given (not None), by their config field names."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _train_common(args, cfg_cls, preset_defaults: dict):
    """Flags -> a frozen train config (only the flags given override the defaults)."""
    import math

    run_dir = Path(args.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CLIError(f"--run-dir {args.run_dir} is a file, not a folder")
    for name, hi in (("steps", 10**9), ("batch_size", 4096), ("checkpoint_every", 10**9), ("fps", 1000)):
        _check_int(args, name, 1, hi)
    _check_int(args, "seed", *SEED_RANGE)
    for name, v in preset_defaults.items():  # the command's own float flags: finite and >= 0 (t_mean: any sign)
        if isinstance(v, float) and not (math.isfinite(v) and (v >= 0 or name == "t_mean")):
            raise CLIError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")
        if isinstance(v, int) and not isinstance(v, bool) and v < 0:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 0, got {v}")
    lr = getattr(args, "lr", None)
    if lr is not None and not (math.isfinite(lr) and 0 < lr <= 1):
        raise CLIError(f"--lr must be a number in (0, 1], got {lr}")
    changes = dict(preset_defaults)
    for flag, field in (("steps", "steps"), ("batch_size", "batch_size"), ("lr", "lr"), ("seed", "seed"),
                        ("checkpoint_every", "checkpoint_every"), ("fps", "fps")):
        v = getattr(args, flag, None)
        if v is not None:
            changes[field] = v
    if getattr(args, "bf16", False):
        changes["bf16"] = True
    if args.buckets:
        changes["buckets"] = _parse_buckets(args.buckets)
    cfg = dataclasses.replace(cfg_cls(), **changes)
    batch = getattr(cfg, "batch_size", 1)
    for frames, height, width in getattr(cfg, "buckets", ()):
        _check_clip_memory(f"--buckets {frames}x{height}x{width} (batch {batch})", batch * frames, height, width,
                           factor=64)  # a training step holds tens of activations per input value
    return cfg


def _check_clip_memory(what: str, frames: int, height: int, width: int, factor: float) -> None:
    """Refuse clips whose frames alone (float32, times `factor` for the work on them) exceed memory."""
    from edgevid.estimate import available_memory, format_bytes

    need = frames * height * width * 3 * 4 * factor
    available = available_memory()
    if available is not None and need > available:
        raise CLIError(f"{what} needs more than {format_bytes(need)} of memory, {format_bytes(available)} is available; "
                       f"use fewer or smaller frames")


def _parse_buckets(text: str) -> tuple[tuple[int, int, int], ...]:
    try:
        buckets = tuple(tuple(int(x) for x in item.lower().split("x")) for item in text.split(",") if item.strip())
    except ValueError:
        raise CLIError(f"--buckets must look like 1x64x64,9x64x96, got {text!r}") from None
    if not buckets or any(len(b) != 3 or min(b) < 1 for b in buckets):
        raise CLIError(f"--buckets must look like 1x64x64,9x64x96, got {text!r}")
    return buckets


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise CLIError(f"size must look like 256x256 (HEIGHTxWIDTH), got {text!r}") from None
    return height, width


def _device(args) -> str:
    import torch

    _set_threads(args.threads)
    if args.device:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise CLIError("--device cuda requested but no CUDA device is available")
        return args.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _source(args, fps: int, seed: int):
    from edgevid.data import ProceduralClips, VideoFolderClips

    if args.data == "procedural":
        return ProceduralClips(split="train", seed=seed, fps=fps), {"kind": "procedural", "split": "train", "seed": seed}
    return VideoFolderClips(args.data, fps=fps, seed=seed), {"kind": "video_folder", "root": str(args.data)}


def _add_channel_weighting_flag(p: argparse.ArgumentParser) -> None:
    from edgevid.config import CHANNEL_WEIGHTINGS

    p.add_argument("--channel-weighting", choices=CHANNEL_WEIGHTINGS,
                   help="loss weight per latent channel: uniform (default), or decoder: by how much the decoder "
                        "shows each channel's error (docs/LADDER.md, dead latent channels)")


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
    tt.add_argument("--preset", default="small", help="UNet architecture preset (tiny, small)")
    tt.add_argument("--text-encoder", default="minilm-l6-v2", choices=["minilm-l6-v2", "tiny"],
                    help="frozen text encoder (default: all-MiniLM-L6-v2)")
    tt.add_argument("--num-clips", type=int, help="reuse this many clips (0 = fresh clips every step)")
    tt.add_argument("--cache-latents", action="store_true", help="keep latents of the reused clips in memory")
    tt.add_argument("--ema-decay", type=float, help="EMA decay of the shipped weights (default 0.999)")
    tt.add_argument("--init-from", metavar="MODEL_DIR",
                    help="start from this pipeline's UNet (its architecture replaces --preset): continue "
                         "training a finished model with a new schedule, or fine-tune one")
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
    from edgevid.models.weights import load_component, load_state_strict, read_json, read_safetensors
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline, Img2VidDefaults
    from edgevid.train.checkpoint import latest_checkpoint
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
        if not args.output:
            raise CLIError("--export-checkpoint needs --output")
        ckpt = latest_checkpoint(Path(args.run_dir))
        if ckpt is None:
            raise CLIError(f"--export-checkpoint: {args.run_dir} holds no checkpoint")
        run_cfg = read_json(Path(args.run_dir) / "config.json")
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


def _export_checkpoint(args, vae, text_encoder, defaults) -> None:
    """The EMA UNet of a train t2v / distill run's latest checkpoint -> a pipeline folder (the run's own UNet config)."""
    from edgevid.config import UNetConfig, config_from_dict
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.models.weights import load_state_strict, read_json, read_safetensors
    from edgevid.pipeline import EdgeVidPipeline
    from edgevid.train.checkpoint import latest_checkpoint

    if not args.output:
        raise CLIError("--export-checkpoint needs --output")
    ckpt = latest_checkpoint(Path(args.run_dir))
    if ckpt is None:
        raise CLIError(f"--export-checkpoint: {args.run_dir} holds no checkpoint")
    run_cfg = read_json(Path(args.run_dir) / "config.json")
    if not isinstance(run_cfg.get("unet"), dict):
        raise CLIError(f"--export-checkpoint: {Path(args.run_dir) / 'config.json'} has no 'unet' config")
    unet = SpatioTemporalUNet(config_from_dict(UNetConfig, run_cfg["unet"], f"{args.run_dir}/config.json unet"))
    load_state_strict(unet, read_safetensors(ckpt / "ema.safetensors"), ckpt)
    EdgeVidPipeline(vae.cpu(), unet.eval(), text_encoder.cpu(), defaults).save_pretrained(args.output)
    print(f"saved the EMA weights of {ckpt} as a pipeline to {args.output}")


# ----------------------------------------------------------------------------- distill
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
    student_pipe = replace_defaults(teacher, num_inference_steps=cfg.num_steps, guidance_scale=1.0, shift=cfg.shift)
    if args.export_checkpoint:
        _export_checkpoint(args, student_pipe.vae, student_pipe.text_encoder, student_pipe.defaults)
        return
    device = _device(args)
    source, desc = _source(args, cfg.fps, cfg.seed)
    _check_training("distill", device, args, cfg.steps,
                    lambda *a: estimate_distill(teacher.unet, teacher.vae, cfg, *a))
    desc = {**desc, "teacher": str(args.teacher)}
    init = None
    if args.init_student:
        try:
            init = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.init_student)).unet
        except ValueError as e:
            raise CLIError(f"--init-student: {e}") from None
        init = getattr(init, "eager", init)
        desc["init_student"] = str(args.init_student)
    t0 = time.perf_counter()
    student, _ = distill(args.run_dir, teacher.unet, teacher.vae, teacher.text_encoder, source, cfg, student=init,
                         data_description=desc, resume=args.resume, progress=not args.no_progress, device=device)
    print(f"distilled a {cfg.num_steps}-step student in {time.perf_counter() - t0:.0f} s")
    if args.output:
        EdgeVidPipeline(teacher.vae.cpu(), student.cpu(), teacher.text_encoder.cpu(),
                        student_pipe.defaults).save_pretrained(args.output)
        print(f"saved pipeline to {args.output} ({cfg.num_steps} steps, no guidance)")


# ----------------------------------------------------------------------------- compress
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
                   "select_videos")
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


# ----------------------------------------------------------------------------- bench
def add_bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="speed of the default 5-s video against the teacher path and a diffusers-built "
                                     "peer: stage times, real-time factor, time to first frame, memory, FLOP rate, cold start")
    b.add_argument("--model", default="default", help="the model to time (default: the shipped default)")
    b.add_argument("--teacher", default="teacher", help="teacher path timed alongside, 25 steps + CFG ('none' to skip)")
    b.add_argument("--peer", default="full", choices=["full", "tiny", "none"],
                   help="diffusers UNet3DConditionModel + AutoencoderKL peer (random weights) to time alongside")
    b.add_argument("--num-frames", type=int, help="default: the model's (121)")
    b.add_argument("--height", type=int, help="default: the model's (256)")
    b.add_argument("--width", type=int, help="default: the model's (256)")
    b.add_argument("--repeats", type=int, default=3, help="timed runs per path, the median is reported (default 3)")
    b.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    b.add_argument("--no-cold", action="store_true", help="skip the cold CLI runs (fresh processes)")
    add_precision_flag(b, " The other precision is timed alongside unless --no-precision-compare.")
    b.add_argument("--no-precision-compare", action="store_true",
                   help="do not time the default path in the other precision (fp32 / bf16)")
    b.add_argument("--compiled", action="store_true",
                   help="also time the default path with the AOT-compiled denoiser (built first if `edgevid compile` "
                        "has not; the build time is reported)")
    b.add_argument("--quick", action="store_true",
                   help="a smoke run in seconds: 5 frames at the smallest size, 1 repeat, the tiny peer")
    b.add_argument("--output", help="write all figures as JSON here")
    b.set_defaults(func=cmd_bench)


def cmd_bench(args) -> None:
    import json

    if args.output and Path(args.output).suffix.lower() != ".json":
        raise CLIError(f"--output must end in .json, got {args.output!r}")
    for name in ("num_frames", "height", "width", "repeats", "threads"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    for name, hi in (("num_frames", MAX_FRAMES), ("height", MAX_SIDE[".mp4"]), ("width", MAX_SIDE[".mp4"]),
                     ("repeats", 100), ("threads", _cores())):
        _check_int(args, name, 1, hi)
    if args.peer != "none":
        import importlib.util

        if importlib.util.find_spec("diffusers") is None:
            raise CLIError("--peer needs diffusers: pip install 'edgevid[bench]' (or --peer none)")
    from edgevid.eval.speed import format_table, run_bench
    from edgevid.io.atomic import atomic_write_text
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

    T, H, W, repeats, peer = args.num_frames, args.height, args.width, args.repeats, args.peer
    if args.quick:
        pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model))
        T, H, W, repeats = T or 5, H or pipe.size_multiple, W or pipe.size_multiple, 1
        peer = "tiny" if peer != "none" else "none"
    result = run_bench(args.model, None if args.teacher == "none" else args.teacher, None if peer == "none" else peer,
                       T, H, W, repeats=repeats, threads=args.threads, cold=not args.no_cold, compiled=args.compiled,
                       precision=args.precision, compare_precision=not args.no_precision_compare)
    print(format_table(result))
    if args.output:
        atomic_write_text(args.output, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.output}")


def add_compile_parser(sub) -> None:
    c = sub.add_parser("compile", help="AOT-compile a model's denoiser for this machine (once, minutes) for "
                                       "`generate --compiled` and `load_compiled_unet` (1.6x faster denoiser calls)")
    c.add_argument("--model", default="default", help="a shipped model's name or a model folder (default: default)")
    c.add_argument("--threads", type=int, help="CPU threads it is compiled for (default: all cores; generate must use "
                                               "the same number to use it)")
    c.add_argument("--force", action="store_true", help="compile again even if the cache has it")
    add_precision_flag(c, " generate uses the package of its own precision.")
    c.set_defaults(func=cmd_compile)


def cmd_compile(args) -> None:
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}")
    _set_threads(args.threads)
    import torch

    from edgevid.compiled import compile_unet, package_path
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model), precision=args.precision)
    path = package_path(pipe)
    if path.is_file() and not args.force:
        print(f"already compiled: {path}")
        return
    print(f"compiling the {pipe.precision} denoiser for {torch.get_num_threads()} threads (a few minutes on 2 cores) ...",
          flush=True)
    t0 = time.perf_counter()
    compile_unet(pipe, force=args.force)
    print(f"wrote {path} in {time.perf_counter() - t0:.0f} s; use it with `edgevid generate --compiled` "
          f"({torch.get_num_threads()} threads)")


# ----------------------------------------------------------------------------- eval
def add_eval_parser(sub) -> None:
    e = sub.add_parser("eval", help="ShapesBench: generate the hold-out benchmark set and score it against ground truth")
    e.add_argument("--model", help="a shipped model's name ('default', 'teacher') or a model folder (default: default)")
    e.add_argument("--limit", type=int, help="score only the first N of the 200 benchmark specs")
    e.add_argument("--split", default="holdout", choices=("holdout", "train", "paraphrase"),
                   help="holdout: the benchmark (default); train: the training stream's own scenes, a diagnostic "
                        "that tells underfitting (low on both) from failing to generalise (low on holdout only); "
                        "paraphrase: the hold-out scenes worded outside the training captions' vocabulary")
    e.add_argument("--output", required=True, help="results JSON (overall prompt_adherence, per-attribute accuracies)")
    e.add_argument("--report", help="PNG report: per-attribute bars and sample frames (default: OUTPUT with .png)")
    e.add_argument("--num-frames", type=int, help="frames per video (default: the model's)")
    e.add_argument("--height", type=int)
    e.add_argument("--width", type=int)
    e.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    e.add_argument("--guidance", type=float, help="classifier-free guidance (default: the model's)")
    e.add_argument("--shift", type=float, help="timestep shift of the sampling grid (default: the model's)")
    e.add_argument("--seed", type=int, default=0, help="video i uses seed SEED + i")
    e.add_argument("--first-window", type=int, default=0,
                   help="latent frames denoised alone first, as `generate --stream` does (default 0 = off)")
    e.add_argument("--window", type=int, help="chunk-wise generation: latent frames per chunk (default: the model's)")
    e.add_argument("--overlap", type=int, help="latent frames shared by consecutive chunks (default: the model's)")
    e.add_argument("--continuation", choices=("noise", "hold"),
                   help="how a continuing chunk's new frames start (default: the model's)")
    e.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    e.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"),
                   help="denoiser and decoder precision (default fp32, so that scores compare across CPUs; "
                        "auto = what `generate` uses: bf16 on a CPU with native bf16)")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=cmd_eval)


def cmd_eval(args) -> None:
    out = Path(args.output)
    if out.suffix.lower() != ".json":
        raise CLIError(f"--output must end in .json, got {args.output!r}")
    report = Path(args.report) if args.report else out.with_suffix(".png")
    if report.suffix.lower() != ".png":
        raise CLIError(f"--report must end in .png, got {args.report!r}")
    for path in (out, report):
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise CLIError(f"output folder {parent} does not exist or is not writable")
    for name, lo, hi in (("limit", 1, 10**6), ("num_frames", 1, MAX_FRAMES), ("height", 1, MAX_SIDE[".gif"]),
                         ("width", 1, MAX_SIDE[".gif"]), ("steps", 1, MAX_STEPS), ("window", 0, MAX_FRAMES),
                         ("overlap", 1, MAX_FRAMES), ("first_window", 0, MAX_FRAMES)):
        _check_int(args, name, lo, hi)
    _check_int(args, "seed", *SEED_RANGE)
    _check_float(args, "guidance", 0.0, 1e3, "scale")
    _check_float(args, "shift", 1e-3, 1e3, "factor")
    _set_threads(args.threads)
    import json

    from edgevid.eval.shapesbench.run import evaluate, write_report
    from edgevid.io.atomic import atomic_write_text
    from edgevid.pipeline import EdgeVidPipeline, replace_defaults, resolve_model_dir

    model_dir = resolve_model_dir(args.model)
    if _is_i2v_model(model_dir):
        _eval_i2v(args, model_dir, out)
        return
    pipe = EdgeVidPipeline.from_pretrained(model_dir, precision=args.precision)
    if args.continuation:
        pipe = replace_defaults(pipe, continuation_start=args.continuation)
    check_eval_resources(pipe, args)
    t0 = time.perf_counter()
    result, videos = evaluate(pipe, limit=args.limit, num_frames=args.num_frames, height=args.height,
                              width=args.width, num_inference_steps=args.steps, guidance_scale=args.guidance, shift=args.shift,
                              seed=args.seed, progress=not args.no_progress, first_window_latent_frames=args.first_window,
                              window_latent_frames=args.window, overlap_latent_frames=args.overlap,
                              split=args.split)
    result["settings"]["model"] = str(args.model or "default")
    result["settings"]["precision"] = pipe.precision
    result["settings"]["wall_s"] = round(time.perf_counter() - t0, 1)
    write_report(result, videos, report)  # first: the JSON, the main output, appears only if all succeeded
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    s = result["summary"]
    scenes = {"holdout": "", "train": " of training scenes", "paraphrase": " of paraphrased hold-out prompts"}[args.split]
    print(f"ShapesBench on {len(videos)} videos{scenes}: prompt adherence {s['prompt_adherence']:.3f} "
          f"(colour {s['object_colour_present']:.3f}, shape {s['object_shape_correct']:.3f}, "
          f"motion {s['object_motion_correct']:.3f}, count {s['count_correct']:.3f}, "
          f"background {s['background_correct']:.3f}); ground-truth renders of the same specs: "
          f"{result['ground_truth']['prompt_adherence']:.3f}; wrote {out} and {report}")


def _is_i2v_model(model_dir: Path) -> bool:
    import json

    try:
        return json.loads((model_dir / "model_index.json").read_text()).get("_class_name") == "EdgeVidImg2VidPipeline"
    except (OSError, ValueError):
        return False  # from_pretrained says what is wrong


def _eval_i2v(args, model_dir: Path, out: Path) -> None:
    """`edgevid eval --model I2V_DIR`: the image-to-video evaluation (edgevid.eval.i2v)."""
    import json

    from edgevid.eval.i2v import evaluate_i2v
    from edgevid.io.atomic import atomic_write_text
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline, replace_i2v_defaults

    text_only = [f"--{n.replace('_', '-')}" for n in ("guidance", "shift", "window", "overlap", "continuation")
                 if getattr(args, n) is not None] + (["--split"] if args.split != "holdout" else [])
    if text_only:
        raise CLIError(f"{', '.join(text_only)}: text-to-video flags; {model_dir} is an image-to-video model")
    pipe = EdgeVidImg2VidPipeline.from_pretrained(model_dir, precision=args.precision)
    changes = {k: v for k, v in (("num_frames", args.num_frames), ("height", args.height), ("width", args.width))
               if v is not None}
    if changes:
        pipe.check_inputs(changes.get("num_frames", pipe.defaults.num_frames), changes.get("height", pipe.defaults.height),
                          changes.get("width", pipe.defaults.width), 1)
        pipe = replace_i2v_defaults(pipe, **changes)
    t0 = time.perf_counter()
    result, _ = evaluate_i2v(pipe, limit=args.limit or 50, num_inference_steps=args.steps, seed=args.seed,
                             progress=not args.no_progress)
    result["settings"].update(model=str(model_dir), precision=pipe.precision, wall_s=round(time.perf_counter() - t0, 1))
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    s, v, f = result["summary"], result["vae_ceiling"], result["frozen"]
    print(f"I2V eval on {s['num_videos']} clips: i2v_score {s['i2v_score']:.3f} (fidelity {s['fidelity']:.3f}, "
          f"PSNR {s['first_frame_psnr']:.1f} dB, objects {s['objects']:.3f}, motion {s['motion']:.3f}); "
          f"VAE ceiling {v['i2v_score']:.3f}, frozen image {f['i2v_score']:.3f}; wrote {out}")


def check_eval_resources(pipe, args, rates: dict | None = None):
    """The eval flags with the model's defaults filled in, checked against the model; then the
    estimate of all the videos (check_work_resources). Returns the estimate."""
    from edgevid.estimate import estimate_eval

    d = pipe.defaults
    kw = dict(num_frames=args.num_frames or d.num_frames, height=args.height or d.height, width=args.width or d.width,
              num_inference_steps=args.steps or d.num_inference_steps,
              guidance_scale=d.guidance_scale if args.guidance is None else args.guidance,
              window_latent_frames=d.window_latent_frames if args.window is None else args.window,
              overlap_latent_frames=d.overlap_latent_frames if args.overlap is None else args.overlap,
              first_window_latent_frames=args.first_window)
    pipe.check_inputs("x", kw["num_frames"], kw["height"], kw["width"], kw["num_inference_steps"], kw["guidance_scale"])
    if kw["window_latent_frames"] and kw["overlap_latent_frames"] >= kw["window_latent_frames"]:
        raise CLIError(f"--overlap must be smaller than --window ({kw['window_latent_frames']}), "
                       f"got {kw['overlap_latent_frames']}")
    n = args.limit or 200  # the benchmark's size
    est = estimate_eval(pipe, n, rates=rates, **kw)
    check_work_resources(f"eval of {n} video{'s' * (n != 1)}", est,
                         "use smaller --height/--width, fewer --num-frames or a smaller --limit")
    return est


# ----------------------------------------------------------------------------- dataset
def add_dataset_parser(sub) -> None:
    d = sub.add_parser("dataset", help="inspect the training data")
    dsub = d.add_subparsers(metavar="ACTION")
    dp = dsub.add_parser("preview", help="render procedural clips (or a video folder) into one grid video")
    dp.add_argument("-o", "--output", required=True, help="output file (.mp4 or .gif)")
    dp.add_argument("--num", type=int, default=4, help="clips in the grid (default 4)")
    dp.add_argument("--split", default="train", choices=["train", "holdout"], help="procedural split")
    dp.add_argument("--data", default="procedural", help="'procedural' or a folder of mp4 + captions.jsonl")
    dp.add_argument("--frames", type=int, default=49, help="frames per clip (default 49)")
    dp.add_argument("--size", type=int, default=128, help="height = width of each clip (default 128)")
    dp.add_argument("--fps", type=int, default=12, help="frames per second (default 12)")
    dp.add_argument("--seed", type=int, default=0)
    dp.set_defaults(func=cmd_dataset_preview)


def cmd_dataset_preview(args) -> None:
    out = _check_output_path(args.output)
    if args.num < 1 or args.frames < 1 or args.size < 8 or args.fps < 1:
        raise CLIError("--num, --frames and --fps must be >= 1 and --size >= 8")
    for name, lo, hi in (("num", 1, 256), ("frames", 1, MAX_FRAMES), ("size", 8, 4096),
                         ("fps", 1, MAX_FPS[out.suffix.lower()])):
        _check_int(args, name, lo, hi)
    _check_int(args, "seed", *SEED_RANGE)
    # the clips, their grid (about the same again) and the writer's copy
    _check_clip_memory(f"{args.num} clips of {args.frames} frames at {args.size}x{args.size}",
                       args.num * args.frames, args.size, args.size, factor=3)
    from edgevid.data import ProceduralClips, VideoFolderClips, preview_grid
    from edgevid.io.video import export

    if args.data == "procedural":
        source = ProceduralClips(split=args.split, seed=args.seed, fps=args.fps)
    else:
        source = VideoFolderClips(args.data, fps=args.fps, seed=args.seed)
    clips = [source.clip(i, args.frames, args.size, args.size) for i in range(args.num)]
    grid = preview_grid(clips, args.frames, args.size, args.size, args.fps)
    export(grid, out, fps=args.fps)
    for i, clip in enumerate(clips):
        print(f"[{i}] {clip.caption}")
    print(f"wrote {out} ({grid.shape[0]} frames, {grid.shape[2]}x{grid.shape[1]})")


def _version() -> str:
    from edgevid import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
