"""Which float precision inference runs in, per CPU (issue 17, item 6).

Some of the project's CPUs multiply bf16 natively (AVX512-BF16 or AMX): there the denoiser
and the VAE decoder run about 1.6-2x faster under bf16 autocast. On the others bf16 matmuls
are emulated and 2x slower than fp32 (docs/REALTIME.md). So "auto", the default, picks bf16
only where the CPU has it:

    >>> resolve_precision("auto")      # "bf16" on a CPU with avx512_bf16 / amx_bf16, else "fp32"
    >>> pipe = EdgeVidPipeline.from_pretrained(path, precision="fp32")   # override

`EDGEVID_PRECISION=fp32|bf16|auto` sets the default for a whole process (the test suite pins
fp32 with it, so that its numbers do not depend on the CPU). Under bf16 only the denoiser's and
the decoder's matmuls and convolutions run in bf16 (torch.autocast); the text encoder, the
sampler's Euler updates and everything autocast keeps in fp32 (norms, softmax) stay fp32.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names


def cpu_flags() -> set[str]:
    """The CPU feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(flags: set[str] | None = None) -> bool:
    """Whether this CPU multiplies bf16 in hardware (x86 AVX512-BF16 or AMX-BF16). False on
    other architectures: torch's CPU bf16 kernels are only fast on those x86 extensions."""
    if flags is None:
        if platform.machine().lower() not in ("x86_64", "amd64") or not avx512_kernels():
            return False
        flags = cpu_flags()
    return any(f in flags for f in NATIVE_BF16_FLAGS)


def avx512_kernels() -> bool:
    """False when ATEN_CPU_CAPABILITY caps PyTorch's kernels below AVX512 ("default" or "avx2").
    Then the hardware's bf16 units go unused, and on an AMX CPU torch 2.13's bf16 attention
    even fails ("pack_vnni2 is only supported when avx512 is supported", found by CI's
    portable-kernel run, 2026-12-02)."""
    return os.environ.get("ATEN_CPU_CAPABILITY", "").lower() not in ("default", "avx2")


def resolve_precision(precision: str | None = None, device_type: str = "cpu") -> str:
    """"auto" / "fp32" / "bf16" (None: $EDGEVID_PRECISION, else "auto") -> "fp32" or "bf16".
    "auto" is bf16 on a CPU with native bf16 and fp32 everywhere else (CUDA included)."""
    if precision is None:
        precision = os.environ.get("EDGEVID_PRECISION") or "auto"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device_type == "cpu" and native_bf16() else "fp32"
    return precision


class PipelinePrecision:
    """The precision part of a pipeline whose denoiser is `self.unet` (EdgeVidPipeline,
    EdgeVidImg2VidPipeline): which precision it runs in and the autocast context for it."""

    def set_precision(self, precision: str | None = None):
        """"auto" | "fp32" | "bf16" (None: $EDGEVID_PRECISION or "auto") for the denoiser and the
        decoder; `self.precision` is then "fp32" or "bf16". The weights stay fp32 either way."""
        self.requested_precision = precision
        self.precision = resolve_precision(precision, self.device.type)
        return self

    def autocast(self):
        """The context the denoiser and decoder run in: bf16 autocast when `self.precision` is bf16."""
        import torch

        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    @property
    def device(self):
        return next(self.unet.parameters()).device
