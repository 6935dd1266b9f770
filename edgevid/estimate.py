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
        self.live = self.peak = 0

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


def trace(fn, *args) -> tuple[int, int]:
    """(peak bytes of activations, FLOPs) of fn(*args) on meta tensors."""
    live = _LiveBytes()
    attention = _FusedAttention(live)
    with torch.no_grad(), FlopCounterMode(display=False) as counter, live, attention:
        fn(*args)
    return live.peak, counter.get_total_flops() + attention.flops


def _meta_copy(module: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(getattr(module, "eager", module)).to("meta")  # never a compiled wrapper


def _cached_trace(key: tuple, run) -> tuple[int, int]:
    """A trace takes ~0.5-1.5 s (dispatch of every op in Python): kept in memory and in
    traces.json next to the rates, keyed by the config and the shape."""
    text = "|".join(map(str, (torch.__version__, *key)))
    if text not in _TRACES:
        path = rates_path().with_name("traces.json")
        stored = _read_json(path)
        if isinstance(stored.get(text), list) and len(stored[text]) == 2:
            _TRACES[text] = tuple(int(v) for v in stored[text])
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


_TRACES: dict[str, tuple[int, int]] = {}


def trace_unet(pipe, batch: int, latent_frames: int, latent_h: int, latent_w: int) -> tuple[int, int]:
    """(peak activation bytes, FLOPs) of one denoiser call on (batch, C, latent_frames, h, w)."""
    unet = getattr(pipe.unet, "eager", pipe.unet)
    def run():
        meta = _meta_copy(unet)
        c = unet.config
        x = torch.empty(batch, c.in_channels, latent_frames, latent_h, latent_w, device="meta")
        t = torch.empty(batch, device="meta")
        ctx = torch.empty(batch, TEXT_TOKENS, c.text_dim, device="meta")
        return trace(lambda: meta(x, t, ctx, None))

    return _cached_trace(("unet", _config_key(unet.config), batch, latent_frames, latent_h, latent_w), run)


def trace_decoder_chunk(pipe, batch: int, latent_frames: int, latent_h: int, latent_w: int) -> tuple[int, int]:
    """(peak activation bytes, FLOPs) of decoding one later chunk of `latent_frames` latents (4 frames each)."""
    vae = pipe.vae
    def run():
        from edgevid.models.vae import StreamingDecoder

        meta = _meta_copy(vae)
        z = torch.empty(batch, vae.config.latent_channels, latent_frames, latent_h, latent_w, device="meta")
        decoder = StreamingDecoder(meta)
        with torch.no_grad():
            decoder.push(z)  # the first chunk; the traced one carries its causal cache like every later chunk
        return trace(lambda: decoder.push(z))

    return _cached_trace(("vae", _config_key(vae.config), batch, latent_frames, latent_h, latent_w), run)


def _config_key(config) -> str:
    from edgevid.config import config_to_dict

    return hashlib.sha256(json.dumps(config_to_dict(config), sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- FLOP rates
def rates_path() -> Path:
    root = os.environ.get("EDGEVID_CACHE") or Path.home() / ".cache" / "edgevid"
    return Path(root) / "rates.json"


def machine_rates(pipe) -> dict[str, float]:
    """FLOP/s this machine reaches on the pipeline's UNet and decoder at the current thread count:
    measured once (a UNet call and a decoder chunk at 256x256, ~0.1-0.5 s) and cached."""
    unet = getattr(pipe.unet, "eager", pipe.unet)
    threads = torch.get_num_threads()
    key = "|".join([_cpu_name(), torch.__version__, os.environ.get("ATEN_CPU_CAPABILITY", ""), f"threads={threads}",
                    _config_key(unet.config), _config_key(pipe.vae.config)])
    cached = _read_json(rates_path())
    entry = cached.get(key)
    if isinstance(entry, dict) and all(isinstance(entry.get(k), (int, float)) and entry[k] > 0 for k in ("unet", "vae")):
        return entry
    entry = _measure_rates(pipe)
    cached[key] = entry
    _write_json(rates_path(), cached)
    return entry


def _measure_rates(pipe) -> dict[str, float]:
    from edgevid.models.vae import StreamingDecoder

    unet, vae = getattr(pipe.unet, "eager", pipe.unet), pipe.vae
    s = pipe.vae.config.spatial_compression
    h = w = max(pipe.size_multiple, 256) // s  # the default video's latent size
    k = min(4, max(1, pipe.defaults.window_latent_frames or 4))
    c = unet.config
    x = torch.randn(1, c.in_channels, k, h, w)
    t = torch.full((1,), 0.5)
    ctx = torch.randn(1, TEXT_TOKENS, c.text_dim)
    z = torch.randn(1, vae.config.latent_channels, 2, h, w)
    with torch.inference_mode():
        unet_s = _best_time(lambda: unet(x, t, ctx, None))

        def decode():
            decoder = StreamingDecoder(vae)
            decoder.push(z[:, :, :1])
            decoder.push(z[:, :, 1:])

        vae_s = _best_time(decode)
    first_flops = trace_decoder_chunk(pipe, 1, 1, h, w)[1]  # decode() pushes 1 then 1 latent frames
    return {"unet": trace_unet(pipe, 1, k, h, w)[1] / unet_s, "vae": 2 * first_flops / vae_s}


def _best_time(fn, repeats: int = 2) -> float:
    fn()  # warm-up: kernels chosen, buffers allocated
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-6)


def _cpu_name() -> str:
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
    unet_peak, unet_flops = trace_unet(pipe, 2 * batch if cfg else batch, longest, h, w)
    n_dec = max(1, min(pipe.vae.config.decode_chunk_frames or K, K))
    dec_peak, dec_flops = trace_decoder_chunk(pipe, batch, n_dec, h, w)

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
    peak = latents + max(unet_peak + sampler, dec_peak + chunk_frames + per_frame * num_frames + writer)
    parts = {"latents": latents, "unet_window": unet_peak, "sampler_state": sampler, "decoder_chunk": dec_peak,
             "frames": chunk_frames + per_frame * num_frames, "writer": writer}

    rates = rates or machine_rates(pipe)
    steps = num_inference_steps
    calls = sum(end - start for start, end in plan) / longest * steps  # shorter chunks cost proportionally less
    denoise_s = calls * unet_flops / rates["unet"]
    decode_s = K / n_dec * dec_flops / rates["vae"]
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
