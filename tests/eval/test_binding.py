"""The text-binding probe: recoloured captions, and a text-blind model gains nothing."""
import pytest
import torch

from edgevid.data.captions import canonical_caption
from edgevid.data.splits import contrasts
from edgevid.eval.binding import binding_errors, recoloured, scene_inputs, summarise
from edgevid.eval.shapesbench import benchmark_specs

TS = [0.5, 0.9]


def test_recoloured_changes_every_object_colour_and_nothing_else():
    for spec, caption in benchmark_specs(50):
        other = recoloured(spec)
        colours = [o.colour for o in other.objects]
        assert len(set(colours)) == len(colours)
        for before, after in zip(spec.objects, other.objects):
            assert after.colour != before.colour and after.shape == before.shape and after.motion == before.motion
            assert contrasts(after.colour, spec.background_colour, spec.background)
        assert other.background == spec.background and canonical_caption(other) != caption


class TextBlind(torch.nn.Module):
    """The same UNet fed an all-zero prompt, whatever the caption."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.config = unet, unet.config

    def forward(self, x, t, context, mask=None):
        return self.unet(x, t, torch.zeros_like(context[:, :1]), None)


@pytest.fixture(scope="module")
def inputs():
    from tests.conftest import make_tiny_pipeline

    pipe = make_tiny_pipeline()
    specs = [s for s, _ in benchmark_specs(4)]
    return pipe, scene_inputs(pipe, specs, frames=5, size=64)


def test_probe_is_deterministic_and_sees_the_text(inputs):
    pipe, (x0, mask, captions) = inputs
    assert x0.shape[0] == 4 and mask.shape == (4, 1, *x0.shape[2:]) and 0 < mask.mean() < 0.5
    a = summarise(binding_errors(pipe, x0, mask, captions, TS), TS)
    b = summarise(binding_errors(pipe, x0, mask, captions, TS), TS)
    assert a == b
    assert abs(a["mean"]["object_colour_gain"]) > 1e-4  # a random UNet's output moves with the caption


def test_text_blind_model_gains_nothing(inputs):
    pipe, (x0, mask, captions) = inputs
    blind = type(pipe)(pipe.vae, TextBlind(pipe.unet), pipe.text_encoder, pipe.defaults)
    mean = summarise(binding_errors(blind, x0, mask, captions, TS), TS)["mean"]
    for key in ("object_colour_gain", "object_text_gain", "background_text_gain"):
        assert abs(mean[key]) < 1e-6


def test_probe_needs_object_and_background_cells(inputs):
    pipe, (x0, mask, captions) = inputs
    with pytest.raises(ValueError, match="object and background"):
        binding_errors(pipe, x0, torch.ones_like(mask), captions, TS)
