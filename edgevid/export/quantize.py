"""int8 stages for ExecuTorch's XNNPACK backend (PT2E quantization), and the int4 word table.

    linear  int8 weights per output channel, 8-bit dynamic activations (quantized per call)
    conv2d  fp32 (weights and activations)
    others  fp32 (norms, attention's matmuls, element-wise ops)

Why not the convolutions (measured on the windowed v0.10 default, docs/EXPORT.md "Where int8
loses it"): with static (calibrated) int8 activations their error compounds over the 25 chained
denoiser calls, 0.098 relative latent error against 0.018 for linears alone, and ShapesBench fell
0.169 -> 0.137. Dynamically quantized convolutions do not lower in ExecuTorch 1.5
(ChannelsLastTaggedReshapePass walks from the quantized input back to the graph's first input
and converts that 5-D tensor to channels-last). With dynamic activations only, nothing needs
calibration: the weights' scales come from the weights.
"""
from __future__ import annotations

import math

import numpy as np
import torch

WORD_TABLE_GROUP = 32  # int4 word table: one scale per 32 values of a row


def quantizer():
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)

    q = XNNPACKQuantizer()
    q.set_operator_type(torch.ops.aten.linear.default,
                        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    return q


def quantize_pt2e(module, example_inputs: tuple):
    """The module as a quantized graph module (PT2E prepare -> one call for the weight observers ->
    convert)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with torch.no_grad():
        graph = torch.export.export(module, example_inputs, strict=False).module()
        prepared = prepare_pt2e(graph, quantizer())
        prepared(*example_inputs)
    return convert_pt2e(prepared)


def quantize_table_int4(table: np.ndarray, group: int = WORD_TABLE_GROUP) -> tuple[np.ndarray, np.ndarray]:
    """(V, D) float -> packed int4 (V, D/2) uint8 and scales (V, D/g) float16, g = gcd(D, group):
    symmetric, one scale per g values of a row, values in [-7, 7] stored offset by 8, two per byte
    (low nibble = even column). `runner.dequantize_table_int4` inverts it to within half a step."""
    V, D = table.shape
    group = math.gcd(D, group)  # a narrow table (tests' tiny encoders): the largest group dividing its width
    if group % 2:
        raise ValueError(f"the table's width {D} must be even (two int4 values per byte)")
    groups = table.reshape(V, D // group, group)
    scales = (np.maximum(np.abs(groups).max(axis=2), 1e-8) / 7.0).astype(np.float16)
    q = np.clip(np.round(groups / scales[..., None].astype(np.float32)), -7, 7).astype(np.int16) + 8
    q = q.reshape(V, D).astype(np.uint8)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8), scales

