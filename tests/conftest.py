import os

# Tests run side by side on 2 cores: keep each process to one intra-op thread so that
# timings stay stable and parallel runs do not thrash.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    # Some code under test (the CLI) sets torch's thread count; reset it for every test.
    torch.set_num_threads(1)
    torch.manual_seed(0)


def randomize_(module: torch.nn.Module, scale: float = 0.05) -> torch.nn.Module:
    """Perturb every parameter, so zero-initialised output layers do not hide bugs in tests."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return module


def make_tiny_pipeline(num_frames: int = 5, size: int = 32, steps: int = 2, guidance: float = 2.0):
    """A pipeline of tiny random components: VAE 8x/4x, 2-stage UNet, 32-d hashing text encoder."""
    import dataclasses

    from edgevid.config import UNET_PRESETS, VAE_PRESETS
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.models.vae import VideoVAE
    from edgevid.pipeline import EdgeVidPipeline, GenerationDefaults
    from edgevid.text import TinyTextEncoder

    torch.manual_seed(0)
    text = TinyTextEncoder(dim=32)
    unet = randomize_(SpatioTemporalUNet(dataclasses.replace(UNET_PRESETS["tiny"], text_dim=text.dim)))
    vae = VideoVAE(VAE_PRESETS["tiny"])
    defaults = GenerationDefaults(num_frames=num_frames, height=size, width=size, fps=8, num_inference_steps=steps,
                                  guidance_scale=guidance)
    return EdgeVidPipeline(vae, unet, text, defaults)


@pytest.fixture
def tiny_pipeline():
    return make_tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_model")
    make_tiny_pipeline().save_pretrained(path)
    return path
