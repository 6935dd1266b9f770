"""FLOPs per forward pass, attention included (DESIGN.md).

torch.utils.flop_counter.FlopCounterMode has no formula for the fused CPU attention kernel and
counts it as 0; under the MATH backend scaled_dot_product_attention decomposes into matmuls,
which it does count. One multiply-add = 2 FLOPs.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: nn.Module, *inputs, **kwargs) -> int:
    """FLOPs of one `model(*inputs, **kwargs)` call (no grad, MATH attention backend)."""
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(*inputs, **kwargs)
    return counter.get_total_flops()
