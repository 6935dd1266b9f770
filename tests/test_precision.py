"""Precision per CPU (edgevid.precision): native-bf16 detection, the auto choice and its overrides,
and a bf16 pipeline that really computes in bf16, close to fp32, with fp32 outputs."""
import numpy as np
import pytest
import torch

from edgevid import precision as prec
from edgevid.pipeline import EdgeVidPipeline, replace_defaults


def _gen(pipe, seed=0, **kw):
    return pipe("a red circle moving left", generator=torch.Generator().manual_seed(seed), **kw).frames


def _with_precision(pipe, precision):
    """A pipeline sharing the session fixture's modules, with its own precision."""
    return EdgeVidPipeline(pipe.vae, pipe.unet, pipe.text_encoder, pipe.defaults, precision=precision)


@pytest.mark.parametrize("flags, native", [({"avx512f", "avx512_bf16"}, True), ({"amx_bf16", "avx2"}, True),
                                           ({"avx512f", "avx512bw"}, False), (set(), False)])
def test_native_bf16_reads_the_cpu_flags(flags, native):
    assert prec.native_bf16(flags) is native


def test_auto_follows_the_cpu_and_explicit_choices_and_the_environment_win(monkeypatch):
    monkeypatch.delenv("EDGEVID_PRECISION", raising=False)
    monkeypatch.setattr(prec, "native_bf16", lambda flags=None: True)
    assert prec.resolve_precision("auto") == "bf16" and prec.resolve_precision(None) == "bf16"
    assert prec.resolve_precision("auto", device_type="cuda") == "fp32"
    assert prec.resolve_precision("fp32") == "fp32"
    monkeypatch.setattr(prec, "native_bf16", lambda flags=None: False)
    assert prec.resolve_precision("auto") == "fp32" and prec.resolve_precision("bf16") == "bf16"
    monkeypatch.setenv("EDGEVID_PRECISION", "bf16")
    assert prec.resolve_precision(None) == "bf16" and prec.resolve_precision("fp32") == "fp32"
    monkeypatch.setenv("EDGEVID_PRECISION", "fp16")
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        prec.resolve_precision(None)


def test_bf16_pipeline_computes_in_bf16_with_fp32_frames_close_to_fp32(tiny_pipeline):
    fp32, bf16 = _with_precision(tiny_pipeline, "fp32"), _with_precision(tiny_pipeline, "bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    seen = {}
    # Both networks end in a convolution: their outputs carry the dtype it computed in.
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen.setdefault(k, set()).add(o.dtype))
             for k, m in (("unet", tiny_pipeline.unet), ("decoder", tiny_pipeline.vae.spatial_decoder))]
    try:
        a = _gen(fp32, num_frames=9)
        assert seen == {"unet": {torch.float32}, "decoder": {torch.float32}}
        seen.clear()
        b = _gen(bf16, num_frames=9)
        assert seen == {"unet": {torch.bfloat16}, "decoder": {torch.bfloat16}}
    finally:
        for h in hooks:
            h.remove()
    assert b.dtype == np.float32 and 0 <= b.min() and b.max() <= 1
    diff = np.abs(a - b)
    assert 0 < diff.max() < 0.25 and diff.mean() < 0.02  # bf16 keeps 8 bits of mantissa
    np.testing.assert_array_equal(b, _gen(bf16, num_frames=9))  # still deterministic


def test_bf16_stream_matches_the_bf16_call(tiny_pipeline):
    bf16 = _with_precision(tiny_pipeline, "bf16")
    kw = dict(num_frames=17, height=32, width=32)
    whole = _gen(bf16, seed=3, **kw)[0]
    chunks = list(bf16.stream("a red circle moving left", generator=torch.Generator().manual_seed(3),
                              chunk_frames=2, first_window_latent_frames=0, **kw))
    # The same bf16 denoising; the decoder sees other chunk shapes, so its bf16 sums round differently.
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=0.05)


def test_precision_survives_loading_and_replacing_defaults(tiny_model_dir, monkeypatch):
    pipe = EdgeVidPipeline.from_pretrained(tiny_model_dir, precision="bf16")
    assert pipe.precision == "bf16" and replace_defaults(pipe, shift=2.0).precision == "bf16"
    assert pipe.set_precision("fp32").precision == "fp32"
    monkeypatch.setenv("EDGEVID_PRECISION", "bf16")
    assert EdgeVidPipeline.from_pretrained(tiny_model_dir).precision == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        EdgeVidPipeline.from_pretrained(tiny_model_dir, precision="int4")


def test_capped_kernels_are_not_native_bf16(monkeypatch):
    """ATEN_CPU_CAPABILITY=default|avx2 leaves the bf16 units unused (and breaks bf16 attention on
    AMX CPUs in torch 2.13): auto precision is then fp32 whatever the flags say."""
    monkeypatch.setattr(prec, "cpu_flags", lambda: {"avx512f", "amx_bf16", "avx512_bf16"})
    monkeypatch.setattr(prec.platform, "machine", lambda: "x86_64")
    for capability, native in (("default", False), ("avx2", False), ("avx512", True), ("", True)):
        monkeypatch.setenv("ATEN_CPU_CAPABILITY", capability)
        assert prec.native_bf16() is native, capability
