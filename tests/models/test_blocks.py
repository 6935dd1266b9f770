"""Blocks of the spatio-temporal UNet: the temporal-layer zoo, RoPE, attention masking."""
import pytest
import torch
from torch import nn

from edgevid.config import TEMPORAL_LAYER_TYPES
from edgevid.eval.flops import count_flops
from edgevid.models.blocks import TEMPORAL_LAYERS, Attention, AttnSpec, apply_rope, rope_cos_sin

DIM, TEXT_DIM, L = 16, 12, 6
SPEC = AttnSpec(head_dim=8, qk_norm=True, rope=True)


def reinit_zero_layers_(module: nn.Module) -> nn.Module:
    """Give zero-initialised output projections a default random init, so that mixing shows."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and not m.weight.any():
            m.reset_parameters()
    return module


def make_layer(kind: str) -> nn.Module:
    return TEMPORAL_LAYERS[kind](DIM, context_dim=TEXT_DIM, spec=SPEC, groups=4).eval()


def test_every_config_name_maps_to_a_class():
    assert set(TEMPORAL_LAYERS) == set(TEMPORAL_LAYER_TYPES)


@pytest.mark.parametrize("kind", TEMPORAL_LAYER_TYPES)
@pytest.mark.parametrize("T", [1, 5])
def test_temporal_layer_shape_and_identity_at_init(kind, T):
    layer = make_layer(kind)
    x = torch.randn(2, DIM, T, 4, 6)  # non-square H, W
    ctx = torch.randn(2, L, TEXT_DIM)
    with torch.no_grad():
        y0 = layer(x, ctx, None)
        y = reinit_zero_layers_(layer)(x, ctx, None)
    assert y.shape == x.shape
    assert torch.allclose(y0, x)  # zero-init output projection: an inflated image model starts unchanged
    assert torch.isfinite(y).all() and not torch.allclose(y, x)


@pytest.mark.parametrize("kind", TEMPORAL_LAYER_TYPES)
def test_temporal_layer_mixes_frames(kind):
    layer = reinit_zero_layers_(make_layer(kind))
    if kind.startswith("conv"):
        layer.norm = nn.Identity()  # GroupNorm statistics span frames; test the conv's own reach
    T = 5
    x = torch.randn(1, DIM, T, 4, 6)
    ctx = torch.randn(1, L, TEXT_DIM)
    x2 = x.clone()
    x2[:, :, 0] += torch.randn_like(x[:, :, 0])  # random: a constant shift would vanish in LayerNorm
    with torch.no_grad():
        d = (layer(x2, ctx, None) - layer(x, ctx, None)).abs().amax(dim=(0, 1, 3, 4))  # per frame
    if kind.startswith("conv"):
        assert d[1] > 1e-4  # kernel 3 over time reaches the next frame...
        assert d[2:].max() == 0  # ...and no further
    else:
        assert d[T - 1] > 1e-4  # attention reaches the last frame


@pytest.mark.parametrize("kind", ["cross_attn1d", "cross_attn3d"])
def test_cross_attention_temporal_layers_use_text_and_mask(kind):
    layer = reinit_zero_layers_(make_layer(kind))
    x = torch.randn(2, DIM, 3, 4, 4)
    ctx = torch.randn(2, L, TEXT_DIM)
    mask = torch.ones(2, L, dtype=torch.bool)
    mask[:, -2:] = False
    ctx_pad = ctx.clone()
    ctx_pad[:, -1] += 5.0  # a padding token
    ctx_real = ctx.clone()
    ctx_real[:, 0] += 5.0  # a real token
    with torch.no_grad():
        y = layer(x, ctx, mask)
        # Same path: a masked key's weight is exactly 0; the tolerance only allows kernels that add a finite mask.
        assert torch.allclose(layer(x, ctx_pad, mask), y, atol=1e-6)
        assert not torch.allclose(layer(x, ctx_real, mask), y, atol=1e-4)


def test_cost_of_cross_attention_layers_grows_with_text_length():
    """SnapGen-V Fig. 3: CrossAttentionND cost depends on the number of text tokens."""
    x = torch.randn(1, DIM, 3, 4, 4)

    def flops(kind, n_tokens):
        return count_flops(make_layer(kind), x, torch.randn(1, n_tokens, TEXT_DIM), None)

    assert flops("cross_attn1d", 32) > flops("cross_attn1d", 4)
    assert flops("cross_attn3d", 32) > flops("cross_attn3d", 4)
    assert flops("self_attn1d", 32) == flops("self_attn1d", 4)
    assert flops("self_attn3d", 4) > flops("self_attn1d", 4) > 0  # attention is counted at all


def _score(q, k, cos, sin, m, n):
    """<RoPE(q at token m), RoPE(k at token n)>."""
    return (apply_rope(q, cos[m:m + 1], sin[m:m + 1]) * apply_rope(k, cos[n:n + 1], sin[n:n + 1])).sum()


def test_rope_1d_depends_only_on_relative_position():
    q, k = torch.randn(1, 32, dtype=torch.float64), torch.randn(1, 32, dtype=torch.float64)
    cos, sin = (a.double() for a in rope_cos_sin((12,), 32, torch.device("cpu")))
    assert torch.allclose(_score(q, k, cos, sin, 2, 5), _score(q, k, cos, sin, 6, 9))
    assert not torch.allclose(_score(q, k, cos, sin, 2, 5), _score(q, k, cos, sin, 2, 6))
    assert torch.allclose(apply_rope(q, cos[3:4], sin[3:4]).norm(), q.norm())  # a rotation


def test_rope_3d_depends_only_on_relative_position_along_every_axis():
    T, H, W = 4, 5, 6
    q, k = torch.randn(1, 24, dtype=torch.float64), torch.randn(1, 24, dtype=torch.float64)
    cos, sin = (a.double() for a in rope_cos_sin((T, H, W), 24, torch.device("cpu")))

    def idx(t, h, w):  # row-major token index of (t, h, w)
        return (t * H + h) * W + w

    base = _score(q, k, cos, sin, idx(0, 1, 2), idx(2, 3, 3))
    assert torch.allclose(base, _score(q, k, cos, sin, idx(1, 2, 4), idx(3, 4, 5)))  # same offset
    for other in (idx(3, 3, 3), idx(2, 4, 3), idx(2, 3, 4)):  # offset changed along t, h or w
        assert not torch.allclose(base, _score(q, k, cos, sin, idx(0, 1, 2), other))


def test_cross_attention_mask_and_empty_prompt():
    attn = Attention(DIM, SPEC, context_dim=TEXT_DIM)
    x, ctx = torch.randn(2, 7, DIM), torch.randn(2, L, TEXT_DIM)
    mask = torch.tensor([[True] * L, [False] * L])  # sample 1 has no real token
    with torch.no_grad():
        y = attn(x, ctx, mask)
        assert torch.isfinite(y).all()
        # No text at all: attention contributes nothing, only the output bias remains.
        assert torch.allclose(y[1], attn.out.bias.expand(7, DIM), atol=1e-6)


def test_short_attention_is_scaled_dot_product_attention():
    """The short-sequence path (temporal attention over a window's frames) computes SDPA's function:
    in fp32 to float rounding, and under bf16 autocast no less exactly than SDPA itself."""
    import torch.nn.functional as F

    from edgevid.models.blocks import SHORT_ATTENTION, short_attention

    g = torch.Generator().manual_seed(0)
    for L, S in ((5, 5), (3, 3), (1, SHORT_ATTENTION)):
        q, k, v = (torch.randn(6, 2, n, 8, generator=g) for n in (L, S, S))
        want = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
        torch.testing.assert_close(short_attention(q, k, v).double(), want, atol=1e-6, rtol=1e-6)
        # Under bf16 autocast the result is the exact attention of the bf16 inputs, rounded once to
        # bf16 (no bf16 SDPA here: on an AMX CPU with portable kernels that kernel fails, precision.py).
        with torch.autocast("cpu", dtype=torch.bfloat16):
            qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
            got = short_attention(qb, kb, vb)
        assert got.dtype == torch.bfloat16
        exact = F.scaled_dot_product_attention(qb.double(), kb.double(), vb.double())
        assert ((got.double() - exact).abs() <= exact.abs() * 2 ** -8 + 1e-6).all()


@pytest.mark.parametrize("length", [5, 40])
def test_attention_takes_the_short_path_only_for_short_unmasked_sequences(length, monkeypatch):
    """Self-attention over <= SHORT_ATTENTION tokens runs short_attention, longer ones SDPA; both
    give the same tokens as the textbook formula."""
    import edgevid.models.blocks as blocks

    calls = []
    real = blocks.short_attention
    monkeypatch.setattr(blocks, "short_attention", lambda *a: calls.append(1) or real(*a))
    attn = reinit_zero_layers_(Attention(DIM, AttnSpec(head_dim=8, qk_norm=False, rope=False))).eval()
    x = torch.randn(3, length, DIM, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        q, k, v = attn.to_qkv(x).view(3, length, 3, 2, 8).permute(2, 0, 3, 1, 4)
        want = attn.out((torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, -1) @ v).transpose(1, 2).reshape(3, length,
                                                                                                          DIM))
        got = attn(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert len(calls) == (1 if length <= blocks.SHORT_ATTENTION else 0)
