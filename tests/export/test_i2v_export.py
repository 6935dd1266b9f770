"""Image-to-video export: a micro MobileVD-style pipeline (residual flow, optimized cross-attention,
temporal multiscaling) -> artifacts -> the numpy runner, against the eager pipeline; the CLI
round trip without edgevid's model code; the runner's refusals."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import export_group, formats, randomize_


def make_micro_i2v():
    from edgevid.compress.mobilevd import add_temporal_multiscaling, optimize_cross_attention
    from edgevid.config import SVD_UNET_PRESETS, VAE_PRESETS
    from edgevid.models.i2v import Img2VidDenoiser
    from edgevid.models.vae import VideoVAE
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline, Img2VidDefaults

    torch.manual_seed(0)
    model = Img2VidDenoiser(dataclasses.replace(SVD_UNET_PRESETS["svd-tiny"], residual_scale=0.5))
    model = model.with_unet(add_temporal_multiscaling(optimize_cross_attention(model.unet), (True, False)))
    vae = randomize_(VideoVAE(dataclasses.replace(VAE_PRESETS["tiny"], decode_chunk_frames=2)), scale=0.02)
    defaults = Img2VidDefaults(num_frames=9, height=32, width=32, fps=8, num_inference_steps=2,
                               noise_aug_strength=0.05)
    return EdgeVidImg2VidPipeline(vae, randomize_(model), defaults, precision="fp32")


@pytest.fixture(scope="module")
def micro():
    return make_micro_i2v()


@pytest.fixture(scope="module")
def exported(micro, tmp_path_factory):
    from edgevid.export.exporter import export_pipeline

    cache = {}

    def get(fmt):
        if fmt not in cache:
            pytest.importorskip({"executorch": "executorch", "onnx": "onnxruntime", "litert": "ai_edge_litert",
                                 "coreml": "coremltools"}[fmt])
            cache[fmt] = tmp_path_factory.mktemp(f"i2v-{fmt}")
            export_pipeline(micro, cache[fmt], fmt, progress=False)
        return cache[fmt]

    return get


def _image(seed=0):
    """A still with structure (a bright square on a gradient), uint8 (32, 32, 3)."""
    y, x = np.mgrid[:32, :32]
    image = np.stack([x * 8, y * 8, np.full_like(x, 60)], axis=-1).astype(np.uint8)
    image[8 + seed:20 + seed, 10:22] = (240, 40, 40)
    return image


def _eager(micro, image, noise, seed):
    """The PyTorch pipeline with the runner's clip noise; its augmentation noise is the generator's
    first draw, which the test reproduces for the runner."""
    return micro(image, latents=torch.from_numpy(noise), generator=torch.Generator().manual_seed(seed)).frames[0]


@pytest.mark.parametrize("fmt", formats("i2v", "onnx", "executorch", "litert"))
def test_i2v_round_trip_matches_eager(micro, exported, fmt):
    from edgevid.export.runner import ExportedImg2VidPipeline

    pipe = ExportedImg2VidPipeline(exported(fmt), threads=1)
    assert pipe.latent_shape == (1, 4, 3, 4, 4) and pipe.image_size == (32, 32)
    noise = np.random.default_rng(0).standard_normal(pipe.latent_shape, dtype=np.float32)
    aug = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(5)).numpy()
    image = _image()
    video = pipe(image, noise=noise, aug_noise=aug)
    ref = _eager(micro, image, noise, 5)
    assert video.shape == ref.shape == (9, 32, 32, 3)  # 3 latents, decoded in one call (img2vid_spec)
    assert np.abs(video - ref).max() < 1e-4
    other = pipe(_image(seed=6), noise=noise, aug_noise=aug)
    assert np.abs(other - video).max() > 1e-3  # the image reaches the clip


@export_group("i2v", "executorch")
def test_i2v_manifest_and_delegation(exported):
    m = json.loads((exported("executorch") / "manifest.json").read_text())
    assert m["task"] == "image-to-video" and m["sampler"]["residual_scale"] == 0.5
    assert m["sampler"]["timesteps"] == [1.0, 0.5, 0.0] and m["sampler"]["noise_aug_strength"] == 0.05
    assert set(m["stages"]) == {"encoder", "denoiser", "decoder_first", "decoder_next"}
    assert m["decoder"]["chunk_latents"] == 3  # the short clip in one decoder call, no padded tail
    assert m["stages"]["denoiser"]["inputs"][0] == {"name": "r", "shape": [1, 4, 3, 4, 4], "dtype": "float32"}
    assert np.load(exported("executorch") / "time_embeddings.npy").shape[0] == 2
    for name in m["stages"]:  # every stage, the SVD denoiser too, runs on XNNPACK alone
        d = m["stages"][name]["delegation"]
        assert d["partitions"] == 1 and d["portable_ops"] == {} and d["delegated_share"] == 1.0, (name, d)


def test_i2v_coreml_package_spec(exported):
    """Core ML runs on macOS only: here the packages are built and their specs read back."""
    m = json.loads((exported("coreml") / "manifest.json").read_text())
    spec = m["stages"]["denoiser"]
    names = [i["name"] for i in spec["inputs"]]
    assert names == ["r", "image_latent", "cond", "emb"] and (exported("coreml") / spec["file"]).is_dir()
    assert m["stages"]["encoder"]["outputs"][0]["shape"] == [1, 4, 4, 4]


@export_group("i2v", "onnx")
def test_i2v_runner_refusals(exported):
    from edgevid.export.runner import ExportedImg2VidPipeline, ExportedPipeline, open_exported

    folder = exported("onnx")
    assert isinstance(open_exported(folder), ExportedImg2VidPipeline)
    with pytest.raises(ValueError, match="task is image-to-video"):
        ExportedPipeline(folder)
    pipe = ExportedImg2VidPipeline(folder, threads=1)
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\) = \(32, 32, 3\)"):
        pipe(np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="noise must have shape"):
        pipe(_image(), noise=np.zeros((1, 4, 2, 4, 4), np.float32))


BLOCKER = """
import sys
BLOCKED = {blocked!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError("blocked in this test: " + name)
sys.meta_path.insert(0, Block())
from edgevid.cli import main
sys.exit(main(["run-exported", {folder!r}, {image!r}, "-o", {out!r}]))
"""


def test_export_and_run_exported_cli_without_model_code(micro, tmp_path):
    """`edgevid export --model <i2v folder>`, then `edgevid run-exported FOLDER still.png` with
    edgevid's model code and torch unimportable (ONNX Runtime needs neither)."""
    pytest.importorskip("onnxruntime")
    from PIL import Image

    from edgevid.cli import main

    micro.save_pretrained(tmp_path / "model")
    assert main(["export", "--model", str(tmp_path / "model"), "--format", "onnx", "-o", str(tmp_path / "x"),
                 "--threads", "1"]) == 0
    Image.fromarray(np.repeat(np.repeat(_image(), 2, 0), 3, 1)).save(tmp_path / "still.png")  # 64x96: resized, cropped
    blocked = ["torch", "edgevid.models", "edgevid.pipeline", "edgevid.pipeline_i2v", "edgevid.text", "edgevid.flow",
               "edgevid.export.stages", "edgevid.export.stages_i2v", "edgevid.export.mobile",
               "edgevid.export.exporter", "edgevid.export.formats"]
    out = tmp_path / "v.mp4"
    script = BLOCKER.format(blocked=blocked, folder=str(tmp_path / "x"), image=str(tmp_path / "still.png"),
                            out=str(out))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.stat().st_size > 0 and "9 frames 32x32" in r.stderr
    bad = subprocess.run([sys.executable, "-m", "edgevid.cli", "run-exported", str(tmp_path / "x"),
                          str(tmp_path / "model" / "model_index.json"), "-o", str(tmp_path / "w.mp4")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "cannot read as an image" in bad.stderr
