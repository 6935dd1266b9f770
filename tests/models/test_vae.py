"""Video VAE and its loss, on the tiny preset (CPU, seconds)."""
import dataclasses

import pytest
import torch

from conftest import network_reorder_tol, reorder_tol
from edgevid.config import VAE_PRESETS
from edgevid.models.vae import DiagonalGaussian, VideoVAE, fit_latent_normalization
from edgevid.models.vae_loss import psnr, temporal_difference_loss, vae_loss

TINY = VAE_PRESETS["tiny"]


@pytest.fixture
def vae():
    return VideoVAE(TINY).eval()


def video(T, H, W, B=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, 3, T, H, W, generator=g) * 2 - 1


@pytest.mark.parametrize("T,H,W", [(1, 16, 16), (5, 16, 24), (9, 24, 16)])
def test_round_trip_shapes(vae, T, H, W):
    x = video(T, H, W, B=2)
    with torch.no_grad():
        post = vae.encode(x)
        assert post.mean.shape == (2, *vae.latent_shape(T, H, W))
        assert post.mean.shape == (2, 4, 1 + (T - 1) // 4, H // 8, W // 8)
        assert vae.num_frames(post.mean.shape[2]) == T
        assert vae.decode(post.sample()).shape == x.shape
        assert vae.decode_latents(vae.encode_latents(x)).shape == x.shape


@pytest.mark.parametrize("T,H,W", [(0, 16, 16), (2, 16, 16), (4, 16, 16), (8, 16, 16), (5, 20, 16), (5, 16, 12), (1, 0, 16)])
def test_latent_shape_rejects_bad_sizes(vae, T, H, W):
    with pytest.raises(ValueError, match="1 \\+ 4\\*k|multiples of 8"):
        vae.latent_shape(T, H, W)
    if T > 0 and H > 0:
        with pytest.raises(ValueError):
            vae.encode(video(T, H, W))
    with pytest.raises(ValueError):
        vae.num_frames(0)


def test_encoder_and_decoder_are_causal(vae):
    x = video(13, 16, 16)
    y = x.clone()
    y[:, :, 8:] = video(5, 16, 16, seed=1)  # change frames 8..12 (latents 2, 3 see them)
    with torch.no_grad():
        zx, zy = vae.encode(x).mean, vae.encode(y).mean  # (1, 4, 4, 2, 2)
        assert torch.equal(zx[:, :, :2], zy[:, :, :2])  # latent 1 covers frames 1..4
        assert not torch.allclose(zx[:, :, 2], zy[:, :, 2])
        # An image is a 1-frame video: it encodes to the same latent 0 as the clip it starts.
        # One frame against 13: the encoder's convolutions run over other shapes (other sums).
        torch.testing.assert_close(vae.encode(x[:, :, :1]).mean, zx[:, :, :1],
                                   **network_reorder_tol(vae, scale=float(zx.abs().max())))

        z2 = zx.clone()
        z2[:, :, 2:] += 1.0  # change latents 2, 3 (frames 5..12)
        vx, v2 = vae.decode(zx, chunk_frames=0), vae.decode(z2, chunk_frames=0)
        assert torch.equal(vx[:, :, :5], v2[:, :, :5])
        assert not torch.allclose(vx[:, :, 5], v2[:, :, 5])


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_decode_equals_whole(vae, chunk):
    z = torch.randn(2, 4, 5, 2, 3)
    with torch.no_grad():
        whole = vae.decode(z, chunk_frames=0)
        chunked = vae.decode(z, chunk_frames=chunk)
    assert chunked.shape == whole.shape == (2, 3, 17, 16, 24)
    assert (chunked - whole).abs().max() < 1e-5


def test_decode_uses_config_chunk_size():
    vae = VideoVAE(dataclasses.replace(TINY, decode_chunk_frames=1)).eval()
    z = torch.randn(1, 4, 3, 2, 2)
    with torch.no_grad():
        assert (vae.decode(z) - vae.decode(z, chunk_frames=0)).abs().max() < 1e-5


def test_vae_loss_decreases_on_one_clip():
    from edgevid.data import ProceduralClips, make_batch

    vae = VideoVAE(TINY)
    x, _ = make_batch(ProceduralClips(seed=0), [0], (5, 32, 32))  # structured (noise is incompressible)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss, logs = vae_loss(vae, x, kl_weight=1e-6, temporal_weight=0.5, generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(logs) == {"rec", "kl", "temporal", "psnr"}
    assert all(torch.isfinite(torch.tensor(list(logs.values()))))
    assert losses[-1] < 0.8 * losses[0], losses


def test_normalize_inverse_and_fit_latent_normalization(vae):
    cfg = dataclasses.replace(TINY, scaling_factor=0.37, shift_factor=-0.8)
    vae_n = VideoVAE(cfg)
    z = torch.randn(1, 4, 2, 2, 2)
    torch.testing.assert_close(vae_n.denormalize(vae_n.normalize(z)), z)
    torch.testing.assert_close(vae_n.normalize(z), (z + 0.8) * 0.37)

    videos = [video(5, 16, 16, B=2, seed=s) for s in range(3)]
    scale, shift = fit_latent_normalization(vae, videos)
    vae.config = dataclasses.replace(vae.config, scaling_factor=scale, shift_factor=shift)
    with torch.no_grad():
        zn = torch.cat([vae.encode_latents(v).flatten() for v in videos])
    assert abs(zn.mean().item()) < 1e-4 and abs(zn.std(unbiased=False).item() - 1) < 1e-4


def test_per_channel_normalization_gives_unit_variance_per_channel(vae):
    videos = [video(5, 16, 16, B=2, seed=s) for s in range(3)]
    scale, shift = fit_latent_normalization(vae, videos, per_channel=True)
    assert len(scale) == len(shift) == vae.config.latent_channels
    vae.config = dataclasses.replace(vae.config, scaling_factor=scale, shift_factor=shift)
    with torch.no_grad():
        zn = torch.cat([vae.encode_latents(v) for v in videos])  # (N, C, T', H', W')
    # The fit (float64) and this check (float32) see the same encoder outputs; only the float32
    # normalisation and these means round: a few ulps, 1e-4 is > 100x sqrt(n) eps for n = zn[:, 0].numel().
    assert reorder_tol(zn[:, 0].numel())["rtol"] * 100 < 1e-4
    torch.testing.assert_close(zn.mean((0, 2, 3, 4)), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(zn.std((0, 2, 3, 4), unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    z = torch.randn(2, 4, 2, 2, 2)
    torch.testing.assert_close(vae.denormalize(vae.normalize(z)), z)
    with pytest.raises(ValueError, match="one value per latent channel"):
        dataclasses.replace(TINY, scaling_factor=(1.0, 2.0))
    with pytest.raises(ValueError, match="> 0"):
        dataclasses.replace(TINY, scaling_factor=(1.0, 2.0, 0.0, 1.0))


def test_fresh_vae_is_its_shortcut_path():
    # Residual shortcuts + zeroed branches: a fresh VAE already reconstructs block-averaged
    # colours, while without shortcuts it outputs a near-constant image.
    from edgevid.data import ProceduralClips, make_batch
    from edgevid.models.vae_loss import psnr

    x, _ = make_batch(ProceduralClips(seed=0), [1], (5, 64, 64))
    with torch.no_grad():
        with_shortcuts = psnr(VideoVAE(TINY).decode(VideoVAE(TINY).encode(x).mean), x)
        plain = VideoVAE(dataclasses.replace(TINY, residual_shortcuts=False))
        without = psnr(plain.decode(plain.encode(x).mean), x)
    assert with_shortcuts > 19 and with_shortcuts > without + 2, (with_shortcuts, without)


def test_posterior_starts_narrow(vae):
    # A fresh VAE's posterior std is ~0.05, so the decoder first sees the means, not unit noise.
    post = vae.encode(torch.randn(1, 3, 5, 32, 32))
    assert post.std.max() < 0.2


def test_diagonal_gaussian_kl_and_sampling():
    mean, logvar = torch.randn(3, 4, 2, 2, 2), torch.randn(3, 4, 2, 2, 2)
    post = DiagonalGaussian(mean, logvar)
    kl = post.kl()
    assert kl.shape == (3,) and (kl > 0).all()
    assert torch.equal(DiagonalGaussian(torch.zeros(2, 4, 1, 1, 1), torch.zeros(2, 4, 1, 1, 1)).kl(), torch.zeros(2))
    a = post.sample(torch.Generator().manual_seed(5))
    b = post.sample(torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, post.mode())


def test_hc32_preset_shapes():
    vae = VideoVAE(VAE_PRESETS["hc32"]).eval()
    x = video(5, 32, 64)
    with torch.no_grad():
        z = vae.encode(x).mode()
        assert z.shape == (1, 32, 2, 1, 2) == (1, *vae.latent_shape(5, 32, 64))
        assert vae.decode(z).shape == x.shape


def test_image_vae_without_temporal_compression():
    vae = VideoVAE(dataclasses.replace(TINY, temporal_compression=1)).eval()
    assert vae.latent_shape(3, 16, 16) == (4, 3, 2, 2)
    assert vae.num_frames(3) == 3
    x = video(3, 16, 16)
    with torch.no_grad():
        z = vae.encode(x).mode()
        assert z.shape == (1, 4, 3, 2, 2)
        assert vae.decode(z, chunk_frames=1).shape == x.shape
        assert (vae.decode(z, chunk_frames=1) - vae.decode(z, chunk_frames=0)).abs().max() < 1e-5


@pytest.mark.parametrize("kwargs", [
    dict(decoder_channels=(8, 8, 16, 16)),  # one too many (no full-resolution level)
    dict(decoder_res_blocks=(1, 1)),
    dict(temporal_channels=12),  # not a multiple of norm_groups
    dict(spatial_compression=6),
    dict(scaling_factor=0.0),
])
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        dataclasses.replace(TINY, **kwargs)


def test_psnr_and_temporal_term():
    a = torch.zeros(1, 3, 3, 4, 4)
    assert abs(psnr(a, a + 0.2).item() - 20.0) < 1e-4  # mse 0.04 on a peak-to-peak of 2
    # A constant error has no flicker; an error that alternates in time does.
    assert temporal_difference_loss(a + 0.3, a).item() == 0.0
    flicker = a.clone()
    flicker[:, :, 1] = 0.3
    assert temporal_difference_loss(flicker, a).item() > 0.1
    assert temporal_difference_loss(a[:, :, :1] + 1, a[:, :, :1]).item() == 0.0


@pytest.mark.parametrize("preset", [None, "tiny-fast"])
def test_spatial_decoder_fast_form_equals_the_plain_formula(preset):
    """The decoder applies its parameter-free shortcuts as fixed 1x1 convolutions, with one pixel
    shuffle per level (the fast path); it must compute the textbook form:
    x = conv_in(z) + resample(z); per level x = shuffle(conv(silu(blocks(x)))) + up_shortcut(blocks(x))."""
    from edgevid.config import DECODER_PRESETS
    from edgevid.models.vae import resample_channels, up_shortcut

    cfg = VAE_PRESETS["tiny"]
    if preset:
        cfg = dataclasses.replace(cfg, **DECODER_PRESETS[preset])
    sd = VideoVAE(cfg).spatial_decoder.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in sd.parameters():  # a fresh VAE zeroes most layers: give every weight a value
            p.normal_(0, 0.3)
    z = torch.randn(3, cfg.spatial_latent_channels, 4, 6)
    with torch.no_grad():
        x = sd.conv_in(z) + resample_channels(z, sd.conv_in.out_channels)
        for level in sd.levels:
            *blocks, act, conv, shuffle = level
            for block in blocks:
                x = block(x)
            h = shuffle(conv(act(x)))
            x = h + up_shortcut(x, h.shape[1])
        fast = sd(z)
    s = cfg.spatial_compression
    assert fast.shape == x.shape == (3, 3, 4 * s, 6 * s)
    # The fused decoder and this loop sum in another order; outputs are of magnitude ~10.
    torch.testing.assert_close(fast, x, **network_reorder_tol(sd, scale=float(x.abs().max())))
