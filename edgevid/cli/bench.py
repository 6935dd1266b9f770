"""Speed on this machine: `edgevid compile` (the AOT-compiled denoiser that `generate --compiled`
loads) and `edgevid bench` (stage times against the teacher path and a diffusers peer)."""
from __future__ import annotations

import time
from pathlib import Path

from edgevid.cli.common import MAX_FRAMES, MAX_SIDE, CLIError, _check_int, _cores, _set_threads, add_precision_flag


def add_compile_parser(sub) -> None:
    c = sub.add_parser("compile", help="AOT-compile a model's denoiser for this machine (once, minutes) for "
                                       "`generate --compiled` and `load_compiled_unet` (~1.7x faster denoiser calls)")
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

    from edgevid.compiled import compile_unet, package_paths
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model), precision=args.precision)
    paths = package_paths(pipe)
    if all(p.is_file() for p in paths.values()) and not args.force:
        print(f"already compiled: {', '.join(str(p) for p in paths.values())}")
        return
    print(f"compiling the {pipe.precision} denoiser for {torch.get_num_threads()} threads, one package per call of "
          f"{'/'.join(map(str, paths))} latent frames (about a minute each on 2 cores) ...", flush=True)
    t0 = time.perf_counter()
    compile_unet(pipe, force=args.force, log=lambda m: print(m, flush=True))
    print(f"wrote {len(paths)} packages to {next(iter(paths.values())).parent} in {time.perf_counter() - t0:.0f} s; "
          f"use them with `edgevid generate --compiled` ({torch.get_num_threads()} threads)")


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
