"""Function-preserving widening (models/grow.py): the wider UNet computes what the trained one did."""
import dataclasses

import pytest
import torch

from edgevid.config import UNET_PRESETS
from edgevid.models.grow import unet_chunked, widen_into, widening_index
from edgevid.models.unet import SpatioTemporalUNet


def test_widening_index():
    assert widening_index(2, 4).tolist() == [0, 0, 1, 1]
    assert widening_index(2, 6).tolist() == [0, 0, 0, 1, 1, 1]
    # [h (2 channels, kept), skip (2 channels, doubled)] -> 6 channels
    assert widening_index(4, 6).tolist() == [0, 1, 2, 2, 3, 3]
    for old, new in ((4, 4), (4, 3), (4, 9)):
        with pytest.raises(ValueError, match="cannot widen"):
            widening_index(old, new)


def _trained_like(config):
    torch.manual_seed(0)
    model = SpatioTemporalUNet(config)
    with torch.no_grad():
        for p in model.parameters():  # no zero-initialised outputs: every path carries signal
            p.normal_(0, 0.2)
    return model


@pytest.mark.parametrize("hidden", [(32, 32), (48, 64)])
def test_widened_unet_computes_the_same_function(hidden):
    config = UNET_PRESETS["tiny"]
    source = _trained_like(config)
    wide = SpatioTemporalUNet(dataclasses.replace(config, res_hidden_channels=hidden))
    widened = widen_into(source, wide, noise=0.1, chunked=unet_chunked(wide))
    assert "down_blocks.0.0.res.conv1.weight" in widened and "conv_in.weight" not in widened
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in source.parameters())
    g = torch.Generator().manual_seed(1)
    x, t, ctx = torch.randn(2, 4, 5, 8, 8, generator=g), torch.rand(2, generator=g), torch.randn(2, 3, 32, generator=g)
    with torch.no_grad():
        ref = source(x, t, ctx)
        out = wide(x, t, ctx)
    assert ref.abs().max() > 0.1
    # float32 sums in another order: ~1e-6 of outputs of order 1
    assert (out - ref).abs().max() < 1e-4


def test_noise_breaks_the_copies_symmetry():
    """Without noise the two copies of a channel get identical gradients and stay copies; with it
    they drift apart from the first step."""
    config = UNET_PRESETS["tiny"]
    source = _trained_like(config)
    grads = {}
    for noise in (0.0, 0.1):
        wide = SpatioTemporalUNet(dataclasses.replace(config, res_hidden_channels=(32, 32)))
        widen_into(source, wide, noise=noise, chunked=unet_chunked(wide))
        g = torch.Generator().manual_seed(2)
        x, t, ctx = torch.randn(1, 4, 2, 8, 8, generator=g), torch.rand(1, generator=g), torch.randn(1, 3, 32, generator=g)
        wide(x, t, ctx).square().mean().backward()
        w = wide.down_blocks[0][0].res.conv1.weight.grad  # (32, in, 3, 3): channel c copied to 2c and 2c + 1
        grads[noise] = (w[0::2] - w[1::2]).abs().max().item() / w.abs().max().item()
    assert grads[0.0] < 1e-5
    assert grads[0.1] > 1e-3


def test_widening_refuses_other_changes():
    source = SpatioTemporalUNet(UNET_PRESETS["tiny"])
    deeper = SpatioTemporalUNet(dataclasses.replace(UNET_PRESETS["tiny"], num_res_blocks=(2, 1)))
    with pytest.raises(ValueError, match="same layers"):
        widen_into(source, deeper)
