"""SVDUNet on the "svd-tiny" preset: parity with diffusers' UNetSpatioTemporalConditionModel, and
the MobileVD options (optimized cross-attention, temporal block pruning, temporal multiscaling,
funnel widths) against their definitions."""
import dataclasses

import pytest
import torch

from edgevid.config import SVD_UNET_PRESETS, SVDUNetConfig, config_from_dict, config_to_dict
from edgevid.models.svd_unet import SVDUNet, double_frames, halve_frames, load_diffusers_state_dict, timestep_sinusoid

diffusers = pytest.importorskip("diffusers")

TINY = SVD_UNET_PRESETS["svd-tiny"]
# The same network in diffusers' terms, written out (not derived from TINY) so that
# config_from_diffusers is tested too.
TINY_DIFFUSERS = dict(
    in_channels=8, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    num_attention_heads=(2, 4), cross_attention_dim=32, addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=24, num_frames=5,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A seeded diffusers model with every parameter non-trivial, and the folder save_pretrained wrote."""
    torch.manual_seed(0)
    ref = diffusers.UNetSpatioTemporalConditionModel(**TINY_DIFFUSERS).eval()
    with torch.no_grad():  # weights keep their random default init; perturb every bias, norm scale and
        for name, p in ref.named_parameters():  # mix factor (all 0.5 at init: alpha would be one value)
            if p.ndim <= 1:
                p.add_(torch.randn_like(p) * (1.0 if "mix_factor" in name else 0.2))
    folder = tmp_path_factory.mktemp("svd-tiny-diffusers")
    ref.save_pretrained(folder)
    return ref, folder


def inputs(B=2, T=5, H=16, W=8, L=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, TINY.in_channels, T, H, W, generator=g)
    timestep = torch.tensor([0.3, -1.2])[:B]  # SVD's c_noise = 0.25 log(sigma) is about -1.4 ... 1.0
    context = torch.randn(B, L, TINY.cross_attention_dim, generator=g)
    added_time_ids = torch.tensor([[6.0, 127.0, 0.02], [7.0, 30.0, 0.1]])[:B]  # fps - 1, motion bucket, noise aug
    return x, timestep, context, added_time_ids


def run_diffusers(ref, x, timestep, context, added_time_ids):
    with torch.no_grad():  # diffusers takes and returns (B, T, C, H, W)
        return ref(x.transpose(1, 2), timestep, context, added_time_ids).sample.transpose(1, 2)


def run(model, *args):
    with torch.no_grad():
        return model.eval()(*args)


@pytest.mark.parametrize("L", [1, 3])  # L = 3: cross-attention q/k matter (with one token softmax is 1)
def test_matches_diffusers(reference, L):
    ref, folder = reference
    model = SVDUNet.from_diffusers(folder)
    assert model.config == TINY
    args = inputs(L=L)
    expected = run_diffusers(ref, *args)
    err = (run(model, *args) - expected).abs().max().item()
    print(f"svd-tiny vs diffusers, L={L}: max abs error {err:.2e} (output max {expected.abs().max():.2f})")
    assert expected.abs().max() > 0.5  # O(1) outputs, so 1e-4 is a float32-rounding-sized tolerance
    assert err < 1e-4


def test_optimized_cross_attention_equals_full_attention(reference):
    _, folder = reference
    full = SVDUNet.from_diffusers(folder)
    fast = SVDUNet.from_diffusers(folder, optimized_cross_attention=True)
    args = inputs(L=1)
    torch.testing.assert_close(run(fast, *args), run(full, *args), atol=1e-5, rtol=0)
    # q, k and the norm before every cross-attention are not built (8 cross-attentions in svd-tiny)
    assert not any(".attn2.to_q." in k or ".attn2.to_k." in k for k in fast.state_dict())
    n_params = lambda m: sum(p.numel() for p in m.parameters())
    assert n_params(fast) < n_params(full)
    with pytest.raises(ValueError, match="one context token"):
        fast(*inputs(L=2))


def test_pruned_temporal_blocks_equal_gate_zero(reference):
    """A removed block is x_s + z (1 - alpha) r_t with z = 0: run diffusers' full model with the
    blenders of the removed blocks returning their spatial input, against the pruned SVDUNet."""
    ref, folder = reference
    names = TINY.temporal_block_names()
    keep = tuple(i % 3 != 0 for i in range(len(names)))  # removes resnet and transformer blocks, incl. the mid's
    pruned = SVDUNet.from_diffusers(folder, temporal_blocks=keep)
    removed = [n for n, k in zip(names, keep) if not k]
    assert any("resnets" in n for n in removed) and any("temporal_transformer" in n for n in removed)

    original = {}
    for name in removed:  # ...resnets.j.temporal_res_block -> ...resnets.j.time_mixer (the block's gate);
        mixer = ref.get_submodule(name.split(".temporal_")[0] + ".time_mixer")  # svd-tiny: 1 layer per transformer
        original[mixer] = mixer.forward
        mixer.forward = lambda x_spatial, x_temporal, image_only_indicator=None: x_spatial
    try:
        args = inputs()
        expected = run_diffusers(ref, *args)
    finally:
        for mixer, forward in original.items():
            mixer.forward = forward
    assert (run_diffusers(ref, *args) - expected).abs().max() > 1e-2  # the removed blocks did contribute
    assert (run(pruned, *args) - expected).abs().max() < 1e-4

    # Not built: the removed blocks, their blenders, and the position MLP of a transformer left
    # without temporal layers (svd-tiny has one layer per transformer).
    n_params = lambda m: sum(p.numel() for p in m.parameters())
    full = SVDUNet.from_diffusers(folder)
    expected = n_params(full)
    for name in removed:
        parent = name.split(".temporal_")[0]
        expected -= n_params(full.get_submodule(name)) + 1  # + the blender's mix_factor
        if "temporal_transformer" in name:
            expected -= n_params(full.get_submodule(parent + ".time_pos_embed"))
        with pytest.raises(AttributeError):
            pruned.get_submodule(name)
    assert n_params(pruned) == expected < n_params(full)


def test_pruned_model_takes_full_model_weights(reference):
    _, folder = reference
    full = SVDUNet.from_diffusers(folder)
    cfg = dataclasses.replace(full.config, temporal_blocks=(False,) * len(TINY.temporal_block_names()))
    pruned = SVDUNet(cfg)
    load_diffusers_state_dict(pruned, full.state_dict())  # drops the removed blocks' keys
    assert not any("temporal" in k or "time_mixer" in k or "time_pos_embed" in k for k in pruned.state_dict())
    with pytest.raises(ValueError, match="missing keys"):
        load_diffusers_state_dict(full, pruned.state_dict())


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 6])
def test_temporal_multiscaling_keeps_the_shape_for_any_frame_count(T):
    cfg = dataclasses.replace(TINY, temporal_downsample=(True, False))
    model = SVDUNet(cfg)
    seen, positions = [], []
    model.mid_block.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    model.mid_block.attentions[0].time_pos_embed.register_forward_pre_hook(lambda m, args: positions.append(args[0]))
    x, t, ctx, ids = inputs(T=T)
    y = run(model, x, t, ctx, ids)
    assert y.shape == (x.shape[0], TINY.out_channels, *x.shape[2:]) and torch.isfinite(y).all()
    assert seen == [x.shape[0] * ((T + 1) // 2)]  # the deep stage sees ceil(T / 2) frames per sample
    assert model.frame_counts(T) == [(T, 1), ((T + 1) // 2, 2)]
    # its frame k stands for input frames 2k, 2k + 1: position 2k
    torch.testing.assert_close(positions[0], timestep_sinusoid(torch.arange(0, T, 2), 64))


def test_frame_halving_and_doubling_exact():
    h = torch.arange(5.0).repeat_interleave(2)[:, None, None, None].repeat(1, 3, 2, 2)  # B=2 samples x 5 frames
    h = torch.cat([h[::2], h[::2] + 10])  # (B*T, C, H, W), sample 0 frames 0..4, sample 1 frames 10..14
    half = halve_frames(h, 5)[:, 0, 0, 0]
    assert half.tolist() == [0.5, 2.5, 4.0, 10.5, 12.5, 14.0]  # pairs (0, 1), (2, 3), then the lone last frame
    back = double_frames(halve_frames(h, 5), 3, 5)[:, 0, 0, 0]
    assert back.tolist() == [0.5, 0.5, 2.5, 2.5, 4.0, 10.5, 10.5, 12.5, 12.5, 14.0]


def test_merged_funnel_equals_zero_padded_full_width():
    """A funnelled attention layer (narrow q/k and v/out, full-width softmax scale) equals the
    full-width layer whose extra per-head channels are zero."""
    layers = TINY.attention_layer_names()
    qk, vo = [0] * len(layers), [0] * len(layers)
    assert layers[0].endswith("transformer_blocks.0.attn1") and layers[5].startswith("mid_block")
    qk[0], vo[0] = 8, 4  # stage 0 spatial self-attention: width 32, 2 heads
    vo[5], qk[7] = 8, 12  # mid block (width 64, 4 heads): spatial cross-attention, temporal cross-attention
    torch.manual_seed(0)
    narrow = SVDUNet(dataclasses.replace(TINY, funnel_qk_dims=tuple(qk), funnel_vo_dims=tuple(vo))).eval()
    full = SVDUNet(TINY).eval()
    state = {}
    for key, w in narrow.state_dict().items():
        target = full.state_dict()[key]
        if w.shape != target.shape:
            heads = 4 if key.startswith("mid_block") else 2
            dim = 1 if key.endswith("to_out.weight") else 0  # inner axis: rows of q/k/v, columns of out
            w = w.unflatten(dim, (heads, -1))  # (..., inner, ...) -> (..., heads, inner/heads, ...)
            pad = target.shape[dim] // heads - w.shape[dim + 1]
            zeros = w.new_zeros(*w.shape[:dim + 1], pad, *w.shape[dim + 2:])
            w = torch.cat([w, zeros], dim=dim + 1).flatten(dim, dim + 1)  # -> (..., heads * full head width, ...)
        state[key] = w
    full.load_state_dict(state)
    args = inputs(L=3)
    torch.testing.assert_close(run(narrow, *args), run(full, *args), atol=1e-5, rtol=0)


def test_timestep_scale():
    torch.manual_seed(0)
    scaled = SVDUNet(dataclasses.replace(TINY, timestep_scale=1000.0))
    plain = SVDUNet(TINY)
    plain.load_state_dict(scaled.state_dict())
    x, t, ctx, ids = inputs()
    torch.testing.assert_close(run(scaled, x, t / 1000, ctx, ids), run(plain, x, t, ctx, ids), atol=1e-5, rtol=0)


@pytest.mark.parametrize("change, match", [
    (dict(num_attention_heads=(2,)), "one entry per stage"),
    (dict(block_out_channels=(32, 48)), "multiple of norm_groups"),
    (dict(num_attention_heads=(3, 4)), "divide by its num_attention_heads"),
    (dict(temporal_downsample=(False, True)), "last stage has no downsampler"),
    (dict(temporal_downsample=(True,)), "one flag per stage"),
    (dict(temporal_blocks=(True, False)), "one flag per temporal block"),
    (dict(funnel_qk_dims=(3,) + (0,) * 15), "multiple of 2"),
    (dict(funnel_vo_dims=(0,) * 15), "one width per attention layer"),
    (dict(optimized_cross_attention=True, funnel_qk_dims=(0, 16) + (0,) * 14), "is not built"),
    (dict(temporal_blocks=(True, False) + (True,) * 10, funnel_vo_dims=(0, 0, 16) + (0,) * 13), "is not built"),
    (dict(timestep_scale=0.0), "timestep_scale"),
])
def test_config_validation(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TINY, **change)


def test_input_validation():
    model = SVDUNet(TINY)
    x, t, ctx, ids = inputs()
    with pytest.raises(ValueError, match="divisible by 2"):
        model(x[..., :7], t, ctx, ids)
    with pytest.raises(ValueError, match="in_channels"):
        model(x[:, :4], t, ctx, ids)
    with pytest.raises(ValueError, match="added_time_ids"):
        model(x, t, ctx, ids[:, :2])


def test_presets_build_and_svd_is_the_real_size():
    with torch.device("meta"):  # 1.5 B parameters: shapes only
        svd = SVDUNet(SVD_UNET_PRESETS["svd"])
    assert sum(p.numel() for p in svd.parameters()) == 1_524_623_082  # SVD-XT's UNet
    assert SVD_UNET_PRESETS["svd"] == SVDUNetConfig()
    assert len(SVDUNetConfig().temporal_block_names()) == 38 and len(SVDUNetConfig().attention_layer_names()) == 64
    cpu = SVDUNet(SVD_UNET_PRESETS["svd-cpu"])
    assert 5e6 < sum(p.numel() for p in cpu.parameters()) < 10e6
    for cfg in SVD_UNET_PRESETS.values():  # the JSON round trip of save_pretrained / run folders
        assert config_from_dict(SVDUNetConfig, config_to_dict(cfg)) == cfg
