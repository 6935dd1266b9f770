"""`edgevid eval`: a model -> the ShapesBench videos, scored against their ground-truth scenes ->
results JSON and PNG report (an image-to-video model: the image-to-video evaluation, edgevid.eval.i2v)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from edgevid.cli.common import (MAX_FRAMES, MAX_SIDE, MAX_STEPS, SEED_RANGE, CLIError, _check_float, _check_int,
                                _is_i2v_model, _set_threads, check_work_resources, load_compiled_or_fail)


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
    e.add_argument("--compiled", action="store_true",
                   help="sample with the AOT-compiled denoiser `edgevid compile` built for the same --model, "
                        "--threads and --precision (its parity with eager is what this scores)")
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
        if args.compiled:
            raise CLIError("--compiled: `edgevid compile` builds text-to-video denoisers; this is an image-to-video model")
        _eval_i2v(args, model_dir, out)
        return
    pipe = EdgeVidPipeline.from_pretrained(model_dir, precision=args.precision)
    if args.continuation:
        pipe = replace_defaults(pipe, continuation_start=args.continuation)
    if args.compiled:
        load_compiled_or_fail(pipe)
    check_eval_resources(pipe, args)
    t0 = time.perf_counter()
    result, videos = evaluate(pipe, limit=args.limit, num_frames=args.num_frames, height=args.height,
                              width=args.width, num_inference_steps=args.steps, guidance_scale=args.guidance, shift=args.shift,
                              seed=args.seed, progress=not args.no_progress, first_window_latent_frames=args.first_window,
                              window_latent_frames=args.window, overlap_latent_frames=args.overlap,
                              split=args.split)
    result["settings"]["model"] = str(args.model or "default")
    result["settings"]["precision"] = pipe.precision
    result["settings"]["compiled"] = bool(args.compiled)
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


def add_compare_parser(sub) -> None:
    c = sub.add_parser("compare", help="two `edgevid eval` results of the same prompts and seeds -> their paired "
                                       "difference, standard error and bootstrap intervals")
    c.add_argument("a", metavar="A.json", help="the reference result (e.g. the shipped model's)")
    c.add_argument("b", metavar="B.json", help="the result compared against it")
    c.add_argument("--metric", help="per-video score to compare (default: i2v_score for image-to-video results, "
                                    "else prompt_adherence)")
    c.add_argument("--limit", type=int, help="compare only the first N videos (default: all they share)")
    c.add_argument("--output", help="also write the comparison as JSON")
    c.set_defaults(func=cmd_compare)


def cmd_compare(args) -> None:
    import json

    from edgevid.eval.compare import describe, paired_difference
    from edgevid.io.atomic import atomic_write_text

    results = []
    for path in (args.a, args.b):
        try:
            results.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as e:
            raise CLIError(f"{path}: not a readable eval result ({e})") from None
        if not isinstance(results[-1], dict):
            raise CLIError(f"{path}: not an eval result (a JSON object written by `edgevid eval`)")
    try:
        c = paired_difference(*results, metric=args.metric, limit=args.limit)
    except ValueError as e:
        raise CLIError(f"compare: {e}") from None
    print(describe(c, Path(args.a).stem, Path(args.b).stem))
    if args.output:
        atomic_write_text(Path(args.output), json.dumps(c, indent=2) + "\n")
