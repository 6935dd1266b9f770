"""Exported pipelines against PyTorch eager, same run: per-stage latency (medians), per-stage max
abs error, the whole default video from the artifacts, and paired ShapesBench.

    edgevid export --format executorch -o ~/runs/export/default-et      # once per format
    edgevid export --format onnx -o ~/runs/export/default-onnx
    python benchmarks/export.py ~/runs/export/default-et ~/runs/export/default-onnx --threads 2 \
        --repeats 5 --specs 10 --output docs/export_bench.json

Eager runs the same stages (edgevid.export.stages, the layers as written) on the same inputs;
"video" is ExportedPipeline(...)(prompt) end to end (tokenizer, the manifest's denoiser chunks, 8 decoder
chunks) against EdgeVidPipeline(prompt) at the same noise. ShapesBench scores both on the first
--specs hold-out specs with the same noise per spec, new and legacy adherence.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from fast_path import median_seconds  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="export folders (edgevid export -o ...)")
    p.add_argument("--model", default="default")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--specs", type=int, default=10, help="ShapesBench specs (0 = skip)")
    p.add_argument("--output", help="JSON file for the results")
    args = p.parse_args(argv)

    from edgevid.eval.shapesbench.benchmark import benchmark_specs
    from edgevid.eval.shapesbench.score import aggregate, score_video
    from edgevid.export.manifest import artifact_bytes
    from edgevid.export.runner import ExportedPipeline
    from edgevid.export.stages import build_stages, video_spec
    from edgevid.pipeline import EdgeVidPipeline, frames_to_uint8, resolve_model_dir

    torch.set_num_threads(args.threads)
    # eager is the fp32 reference (on a CPU with native bf16, `auto` would pick bf16)
    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model), precision="fp32")
    results = {"threads": args.threads, "repeats": args.repeats, "cpu": _cpu(), "formats": {}}
    eager_stages = None
    eager_scores = {}  # spec index -> eager's score: the same noise for every format, so computed once
    for folder in map(Path, args.folders):
        exp = ExportedPipeline(folder.expanduser(), threads=args.threads)
        m = exp.manifest
        spec = video_spec(pipe, m["video"]["num_frames"], m["video"]["height"], m["video"]["width"])
        if eager_stages is None:
            eager_stages, _ = build_stages(pipe, spec, mobile=False)
            eager = {}
            for st in eager_stages:
                with torch.no_grad():
                    eager[st.name] = median_seconds(lambda st=st: st.module(*st.inputs), args.repeats)
            results["eager_stage_seconds"] = eager
        files = sum((folder.expanduser() / name).stat().st_size for name in m["files"])  # word table, time embeddings
        row = {"precision": m["precision"], "bytes": artifact_bytes(m) + files,
               "stage_bytes": {name: s["bytes"] for name, s in m["stages"].items()},
               "stage_files": {name: s["file"] for name, s in m["stages"].items()}, "file_bytes": files,
               "load_seconds": exp.load_seconds, "stages": {}}
        for st in eager_stages:
            inputs = [t.numpy() for t in st.inputs]
            run = exp.stages[st.name]
            with torch.no_grad():
                ref = st.module(*st.inputs)
            ref = ref if isinstance(ref, tuple) else (ref,)
            out = run(*inputs)
            err = max(float(np.abs(np.asarray(o) - r.numpy()).max()) for o, r in zip(out, ref))
            s = median_seconds(lambda: run(*inputs), args.repeats)
            row["stages"][st.name] = {"seconds": s, "vs_eager": s / results["eager_stage_seconds"][st.name],
                                      "max_abs_error": err, **({"delegation": m["stages"][st.name]["delegation"]}
                                                               if "delegation" in m["stages"][st.name] else {})}
        prompt = "a red circle moving right on a white background"
        noise = np.random.default_rng(0).standard_normal(exp.latent_shape, dtype=np.float32)
        video = exp(prompt, noise=noise)
        row["video_seconds"] = median_seconds(lambda: exp(prompt, noise=noise), max(1, args.repeats // 2))
        row["video_timings"] = dict(exp.timings)
        with torch.inference_mode():
            ref_video = pipe(prompt, latents=torch.from_numpy(noise)).frames[0]
            row["eager_video_seconds"] = median_seconds(lambda: pipe(prompt, latents=torch.from_numpy(noise)),
                                                        max(1, args.repeats // 2))
        row["video_max_abs_error"] = float(np.abs(video - ref_video).max())
        if args.specs:
            fps = m["video"]["fps"]
            mine, theirs = [], []
            for i, (sc, caption) in enumerate(benchmark_specs(n=max(200, args.specs))[:args.specs]):
                z = np.random.default_rng(1000 + i).standard_normal(exp.latent_shape, dtype=np.float32)
                mine.append(score_video(frames_to_uint8(exp(caption, noise=z)), sc, fps))
                if i not in eager_scores:
                    with torch.inference_mode():
                        eager_scores[i] = score_video(frames_to_uint8(pipe(caption, latents=torch.from_numpy(z)).frames[0]),
                                                      sc, fps)
                theirs.append(eager_scores[i])
            a, b = aggregate(mine), aggregate(theirs)
            row["shapesbench"] = {"specs": args.specs, "exported": a["prompt_adherence"], "eager": b["prompt_adherence"],
                                  "exported_legacy": a.get("legacy_prompt_adherence"),
                                  "eager_legacy": b.get("legacy_prompt_adherence"),
                                  "exported_aggregate": a, "eager_aggregate": b}
        results["formats"][f"{m['format']}-{m['precision']}"] = row
        print(json.dumps({k: v for k, v in row.items() if k != "stages"}, default=float), file=sys.stderr)
        for name, st in row["stages"].items():
            print(f"  {name:14s} {st['seconds'] * 1e3:8.1f} ms  x{st['vs_eager']:.2f} eager  err {st['max_abs_error']:.1e}",
                  file=sys.stderr)
    text = json.dumps(results, indent=2, default=float)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


def _cpu() -> str:
    from edgevid.estimate import cpu_name

    return cpu_name()


if __name__ == "__main__":
    raise SystemExit(main())
