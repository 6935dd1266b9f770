"""Ahead-of-time compiled denoiser: the fast path's optional torch.compile backend, cached on disk.

`benchmarks/fast_path.py` measured torch.compile (inductor) 1.6x faster than eager for the
denoiser on the project CPU, but compiling takes ~3-4 minutes. So it is done once per machine
and model with AOTInductor, ahead of time, and the result is loaded in well under a second:

    edgevid compile                                 # once: builds ~/.cache/edgevid/compiled/<key>.pt2
    edgevid generate "a red circle ..." --compiled  # uses it (opt-in: loading costs ~1.5 s per process)

    >>> path = compile_unet(pipe)                   # or load_compiled_unet(pipe) -> bool
    >>> pipe.unet = CompiledUNet(pipe.unet, path)

The package holds machine code for this CPU and this torch version, so it is never shipped:
its cache key covers the UNet weights, torch version, CPU and thread count. It is specialised
to one latent size (height/8 x width/8 of the model's default video), batch 1 (no CFG) and
at most `max_text_tokens` prompt tokens, with the number of latent frames dynamic (2..64);
any other call runs the eager UNet, so results never depend on whether it is used.

A pipeline in bf16 (edgevid.precision) gets a bf16 package: the UNet's weights cast to bf16 once
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
MIN_LATENT_FRAMES, MAX_LATENT_FRAMES = 2, 64


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
    if precision != "fp32":  # fp32 keys stay what they were before bf16 packages existed
        h.update(precision.encode())
    return h.hexdigest()[:24]


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def package_path(pipe, threads: int | None = None) -> Path:
    """Where `pipe`'s package for its precision and this machine lives in the cache."""
    threads = threads or torch.get_num_threads()
    key = package_key(_eager(pipe.unet), _latent_hw(pipe), threads, precision=pipe.precision)
    return cache_dir() / f"unet-{key}{'-bf16' if pipe.precision == 'bf16' else ''}.pt2"


def _dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if precision == "bf16" else torch.float32


def _latent_hw(pipe) -> tuple[int, int]:
    s = pipe.vae.config.spatial_compression
    return pipe.defaults.height // s, pipe.defaults.width // s


def _eager(unet: nn.Module) -> nn.Module:
    return unet.eager if isinstance(unet, CompiledUNet) else unet


def compile_unet(pipe, threads: int | None = None, force: bool = False) -> Path:
    """AOT-compile `pipe`'s denoiser, in the pipeline's precision, for its default latent size into
    the cache (minutes on a 2-core CPU); returns the package path. Already there (and not
    `force`): returns at once."""
    path = package_path(pipe, threads)
    if path.is_file() and not force:
        return path
    unet = _eager(pipe.unet).eval()
    dtype = _dtype(pipe.precision)
    cfg = unet.config
    h, w = _latent_hw(pipe)
    x = torch.zeros(1, cfg.in_channels, 8, h, w, dtype=dtype)
    context = torch.zeros(1, MAX_TEXT_TOKENS, cfg.text_dim, dtype=dtype)
    mask = torch.ones(1, MAX_TEXT_TOKENS, dtype=torch.bool)
    if dtype != torch.float32:  # weights cast once, into the package; the pipeline's own stay fp32
        unet = copy.deepcopy(unet).to(dtype).requires_grad_(False)
    with torch.no_grad():
        temb = unet.time_embedding(torch.tensor([0.5], dtype=dtype))
        frames = torch.export.Dim("latent_frames", min=MIN_LATENT_FRAMES, max=MAX_LATENT_FRAMES)
        program = torch.export.export(DenoiserStep(unet).eval(), (x, context, mask, temb),
                                      dynamic_shapes=({2: frames}, None, None, None))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.pt2")
    torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
    os.replace(tmp, path)  # atomic: a half-written package is never loaded
    return path


class CompiledUNet(nn.Module):
    """The eager UNet plus its AOT-compiled step. Calls the compiled code when the call fits it
    (batch 1, the compiled latent size, 2..64 latent frames, <= MAX_TEXT_TOKENS tokens, a
    precomputed time embedding, no autograd), else the eager UNet. Prompt tokens are padded to
    MAX_TEXT_TOKENS with the mask False, which cross-attention ignores."""

    def __init__(self, eager: nn.Module, package: str | Path, latent_hw: tuple[int, int], precision: str = "fp32"):
        super().__init__()
        self.eager = eager
        self.config = eager.config
        self.latent_hw = tuple(latent_hw)
        self.precision = precision  # the package's: it serves calls inside bf16 autocast iff "bf16"
        self.dtype = _dtype(precision)
        self._runner = torch._inductor.aoti_load_package(str(package))
        self.calls = {"compiled": 0, "eager": 0}

    def time_embedding(self, t: Tensor) -> Tensor:
        return self.eager.time_embedding(t)

    def fits(self, x: Tensor, context: Tensor, temb: Tensor | None) -> bool:
        B, _, T, H, W = x.shape
        return (temb is not None and B == 1 and (H, W) == self.latent_hw and x.device.type == "cpu"
                and MIN_LATENT_FRAMES <= T <= MAX_LATENT_FRAMES and context.shape[1] <= MAX_TEXT_TOKENS
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
        return self._runner(x.to(dt).contiguous(), context.to(dt).contiguous(), mask.contiguous(),
                            temb.to(dt).contiguous())


def load_compiled_unet(pipe, threads: int | None = None) -> bool:
    """Swap in the cached compiled denoiser of `pipe` if `edgevid compile` built one for this
    machine, model, thread count and the pipeline's precision; returns whether it did. Never compiles."""
    if isinstance(pipe.unet, CompiledUNet):
        if pipe.unet.precision == pipe.precision:
            return True
        pipe.unet = pipe.unet.eager  # a package of the other precision would never be called
    if pipe.device.type != "cpu":
        return False
    path = package_path(pipe, threads)
    if not path.is_file():
        return False
    pipe.unet = CompiledUNet(pipe.unet, path, _latent_hw(pipe), pipe.precision)
    return True
