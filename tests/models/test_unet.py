"""SpatioTemporalUNet on the "tiny" preset: shapes, frame mixing, conditioning, validation."""
import dataclasses

import pytest
import torch
from torch import nn

from edgevid.config import TEMPORAL_LAYER_TYPES, UNET_PRESETS
from edgevid.eval.flops import count_flops
from edgevid.models.unet import SpatioTemporalUNet

TINY = UNET_PRESETS["tiny"]


def reinit_zero_layers_(module: nn.Module) -> nn.Module:
    """Give zero-initialised output layers a default random init, so that every path shows."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and not m.weight.any():
            m.reset_parameters()
    return module


def make_unet(config=TINY) -> SpatioTemporalUNet:
    return reinit_zero_layers_(SpatioTemporalUNet(config)).eval()


def inputs(B=2, T=5, H=8, W=12, L=7, text_dim=TINY.text_dim):
    x = torch.randn(B, TINY.in_channels, T, H, W)
    t = torch.rand(B)
    ctx = torch.randn(B, L, text_dim)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[0, -3:] = False  # sample 0 has 3 padding tokens
    return x, t, ctx, mask


def test_output_is_zero_at_init():
    x, t, ctx, mask = inputs()
    with torch.no_grad():
        assert not SpatioTemporalUNet(TINY)(x, t, ctx, mask).any()  # zero-init conv_out


@pytest.mark.parametrize("kind", TEMPORAL_LAYER_TYPES)
@pytest.mark.parametrize("T", [1, 5])
def test_output_shape_for_every_temporal_layer(kind, T):
    cfg = dataclasses.replace(TINY, temporal_layers=((kind,), (kind,)), mid_temporal_layers=(kind,))
    x, t, ctx, mask = inputs(T=T, H=8, W=12)  # non-square, odd T
    with torch.no_grad():
        y = make_unet(cfg)(x, t, ctx, mask)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def _frame_change(unet, T=5):
    """Max |change| per output frame when input frame 0 is perturbed."""
    x, t, ctx, mask = inputs(T=T)
    x2 = x.clone()
    x2[:, :, 0] += torch.randn_like(x[:, :, 0])
    with torch.no_grad():
        return (unet(x2, t, ctx, mask) - unet(x, t, ctx, mask)).abs().amax(dim=(0, 1, 3, 4))


def test_temporal_layers_mix_frames():
    d = _frame_change(make_unet())
    assert d[-1] > 1e-4


def test_spatial_layers_do_not_mix_frames():
    cfg = dataclasses.replace(TINY, temporal_layers=((), ()), mid_temporal_layers=())
    d = _frame_change(make_unet(cfg))
    assert d[0] > 1e-4  # the perturbed frame does change...
    assert d[1:].max() < 1e-6  # ...no other frame does


def test_text_timestep_and_mask():
    unet = make_unet()
    x, t, ctx, mask = inputs()
    with torch.no_grad():
        y = unet(x, t, ctx, mask)
        assert not torch.allclose(unet(x, t, torch.randn_like(ctx), mask), y, atol=1e-4)  # text matters
        assert not torch.allclose(unet(x, t.flip(0), ctx, mask), y, atol=1e-4)  # timestep matters
        ctx_pad = ctx.clone()
        ctx_pad[0, -1] += 10.0  # a masked-out token of sample 0
        # Same path: a masked key's weight is exactly 0; the tolerance only allows kernels that add a finite mask.
        assert torch.allclose(unet(x, t, ctx_pad, mask), y, atol=1e-5)
        assert not torch.allclose(unet(x, t, ctx_pad, None), unet(x, t, ctx, None), atol=1e-4)  # unmasked: it counts


def test_precomputed_time_embedding_gives_identical_output():
    unet = make_unet()
    x, t, ctx, mask = inputs()
    with torch.no_grad():
        temb = unet.time_embedding(t)
        assert torch.equal(unet(x, t, ctx, mask, temb=temb), unet(x, t, ctx, mask))


def test_deterministic_under_fixed_seed():
    x, t, ctx, mask = inputs()
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        with torch.no_grad():
            outs.append(make_unet()(x, t, ctx, mask))
    assert torch.equal(outs[0], outs[1])


def test_bad_inputs_raise_value_error_with_a_fix():
    unet = make_unet()
    x, t, ctx, mask = inputs(H=8, W=12)
    with pytest.raises(ValueError, match="divisible by 2"):
        unet(x[..., :7], t, ctx, mask)  # W = 7
    with pytest.raises(ValueError, match="in_channels"):
        unet(x[:, :3], t, ctx, mask)
    with pytest.raises(ValueError, match="text_dim"):
        unet(x, t, torch.randn(2, 7, TINY.text_dim + 1), mask)
    with pytest.raises(ValueError, match="context_mask"):
        unet(x, t, ctx, mask.long())  # bool or float 1/0 only
    with pytest.raises(ValueError, match="B, C, T, H, W"):
        unet(x[:, :, 0], t, ctx, mask)


def test_gradients_reach_every_parameter():
    unet = make_unet().train()
    x, t, ctx, mask = inputs(B=1, T=3, H=8, W=8)
    unet(x, t, ctx[:1], mask[:1]).square().mean().backward()
    missing = [n for n, p in unet.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_bf16_autocast_runs():
    from edgevid.precision import NATIVE_BF16_FLAGS, avx512_kernels, cpu_flags

    if not avx512_kernels() and "amx_bf16" in cpu_flags() & set(NATIVE_BF16_FLAGS):
        pytest.skip("torch 2.13's bf16 attention fails on an AMX CPU with ATEN_CPU_CAPABILITY below avx512; "
                    "edgevid's auto precision is fp32 there (precision.avx512_kernels)")
    unet = make_unet()
    x, t, ctx, mask = inputs(T=3)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = unet(x, t, ctx, mask)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_flops_include_attention():
    unet = make_unet()
    x, t, ctx, mask = inputs(B=1)
    short, long = count_flops(unet, x, t, ctx[:1, :2], None), count_flops(unet, x, t, ctx[:1], None)
    assert long > short > 0  # cross-attention over 7 text tokens costs more than over 2


def test_pooled_text_path_starts_off_and_carries_the_prompt():
    """pooled_text: zero at init (same output as without it, same weights otherwise); once trained
    it carries the prompt even into a UNet without any attention, and ignores padding tokens."""
    from edgevid.models.unet import pooled_tokens

    cfg = dataclasses.replace(TINY, pooled_text=True)
    torch.manual_seed(0)
    with_path = SpatioTemporalUNet(cfg)
    without = SpatioTemporalUNet(TINY)
    state = {k: v for k, v in with_path.state_dict().items() if not k.startswith("text_embed.")}
    without.load_state_dict(state)
    reinit_zero_layers_(without)
    with_path.load_state_dict({**with_path.state_dict(), **without.state_dict()})
    x, t, ctx, mask = inputs()
    with torch.no_grad():
        assert torch.equal(with_path.eval()(x, t, ctx, mask), without.eval()(x, t, ctx, mask))
    blind = dataclasses.replace(cfg, spatial_attention=(False, False), mid_attention=False,
                                temporal_layers=(("conv1d",), ("conv1d",)), mid_temporal_layers=())
    unet = make_unet(blind)
    with torch.no_grad():
        y = unet(x, t, ctx, mask)
        assert not torch.allclose(unet(x, t, torch.randn_like(ctx), mask), y, atol=1e-4)  # text reaches it
        ctx_pad = ctx.clone()
        ctx_pad[0, -1] += 10.0  # a padding token of sample 0
        assert torch.equal(unet(x, t, ctx_pad, mask), y)
    assert torch.equal(pooled_tokens(ctx, torch.zeros_like(mask)), torch.zeros(2, ctx.shape[-1]))


def test_text_refiner_starts_as_identity_mixes_tokens_and_ignores_padding():
    """text_refiner_layers: at init the UNet computes exactly what the UNet without it does (the
    teacher inflates into it); once its zero-initialised projections move, each token sees the
    others (a colour word can learn its noun), padded keys change nothing and padded rows stay 0."""
    cfg = dataclasses.replace(TINY, text_refiner_layers=1)
    torch.manual_seed(0)
    refined = SpatioTemporalUNet(cfg)
    plain = reinit_zero_layers_(SpatioTemporalUNet(TINY))
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("text_refiner.") for k in missing)
    x, t, ctx, mask = inputs()
    with torch.no_grad():
        assert torch.equal(refined.eval()(x, t, ctx, mask), plain.eval()(x, t, ctx, mask))
    layer = reinit_zero_layers_(refined.text_refiner[0])
    for m in (torch.ones_like(mask), mask.float()):  # bool and float masks alike
        with torch.no_grad():
            y = layer(ctx, m if m.dtype == torch.float32 else m.bool())
            assert not torch.allclose(y[1, 0], ctx[1, 0])
            bumped = ctx.clone()
            bumped[1, -1] += torch.randn_like(bumped[1, -1])  # another token of the same prompt moves token 0's output
            assert not torch.allclose(layer(bumped, m.bool() if m.dtype != torch.float32 else m)[1, 0], y[1, 0])
    with torch.no_grad():
        y = layer(ctx, mask)
        padded = ctx.clone()
        padded[0, -1] += 10 * torch.randn_like(padded[0, -1])  # a padding token of sample 0
        assert torch.allclose(layer(padded, mask), y, atol=1e-6)
        assert torch.equal(y[0, -3:], torch.zeros_like(y[0, -3:]))
    with pytest.raises(ValueError, match="text_refiner_layers"):
        dataclasses.replace(TINY, text_refiner_layers=-1)
