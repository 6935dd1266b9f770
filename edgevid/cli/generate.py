"""`edgevid generate`: prompt and flags -> checks that need no model -> the pipeline with its defaults
filled in -> checks against the model and this machine's memory -> denoise -> decode -> MP4 or GIF
(or, with --stream, an MP4 written chunk by chunk)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edgevid.cli.common import (EXAMPLES, MAX_FPS, MAX_FRAMES, MAX_SIDE, MAX_STEPS, SEED_RANGE, SHOW_ESTIMATE_S,
                                CLIError, _check_float, _check_int, _check_output_path, _cores, _set_threads,
                                add_precision_flag, load_compiled_or_fail)


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
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model), precision=args.precision)
    compiled = bool(args.compiled)
    if compiled:
        load_compiled_or_fail(pipe)
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
            frames = pipe.decode_latents(latents, on_chunk=progress.decoded, output_type="uint8")[0]  # (T, H, W, 3)
        progress.close()
        t_gen = time.perf_counter()
        export(frames, out, fps=fps, preset=preset)
        t_end = time.perf_counter()
        n, h, w = frames.shape[:3]
        timing = f"load {t_load - t0:.1f} s, generate {t_gen - t_load:.1f} s, write {t_end - t_gen:.1f} s"
    if not args.quiet:
        timing += ", compiled denoiser" if compiled else ""
        timing += f", {pipe.precision}"
        print(f"wrote {out} ({n} frames, {w}x{h}, {fps} fps, {n / fps:.1f} s) in {t_end - t0:.1f} s [{timing}]")


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

    t_first = None
    tc = pipe.vae.config.temporal_compression
    with StreamingVideoWriter(out, fps=fps, preset=preset) as writer:
        for frames in pipe.stream(prompt, callback_on_step_end=progress.step, output_type="uint8", **kw):
            if t_first is None:  # frames: uint8 (t, H, W, 3)
                t_first = time.perf_counter()
            progress.decoded(-(-len(frames) // tc))
            writer.write(frames)
    progress.close()
    h, w = frames.shape[1:3]
    return writer.num_frames, h, w, t_first
