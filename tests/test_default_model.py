"""The model shipped inside the package loads and generates (short, low resolution: fast)."""
import numpy as np
import torch

from edgevid.pipeline import EdgeVidPipeline, default_model_dir


def test_shipped_model_loads_and_generates_a_short_clip():
    pipe = EdgeVidPipeline.from_pretrained(default_model_dir())
    assert type(pipe.text_encoder).__name__ == "MiniLMTextEncoder"  # the real sentence encoder
    d = pipe.defaults
    assert (d.num_frames - 1) % pipe.vae.config.temporal_compression == 0 and d.height % pipe.size_multiple == 0
    gen = lambda prompt: pipe(prompt, num_frames=5, height=64, width=64, num_inference_steps=2,
                              generator=torch.Generator().manual_seed(0)).frames
    red = gen("a red circle moving right on a white background")
    assert red.shape == (1, 5, 64, 64, 3) and np.isfinite(red).all()
    assert red.std() > 0.02  # not a blank frame
    blue = gen("a blue square moving up on a black background")
    assert np.abs(red - blue).mean() > 0.01  # the prompt reaches the frames
