import os

# Tests run side by side on 2 cores: keep each process to one intra-op thread so that
# timings stay stable and parallel runs do not thrash. EDGEVID_TEST_THREADS=2 runs the suite with
# two (other thread counts split reductions differently: the tolerances must hold for both).
THREADS = int(os.environ.get("EDGEVID_TEST_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
# Pipelines pick bf16 on CPUs with native bf16 ("auto", edgevid.precision): pin fp32 so that the
# suite's numbers do not depend on the CPU; the precision tests ask for bf16 explicitly.
os.environ["EDGEVID_PRECISION"] = "fp32"
# Caches (compiled denoisers, ShapesBench's ground-truth rows) go to a fresh folder per run, never
# the user's ~/.cache/edgevid: a test neither reads a stale entry nor leaves one behind.
import tempfile  # noqa: E402

os.environ["EDGEVID_CACHE"] = tempfile.mkdtemp(prefix="edgevid-test-cache-")

import math  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    # Some code under test (the CLI) sets torch's thread count; reset it for every test.
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)


def reorder_tol(reduction: int, dtype: torch.dtype = torch.float32, layers: int = 1, scale: float = 1.0) -> dict:
    """assert_close tolerances for two code paths that compute the same function with the sums in
    another order: another SIMD width (ATEN_CPU_CAPABILITY, i.e. another CPU), GEMM blocking, batch
    size or chunking. A length-n float sum rounded in another order moves by about sqrt(n) ulps of
    the magnitude of its terms (Higham 2002 §3.6, rounding errors as random signs; the worst case is
    n), `layers` such sums in a row add up, and `scale` is the magnitude of the compared values.
    Exactness tests (same path, same seed) compare with torch.equal instead."""
    rel = math.sqrt(reduction) * layers * torch.finfo(dtype).eps
    return {"atol": rel * scale, "rtol": rel}


def network_reorder_tol(module: nn.Module, scale: float = 1.0, dtype: torch.dtype = torch.float32) -> dict:
    """reorder_tol for a whole network: its largest fan-in (the longest dot product) and its number of
    reducing layers (convolutions, linears, norms) as the depth, an upper bound on the chain."""
    reducing = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.GroupNorm, nn.LayerNorm)
    layers = [m for m in module.modules() if isinstance(m, reducing)]
    fan_in = max(m.weight[0].numel() for m in layers if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)))
    return reorder_tol(fan_in, dtype, layers=len(layers), scale=scale)


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


def export_group(module: str, fmt: str):
    """The suite runs on 2 workers (pytest-xdist, `--dist loadgroup` in pyproject.toml). Tests that
    read one module-scoped export (minutes of ExecuTorch lowering) share a group, so that the export
    is made on one worker only, not once per worker."""
    return pytest.mark.xdist_group(f"{module}-{fmt}")


def formats(module: str, *fmts: str) -> list:
    """parametrize values: each format in its export's group."""
    return [pytest.param(f, marks=export_group(module, f)) for f in fmts]
