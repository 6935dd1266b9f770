"""Ahead-of-time compiled denoiser: the fast path's optional torch.compile backend, cached on disk.

`benchmarks/fast_path.py` measured torch.compile (inductor) 1.6x faster than eager for the
denoiser on the project CPU, but compiling takes ~3-4 minutes. So it is done once per machine
and model with AOTInductor, ahead of time, and the result is loaded in well under a second:

    edgevid compile                                 # once: ~/.cache/edgevid/compiled/unet-<key>-t<frames>.pt2
    edgevid generate "a red circle ..." --compiled  # uses them (opt-in: loading costs a cold process time)

    >>> paths = compile_unet(pipe)                  # {latent frames: package}
    >>> load_compiled_unet(pipe)                    # -> True: pipe.unet is now a CompiledUNet

The packages hold machine code for this CPU and this torch version, so they are never shipped:
the cache key covers the UNet weights, torch version, CPU and thread count. Each package is
specialised to one call shape: the model's default latent size (height/8 x width/8), batch 1
(no CFG), at most `max_text_tokens` prompt tokens, and **one number of latent frames**, one
package per chunk length the default video's plans use (`compiled_frame_counts`: 5 and 3 for
the windowed default's `__call__`, plus 1 for `stream`'s first frame). Any other call runs the
eager UNet, so results never depend on whether the packages are used.

Why static shapes and freezing (2026-12-07, AMD EPYC with native bf16, 2 threads, one
5-latent bf16 call, interleaved with eager in one process; `~/runs/scripts/aoti_try.py`): the
weights are frozen into the package (`inductor_configs={"freezing": True}`: constant folding and
oneDNN weight prepacking) and the frame count is static, 36.9 against 61.7 ms eager (0.60x).
The earlier package (frames dynamic 2..64, no freezing) was no faster than eager in the same
bench; dynamic frames with freezing measured 50.7 against 71.3 ms (0.71x).

A pipeline in bf16 (edgevid.precision) gets bf16 packages: the UNet's weights cast to bf16 once
and compiled so (the eager path runs the same matmuls under bf16 autocast). Each package serves
only calls in its own precision: a bf16 package runs inside the pipeline's bf16 autocast, an
fp32 one outside any autocast; anything else falls back to the eager UNet.
"""
from __future__ import annotations

import copy
import hashlib
import os
import platform
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MAX_TEXT_TOKENS = 64
PACKAGE_FORMAT = "static-frames+freezing"  # in the cache key: packages of the earlier format are not loaded


def cache_dir() -> Path:
    """$EDGEVID_CACHE or ~/.cache/edgevid, + /compiled."""
    root = os.environ.get("EDGEVID_CACHE") or Path.home() / ".cache" / "edgevid"
    return Path(root) / "compiled"


class DenoiserStep(nn.Module):
    """The denoiser call of the sampler with a precomputed time embedding (App. F): what is
    compiled here and what edgevid.export exports."""

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor, temb: Tensor) -> Tensor:
        return self.unet(x, None, context, context_mask, temb=temb)


def package_key(unet: nn.Module, latent_hw: tuple[int, int], threads: int,
                max_text_tokens: int = MAX_TEXT_TOKENS, precision: str = "fp32") -> str:
    """Hash of everything the compiled code depends on."""
    h = hashlib.sha256()
    for name, tensor in sorted(unet.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(repr(unet.config).encode())
    cpu = _cpu_flags()
    h.update(f"{torch.__version__}|{platform.machine()}|{cpu}|{threads}|{latent_hw}|{max_text_tokens}".encode())
    h.update(f"{precision}|{PACKAGE_FORMAT}".encode())
    return h.hexdigest()[:24]


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def compiled_frame_counts(pipe) -> tuple[int, ...]:
    """The latent-frame counts of the default video's denoiser calls: the chunk lengths of
    `__call__`'s plan and of `stream`'s (whose first chunk may be shorter)."""
    counts = set()
    for first in (0, pipe.defaults.stream_first_latent_frames):
        request = pipe.sampling_request("any prompt", first_window_latent_frames=first)
        counts.update(end - start for start, end in request.plan)
    return tuple(sorted(counts))


def package_paths(pipe, threads: int | None = None) -> dict[int, Path]:
    """{latent frames: where that package of `pipe`'s precision and this machine lives in the cache}."""
    threads = threads or torch.get_num_threads()
    key = package_key(_eager(pipe.unet), _latent_hw(pipe), threads, precision=pipe.precision)
    suffix = "-bf16" if pipe.precision == "bf16" else ""
    return {T: cache_dir() / f"unet-{key}-t{T}{suffix}.pt2" for T in compiled_frame_counts(pipe)}


def _dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if precision == "bf16" else torch.float32


def _latent_hw(pipe) -> tuple[int, int]:
    s = pipe.vae.config.spatial_compression
    return pipe.defaults.height // s, pipe.defaults.width // s


def _eager(unet: nn.Module) -> nn.Module:
    return unet.eager if isinstance(unet, CompiledUNet) else unet


def compile_unet(pipe, threads: int | None = None, force: bool = False, log=None) -> dict[int, Path]:
    """AOT-compile `pipe`'s denoiser, in the pipeline's precision, for its default latent size and
    each of `compiled_frame_counts(pipe)` into the cache (about a minute per package on a 2-core
    CPU); returns {latent frames: package path}. Packages already there (and not `force`) are kept.
    `log(message)` hears about each package before it is built."""
    paths = package_paths(pipe, threads)
    unet = None
    for T, path in paths.items():
        if path.is_file() and not force:
            continue
        if log is not None:
            log(f"compiling the {T}-latent-frame call -> {path.name}")
        if unet is None:  # frozen weights are constants of the package: a detached copy, in its precision
            unet = copy.deepcopy(_eager(pipe.unet)).eval().to(_dtype(pipe.precision)).requires_grad_(False)
        _compile_one(unet, T, _latent_hw(pipe), path)
    return paths


def _compile_one(unet: nn.Module, frames: int, latent_hw: tuple[int, int], path: Path) -> None:
    dtype = next(unet.parameters()).dtype
    cfg = unet.config
    x = torch.zeros(1, cfg.in_channels, frames, *latent_hw, dtype=dtype)
    context = torch.zeros(1, MAX_TEXT_TOKENS, cfg.text_dim, dtype=dtype)
    mask = torch.ones(1, MAX_TEXT_TOKENS, dtype=torch.bool)
    with torch.no_grad():
        temb = unet.time_embedding(torch.tensor([0.5], dtype=dtype))
        program = torch.export.export(DenoiserStep(unet).eval(), (x, context, mask, temb))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.pt2")
    torch._inductor.aoti_compile_and_package(program, package_path=str(tmp), inductor_configs={"freezing": True})
    os.replace(tmp, path)  # atomic: a half-written package is never loaded


class CompiledUNet(nn.Module):
    """The eager UNet plus its AOT-compiled steps, one per number of latent frames. Calls the
    compiled code when the call fits it (batch 1, the compiled latent size, a frame count it has
    a package for, <= MAX_TEXT_TOKENS tokens, a precomputed time embedding, no autograd), else
    the eager UNet. Prompt tokens are padded to MAX_TEXT_TOKENS with the mask False, which
    cross-attention ignores."""

    def __init__(self, eager: nn.Module, packages: dict[int, str | Path], latent_hw: tuple[int, int],
                 precision: str = "fp32"):
        super().__init__()
        self.eager = eager
        self.config = eager.config
        self.latent_hw = tuple(latent_hw)
        self.precision = precision  # the package's: it serves calls inside bf16 autocast iff "bf16"
        self.dtype = _dtype(precision)
        # Loaded on first use: `__call__` never needs `stream`'s one-frame package. (A package's
        # first call costs a cold process ~1.2 s: `edgevid bench`'s cold CLI, 4.96 s against 2.50 s eager.)
        self._packages = {int(T): Path(path) for T, path in packages.items()}
        self._runners = {}
        self.calls = {"compiled": 0, "eager": 0}

    def time_embedding(self, t: Tensor) -> Tensor:
        return self.eager.time_embedding(t)

    def fits(self, x: Tensor, context: Tensor, temb: Tensor | None) -> bool:
        B, _, T, H, W = x.shape
        return (temb is not None and B == 1 and (H, W) == self.latent_hw and x.device.type == "cpu"
                and T in self._packages and context.shape[1] <= MAX_TEXT_TOKENS
                and x.dtype == torch.float32 and not torch.is_grad_enabled()
                and self._autocast_matches())

    def _autocast_matches(self) -> bool:
        on = torch.is_autocast_enabled("cpu")
        if self.precision == "bf16":
            return on and torch.get_autocast_dtype("cpu") == torch.bfloat16
        return not on

    def forward(self, x: Tensor, t: Tensor, context: Tensor, context_mask: Tensor | None = None,
                temb: Tensor | None = None) -> Tensor:
        if not self.fits(x, context, temb):
            self.calls["eager"] += 1
            return self.eager(x, t, context, context_mask, temb=temb)
        self.calls["compiled"] += 1
        L = context.shape[1]
        mask = torch.ones(context.shape[:2], dtype=torch.bool) if context_mask is None else context_mask
        context = F.pad(context, (0, 0, 0, MAX_TEXT_TOKENS - L))  # (1, MAX_TEXT_TOKENS, D)
        mask = F.pad(mask, (0, MAX_TEXT_TOKENS - L), value=False)
        dt = self.dtype
        T = x.shape[2]
        if T not in self._runners:
            self._runners[T] = torch._inductor.aoti_load_package(str(self._packages[T]))
        return self._runners[T](x.to(dt).contiguous(), context.to(dt).contiguous(), mask.contiguous(),
                                temb.to(dt).contiguous())


def load_compiled_unet(pipe, threads: int | None = None) -> bool:
    """Swap in the cached compiled denoiser of `pipe` if `edgevid compile` built one for this
    machine, model, thread count and the pipeline's precision (every frame count of
    `compiled_frame_counts`); returns whether it did. Never compiles."""
    if isinstance(pipe.unet, CompiledUNet):
        if pipe.unet.precision == pipe.precision:
            return True
        pipe.unet = pipe.unet.eager  # a package of the other precision would never be called
    if pipe.device.type != "cpu":
        return False
    paths = package_paths(pipe, threads)
    if not all(path.is_file() for path in paths.values()):
        return False
    pipe.unet = CompiledUNet(pipe.unet, paths, _latent_hw(pipe), pipe.precision)
    return True
