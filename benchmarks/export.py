"""Exported pipelines against PyTorch eager, same run: per-stage latency (medians), per-stage max
abs error, the whole default video from the artifacts, and paired quality.

    edgevid export --format executorch -o ~/runs/export/default-et      # once per format
    edgevid export --format onnx -o ~/runs/export/default-onnx
    edgevid export --model i2v --format executorch -o ~/runs/export/i2v-et
    python benchmarks/export.py ~/runs/export/default-et ~/runs/export/default-onnx ~/runs/export/i2v-et \
        --threads 2 --repeats 5 --specs 10 --output docs/export_bench.json

Eager runs the same stages (edgevid.export.stages / stages_i2v, the layers as written) on the same
inputs. Text-to-video: "video" is ExportedPipeline(prompt) end to end (tokenizer, the manifest's
denoiser chunks, the decoder chunks) against EdgeVidPipeline(prompt) at the same noise, and
ShapesBench scores both on the first --specs hold-out specs with the same noise per spec.
Image-to-video: "video" is ExportedImg2VidPipeline(image) against EdgeVidImg2VidPipeline(image) at
the same noise, and the I2V evaluation scores both on frame 0 of the first --specs scenes.
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
    p.add_argument("folders", nargs="+", help="export folders (edgevid export -o ...), text- or image-to-video")
    p.add_argument("--model", default="default", help="the eager text-to-video model (default: default)")
    p.add_argument("--i2v-model", default="i2v", help="the eager image-to-video model (default: the shipped i2v)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--specs", type=int, default=10, help="ShapesBench specs / I2V scenes (0 = skip)")
    p.add_argument("--output", help="JSON file for the results")
    args = p.parse_args(argv)

    from edgevid.export.manifest import manifest_task, read_manifest

    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "repeats": args.repeats, "cpu": _cpu(), "formats": {}}
    # (task, stage shapes) -> its bench, whose eager stages and references serve every folder with
    # those shapes (the formats of one export); another shape gets its own eager reference
    benches = {}
    for folder in (Path(f).expanduser() for f in args.folders):
        m = read_manifest(folder, verify=False)
        task = manifest_task(m)
        shapes = json.dumps({name: [x["shape"] for x in st["inputs"]] for name, st in sorted(m["stages"].items())})
        if (task, shapes) not in benches:
            benches[task, shapes] = (Img2VidBench if task == "image-to-video" else Text2VidBench)(args)
        row = benches[task, shapes].row(folder)
        results["formats"][f"{'i2v-' if task == 'image-to-video' else ''}{m['format']}-{m['precision']}"] = row
        print(json.dumps({k: v for k, v in row.items() if k != "stages"}, default=float), file=sys.stderr)
        for name, st in row["stages"].items():
            print(f"  {name:14s} {st['seconds'] * 1e3:8.1f} ms  x{st['vs_eager']:.2f} eager  err {st['max_abs_error']:.1e}",
                  file=sys.stderr)
    for (task, _), bench in benches.items():  # the last bench per task (one per task in the usual run)
        results["eager_stage_seconds" if task == "text-to-video" else "i2v_eager_stage_seconds"] = bench.eager_seconds
    text = json.dumps(results, indent=2, default=float)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


class _Bench:
    """One task's eager pipeline, its eager stages timed once, and the per-folder row: artifact
    sizes, per-stage latency and max abs error on the stage's example inputs, the whole video."""

    def __init__(self, args):
        self.args, self.eager_stages, self.eager_seconds, self.eager_scores = args, None, {}, {}

    def _stages(self, spec):
        raise NotImplementedError

    def row(self, folder: Path) -> dict:
        from edgevid.export.manifest import artifact_bytes
        from edgevid.export.runner import open_exported

        args = self.args
        exp = open_exported(folder, threads=args.threads)
        m = exp.manifest
        if self.eager_stages is None:
            self.eager_stages = self._stages(m)
            for st in self.eager_stages:
                with torch.no_grad():
                    self.eager_seconds[st.name] = median_seconds(lambda st=st: st.module(*st.inputs), args.repeats)
        files = sum((folder / name).stat().st_size for name in m["files"])  # word table, time embeddings
        row = {"precision": m["precision"], "bytes": artifact_bytes(m) + files,
               "stage_bytes": {name: s["bytes"] for name, s in m["stages"].items()},
               "stage_files": {name: s["file"] for name, s in m["stages"].items()}, "file_bytes": files,
               "load_seconds": exp.load_seconds, "stages": {}}
        for st in self.eager_stages:
            inputs = [t.numpy() for t in st.inputs]
            run = exp.stages[st.name]
            with torch.no_grad():
                ref = st.module(*st.inputs)
            ref = ref if isinstance(ref, tuple) else (ref,)
            out = run(*inputs)
            err = max(float(np.abs(np.asarray(o) - r.numpy()).max()) for o, r in zip(out, ref))
            s = median_seconds(lambda: run(*inputs), args.repeats)
            row["stages"][st.name] = {"seconds": s, "vs_eager": s / self.eager_seconds[st.name],
                                      "max_abs_error": err, **({"delegation": m["stages"][st.name]["delegation"]}
                                                               if "delegation" in m["stages"][st.name] else {})}
        row.update(self.video(exp))
        return row


class Text2VidBench(_Bench):
    """"video": ExportedPipeline(prompt) end to end (tokenizer, the manifest's denoiser chunks, the
    decoder chunks) against EdgeVidPipeline(prompt) at the same noise; ShapesBench of both on the
    first --specs hold-out specs with the same noise per spec, new and legacy adherence."""

    def __init__(self, args):
        super().__init__(args)
        from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir

        # eager is the fp32 reference (on a CPU with native bf16, `auto` would pick bf16)
        self.pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model), precision="fp32")

    def _stages(self, m):
        from edgevid.export.stages import build_stages, video_spec

        spec = video_spec(self.pipe, m["video"]["num_frames"], m["video"]["height"], m["video"]["width"])
        return build_stages(self.pipe, spec, mobile=False)[0]

    def video(self, exp) -> dict:
        from edgevid.eval.shapesbench.benchmark import benchmark_specs
        from edgevid.eval.shapesbench.score import aggregate, score_video
        from edgevid.pipeline import frames_to_uint8

        args, pipe, row = self.args, self.pipe, {}
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
            fps = exp.manifest["video"]["fps"]
            mine, theirs = [], []
            for i, (sc, caption) in enumerate(benchmark_specs(n=max(200, args.specs))[:args.specs]):
                z = np.random.default_rng(1000 + i).standard_normal(exp.latent_shape, dtype=np.float32)
                mine.append(score_video(frames_to_uint8(exp(caption, noise=z)), sc, fps))
                if i not in self.eager_scores:
                    with torch.inference_mode():
                        self.eager_scores[i] = score_video(
                            frames_to_uint8(pipe(caption, latents=torch.from_numpy(z)).frames[0]), sc, fps)
                theirs.append(self.eager_scores[i])
            a, b = aggregate(mine), aggregate(theirs)
            row["shapesbench"] = {"specs": args.specs, "exported": a["prompt_adherence"], "eager": b["prompt_adherence"],
                                  "exported_legacy": a.get("legacy_prompt_adherence"),
                                  "eager_legacy": b.get("legacy_prompt_adherence"),
                                  "exported_aggregate": a, "eager_aggregate": b}
        return row


class Img2VidBench(_Bench):
    """"video": ExportedImg2VidPipeline(image) end to end (encoder, the numpy flow, the decoder
    chunks) against EdgeVidImg2VidPipeline(image) at the same noise and augmentation noise; the I2V
    evaluation (eval.i2v.score_i2v) of both on frame 0 of the first --specs hold-out scenes, the
    same noise per scene."""

    def __init__(self, args):
        super().__init__(args)
        from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline
        from edgevid.pipeline import resolve_model_dir

        self.pipe = EdgeVidImg2VidPipeline.from_pretrained(resolve_model_dir(args.i2v_model), precision="fp32")

    def _stages(self, m):
        from edgevid.export.stages_i2v import build_i2v_stages, img2vid_spec

        v = m["video"]
        spec = img2vid_spec(self.pipe, v["num_frames"], v["height"], v["width"], m["sampler"]["steps"])
        return build_i2v_stages(self.pipe, spec, mobile=False)[0]

    def _pair(self, exp, image: np.ndarray, seed: int):
        """(exported, eager) clips (T, H, W, 3) in [0, 1] of `image` at the noise of `seed`."""
        C, _, h, w = exp.latent_shape[1:]
        noise = np.random.default_rng(seed).standard_normal(exp.latent_shape, dtype=np.float32)
        aug = torch.randn((1, C, h, w), generator=torch.Generator().manual_seed(seed))  # what eager draws first
        return (lambda: exp(image, noise=noise, aug_noise=aug.numpy()),
                lambda: self.pipe(image, latents=torch.from_numpy(noise),
                                  generator=torch.Generator().manual_seed(seed)).frames[0])

    def video(self, exp) -> dict:
        from edgevid.data.world import render_video
        from edgevid.eval.i2v import aggregate_i2v, score_i2v
        from edgevid.eval.shapesbench import benchmark_specs
        from edgevid.pipeline import frames_to_uint8

        args, row, v = self.args, {}, exp.manifest["video"]
        T, H, W, fps = v["num_frames"], v["height"], v["width"], v["fps"]
        specs = benchmark_specs(max(200, args.specs, 1))[:max(args.specs, 1)]
        mine, theirs = self._pair(exp, render_video(specs[0][0], T, H, W, fps)[0], 0)
        video = mine()
        row["video_seconds"] = median_seconds(mine, max(1, args.repeats // 2))
        row["video_timings"] = dict(exp.timings)
        with torch.inference_mode():
            ref_video = theirs()
            row["eager_video_seconds"] = median_seconds(theirs, max(1, args.repeats // 2))
        row["video_max_abs_error"] = float(np.abs(video - ref_video).max())
        if args.specs:
            scores = {"exported": [], "eager": []}
            for i, (spec, _) in enumerate(specs):
                image = render_video(spec, T, H, W, fps)[0]
                mine, theirs = self._pair(exp, image, 1000 + i)
                scores["exported"].append(score_i2v(frames_to_uint8(mine()), image, spec, fps))
                if i not in self.eager_scores:
                    with torch.inference_mode():
                        self.eager_scores[i] = score_i2v(frames_to_uint8(theirs()), image, spec, fps)
                scores["eager"].append(self.eager_scores[i])
            a, b = aggregate_i2v(scores["exported"]), aggregate_i2v(scores["eager"])
            row["i2v_eval"] = {"scenes": args.specs, "exported": a["i2v_score"], "eager": b["i2v_score"],
                               "exported_aggregate": a, "eager_aggregate": b}
        return row


def _cpu() -> str:
    from edgevid.estimate import cpu_name

    return cpu_name()


if __name__ == "__main__":
    raise SystemExit(main())
