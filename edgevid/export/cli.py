"""`edgevid export` and `edgevid run-exported`: one parser function beside each command.

run-exported imports only the runner (no torch unless the format's runtime needs it, no model code).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

FORMATS = ("executorch", "onnx", "litert", "coreml")


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model's stages to an on-device runtime (ExecuTorch, ONNX, LiteRT, "
                                      "Core ML) with a manifest", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  edgevid export --format executorch -o out/default-et\n"
                              "  edgevid export --format onnx -o out/default-onnx\n"
                              "  edgevid export --format executorch --precision int8 -o out/default-et-int8\n"
                              "  edgevid run-exported out/default-et \"a red circle moving right\" -o out.mp4\n"
                              "  edgevid export --model i2v --format executorch -o out/i2v-et   # image-to-video\n"
                              "  edgevid run-exported out/i2v-et still.png -o out.mp4")
    p.add_argument("--model", default="default",
                   help="shipped model name or folder, text-to-video or image-to-video (default: default; i2v: the "
                        "image-to-video model)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("-o", "--output", required=True, help="folder for the artifacts and manifest.json")
    p.add_argument("--precision", default="fp32", choices=("fp32", "int8"),
                   help="int8: per-channel int8 weights of linears with dynamic 8-bit activations (convolutions stay fp32), "
                        "and an int4 word table; executorch only")
    p.add_argument("--no-mobile-ops", action="store_true",
                   help="export the layers as written (GroupNorm, nearest upsampling, ... stay off XNNPACK)")
    p.add_argument("--num-frames", type=int, help="frames of the exported video (default: the model's)")
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--threads", type=int, help="CPU threads for exporting (default: all cores)")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> None:
    import torch

    from edgevid.export.exporter import export_pipeline
    from edgevid.export.manifest import artifact_bytes
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

    from edgevid.cli.common import _is_i2v_model
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = resolve_model_dir(args.model)
    cls = EdgeVidImg2VidPipeline if _is_i2v_model(model_dir) else EdgeVidPipeline
    pipe = cls.from_pretrained(model_dir, precision="fp32")
    t0 = time.perf_counter()
    m = export_pipeline(pipe, args.output, args.format, precision=args.precision, mobile=not args.no_mobile_ops,
                        num_frames=args.num_frames, height=args.height, width=args.width)
    total = artifact_bytes(m)
    v = m["video"]
    print(f"exported {v['num_frames']} frames {v['height']}x{v['width']} ({m['format']}, {m['precision']}): "
          f"{total / 2**20:.1f} MB in {time.perf_counter() - t0:.0f} s -> {args.output}/manifest.json")


def add_run_exported_parser(sub) -> None:
    p = sub.add_parser("run-exported", help="generate a video from an export folder alone (its runtime, the "
                                            "tokenizer and numpy; no edgevid model code)")
    p.add_argument("folder", help="a folder written by `edgevid export`")
    p.add_argument("prompt", metavar="PROMPT|IMAGE",
                   help="the prompt; for an image-to-video export, the image file (resized and cropped to its size)")
    p.add_argument("-o", "--output", required=True, help=".mp4 or .gif")
    p.add_argument("--seed", type=int, default=0, help="noise seed (numpy's generator)")
    p.add_argument("--threads", type=int, help="runtime threads (default: up to 2)")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of the artifacts")
    p.set_defaults(func=cmd_run_exported)


def cmd_run_exported(args) -> None:
    from edgevid.export.runner import ExportedImg2VidPipeline, open_exported
    from edgevid.io.video import export

    out = Path(args.output)
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise ValueError(f"output must end in .mp4 or .gif, got {args.output!r}")
    t0 = time.perf_counter()
    pipe = open_exported(args.folder, threads=args.threads, verify=not args.no_verify)
    loaded = time.perf_counter() - t0
    condition = args.prompt
    if isinstance(pipe, ExportedImg2VidPipeline):
        from edgevid.io.image import load_image

        condition = load_image(args.prompt, *pipe.image_size)
    t1 = time.perf_counter()
    video = pipe(condition, seed=args.seed)
    gen = time.perf_counter() - t1
    export((video * 255).round().clip(0, 255).astype("uint8"), out, fps=pipe.fps)
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in pipe.timings.items())
    print(f"{out}: {video.shape[0]} frames {video.shape[1]}x{video.shape[2]} in {gen:.2f} s ({parts}; "
          f"runtime loaded in {loaded:.2f} s, total {time.perf_counter() - t0:.2f} s)", file=sys.stderr)
