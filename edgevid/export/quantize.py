"""int8 stages for ExecuTorch's XNNPACK backend (PT2E quantization), calibrated on real inputs.

    linear  int8 weights per output channel, 8-bit dynamic activations (quantized per call)
    conv2d  int8 weights per output channel, static int8 activations (scales from calibration)

Convolutions get static activations because XNNPACK's lowering of dynamically quantized
convolutions (ExecuTorch 1.5, ChannelsLastTaggedReshapePass) walks from the quantized input back
to the graph's first input and converts that to channels-last, which fails for the stages'
5-D inputs. Everything else (norms, attention's matmuls, element-wise ops) stays fp32. The
static scales come from running the stages as the runner does (text -> Euler loop -> chunked
decoding) on a few training-style prompts, never the benchmark's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CALIBRATION_PROMPTS = 4


def calibration_prompts(n: int = CALIBRATION_PROMPTS) -> list[str]:
    """Captions of the training stream's scenes (ShapesBench's "train" split), not the hold-out."""
    from edgevid.eval.shapesbench import benchmark_specs

    return [caption for _, caption in benchmark_specs(n, split="train")[:n]]


@torch.no_grad()
def calibration_inputs(pipe, stages: dict, constants: dict, spec, prompts: list[str], seed: int = 0) -> dict:
    """{stage name: [input tuples]}: what each stage receives while making the videos of `prompts`
    (the runner's own loops, over the stages' eager modules)."""
    import numpy as np

    from edgevid.export.runner import decode_chunks, sample_chunks

    C, K, h, w = pipe.vae.latent_shape(spec.num_frames, spec.height, spec.width)
    L = spec.text_tokens
    temb = torch.as_tensor(constants["time_embeddings"])
    out = {name: [] for name in stages}

    def recorded(name):
        def run(*inputs):
            inputs = tuple(torch.as_tensor(x) for x in inputs)
            out[name].append(inputs)
            result = stages[name].module(*inputs)
            return [r.numpy() for r in (result if isinstance(result, tuple) else (result,))]
        return run

    runs = {name: recorded(name) for name in stages}
    gen = torch.Generator().manual_seed(seed)
    chunks = [{"start": s, "end": e, "stage": name} for s, e, name in spec.denoiser_chunks()]
    for prompt in prompts:
        text = pipe.text_encoder.encode([prompt])  # tokens (1, l, D), mask (1, l) bool
        l = min(text.tokens.shape[1], L)
        tokens = F.pad(text.tokens[:, :l], (0, 0, 0, L - l))
        mask = torch.zeros(1, L)
        mask[:, :l] = 1.0 if text.mask is None else text.mask[:, :l].float()
        out["text"].append(stages["text"].inputs)  # dynamic activations only: no scales to calibrate
        noise = torch.randn(1, C, K, h, w, generator=gen).numpy()
        x = sample_chunks(lambda stage, x, i: runs[stage](x, tokens, mask, temb[i:i + 1])[0], noise,
                          np.asarray(constants["timesteps"], np.float32), chunks, spec.continuation_start)
        for _ in decode_chunks(runs, x, min(spec.decode_chunk_latents, K), pipe.vae.config.temporal_compression):
            pass
    return out


def quantizer():
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)

    q = XNNPACKQuantizer()
    q.set_operator_type(torch.ops.aten.linear.default,
                        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    q.set_operator_type(torch.ops.aten.conv2d.default,
                        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    return q


def quantize_pt2e(module, example_inputs: tuple, calibration: list[tuple]):
    """The module as a quantized graph module (PT2E prepare -> calibrate -> convert)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with torch.no_grad():
        graph = torch.export.export(module, example_inputs, strict=False).module()
    prepared = prepare_pt2e(graph, quantizer())
    with torch.no_grad():
        for inputs in calibration or [example_inputs]:
            prepared(*inputs)
    return convert_pt2e(prepared)
