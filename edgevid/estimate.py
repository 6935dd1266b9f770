"""Peak memory and wall time of a generation, estimated before it starts (SnapGen-V App. A's
"eliminate OOM states", at inference).

    >>> est = estimate_generation(pipe, num_frames=121, height=256, width=256)
    >>> est.peak_bytes, est.seconds          # growth of the process's memory, seconds on this machine

Memory: the latents of the whole clip, the activations of one UNet call on one window and of one
decoder chunk, and the frame buffers of the writer. The two networks are run once on the "meta"
device (shapes only, no arithmetic, well under a second at any size), counting the bytes of the
tensors alive at each moment; attention is counted as the CPU's fused kernel allocates it (the
output only, never the (L, L) scores). Everything but a constant is linear in the number of
pixels and, for the frame buffers, in the number of frames, which is how `largest_fitting`
names the largest size that fits.

Time: FLOPs per UNet call and per decoder chunk (torch's FlopCounterMode, attention included, as
edgevid/eval/flops.py counts it) over FLOP rates measured once per machine, model and thread count
(a few tenths of a second) and cached in $EDGEVID_CACHE or ~/.cache/edgevid/rates.json.

The long commands get the same from the same traces (`WorkEstimate`): eval is N generations plus
scoring; a training step is its network calls at the step's bucket and batch, a back-propagated
call costing ~3x its forward FLOPs (the backward computes gradients of inputs and weights, ~2x)
and keeping what autograd saves until the backward (traced with the graph held); plus weights, gradients, AdamW's two
moments and the EMA of what trains.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import platform
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

# Process memory outside the tensors counted here: the allocator's slack, oneDNN/x264 buffers,
# libraries loaded on the first call (measured ~40-90 MB on the 2-core machine; rounded up).
OVERHEAD_BYTES = 150 * 2**20
# x264 ultrafast writes 121 frames of 256x256 in 0.13-0.20 s (io/video.py): ~2.5e-8 s per pixel;
# slower presets up to ~5x that (veryslow more, but it is never the default).
WRITE_S_PER_PIXEL = {"ultrafast": 2.5e-8, "superfast": 4e-8, "veryfast": 5e-8}
WRITE_S_PER_PIXEL_SLOW = 1.3e-7
TEXT_TOKENS = 16  # prompt length assumed by the traces (text memory is negligible next to video)
# ShapesBench scoring (segmentation, tracks, shape and motion tests): ~1e-6 s per video pixel,
# measured 0.8-1.4e-6 at 17x64x64 to 49x256x256 on the 2-core machine; eval scores each video
# and the ground-truth render of its spec.
SCORE_S_PER_PIXEL = 1.2e-6
RENDER_S_PER_PIXEL = 2e-8  # the procedural world's renderer, 0.3-2.2e-8 s per pixel (same machine)
BACKWARD = 2  # FLOPs of a backward pass per forward FLOP (gradients of the inputs and of the weights)
TRAINED_COPIES = 5  # per trained parameter: the weights, their gradients, AdamW's two moments, the EMA


@dataclass(frozen=True)
class Estimate:
    peak_bytes: int  # growth of the process's resident memory
    seconds: float  # denoise + decode + write
    denoise_s: float
    decode_s: float
    write_s: float
    parts: dict = field(default_factory=dict)  # bytes per component (see estimate_generation)
    per_frame_bytes: int = 0  # the part of peak_bytes that grows with the frame count
    per_pixel_bytes: float = 0.0  # peak_bytes / (H * W), without the overhead: all of it scales with area
    denoise_calls: float = 0.0  # denoiser calls (steps x chunks), for progress bars
    latent_frames: int = 0  # latent frames decoded

    def describe(self) -> str:
        return f"~{format_bytes(self.peak_bytes)} of memory, ~{format_seconds(self.seconds)}"


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB", "MB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"  # unreachable


def format_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"


# ----------------------------------------------------------------------------- available memory
def available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable of /proc/meminfo, capped by the cgroup
    v2 limit (memory.max - memory.current) when one is set; None where neither can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


# ----------------------------------------------------------------------------- tracing on meta
class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of newly allocated tensors alive at each moment (views and in-place ops
    allocate nothing); `peak` is the most at any one time."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(a) for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t._base is None and id(t) not in inputs:
                self.allocate(t.untyped_storage().nbytes())
                weakref.finalize(t, self.free, t.untyped_storage().nbytes())
        return out

    def allocate(self, n: int) -> None:
        self.live += n
        self.total += n
        self.peak = max(self.peak, self.live)

    def free(self, n: int) -> None:
        self.live -= n


class _FusedAttention(TorchFunctionMode):
    """On meta, scaled_dot_product_attention decomposes into matmuls with (L, L) scores, which the
    CPU's fused kernel never materialises: return its output's shape instead, and count its FLOPs
    (QK^T and AV: 4 * B * heads * Lq * Lk * d) by hand."""

    def __init__(self, live: _LiveBytes):
        super().__init__()
        self.live, self.flops = live, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.nn.functional.scaled_dot_product_attention:
            q, k, v = args[:3]
            self.flops += 4 * q.shape[:-2].numel() * q.shape[-2] * k.shape[-2] * q.shape[-1]
            return q.new_empty((*q.shape[:-1], v.shape[-1]))
        return func(*args, **(kwargs or {}))


class Trace(NamedTuple):
    peak: int  # bytes of activations alive at the worst moment (no autograd)
    flops: int
    allocated: int  # bytes allocated in all
    kept: int  # with autograd on: the most alive at once while the graph holds what the backward needs


def trace(fn, *args, grad: bool = False) -> Trace:
    """Trace of fn(*args) on meta tensors. With grad, fn runs a second time with autograd on and
    its output (so its graph, so every tensor saved for the backward) held to the end: `kept` is
    the peak of a back-propagated forward; without, `kept` equals `peak`."""
    def run(enabled: bool):
        live = _LiveBytes()
        attention = _FusedAttention(live)
        with torch.set_grad_enabled(enabled), FlopCounterMode(display=False) as counter, live, attention:
            out = fn(*args)
            peak = live.peak
        del out
        return peak, counter.get_total_flops() + attention.flops, live.total

    peak, flops, total = run(False)
    return Trace(peak, flops, total, run(True)[0] if grad else peak)


def _meta_copy(module: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(getattr(module, "eager", module)).to("meta")  # never a compiled wrapper


def _cached_trace(key: tuple, run) -> Trace:
    """A trace takes ~0.5-1.5 s (dispatch of every op in Python): kept in memory and in
    traces.json next to the rates, keyed by the config and the shape."""
    text = "|".join(map(str, (torch.__version__, *key)))
    if text not in _TRACES:
        path = rates_path().with_name("traces.json")
        stored = _read_json(path)
        if isinstance(stored.get(text), list) and len(stored[text]) == len(Trace._fields):
            _TRACES[text] = Trace(*(int(v) for v in stored[text]))
        else:
            _TRACES[text] = run()
            stored[text] = list(_TRACES[text])
            _write_json(path, stored)
    return _TRACES[text]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict) -> None:
    from edgevid.io.atomic import atomic_write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    except OSError:
        pass  # a read-only home: measure again next time


_TRACES: dict[str, Trace] = {}


def trace_unet(unet, batch: int, latent_frames: int, latent_h: int, latent_w: int) -> Trace:
    """One denoiser call on (batch, C, latent_frames, h, w)."""
    unet = getattr(unet, "eager", unet)

    def run():
        meta = _meta_copy(unet)
        c = unet.config
        x = torch.empty(batch, c.in_channels, latent_frames, latent_h, latent_w, device="meta")
        t = torch.empty(batch, device="meta")
        ctx = torch.empty(batch, TEXT_TOKENS, c.text_dim, device="meta")
        return trace(lambda: meta(x, t, ctx, None))

    return _cached_trace(("unet", _config_key(unet.config), batch, latent_frames, latent_h, latent_w), run)


def trace_decoder_chunk(vae, batch: int, latent_frames: int, latent_h: int, latent_w: int) -> Trace:
    """Decoding one later chunk of `latent_frames` latents (4 frames each)."""
    def run():
        from edgevid.models.vae import StreamingDecoder

        meta = _meta_copy(vae)
        z = torch.empty(batch, vae.config.latent_channels, latent_frames, latent_h, latent_w, device="meta")
        decoder = StreamingDecoder(meta)
        with torch.no_grad():
            decoder.push(z)  # the first chunk; the traced one carries its causal cache like every later chunk
        return trace(lambda: decoder.push(z))

    return _cached_trace(("vae", _config_key(vae.config), batch, latent_frames, latent_h, latent_w), run)


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _config_key(config) -> str:
    from edgevid.config import config_to_dict

    return hashlib.sha256(json.dumps(config_to_dict(config), sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- FLOP rates
def rates_path() -> Path:
    root = os.environ.get("EDGEVID_CACHE") or Path.home() / ".cache" / "edgevid"
    return Path(root) / "rates.json"


def machine_rates(pipe) -> dict[str, float]:
    """FLOP/s this machine reaches on the pipeline's UNet and decoder at the current thread count,
    at the default video's latent size (256x256)."""
    h = w = max(pipe.size_multiple, 256) // pipe.vae.config.spatial_compression
    k = min(4, max(1, pipe.defaults.window_latent_frames or 4))
    return {"unet": unet_rate(pipe.unet, k, h, w), "vae": vae_rate(pipe.vae, h, w)}


def unet_rate(unet, latent_frames: int, latent_h: int, latent_w: int) -> float:
    """FLOP/s of one denoiser call on (1, C, latent_frames, h, w): measured once (~0.1-0.5 s), cached."""
    unet = getattr(unet, "eager", unet)
    c = unet.config

    def measure():
        x, t = torch.randn(1, c.in_channels, latent_frames, latent_h, latent_w), torch.full((1,), 0.5)
        ctx = torch.randn(1, TEXT_TOKENS, c.text_dim)
        with torch.inference_mode():
            seconds = _best_time(lambda: unet(x, t, ctx, None))
        return trace_unet(unet, 1, latent_frames, latent_h, latent_w).flops / seconds

    return _cached_rate(("unet", _config_key(c), latent_frames, latent_h, latent_w), measure)


def vae_rate(vae, latent_h: int, latent_w: int) -> float:
    """FLOP/s of the streaming decoder on two latent frames of h x w (1 + 4 frames): measured once, cached."""
    from edgevid.models.vae import StreamingDecoder

    def measure():
        z = torch.randn(1, vae.config.latent_channels, 2, latent_h, latent_w)

        def decode():
            decoder = StreamingDecoder(vae)
            decoder.push(z[:, :, :1])
            decoder.push(z[:, :, 1:])

        with torch.inference_mode():
            seconds = _best_time(decode)
        return 2 * trace_decoder_chunk(vae, 1, 1, latent_h, latent_w).flops / seconds  # two 1-latent pushes

    return _cached_rate(("vae", _config_key(vae.config), latent_h, latent_w), measure)


def _cached_rate(key: tuple, measure) -> float:
    """A rate keyed by this machine, torch, the SIMD kernels and the thread count, then `key`."""
    text = "|".join(map(str, (cpu_name(), torch.__version__, os.environ.get("ATEN_CPU_CAPABILITY", ""),
                              f"threads={torch.get_num_threads()}", *key)))
    cached = _read_json(rates_path())
    rate = cached.get(text)
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0:
        return float(rate)
    cached[text] = rate = measure()
    _write_json(rates_path(), cached)
    return rate


def _best_time(fn, repeats: int = 2) -> float:
    fn()  # warm-up: kernels chosen, buffers allocated
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-6)


def cpu_name() -> str:
    """The CPU's model name (keys the cached rates; `edgevid bench` reports it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ----------------------------------------------------------------------------- the estimate
def estimate_generation(pipe, num_frames: int, height: int, width: int, num_inference_steps: int,
                        guidance_scale: float, window_latent_frames: int, overlap_latent_frames: int,
                        first_window_latent_frames: int = 0, batch: int = 1, stream: bool = False,
                        output_suffix: str = ".mp4", preset: str = "ultrafast",
                        rates: dict[str, float] | None = None) -> Estimate:
    """Memory growth and wall time of `pipe(...)` + writing the file (or `pipe.stream` + the
    streaming writer when `stream`), for inputs `pipe.check_inputs` accepts."""
    from edgevid.flow.sample import chunk_plan

    C, K, h, w = pipe.vae.latent_shape(num_frames, height, width)
    cfg = guidance_scale != 1.0
    plan = chunk_plan(K, window_latent_frames, overlap_latent_frames, first_window_latent_frames)
    longest = max(end - start for start, end in plan)
    unet = trace_unet(pipe.unet, 2 * batch if cfg else batch, longest, h, w)
    n_dec = max(1, min(pipe.vae.config.decode_chunk_frames or K, K))
    dec = trace_decoder_chunk(pipe.vae, batch, n_dec, h, w)

    f32 = 4
    pixels = batch * height * width  # of one video frame
    latent_frame = batch * C * h * w * f32
    latents = 3 * K * latent_frame  # the noise, the denoised pieces, their concatenation
    # Euler state of one window: x, v (and CFG's two halves), the next x, the prefix copy
    sampler = (6 if cfg else 4) * longest * latent_frame
    if stream:  # each chunk's frames: decoded, in [0, 1], x255, uint8; then written and dropped
        per_frame = 0
        chunk_frames = (3 * 3 * f32 + 3) * pixels * pipe.vae.config.temporal_compression * n_dec
    else:  # the whole video: the chunk list and its concatenation, later the [0, 1] frames and their
        # x255 copy (two float copies at any time), plus the uint8 video handed to the writer
        per_frame = (2 * 3 * f32 + 3) * pixels
        chunk_frames = 0
    writer = 16 * 3 * height * width  # x264's reference and lookahead frames / Pillow's palette image
    peak = latents + max(unet.peak + sampler, dec.peak + chunk_frames + per_frame * num_frames + writer)
    parts = {"latents": latents, "unet_window": unet.peak, "sampler_state": sampler, "decoder_chunk": dec.peak,
             "frames": chunk_frames + per_frame * num_frames, "writer": writer}

    rates = rates or machine_rates(pipe)
    steps = num_inference_steps
    calls = sum(end - start for start, end in plan) / longest * steps  # shorter chunks cost proportionally less
    denoise_s = calls * unet.flops / rates["unet"]
    decode_s = K / n_dec * dec.flops / rates["vae"]
    per_pixel = WRITE_S_PER_PIXEL.get(preset, WRITE_S_PER_PIXEL_SLOW)
    write_s = batch * num_frames * height * width * per_pixel
    total = peak + OVERHEAD_BYTES
    return Estimate(peak_bytes=int(total), seconds=denoise_s + decode_s + write_s, denoise_s=denoise_s,
                    decode_s=decode_s, write_s=write_s, parts=parts, per_frame_bytes=int(per_frame),
                    per_pixel_bytes=peak / (height * width), denoise_calls=len(plan) * steps, latent_frames=K)


def largest_fitting(est: Estimate, available: int, num_frames: int, height: int, width: int, multiple: int,
                    temporal: int) -> str:
    """What fits in `available` bytes: the largest frame count at this size (when frames are what
    grows), else the largest size of this aspect ratio at this frame count."""
    budget = available - OVERHEAD_BYTES
    fixed = est.peak_bytes - OVERHEAD_BYTES - est.per_frame_bytes * num_frames
    hints = []
    if est.per_frame_bytes and budget > fixed:
        k = int((budget - fixed) // est.per_frame_bytes - 1) // temporal
        if k >= 0 and 1 + temporal * k < num_frames:
            hints.append(f"at {width}x{height} up to {1 + temporal * k} frames fit")
    if budget > 0 and est.per_pixel_bytes > 0:
        scale = math.sqrt(budget / (est.per_pixel_bytes * height * width))
        h, w = int(height * scale) // multiple * multiple, int(width * scale) // multiple * multiple
        if h >= multiple and w >= multiple and (h, w) != (height, width):
            hints.append(f"at {num_frames} frames up to {w}x{h} fits")
    return "; ".join(hints) if hints else "nothing this size fits; free memory or use a smaller size"


# ----------------------------------------------------------------------------- long commands
@dataclass(frozen=True)
class WorkEstimate:
    """Memory growth and wall time of eval, train, distill or compress."""
    peak_bytes: int
    seconds: float
    how: str  # how the time adds up, e.g. "4000 steps x ~1.2 s"

    def describe(self) -> str:
        return f"~{format_seconds(self.seconds)} ({self.how}) and ~{format_bytes(self.peak_bytes)} of memory"


def estimate_eval(pipe, num_videos: int, rates: dict[str, float] | None = None, **generation) -> WorkEstimate:
    """ShapesBench on `num_videos` videos (edgevid.eval.shapesbench.evaluate): one generation
    each (estimate_generation's keywords, without writing a file), both scorings, and all the
    videos kept in memory for the report."""
    est = estimate_generation(pipe, rates=rates, **generation)
    pixels = generation["num_frames"] * generation["height"] * generation["width"]
    per_video = est.denoise_s + est.decode_s + 2 * pixels * SCORE_S_PER_PIXEL + pixels * RENDER_S_PER_PIXEL
    peak = est.peak_bytes - est.parts["writer"] + num_videos * 3 * pixels  # uint8 (T, H, W, 3) each
    return WorkEstimate(int(peak), num_videos * per_video, f"{num_videos} videos x ~{_short(per_video)}")


def estimate_training(steps: int, buckets, batch: int, passes, trained_parameters: int, render_pixels: float = 0.0,
                      once=(), once_pixels: float = 0.0, extra_bytes: int = 0,
                      available: int | None = None) -> WorkEstimate:
    """A training run of `steps` steps, each drawing one of `buckets` (frames, height, width)
    uniformly. `passes` are one step's network calls as (module, call(module, batch, bucket,
    device), back-propagated). `render_pixels`: pixels a step renders. `once`: work done once
    (a latent cache, teacher samples) as (module, call, batch, bucket, times) forward passes;
    `once_pixels`: the pixels it renders; `extra_bytes`: memory it keeps.
    The rates are measured (once per machine, cached) only when the peak fits in `available`
    bytes: a refused run measures nothing, its seconds are nan."""
    per_bucket_flops, peaks = [], []
    for bucket in buckets:
        traces = [(trace_call(module, call, batch, bucket, grad=back), back) for module, call, back in passes]
        per_bucket_flops.append([tr.flops * (1 + BACKWARD * back) for tr, back in traces])
        kept = sum(tr.kept for tr, back in traces if back)  # alive from each forward until its backward
        pixels = batch * math.prod(bucket)
        peaks.append(kept + max(tr.peak for tr, _ in traces) + 3 * 3 * 4 * pixels)  # + the clips: 3 float copies
    peak = int(max(peaks) + TRAINED_COPIES * 4 * trained_parameters + extra_bytes + OVERHEAD_BYTES)
    if available is not None and peak > available:
        return WorkEstimate(peak, math.nan, "not timed: it does not fit")
    largest = max(buckets, key=math.prod)  # where most of the time goes
    rates = [call_rate(module, call, batch, largest) for module, call, _ in passes]
    per_step = sum(sum(f / r for f, r in zip(flops, rates)) for flops in per_bucket_flops) / len(buckets)
    per_step += render_pixels * RENDER_S_PER_PIXEL
    once_s = once_pixels * RENDER_S_PER_PIXEL + sum(n * trace_call(m, call, nb, b).flops / call_rate(m, call, nb, b)
                                                    for m, call, nb, b, n in once if n)
    how = f"{steps} steps x ~{_short(per_step)}" + (f" + ~{_short(once_s)} once" if once_s > 0 else "")
    return WorkEstimate(peak, once_s + steps * per_step, how)


def _short(seconds: float) -> str:
    return f"{seconds:.2g} s" if seconds < 10 else format_seconds(seconds)


def trace_call(module, call, batch: int, bucket: tuple, grad: bool = False) -> Trace:
    """A training pass `call(module, batch, bucket, device)` traced on meta (with autograd on when
    it is back-propagated); cached by the module's architecture (its repr: layer types and
    widths), the call, batch, bucket and grad."""
    def run():
        meta = _meta_copy(module)
        return trace(lambda: call(meta, batch, bucket, "meta"), grad=grad)

    return _cached_trace(("call", call.__name__, _module_key(module), batch, *bucket, grad), run)


def call_rate(module, call, batch: int, bucket: tuple) -> float:
    """FLOP/s of a training pass's forward at its own batch and bucket, measured once per machine
    (cached; a warm-up and one timed call). Each pass gets its own rate at its own size: the
    narrow full-resolution convolutions of a VAE run at half its latent-resolution rate, and a
    clip that outgrows the CPU's caches at half the rate of a small one (measured)."""
    def measure():
        with torch.inference_mode():
            seconds = _best_time(lambda: call(module, batch, bucket, "cpu"), repeats=1)
        return trace_call(module, call, batch, bucket).flops / seconds

    return _cached_rate(("call", call.__name__, _module_key(module), batch, *bucket), measure)


def _module_key(module) -> str:
    module = getattr(module, "eager", module)
    return hashlib.sha256(repr(module).encode()).hexdigest()[:16]


# The passes of the training commands: call(module, batch, bucket, device) on random inputs. A
# bucket is a clip's (frames, height, width); the UNet's latents are the VAE's of that clip.
def _latents(vae_config, bucket) -> tuple[int, int, int]:
    T, H, W = bucket
    s, tc = vae_config.spatial_compression, vae_config.temporal_compression
    return 1 + (T - 1) // tc, H // s, W // s


def _denoiser_pass(vae_config):
    def unet(m, batch, bucket, device):
        c = m.config
        return m(torch.randn(batch, c.in_channels, *_latents(vae_config, bucket), device=device),
          torch.rand(batch, device=device), torch.randn(batch, TEXT_TOKENS, c.text_dim, device=device), None)
    return unet


def _discriminator_pass(vae_config, text_dim: int):
    def disc(m, batch, bucket, device):
        return m(torch.randn(batch, vae_config.latent_channels, *_latents(vae_config, bucket), device=device),
          torch.rand(batch, device=device), torch.randn(batch, TEXT_TOKENS, text_dim, device=device), None,
          torch.randn(batch, text_dim, device=device))
    return disc


def vae_encode(m, batch, bucket, device):
    return m.encode(torch.rand(batch, 3, *bucket, device=device) * 2 - 1)


def vae_decode(m, batch, bucket, device):  # all latent frames at once, as training decodes
    return m.decode(torch.randn(batch, *m.latent_shape(*bucket), device=device), chunk_frames=0)


def vae_forward(m, batch, bucket, device):  # encode + decode: a VAE training step's forward
    return m(torch.rand(batch, 3, *bucket, device=device) * 2 - 1)


def _rendered(cfg) -> float:
    """Pixels a step renders: its batch of clips at the bucket's size (before any crop)."""
    return cfg.batch_size * sum(map(math.prod, cfg.buckets)) / len(cfg.buckets)


def _crop(cfg, bucket) -> tuple[int, int, int]:
    return (bucket[0], cfg.crop_size, cfg.crop_size) if cfg.crop_size else tuple(bucket)


def _check_buckets(vae, unet, buckets) -> None:
    """A ValueError for a bucket the VAE or the UNet cannot take, before anything is traced."""
    f = unet.config.downsample_factor
    for bucket in buckets:
        _, _, h, w = vae.latent_shape(*bucket)
        if h % f or w % f:
            raise ValueError(f"bucket {bucket[1]}x{bucket[2]}: latent {h}x{w} must be divisible by {f} "
                             "(the UNet's downsampling)")


def _latent_batches(vae, cfg, steps: int) -> dict:
    """estimate_training's keywords for LatentBatches (train t2v, distill): the encoder on every
    step's rendered batch, or with cache_latents each clip rendered and encoded once per bucket
    and its latent kept."""
    if not cfg.cache_latents:
        return dict(passes=[(vae, vae_encode, False)], render_pixels=_rendered(cfg))
    clips = min(cfg.num_clips, steps * cfg.batch_size)
    return dict(passes=[], once=[(vae, vae_encode, 1, b, clips) for b in cfg.buckets],
                once_pixels=clips * sum(math.prod(b) for b in cfg.buckets),
                extra_bytes=sum(clips * 4 * math.prod(vae.latent_shape(*b)) for b in cfg.buckets))


def _teacher_data(teacher, vae, cfg, steps: int, cache_dir) -> dict:
    """estimate_training's keywords for distill's teacher samples (--teacher-data): no encoder and
    no rendering per step; once, the teacher's guided sampler on every sample the remaining steps
    draw that `cache_dir` does not hold (counted exactly: the draws are seeded), `chunk` clips a
    call; the samples (x0 and noise) stay in memory. An upper bound where the sampler runs in
    bf16 (fp32 rates)."""
    from edgevid.distill.synthetic import CHUNK, samples_to_draw

    todo = samples_to_draw(cfg.seed, cfg.buckets, cfg.num_clips, cfg.batch_size,
                           range(cfg.steps - steps, cfg.steps), cache_dir)
    cfg_batch = 2 if cfg.teacher_guidance != 1.0 else 1  # conditional and unconditional in one call
    denoise = _denoiser_pass(vae.config)
    once = [(teacher, denoise, CHUNK * cfg_batch, b, math.ceil(n / CHUNK) * cfg.teacher_sample_steps)
            for b, n in todo.items()]
    drawn = min(cfg.num_clips, steps * cfg.batch_size)
    return dict(passes=[], once=once,
                extra_bytes=sum(drawn * 2 * 4 * math.prod(vae.latent_shape(*b)) for b in cfg.buckets))


def estimate_train_t2v(unet, vae, cfg, steps: int, available: int | None = None) -> WorkEstimate:
    """`edgevid train t2v`: per step the UNet forward and backward on the batch's latents."""
    _check_buckets(vae, unet, cfg.buckets)
    data = _latent_batches(vae, cfg, steps)
    passes = [(unet, _denoiser_pass(vae.config), True), *data.pop("passes")]
    return estimate_training(steps, cfg.buckets, cfg.batch_size, passes, _parameters(unet), available=available, **data)


def estimate_distill(teacher, vae, cfg, steps: int, available: int | None = None, *,
                     student=None, cache_dir: str | Path | None = None) -> WorkEstimate:
    """`edgevid distill`: per step the student (default the teacher's architecture) forward and
    backward; with the adversarial loss three discriminator calls (real and fake for the heads,
    their frozen backbone without gradients; fake for the generator, back-propagated); with
    --teacher-targets the teacher's guided solve from each x_t. The data: rendered and encoded
    clips, or (--teacher-data) the teacher's samples not yet in `cache_dir`."""
    from edgevid.distill.discriminator import Discriminator
    from edgevid.distill.train import generator_timesteps
    from edgevid.flow.schedule import time_grid

    teacher = getattr(teacher, "eager", teacher)
    student = teacher if student is None else getattr(student, "eager", student)
    _check_buckets(vae, teacher, cfg.buckets)
    data = _teacher_data(teacher, vae, cfg, steps, cache_dir) if cfg.teacher_data else _latent_batches(vae, cfg, steps)
    passes, trained = [(student, _denoiser_pass(vae.config), True), *data.pop("passes")], _parameters(student)
    if cfg.teacher_targets:  # per example, the teacher's grid steps below its t (averaged over the student's grid)
        grid = time_grid(cfg.teacher_sample_steps, cfg.teacher_shift)
        calls = sum(int((grid < float(t) - 1e-6).sum()) for t in generator_timesteps(cfg)) / cfg.num_steps
        passes += [(teacher, _denoiser_pass(vae.config), False)] * round(calls * (2 if cfg.teacher_guidance != 1 else 1))
    if cfg.adv_weight > 0:
        disc = Discriminator(teacher, cfg.head, cfg.head_channels)
        disc_pass = _discriminator_pass(vae.config, teacher.config.text_dim)
        passes += [(disc, disc_pass, False)] * 2 + [(disc, disc_pass, True)]
        trained += _parameters(disc.heads)
    return estimate_training(steps, cfg.buckets, cfg.batch_size, passes, trained, available=available, **data)


def estimate_train_vae(vae, cfg, steps: int, available: int | None = None) -> WorkEstimate:
    """`edgevid train vae`: per step the VAE forward (encode + decode) and backward on the batch."""
    for bucket in cfg.buckets:
        vae.latent_shape(*_crop(cfg, bucket))
    return estimate_training(steps, [_crop(cfg, b) for b in cfg.buckets], cfg.batch_size, [(vae, vae_forward, True)],
                             _parameters(vae), _rendered(cfg), available=available)


def estimate_compress_decoder(teacher, student, cfg, steps: int, available: int | None = None) -> WorkEstimate:
    """`edgevid compress decoder`: per step the frozen encoder and full decoder without gradients,
    the student decoder forward and backward."""
    for bucket in cfg.buckets:
        teacher.latent_shape(*_crop(cfg, bucket))
    passes = [(teacher, vae_encode, False), (teacher, vae_decode, False), (student, vae_decode, True)]
    decoder = _parameters(student.temporal_decoder) + _parameters(student.spatial_decoder)
    return estimate_training(steps, [_crop(cfg, b) for b in cfg.buckets], cfg.batch_size, passes, decoder,
                             _rendered(cfg), available=available)
