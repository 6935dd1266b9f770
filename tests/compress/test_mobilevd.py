"""MobileVD compressions on svd-tiny: exact ones are exact (optimized cross-attention, pruned =
gated-off blocks, merged = unmerged funnels), CSI starts near the original, gates learn."""
import dataclasses

import pytest
import torch

from edgevid.compress.mobilevd import (
    TemporalBlockGates, add_funnels, add_temporal_multiscaling, coupled_singular_init, inclusion_probabilities,
    merge_funnels, optimize_cross_attention, prune_temporal_blocks,
)
from edgevid.config import SVD_UNET_PRESETS
from edgevid.models.svd_unet import SVDUNet

TINY = dataclasses.replace(SVD_UNET_PRESETS["svd-tiny"], transformer_layers_per_block=1)


def make_unet(**changes):
    torch.manual_seed(0)
    unet = SVDUNet(dataclasses.replace(TINY, **changes)).eval()
    with torch.no_grad():  # non-trivial biases, norms and mix factors (zero-init convs too)
        for name, p in unet.named_parameters():
            p.add_(torch.randn_like(p) * (1.0 if "mix_factor" in name else 0.1))
    return unet


def inputs(seed=1, T=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, TINY.in_channels, T, 8, 8, generator=g)
    context = torch.randn(2, 1, TINY.cross_attention_dim, generator=g)
    return x, torch.tensor([0.3, 0.8]), context, torch.tensor([[8.0, 30.0, 0.02], [8.0, 60.0, 0.1]])


@torch.no_grad()
def run(unet, *args):
    return unet.eval()(*args)


def test_optimized_cross_attention_is_exact_and_smaller():
    unet = make_unet()
    fast = optimize_cross_attention(unet)
    torch.testing.assert_close(run(fast, *inputs()), run(unet, *inputs()), atol=1e-5, rtol=0)
    assert sum(p.numel() for p in fast.parameters()) < sum(p.numel() for p in unet.parameters())


def test_temporal_multiscaling_keeps_every_weight():
    unet = make_unet()
    multi = add_temporal_multiscaling(unet, (True, False))
    assert multi.config.temporal_downsample == (True, False)
    assert {k: v.shape for k, v in multi.state_dict().items()} == {k: v.shape for k, v in unet.state_dict().items()}
    assert run(multi, *inputs()).shape == run(unet, *inputs()).shape


def test_inclusion_probabilities_sum_to_keep_and_follow_the_logits():
    logits = torch.tensor([3.0, 0.5, 0.0, -1.0, 2.5])
    for keep in range(1, 6):
        p = inclusion_probabilities(logits, keep)
        assert p.sum().item() == pytest.approx(keep, abs=1e-5) and (p >= 0).all() and (p <= 1 + 1e-6).all()
        assert torch.equal(torch.argsort(p, descending=True, stable=True)[:1], torch.tensor([0]))
    with pytest.raises(ValueError, match="keep must be"):
        inclusion_probabilities(logits, 0)


def test_pruned_blocks_equal_gates_at_zero_and_gates_learn():
    unet = make_unet()
    names = unet.config.temporal_block_names()
    keep = tuple(i % 2 == 0 for i in range(len(names)))
    for block_name, k in zip(names, keep):
        unet.get_submodule(block_name).gate = torch.tensor(1.0 if k else 0.0)
    gated_off = run(unet, *inputs())
    for block_name in names:
        unet.get_submodule(block_name).gate = None
    pruned = prune_temporal_blocks(unet, keep)
    torch.testing.assert_close(run(pruned, *inputs()), gated_off, atol=1e-5, rtol=0)
    assert len(pruned.config.temporal_block_names()) == sum(keep)
    assert not torch.allclose(run(unet, *inputs()), gated_off, atol=1e-3)  # the removed blocks did something
    # Straight-through: sampled 0/1 gates in the forward pass, a gradient on every logit.
    gates = TemporalBlockGates(unet.train(), keep=2)
    z = gates.sample(torch.Generator().manual_seed(0))
    assert set(z.tolist()) <= {0.0, 1.0}
    unet(*inputs()).square().mean().backward()
    assert gates.logits.grad is not None and gates.logits.grad.abs().sum() > 0
    gates.clear()
    assert sum(gates.kept()) == 2 and all(unet.get_submodule(n).gate is None for n in names)


def test_csi_is_the_best_low_rank_coupling():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 24, generator=g), torch.randn(16, 24, generator=g)
    full_a, full_b = coupled_singular_init(a, b, 16)
    torch.testing.assert_close(a.T @ full_a.T @ full_b @ b, a.T @ b, atol=1e-3, rtol=1e-4)  # full rank: exact
    fa, fb = coupled_singular_init(a, b, 8)
    csi_err = torch.linalg.norm(a.T @ fa.T @ fb @ b - a.T @ b)
    # the optimum of the rank-8 problem: the truncated SVD of a^T b
    u, s, vh = torch.linalg.svd(a.T @ b)
    best = torch.linalg.norm(a.T @ b - (u[:, :8] * s[:8]) @ vh[:8])
    assert csi_err <= best * 1.001
    he = torch.randn(8, 16, generator=g) * (2 / 16) ** 0.5  # He init of the same funnels
    assert torch.linalg.norm(a.T @ he.T @ he @ b - a.T @ b) > 2 * csi_err


def test_merged_funnels_equal_the_funnelled_model():
    unet = optimize_cross_attention(make_unet())
    reference = run(unet, *inputs())
    full = add_funnels(optimize_cross_attention(make_unet()), factor=1.0)
    torch.testing.assert_close(run(full, *inputs()), reference, atol=1e-3, rtol=0)  # CSI at full rank ~ identity
    funnelled = add_funnels(unet, factor=0.5)
    with torch.no_grad():  # as after fine-tuning: funnels no longer block-diagonal
        for name, p in funnelled.named_parameters():
            if name.endswith((".to_q.1.weight", ".to_k.1.weight", ".to_v.1.weight", ".to_out.0.weight")):
                p.add_(0.05 * torch.randn_like(p))
    merged = merge_funnels(funnelled)
    torch.testing.assert_close(run(merged, *inputs()), run(funnelled, *inputs()), atol=1e-5, rtol=0)
    assert merged.config.funnel_qk_dims and merged.config.funnel_vo_dims
    assert sum(p.numel() for p in merged.parameters()) < sum(p.numel() for p in unet.parameters())


def test_full_chain_shrinks_flops():
    from edgevid.eval.flops import count_flops

    unet = make_unet()
    x = inputs()
    chain = optimize_cross_attention(unet)
    chain = add_temporal_multiscaling(chain, (True, False))
    chain = prune_temporal_blocks(chain, tuple(i < 2 for i in range(len(chain.config.temporal_block_names()))))
    chain = merge_funnels(add_funnels(chain, 0.5))
    assert run(chain, *x).shape == run(unet, *x).shape
    assert count_flops(chain.eval(), *x) < 0.8 * count_flops(unet.eval(), *x)
