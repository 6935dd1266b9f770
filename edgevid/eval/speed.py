"""Speed measurement for `edgevid bench`: stage times, streaming, memory, FLOP rates, cold start, peers.

Everything here times real work on the machine it runs on; nothing is estimated. Three paths
generate the same prompt at the same size in one process:
  - "default": the shipped (or given) model with its own steps and guidance;
  - "teacher": 25 steps with classifier-free guidance and the teacher's full decoder;
  - "diffusers peer": what a user would assemble from diffusers instead: `UNet3DConditionModel`
    of about our denoiser's parameter count and an image `AutoencoderKL` (per-frame latents,
    as AnimateDiff-style pipelines use), random weights (weights do not change speed), our
    text tokens, 25 Euler steps with CFG, the same output size.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

PROMPT = "a red circle bouncing on a blue background"


def matmul_peak_gflops(dtype: torch.dtype = torch.float32, n: int = 1024, min_seconds: float = 0.5) -> float:
    """Achieved GFLOP/s of an n x n @ n x n matmul in `dtype` on the current threads (best of the runs)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    best, spent = float("inf"), 0.0
    while spent < min_seconds:
        t0 = time.perf_counter()
        a @ b
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return 2 * n**3 / best / 1e9


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def denoiser_gflop_per_video(pipe, call_shapes: list[tuple[int, ...]]) -> float:
    """FLOPs of one video's denoising: the sum over its denoiser calls (each window's steps, both
    CFG branches when guidance != 1, attention included), given the latent shape of every call."""
    from edgevid.eval.flops import count_flops

    per_shape = {}
    for shape in set(call_shapes):
        ctx = torch.zeros(shape[0], 12, pipe.unet.config.text_dim)
        per_shape[shape] = count_flops(pipe.unet, torch.zeros(shape), torch.full((shape[0],), 0.5), ctx)
    return sum(per_shape[shape] for shape in call_shapes) / 1e9


def record_denoiser_calls(pipe) -> tuple[list[tuple[int, ...]], object]:
    """(shapes, handle): from now on the latent shape of every denoiser call is appended to
    `shapes`, until `handle.remove()`."""
    shapes: list[tuple[int, ...]] = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    return shapes, handle


@dataclass
class PathTimes:
    text_s: float
    denoise_s: float
    decode_s: float
    write_s: float

    @property
    def total_s(self) -> float:
        return self.text_s + self.denoise_s + self.decode_s + self.write_s


def time_pipeline_stages(pipe, num_frames: int, height: int, width: int, steps: int, guidance: float,
                         out_dir: Path, seed: int = 0) -> PathTimes:
    """One warm generation, stage by stage, on the path `pipe(...)` takes: text encoding,
    denoising (window by window when the model generates in windows), decoding, MP4 writing."""
    from edgevid.io.video import export_to_video

    request = pipe.sampling_request(PROMPT, num_frames, height, width, steps, guidance)
    pipe.prompt_cache.clear()  # time text encoding as for a new prompt, not a cache hit
    with torch.inference_mode():
        t0 = time.perf_counter()
        velocity = pipe.encode_prompt(list(request.prompts), request.negative_prompt, request.guidance_scale)
        t1 = time.perf_counter()
        noise = pipe.prepare_latents(1, num_frames, height, width, torch.Generator().manual_seed(seed))
        latents = torch.cat(list(pipe.denoise_chunks(velocity, noise, request)), dim=2)
        t2 = time.perf_counter()
        frames = pipe.decode_latents(latents, output_type="uint8")  # (1, T, H, W, 3), as `edgevid generate`
        t3 = time.perf_counter()
    export_to_video(frames[0], out_dir / "bench.mp4", fps=pipe.defaults.fps)
    t4 = time.perf_counter()
    return PathTimes(t1 - t0, t2 - t1, t3 - t2, t4 - t3)


def time_to_first_frame(pipe, num_frames: int, height: int, width: int, steps: int, guidance: float) -> float:
    """Seconds from the call to the first decoded frame of `pipe.stream` (the rest is drained untimed)."""
    pipe.prompt_cache.clear()
    t0 = time.perf_counter()
    it = pipe.stream(PROMPT, num_frames=num_frames, height=height, width=width, num_inference_steps=steps,
                     guidance_scale=guidance, generator=torch.Generator().manual_seed(0))
    next(it)
    ttff = time.perf_counter() - t0
    for _ in it:
        pass
    return ttff


def cold_cli_seconds(model: str, out: Path, extra: list[str], threads: int) -> float:
    """Wall seconds of a fresh `edgevid generate` process: interpreter start, imports, load, generate, write."""
    cmd = [sys.executable, "-c", "import sys; from edgevid.cli import main; sys.exit(main(sys.argv[1:]))",
           "generate", PROMPT, "-o", str(out), "--model", model, "--quiet", "--threads", str(threads), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"cold CLI run failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return dt


_COLD_START_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import edgevid.cli, edgevid.pipeline
t2 = time.perf_counter()
torch.set_num_threads(int(sys.argv[2]))
pipe = edgevid.pipeline.EdgeVidPipeline.from_pretrained(edgevid.pipeline.resolve_model_dir(sys.argv[1]))
t3 = time.perf_counter()
pipe.prompt_cache.encode(["a red circle"])
t4 = time.perf_counter()
print(json.dumps({"import_torch_s": t1 - t0, "import_edgevid_s": t2 - t1, "load_pipeline_s": t3 - t2,
                  "first_text_encoding_s": t4 - t3}))
"""


def cold_start_breakdown(model: str, threads: int) -> dict:
    """Where a fresh process's start-up goes: `import torch`, importing edgevid's CLI and pipeline,
    loading the pipeline (safetensors + text encoder), the first prompt encoding; plus the bare
    interpreter start (`python -c pass`)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
    interpreter_s = time.perf_counter() - t0
    proc = subprocess.run([sys.executable, "-c", _COLD_START_SCRIPT, model, str(threads)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"cold-start breakdown failed: {proc.stderr.strip()[-500:]}")
    return {"interpreter_s": interpreter_s, **json.loads(proc.stdout.strip().splitlines()[-1])}


# ---------------------------------------------------------------------------------- diffusers peer
@dataclass(frozen=True)
class PeerConfig:
    """A diffusers UNet3DConditionModel + AutoencoderKL of about our sizes (random weights)."""
    unet_channels: tuple[int, ...] = (32, 64, 160)  # 7.4 M parameters, our denoiser has 6.75 M
    unet_head_dim: int = 8
    vae_channels: tuple[int, ...] = (32, 64, 128, 128)  # 8x spatial, like ours; 4 latent channels (SD)
    norm_groups: int = 16
    decode_chunk: int = 8  # frames per AutoencoderKL.decode call (bounds memory)


PEER_PRESETS = {"full": PeerConfig(),
                "tiny": PeerConfig(unet_channels=(8, 16), unet_head_dim=8, vae_channels=(8, 8, 8, 8), norm_groups=8)}


def build_diffusers_peer(cfg: PeerConfig, text_dim: int):
    from diffusers import AutoencoderKL, UNet3DConditionModel

    n = len(cfg.unet_channels)
    unet = UNet3DConditionModel(
        in_channels=4, out_channels=4, block_out_channels=cfg.unet_channels, layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D",) * (n - 1) + ("DownBlock3D",),
        up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * (n - 1),
        cross_attention_dim=text_dim, attention_head_dim=cfg.unet_head_dim, norm_num_groups=cfg.norm_groups).eval()
    m = len(cfg.vae_channels)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=cfg.vae_channels,
                        down_block_types=("DownEncoderBlock2D",) * m, up_block_types=("UpDecoderBlock2D",) * m,
                        layers_per_block=1, norm_num_groups=cfg.norm_groups).eval()
    return unet, vae


def time_diffusers_peer(cfg: PeerConfig, text_encoder, num_frames: int, height: int, width: int, steps: int,
                        guidance: float, out_dir: Path) -> tuple[PathTimes, int]:
    """25 Euler steps with CFG over per-frame latents (B, 4, T, H/8, W/8), then per-frame decoding."""
    from edgevid.io.video import export_to_video

    unet, vae = build_diffusers_peer(cfg, text_encoder.dim)
    params = sum(p.numel() for p in unet.parameters())
    factor = 2 ** (len(cfg.vae_channels) - 1)
    with torch.inference_mode():
        t0 = time.perf_counter()
        cond, uncond = text_encoder.encode([PROMPT]), text_encoder.encode([""])
        length = max(cond.tokens.shape[1], uncond.tokens.shape[1])
        pad = lambda x: torch.nn.functional.pad(x, (0, 0, 0, length - x.shape[1]))
        context = torch.cat([pad(cond.tokens), pad(uncond.tokens)])  # (2, L, D)
        t1 = time.perf_counter()
        x = torch.randn(1, 4, num_frames, height // factor, width // factor, generator=torch.Generator().manual_seed(0))
        ts = torch.linspace(1, 0, steps + 1)
        for i in range(steps):
            v = unet(torch.cat([x, x]), (ts[i] * 1000).expand(2), encoder_hidden_states=context).sample
            v_cond, v_uncond = v.chunk(2)
            x = x + (ts[i + 1] - ts[i]) * (v_uncond + guidance * (v_cond - v_uncond))
        t2 = time.perf_counter()
        z = x[0].transpose(0, 1) / vae.config.scaling_factor  # (T, 4, h, w)
        frames = torch.cat([vae.decode(z[i:i + cfg.decode_chunk]).sample for i in range(0, len(z), cfg.decode_chunk)])
        t3 = time.perf_counter()
    video = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    export_to_video(video, out_dir / "peer.mp4", fps=24)
    t4 = time.perf_counter()
    return PathTimes(t1 - t0, t2 - t1, t3 - t2, t4 - t3), params


# ---------------------------------------------------------------------------------- the whole run
def run_bench(model: str = "default", teacher: str | None = "teacher", peer: str | None = "full",
              num_frames: int | None = None, height: int | None = None, width: int | None = None,
              repeats: int = 3, threads: int | None = None, cold: bool = True, compiled: bool = False,
              precision: str | None = None, compare_precision: bool = True, log=print) -> dict:
    """All measurements of `edgevid bench` in one process (plus one subprocess for the cold CLI).

    The "default" row is the eager path in `precision` ("auto": bf16 on a CPU with native bf16,
    else fp32; edgevid.precision). With `compare_precision`, a "default_fp32" or "default_bf16" row
    times the same pipeline in the other precision, with the frames' max difference between them. With `compiled`, a "default_compiled" row times the same
    pipeline with the AOT-compiled denoiser (`edgevid.compiled`; built first if not cached, and
    the build time reported), with its own time to first frame, cold CLI and output parity."""
    from edgevid.io.video import DEFAULT_X264_PRESET
    from edgevid.estimate import cpu_name
    from edgevid.pipeline import EdgeVidPipeline, resolve_model_dir
    from edgevid.precision import native_bf16

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    t_load0 = time.perf_counter()
    pipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(model), precision=precision)
    load_s = time.perf_counter() - t_load0
    d = pipe.defaults
    T, H, W = num_frames or d.num_frames, height or d.height, width or d.width
    video_s = T / d.fps
    result = {"settings": {"model": model, "num_frames": T, "height": H, "width": W, "fps": d.fps,
                           "video_seconds": video_s, "threads": threads, "repeats": repeats,
                           "precision": pipe.precision, "native_bf16": native_bf16(),
                           "torch": torch.__version__, "cpu": cpu_name(), "x264_preset": DEFAULT_X264_PRESET},
              "peaks": {"matmul_fp32_gflops": matmul_peak_gflops(torch.float32),
                        "matmul_bf16_gflops": matmul_peak_gflops(torch.bfloat16)}}
    log(f"matmul peak: fp32 {result['peaks']['matmul_fp32_gflops']:.0f} GFLOP/s, "
        f"bf16 {result['peaks']['matmul_bf16_gflops']:.0f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = {}

        def measure(name, p, steps, guidance, gflop=None):
            shapes, hook = record_denoiser_calls(p)
            try:
                time_pipeline_stages(p, T, H, W, steps, guidance, tmp)  # warm-up, and the calls it makes
            finally:
                hook.remove()
            runs = [time_pipeline_stages(p, T, H, W, steps, guidance, tmp, seed=i) for i in range(repeats)]
            row = _median_times(runs)
            gflop = denoiser_gflop_per_video(p, shapes) if gflop is None else gflop
            row.update(steps=steps, guidance=guidance, denoiser_calls=len(shapes),
                       denoiser_call_latent_frames=sorted({s[2] for s in shapes}), denoiser_gflop_per_video=gflop,
                       denoiser_gflops_achieved=gflop / row["denoise_s"])
            paths[name] = row
            log(f"{name}: {row['total_s']:.2f} s (text {row['text_s']:.2f}, denoise {row['denoise_s']:.2f} in "
                f"{len(shapes)} denoiser calls, decode {row['decode_s']:.2f}, write {row['write_s']:.2f})")
            return row

        row = measure("default", pipe, d.num_inference_steps, d.guidance_scale)
        row["load_s"] = load_s
        row["real_time_factor"] = row["total_s"] / video_s
        ttffs = [time_to_first_frame(pipe, T, H, W, d.num_inference_steps, d.guidance_scale) for _ in range(repeats)]
        row["time_to_first_frame_s"] = statistics.median(ttffs)
        row["stream_first_latent_frames"] = d.stream_first_latent_frames  # the short first window of stream()
        row["peak_rss_mb"] = peak_rss_mb()  # before any other path is loaded
        row["fraction_of_fp32_peak"] = row["denoiser_gflops_achieved"] / result["peaks"]["matmul_fp32_gflops"]
        row["fraction_of_bf16_peak"] = row["denoiser_gflops_achieved"] / result["peaks"]["matmul_bf16_gflops"]
        extra = ["--num-frames", str(T), "--height", str(H), "--width", str(W)]
        if cold:
            colds = [cold_cli_seconds(model, tmp / f"cold{i}.mp4", extra, threads)
                     for i in range(repeats)]
            row["cold_cli_s"] = statistics.median(colds)
            row["cold_cli_s_all"] = [round(c, 3) for c in colds]
            row["cold_start"] = cold_start_breakdown(model, threads)
            log(f"cold CLI (fresh process, import to written file): {row['cold_cli_s']:.2f} s")
        if compare_precision:
            _measure_other_precision(pipe, paths, measure, T, H, W, log)
        if compiled:
            _measure_compiled(pipe, paths, measure, result, T, H, W, repeats, threads, model, extra, tmp, cold, log)
        if teacher:
            tpipe = EdgeVidPipeline.from_pretrained(resolve_model_dir(teacher))
            measure("teacher", tpipe, 25, 5.0)
            del tpipe
        if peer:
            cfg = PEER_PRESETS[peer]
            time_diffusers_peer(cfg, pipe.text_encoder, T, H, W, 2, 5.0, tmp)  # warm-up (2 steps)
            runs, params = [], 0
            for _ in range(max(1, repeats if peer == "tiny" else 1)):
                times, params = time_diffusers_peer(cfg, pipe.text_encoder, T, H, W, 25, 5.0, tmp)
                runs.append(times)
            prow = _median_times(runs)
            prow.update(steps=25, guidance=5.0, unet_params_m=params / 1e6, runs=len(runs))
            paths["diffusers_peer"] = prow
            log(f"diffusers peer: {prow['total_s']:.2f} s (denoise {prow['denoise_s']:.2f}, decode {prow['decode_s']:.2f})")
    for name, prow in paths.items():
        prow["speedup_of_default"] = prow["total_s"] / paths["default"]["total_s"]
        if "default_compiled" in paths:
            prow["speedup_of_default_compiled"] = prow["total_s"] / paths["default_compiled"]["total_s"]
    result["paths"] = paths
    return result


def _measure_other_precision(pipe, paths, measure, T, H, W, log) -> None:
    """The "default_fp32" / "default_bf16" row: the same pipeline in the precision it does not run in,
    and how far its frames are from the default row's (same seed)."""
    d, mine = pipe.defaults, pipe.precision
    other = "fp32" if mine == "bf16" else "bf16"
    with torch.inference_mode():
        kw = dict(num_frames=T, height=H, width=W, generator=torch.Generator().manual_seed(0))
        ref = pipe(PROMPT, **kw).frames
        pipe.set_precision(other)
        out = pipe(PROMPT, **dict(kw, generator=torch.Generator().manual_seed(0))).frames
    try:
        row = measure(f"default_{other}", pipe, d.num_inference_steps, d.guidance_scale,
                      gflop=paths["default"]["denoiser_gflop_per_video"])
    finally:
        pipe.set_precision(mine)
    diff = abs(out - ref)
    row.update(precision=other, frames_max_abs_diff_vs_default=float(diff.max()),
               frames_mean_abs_diff_vs_default=float(diff.mean()))
    paths["default"]["precision"] = mine
    log(f"default in {other}: {row['total_s']:.2f} s; frames differ from {mine} by at most "
        f"{row['frames_max_abs_diff_vs_default']:.3f} (mean {row['frames_mean_abs_diff_vs_default']:.4f})")


def _measure_compiled(pipe, paths, measure, result, T, H, W, repeats, threads, model, extra, tmp, cold, log) -> None:
    """The "default_compiled" row: the same pipeline with the AOT-compiled denoiser."""
    from edgevid.compiled import compile_unet, load_compiled_unet, package_paths

    d = pipe.defaults
    cached = all(p.is_file() for p in package_paths(pipe, threads).values())
    t0 = time.perf_counter()
    compile_unet(pipe, threads)
    build_s = time.perf_counter() - t0
    with torch.inference_mode():  # parity: the same seed through the eager and the compiled denoiser
        kw = dict(num_frames=T, height=H, width=W, output_type="latent")
        ref = pipe(PROMPT, generator=torch.Generator().manual_seed(0), **kw).frames
        load_compiled_unet(pipe, threads)
        out = pipe(PROMPT, generator=torch.Generator().manual_seed(0), **kw).frames
    row = measure("default_compiled", pipe, d.num_inference_steps, d.guidance_scale,
                  gflop=paths["default"]["denoiser_gflop_per_video"])
    row.update(compile_s=0.0 if cached else build_s, package_was_cached=cached,
               latents_max_abs_diff_vs_eager=float((out - ref).abs().max()),
               compiled_calls=dict(pipe.unet.calls), real_time_factor=row["total_s"] / result["settings"]["video_seconds"],
               fraction_of_fp32_peak=row["denoiser_gflops_achieved"] / result["peaks"]["matmul_fp32_gflops"],
               fraction_of_bf16_peak=row["denoiser_gflops_achieved"] / result["peaks"]["matmul_bf16_gflops"])
    ttffs = [time_to_first_frame(pipe, T, H, W, d.num_inference_steps, d.guidance_scale) for _ in range(repeats)]
    row["time_to_first_frame_s"] = statistics.median(ttffs)
    if cold:
        colds = [cold_cli_seconds(model, tmp / f"coldc{i}.mp4", extra + ["--compiled"], threads) for i in range(repeats)]
        row["cold_cli_s"] = statistics.median(colds)
        row["cold_cli_s_all"] = [round(c, 3) for c in colds]
    pipe.unet = pipe.unet.eager  # the other paths share nothing with it, but leave the pipeline as it was
    log(f"default, compiled denoiser: {row['total_s']:.2f} s; latents differ from eager by at most "
        f"{row['latents_max_abs_diff_vs_eager']:.1e}")


def _median_times(runs: list[PathTimes]) -> dict:
    return {"text_s": statistics.median(r.text_s for r in runs), "denoise_s": statistics.median(r.denoise_s for r in runs),
            "decode_s": statistics.median(r.decode_s for r in runs), "write_s": statistics.median(r.write_s for r in runs),
            "total_s": statistics.median(r.total_s for r in runs), "total_s_all": [round(r.total_s, 3) for r in runs]}


def format_table(result: dict) -> str:
    s = result["settings"]
    lines = [f"{s['num_frames']} frames {s['width']}x{s['height']} at {s['fps']} fps ({s['video_seconds']:.1f} s of video), "
             f"{s['threads']} threads, torch {s['torch']}, {s['cpu']}",
             f"default precision: {s.get('precision', 'fp32')} (native bf16 on this CPU: "
             f"{'yes' if s.get('native_bf16') else 'no'})",
             "", "| path | steps | CFG | text s | denoise s | decode s | write s | total s | default is x faster |"
             + (" compiled default is x faster |" if "default_compiled" in result["paths"] else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if "default_compiled" in result["paths"] else "")]
    for name, r in result["paths"].items():
        lines.append(f"| {name} | {r['steps']} | {r['guidance']:g} | {r['text_s']:.2f} | {r['denoise_s']:.2f} | "
                     f"{r['decode_s']:.2f} | {r['write_s']:.2f} | {r['total_s']:.2f} | {r['speedup_of_default']:.1f} |"
                     + (f" {r['speedup_of_default_compiled']:.1f} |" if "speedup_of_default_compiled" in r else ""))
    d = result["paths"]["default"]
    for other in ("fp32", "bf16"):
        if f"default_{other}" in result["paths"]:
            o = result["paths"][f"default_{other}"]
            lines += ["", f"precision: {s.get('precision')} is {o['total_s'] / d['total_s']:.2f}x the speed of {other} "
                          f"(denoise {o['denoise_s'] / d['denoise_s']:.2f}x, decode {o['decode_s'] / d['decode_s']:.2f}x); "
                          f"frames differ by at most {o['frames_max_abs_diff_vs_default']:.3f} "
                          f"(mean {o['frames_mean_abs_diff_vs_default']:.4f})"]
    if "default_compiled" in result["paths"]:
        c = result["paths"]["default_compiled"]
        lines += ["", f"compiled denoiser (edgevid compile, built in {c['compile_s']:.0f} s"
                      f"{', cached' if c['package_was_cached'] else ''}): real-time factor {c['real_time_factor']:.2f}, "
                      f"time to first frame {c['time_to_first_frame_s']:.2f} s"
                      + (f", cold CLI {c['cold_cli_s']:.2f} s" if "cold_cli_s" in c else "")
                      + f", latents within {c['latents_max_abs_diff_vs_eager']:.1e} of eager"]
    lines += ["", f"real-time factor (wall / video seconds): {d['real_time_factor']:.2f}",
              f"time to first frame (streaming): {d['time_to_first_frame_s']:.2f} s",
              f"peak RSS: {d['peak_rss_mb']:.0f} MB",
              f"denoiser: {d['denoiser_calls']} calls ({d['steps']} steps; latent frames per call: "
              f"{', '.join(map(str, d['denoiser_call_latent_frames']))}), {d['denoiser_gflop_per_video']:.1f} GFLOP "
              f"per video, {d['denoiser_gflops_achieved']:.1f} GFLOP/s "
              f"achieved = {100 * d['fraction_of_fp32_peak']:.0f}% of the fp32 matmul peak "
              f"({result['peaks']['matmul_fp32_gflops']:.0f}), {100 * d['fraction_of_bf16_peak']:.0f}% of bf16 "
              f"({result['peaks']['matmul_bf16_gflops']:.0f})"]
    if "cold_cli_s" in d:
        lines.append(f"cold CLI, import to written file: {d['cold_cli_s']:.2f} s")
    if "cold_start" in d:
        c = d["cold_start"]
        lines.append(f"  of which start-up: interpreter {c['interpreter_s']:.2f} s, import torch {c['import_torch_s']:.2f} s, "
                     f"import edgevid {c['import_edgevid_s']:.2f} s, load pipeline {c['load_pipeline_s']:.2f} s, "
                     f"first text encoding {c['first_text_encoding_s']:.2f} s")
    return "\n".join(lines)
