"""The delegation-friendly layer forms (edgevid.export.mobile) compute what the originals do."""
import dataclasses

import pytest
import torch
from torch import nn

from conftest import make_tiny_pipeline, randomize_
from edgevid.config import UNET_PRESETS
from edgevid.export import mobile
from edgevid.models import blocks
from edgevid.models.unet import SpatioTemporalUNet
from edgevid.models.vae import CausalConv3d

TOL = dict(atol=2e-5, rtol=1e-4)  # float re-association only (sums in another order)


def _randomized(m):
    return randomize_(m, scale=0.3).eval()


@pytest.mark.parametrize("shape", [(3, 16, 5), (2, 16, 6, 7)])
def test_group_norm(shape):
    norm = _randomized(nn.GroupNorm(4, 16))
    x = torch.randn(shape) * 3 + 1
    torch.testing.assert_close(mobile.MobileGroupNorm(norm)(x), norm(x), **TOL)


def test_layer_norm_and_rms_norm():
    x = torch.randn(2, 7, 24) * 2 - 1
    ln = _randomized(nn.LayerNorm(24))
    torch.testing.assert_close(mobile.MobileLayerNorm(ln)(x), ln(x), **TOL)
    rms = _randomized(blocks.RMSNorm(24))
    torch.testing.assert_close(mobile.MobileRMSNorm(rms)(x), rms(x), **TOL)


def test_upsample_is_nearest():
    up = _randomized(blocks.Upsample(6))
    x = torch.randn(2, 6, 5, 4)
    torch.testing.assert_close(mobile.MobileUpsample(up)(x), up(x), **TOL)


@pytest.mark.parametrize("separable", [False, True])
def test_causal_conv3d_whole_and_streamed(separable):
    conv = _randomized(CausalConv3d(6, 10, separable=separable))
    mob = mobile.MobileCausalConv3d(conv)
    x = torch.randn(1, 6, 7, 5, 4)
    torch.testing.assert_close(mob(x), conv(x), **TOL)
    ca, cb = {}, {}  # in two chunks, carrying the past frames
    a = torch.cat([conv(x[:, :, :3], ca), conv(x[:, :, 3:], ca)], dim=2)
    b = torch.cat([mob(x[:, :, :3], cb), mob(x[:, :, 3:], cb)], dim=2)
    torch.testing.assert_close(b, a, **TOL)


def test_conv3d_conv1d_and_resblock():
    c3 = _randomized(nn.Conv3d(4, 6, 3, padding=1))
    x = torch.randn(1, 4, 5, 6, 6)
    torch.testing.assert_close(mobile.MobileConv3d(c3)(x), c3(x), **TOL)
    c1 = _randomized(nn.Conv1d(4, 6, 3, padding=1))
    y = torch.randn(3, 4, 9)
    torch.testing.assert_close(mobile.MobileConv1d(c1)(y), c1(y), **TOL)
    rb = _randomized(blocks.ResBlock(8, 12, 16, 4))
    h, emb = torch.randn(3, 8, 6, 6), torch.randn(1, 16)
    torch.testing.assert_close(mobile.MobileResBlock(rb)(h, emb), rb(h, emb), **TOL)


def test_attention_bool_and_float_masks():
    spec = blocks.AttnSpec(head_dim=8, qk_norm=True, rope=True)
    cross = _randomized(blocks.Attention(16, spec, context_dim=12))
    x, ctx = torch.randn(2, 10, 16), torch.randn(2, 6, 12)
    keep = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    ref = cross(x, ctx, keep)
    torch.testing.assert_close(cross(x, ctx, keep.float()), ref, **TOL)  # the models' own float path
    torch.testing.assert_close(mobile.MobileAttention(cross)(x, ctx, keep.float()), ref, **TOL)
    self_attn = _randomized(blocks.Attention(16, spec))
    rope = blocks.rope_cos_sin((10,), 8, x.device)
    torch.testing.assert_close(mobile.MobileAttention(self_attn)(x, rope=rope), self_attn(x, rope=rope), **TOL)


def test_whole_unet_vae_and_text_encoder():
    """Every temporal-layer kind of the tiny preset, the tiny VAE's streaming decoder, the BERT."""
    torch.manual_seed(0)
    pipe = make_tiny_pipeline()
    unet = _randomized(SpatioTemporalUNet(dataclasses.replace(UNET_PRESETS["tiny"], text_dim=32)))
    x, t, ctx = torch.randn(1, 4, 3, 8, 8), torch.tensor([0.4]), torch.randn(1, 5, 32)
    keep = torch.tensor([[True, True, True, False, False]])
    with torch.no_grad():
        torch.testing.assert_close(mobile.mobile_friendly(unet)(x, t, ctx, keep.float()), unet(x, t, ctx, keep), **TOL)
        z = torch.randn(1, pipe.vae.config.latent_channels, 6, 4, 4)
        torch.testing.assert_close(mobile.mobile_friendly(pipe.vae).decode(z, chunk_frames=4),
                                   pipe.vae.decode(z, chunk_frames=4), **TOL)
        ids = torch.tensor([[1, 5, 9, 0, 0]])
        bert = pipe.text_encoder.model
        torch.testing.assert_close(mobile.mobile_friendly(bert)(ids, keep.float()), bert(ids, keep), **TOL)


@pytest.mark.parametrize("preset", ["tiny", "snapgen8"])
def test_encoder_shortcuts_as_fixed_convs(preset):
    """The VAE encoder (image-to-video export): channel resampling, space-to-channel shortcuts and
    frame 0's repeats as fixed convs and clones, for a still and a clip."""
    from edgevid.config import VAE_PRESETS
    from edgevid.models.vae import VideoVAE

    torch.manual_seed(0)
    vae = randomize_(VideoVAE(VAE_PRESETS[preset]), scale=0.02).eval()
    swapped = mobile.mobile_friendly(vae)
    assert isinstance(swapped.spatial_encoder, mobile.MobileSpatialEncoder)
    assert isinstance(swapped.temporal_encoder, mobile.MobileTemporalEncoder)
    for frames in (1, 5):
        x = torch.rand(1, 3, frames, 32, 32) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(swapped.encode_latents(x), vae.encode_latents(x), **TOL)


@pytest.mark.parametrize("frames", [4, 5])
def test_svd_frame_pooling_and_repeat_are_exact(frames):
    """MobileVD's temporal multiscaling without mean, repeat_interleave or a concatenation of one
    tensor with itself: bit for bit the models' functions, for even and odd frame counts."""
    from edgevid.models import svd_unet

    h = torch.randn(2 * frames, 3, 4, 4)
    assert torch.equal(mobile.halve_frames(h, frames), svd_unet.halve_frames(h, frames))
    half = (frames + 1) // 2
    g = torch.randn(2 * half, 3, 4, 4)
    assert torch.equal(mobile.double_frames(g, half, frames, torch.ones(1, 1, 2, 1)),
                       svd_unet.double_frames(g, half, frames))


@pytest.mark.parametrize("variant", ["mobilevd", "full"])
def test_whole_svd_unet_and_image_embedder(variant):
    """The SVD denoiser's forms (attention without SDPA, GEGLU by slices, the frame-position table,
    the resnets' broadcasts, temporal pooling and repeat): the whole network, with every temporal
    block and 5 latent frames. "mobilevd": optimized cross-attention, temporal multiscaling and
    merged funnels (narrower q/k than the softmax scale's width); "full": plain cross-attention to 3
    tokens."""
    from edgevid.compress.mobilevd import add_funnels, add_temporal_multiscaling, merge_funnels, optimize_cross_attention
    from edgevid.config import SVD_UNET_PRESETS
    from edgevid.models.i2v import Img2VidDenoiser

    torch.manual_seed(0)
    model = Img2VidDenoiser(SVD_UNET_PRESETS["svd-tiny"])
    tokens = 3
    if variant == "mobilevd":
        unet = add_temporal_multiscaling(optimize_cross_attention(model.unet), (True, False))
        model, tokens = model.with_unet(merge_funnels(add_funnels(unet, 0.5))), 1
    model = _randomized(model)
    swapped = mobile.mobile_friendly(model)
    kinds = {type(m) for m in swapped.modules()}
    assert {mobile.MobileTransformerSpatioTemporal, mobile.MobileFeedForward, mobile.MobileResnetBlock2D,
            mobile.MobileLatentImageEmbedder} <= kinds
    assert (mobile.MobileSVDAttention in kinds) and not kinds & {nn.GroupNorm, nn.LayerNorm}
    cfg = model.config
    x = torch.randn(1, cfg.in_channels, 5, 8, 8)
    emb, ctx = torch.randn(1, cfg.time_embed_dim), torch.randn(1, tokens, cfg.cross_attention_dim)
    z = torch.randn(1, cfg.out_channels, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(swapped.unet.forward_embedded(x, emb, ctx), model.unet.forward_embedded(x, emb, ctx),
                                   **TOL)
        torch.testing.assert_close(swapped.image_embed(z), model.image_embed(z), **TOL)


def test_mobile_friendly_leaves_the_original_alone():
    unet = SpatioTemporalUNet(dataclasses.replace(UNET_PRESETS["tiny"], text_dim=32))
    before = {type(m) for m in unet.modules()}
    swapped = {type(m) for m in mobile.mobile_friendly(unet).modules()}
    assert {type(m) for m in unet.modules()} == before and nn.GroupNorm in before
    assert not swapped & {nn.GroupNorm, nn.LayerNorm, blocks.Upsample, blocks.Attention, nn.Conv3d, nn.Conv1d}
