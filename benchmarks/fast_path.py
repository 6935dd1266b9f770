"""Which inference backend is fastest on this CPU? (issue 5, "fast inference path")

Times the two hot spots of the default video (121 frames, 256x256 -> latents 8 x 31 x 32 x 32)
under each candidate and checks its output against PyTorch eager fp32 (the reference):

    unet     one denoiser call, precomputed time embedding, no CFG (the 4-step student's step)
    decoder  the spatial decoder on the 121 frames of the temporal decoder's output (the
             per-frame 2D part is > 90 % of decoding)

Candidates: eager fp32 (also on 1 thread, to check the thread setting); channels_last weights;
bf16 autocast; torch.compile (inductor; slow to compile, so only with --compile); ONNX Runtime
on the CPU provider after a torch.onnx dynamo export (--onnx; needs `pip install onnxruntime
onnx onnxscript`).

    .venv/bin/python benchmarks/fast_path.py --threads 2 --repeats 5 --onnx --compile \\
        --output runs/eval/fast_path.json

Every figure is the median of --repeats warm calls in this process; compile and export times
are reported separately. Nothing else should run on the machine meanwhile.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from edgevid.compiled import DenoiserStep
from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def max_err(a, b) -> float:
    return float((torch.as_tensor(a).float() - torch.as_tensor(b).float()).abs().max())


def onnx_session(module: nn.Module, inputs: tuple, dynamic_shapes, path: Path, threads: int):
    """Export with torch.onnx (dynamo) and open an ONNX Runtime CPU session -> (run(inputs), export s)."""
    import onnxruntime as ort

    t0 = time.perf_counter()
    torch.onnx.export(module, inputs, str(path), dynamo=True, dynamic_shapes=dynamic_shapes, optimize=True)
    export_s = time.perf_counter() - t0
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(*xs):
        return session.run(None, {n: x.numpy() for n, x in zip(names, xs)})[0]
    return run, export_s


def candidates(module: nn.Module, inputs: tuple, dynamic_shapes, args, tmp: Path, name: str) -> dict:
    """name -> (callable, setup seconds) for every backend asked for."""
    out = {"eager_fp32": (lambda: module(*inputs), 0.0)}
    if args.threads > 1:  # thread setting: is the second core worth it?
        def one_thread():
            torch.set_num_threads(1)
            try:
                return module(*inputs)
            finally:
                torch.set_num_threads(args.threads)
        out["eager_fp32_1_thread"] = (one_thread, 0.0)
    cl = _channels_last_copy(module)
    out["channels_last"] = (lambda: cl(*inputs), 0.0)

    def bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return module(*inputs)
    out["bf16_autocast"] = (bf16, 0.0)
    if args.compile:
        compiled = torch.compile(module)
        t0 = time.perf_counter()
        compiled(*inputs)  # compiles
        out["torch_compile"] = (lambda: compiled(*inputs), time.perf_counter() - t0)
    if args.onnx:
        run, export_s = onnx_session(module, inputs, dynamic_shapes, tmp / f"{name}.onnx", args.threads)
        out["onnxruntime"] = (lambda: run(*inputs), export_s)
    return out


def _channels_last_copy(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module).to(memory_format=torch.channels_last)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--latent-frames", type=int, default=31, help="31 = the default 121-frame video")
    p.add_argument("--onnx", action="store_true", help="also ONNX Runtime (export takes 1-2 min)")
    p.add_argument("--compile", action="store_true", help="also torch.compile (compiling takes minutes)")
    p.add_argument("--output", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(args.model))
    vae, unet = pipe.vae, pipe.unet
    K, C = args.latent_frames, unet.config.in_channels
    h = w = pipe.defaults.height // vae.config.spatial_compression
    g = torch.Generator().manual_seed(0)
    text = pipe.prompt_cache.encode(["a red circle moving right on a blue background"])
    with torch.inference_mode():
        temb = unet.time_embedding(torch.tensor([0.75]))
        z = torch.randn(1, C, K, h, w, generator=g)
        frames = vae.temporal_decoder(vae.denormalize(z))[0].transpose(0, 1).contiguous()  # (T, Cs, h, w)
    temb = temb.clone()
    Kd, Ld = torch.export.Dim("K", min=1, max=64), torch.export.Dim("L", min=1, max=128)
    hd, wd, Nd = torch.export.Dim("h", min=1, max=32), torch.export.Dim("w", min=1, max=32), torch.export.Dim("N", min=1)
    jobs = {
        "unet": (DenoiserStep(unet).eval(), (z, text.tokens, text.mask, temb),
                 ({2: Kd, 3: 4 * hd, 4: 4 * wd}, {1: Ld}, {1: Ld}, None)),
        "decoder": (vae.spatial_decoder.eval(), (frames,), ({0: Nd, 2: 4 * hd, 3: 4 * wd},)),
    }
    result = {"settings": {**vars(args), "output": str(args.output) if args.output else None,
                           "torch": torch.__version__}, "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for job, (module, inputs, dyn) in jobs.items():
            with torch.inference_mode():
                ref = module(*inputs)
            rows = {}
            for name, (fn, setup_s) in candidates(module, inputs, dyn, args, Path(tmp), job).items():
                with torch.inference_mode():
                    out = fn()
                    seconds = median_seconds(fn, args.repeats)
                rows[name] = {"seconds": seconds, "setup_s": setup_s, "max_abs_err": max_err(out, ref)}
                print(f"{job:8s} {name:14s} {seconds:7.3f} s  setup {setup_s:6.1f} s  "
                      f"max |err| {rows[name]['max_abs_err']:.2e}", flush=True)
            base = rows["eager_fp32"]["seconds"]
            for row in rows.values():
                row["speedup_vs_eager"] = base / row["seconds"]
            result["results"][job] = rows
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
