"""Export -> run round trips per format on a micro pipeline (the default model's layer kinds at a
tiny width), the runner's refusals, and the runner's independence from edgevid's model code."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import export_group, formats, randomize_

PROMPT = "a red circle moving right"
# the tests that read one format's module-scoped export run on one worker (conftest.export_group)
ET, ONNX, LITERT = (export_group("roundtrip", fmt) for fmt in ("executorch", "onnx", "litert"))


def make_micro_pipeline():
    from edgevid.config import UNET_PRESETS, VAE_PRESETS
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.models.vae import VideoVAE
    from edgevid.pipeline import EdgeVidPipeline, GenerationDefaults
    from edgevid.text import TinyTextEncoder

    torch.manual_seed(0)
    text = TinyTextEncoder(dim=16, max_length=12)
    unet_cfg = dataclasses.replace(UNET_PRESETS["tiny"], channels=(8, 16), text_dim=16, head_dim=8, norm_groups=4,
                                   temporal_layers=(("conv1d",), ("self_attn1d",)), mid_temporal_layers=("self_attn1d",),
                                   time_embed_dim=16)
    unet = randomize_(SpatioTemporalUNet(unet_cfg))
    vae = randomize_(VideoVAE(dataclasses.replace(VAE_PRESETS["tiny"], decode_chunk_frames=2)), scale=0.02)
    defaults = GenerationDefaults(num_frames=13, height=32, width=32, fps=8, num_inference_steps=2, guidance_scale=1.0)
    return EdgeVidPipeline(vae, unet, text, defaults)


@pytest.fixture(scope="module")
def micro():
    return make_micro_pipeline()


@pytest.fixture(scope="module")
def exported(micro, tmp_path_factory):
    """format -> its export folder, made once per module."""
    from edgevid.export.exporter import export_pipeline

    cache = {}

    def get(fmt):
        if fmt not in cache:
            pytest.importorskip({"executorch": "executorch", "onnx": "onnxruntime", "litert": "ai_edge_litert",
                                 "coreml": "coremltools"}[fmt])
            folder = tmp_path_factory.mktemp(fmt)
            export_pipeline(micro, folder, fmt, progress=False)
            cache[fmt] = folder
        return cache[fmt]

    return get


def _eager(micro, noise):
    return micro(PROMPT, latents=torch.from_numpy(noise)).frames[0]


@pytest.mark.parametrize("fmt", formats("roundtrip", "executorch", "onnx", "litert"))
def test_round_trip_matches_eager(micro, exported, fmt):
    from edgevid.export.runner import ExportedPipeline

    pipe = ExportedPipeline(exported(fmt), threads=1)
    noise = np.random.default_rng(0).standard_normal(pipe.latent_shape, dtype=np.float32)
    video = pipe(PROMPT, noise=noise)
    ref = _eager(micro, noise)
    assert video.shape == ref.shape == (13, 32, 32, 3)  # 7 latents: a first chunk, a full one, a padded tail
    assert np.abs(video - ref).max() < 1e-4
    other = pipe("two blue squares", noise=noise)
    assert np.abs(other - video).max() > 1e-3  # the prompt reaches the denoiser


@ET
def test_executorch_delegates_every_compute_op(exported):
    stages = json.loads((exported("executorch") / "manifest.json").read_text())["stages"]
    for name in ("text", "denoiser", "decoder_first", "decoder_next"):  # the word-table gather is the runner's
        d = stages[name]["delegation"]
        assert d["partitions"] == 1 and d["portable_ops"] == {} and d["delegated_share"] == 1.0, (name, d)


@ONNX
def test_manifest_records_what_the_runner_needs(exported):
    m = json.loads((exported("onnx") / "manifest.json").read_text())
    assert m["sampler"]["timesteps"] == [1.0, 0.5, 0.0] and m["video"]["fps"] == 8
    assert m["sampler"]["chunks"] == [{"start": 0, "end": 4, "stage": "denoiser"}]  # no windows: one chunk
    assert m["stages"]["denoiser"]["inputs"][0] == {"name": "x", "shape": [1, 4, 4, 4, 4], "dtype": "float32"}
    assert {"torch", "onnx", "onnxruntime"} <= set(m["toolchain"])
    assert np.load(exported("onnx") / "time_embeddings.npy").shape == (2, 16)
    assert m["text"]["token_table"] == {"file": "token_table.npy", "dtype": "float32"}
    assert set(m["files"]) == {"time_embeddings.npy", "token_table.npy"}  # the hashing tokenizer has no file


@pytest.mark.parametrize("fmt,start", [("onnx", "hold"), pytest.param("executorch", "noise", marks=ET)])
def test_windowed_model_round_trip(micro, exported, tmp_path, fmt, start):
    """A model that generates in windows (the shipped default: 5 latents, overlap 1): one denoiser
    graph per chunk length, and the runner's numpy loop continues each window as the pipeline does."""
    from edgevid.export.exporter import export_pipeline
    from edgevid.export.runner import ExportedPipeline
    from edgevid.pipeline import replace_defaults

    pytest.importorskip({"onnx": "onnxruntime", "executorch": "executorch"}[fmt])
    windowed = replace_defaults(micro, num_frames=21, window_latent_frames=3, overlap_latent_frames=1,
                                continuation_start=start)
    m = export_pipeline(windowed, tmp_path / "w", fmt, progress=False)
    assert m["sampler"]["chunks"] == [{"start": 0, "end": 3, "stage": "denoiser"},
                                      {"start": 2, "end": 5, "stage": "denoiser"},
                                      {"start": 4, "end": 6, "stage": "denoiser_2"}]
    assert m["sampler"]["continuation_start"] == start
    assert m["stages"]["denoiser_2"]["inputs"][0]["shape"] == [1, 4, 2, 4, 4]
    if fmt == "executorch":  # one file, two methods, the weights stored once
        assert m["stages"]["denoiser_2"]["file"] == m["stages"]["denoiser"]["file"] == "denoiser.pte"
        assert m["stages"]["denoiser_2"]["method"] == "denoiser_2" and "method" not in m["stages"]["denoiser"]
        weights = 4 * sum(p.numel() for p in micro.unet.parameters())
        one_graph = json.loads((exported("executorch") / "manifest.json").read_text())["stages"]["denoiser"]["bytes"]
        assert one_graph < m["stages"]["denoiser"]["bytes"] < 2 * one_graph - 0.9 * weights
    else:
        assert m["stages"]["denoiser_2"]["file"] == "denoiser_2.onnx"
    pipe = ExportedPipeline(tmp_path / "w", threads=1)
    noise = np.random.default_rng(1).standard_normal(pipe.latent_shape, dtype=np.float32)
    video = pipe(PROMPT, noise=noise)
    ref = windowed(PROMPT, latents=torch.from_numpy(noise)).frames[0]
    assert video.shape == ref.shape == (21, 32, 32, 3)
    assert np.abs(video - ref).max() < 1e-4
    one_window = replace_defaults(windowed, window_latent_frames=0)(PROMPT, latents=torch.from_numpy(noise)).frames[0]
    assert np.abs(one_window - ref).max() > 1e-3  # the windows change the video: the test would see a lost plan


@ONNX
def test_runner_refuses_a_mismatch_or_a_missing_file(exported, tmp_path):
    import shutil

    from edgevid.export.runner import ExportedPipeline

    folder = tmp_path / "copy"
    shutil.copytree(exported("onnx"), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["stages"]["denoiser"]["method"] = "denoiser_3"  # ONNX files hold one graph
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="one graph per file"):
        ExportedPipeline(folder)
    del manifest["stages"]["denoiser"]["method"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    table = np.load(folder / "token_table.npy")
    np.save(folder / "token_table.npy", table[::-1].copy())  # the arrays beside the graphs are checked too
    with pytest.raises(ValueError, match="token_table.npy does not match the manifest"):
        ExportedPipeline(folder)
    np.save(folder / "token_table.npy", table)
    with open(folder / "decoder_next.onnx", "r+b") as f:  # another export's bytes in place of the artifact
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    with pytest.raises(ValueError, match="does not match the manifest"):
        ExportedPipeline(folder)
    (folder / "decoder_next.onnx").unlink()
    with pytest.raises(ValueError, match="decoder_next.onnx .* is missing"):
        ExportedPipeline(folder)
    (folder / "manifest.json").write_text("{}")
    with pytest.raises(ValueError, match="manifest_version"):
        ExportedPipeline(folder)
    with pytest.raises(ValueError, match="no manifest.json"):
        ExportedPipeline(tmp_path)
    out = subprocess.run([sys.executable, "-m", "edgevid.cli", "run-exported", str(folder), PROMPT, "-o",
                          str(tmp_path / "v.mp4")], capture_output=True, text=True)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1 and "manifest_version" in out.stderr


BLOCKER = """
import sys
BLOCKED = {blocked!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError("blocked in this test: " + name)
sys.meta_path.insert(0, Block())
from edgevid.cli import main
code = main(["run-exported", {folder!r}, {prompt!r}, "-o", {out!r}])
print("LOADED", sorted(m for m in sys.modules if m.startswith("edgevid")))
sys.exit(code)
"""


@pytest.mark.parametrize("fmt", formats("roundtrip", "onnx", "executorch"))
def test_runner_imports_no_model_code(exported, tmp_path, fmt):
    """run-exported with edgevid's model code (and, for ONNX, torch itself; for ExecuTorch, its
    compiler) made unimportable."""
    blocked = ["edgevid.models", "edgevid.pipeline", "edgevid.text", "edgevid.flow", "edgevid.export.stages",
               "edgevid.export.mobile", "edgevid.export.exporter", "edgevid.export.formats"]
    if fmt == "onnx":
        blocked.append("torch")
    else:  # nor ExecuTorch's compiler: 3 s of cold start (runner._executorch_runtime)
        blocked += ["executorch.exir", "torch._dynamo", "sympy"]
    out = tmp_path / "v.mp4"
    script = BLOCKER.format(blocked=blocked, folder=str(exported(fmt)), prompt=PROMPT, out=str(out))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.stat().st_size > 0 and "13 frames 32x32" in r.stderr


def test_coreml_package_spec(exported):
    """Core ML predicts on macOS only; here the .mlpackage's spec is checked."""
    m = json.loads((exported("coreml") / "manifest.json").read_text())
    den = m["stages"]["denoiser"]["coreml"]
    assert [i["name"] for i in den["inputs"]] == ["x", "tokens", "mask", "temb"]
    assert den["inputs"][0]["shape"] == [1, 4, 4, 4, 4] and den["compute_precision"] == "fp32" and den["ops"] > 50
    assert [o["name"] for o in m["stages"]["decoder_next"]["coreml"]["outputs"]][0] == "frames"
    from edgevid.export.runner import ExportedPipeline

    with pytest.raises(ValueError, match="macOS"):
        ExportedPipeline(exported("coreml"))


@LITERT
def test_litert_text_and_decoder_stages_match_eager(micro, exported):
    from edgevid.export.runner import ExportedPipeline
    from edgevid.export.stages import build_stages, video_spec

    pipe = ExportedPipeline(exported("litert"), threads=1)
    stages, _ = build_stages(micro, video_spec(micro))
    for st in stages:
        if st.name == "denoiser":
            continue
        with torch.no_grad():
            ref = st.module(*st.inputs)
        ref = ref if isinstance(ref, tuple) else (ref,)
        out = pipe.stages[st.name](*[t.numpy() for t in st.inputs])
        assert len(out) == len(ref)
        for o, r in zip(out, ref):
            assert np.abs(o - r.numpy()).max() < 1e-4, st.name


def test_a_failed_export_leaves_no_folder(micro, tmp_path, monkeypatch):
    from edgevid.export import exporter

    def broken(*args, **kwargs):
        raise RuntimeError("toolchain failed")

    monkeypatch.setitem(exporter.EXPORTERS, "onnx", broken)
    with pytest.raises(RuntimeError, match="toolchain failed"):
        exporter.export_pipeline(micro, tmp_path / "out", "onnx", progress=False)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="not an export folder"):
        exporter.export_pipeline(micro, tmp_path / "notes", "onnx", progress=False)


@ET
def test_int8_executorch_round_trip_is_smaller_close_and_fully_delegated(micro, exported, tmp_path):
    """int8 (export.quantize): linears int8 with dynamic activations, convolutions fp32, the word
    table int4; every compute op still on XNNPACK, and the video close to the fp32 artifacts'."""
    from edgevid.export.exporter import export_pipeline
    from edgevid.export.runner import ExportedPipeline, dequantize_table_int4

    pytest.importorskip("executorch")
    m = export_pipeline(micro, tmp_path / "int8", "executorch", precision="int8", progress=False)
    fp32 = json.loads((exported("executorch") / "manifest.json").read_text())
    assert m["precision"] == "int8" and m["quantization"]["conv2d"] == "fp32"
    for name in ("text", "denoiser", "decoder_first", "decoder_next"):
        assert m["stages"][name]["delegation"]["delegated_share"] == 1.0
    def linear_bytes(model):  # fp32 bytes of the weights that int8 shrinks to 1/4
        return 4 * sum(mod.weight.numel() for mod in model.modules() if isinstance(mod, torch.nn.Linear))

    for name, model in (("text", micro.text_encoder.model), ("denoiser", micro.unet)):
        saved = fp32["stages"][name]["bytes"] - m["stages"][name]["bytes"]
        assert 0.6 * 0.75 * linear_bytes(model) < saved < 0.75 * linear_bytes(model), name  # less the scales
    packed, scales = np.load(tmp_path / "int8" / "token_table.npy"), np.load(tmp_path / "int8" / "token_table_scales.npy")
    ref = micro.text_encoder.model.word_embed.detach().numpy()
    assert packed.dtype == np.uint8 and packed.shape == (ref.shape[0], ref.shape[1] // 2)
    group = np.gcd(ref.shape[1], 32)
    assert scales.dtype == np.float16 and scales.shape == (ref.shape[0], ref.shape[1] // group)
    step = np.repeat(scales.astype(np.float32), group, axis=1)
    assert (np.abs(dequantize_table_int4(packed, scales) - ref) <= 0.5 * step + 1e-6).all()  # nearest of 15 levels
    a = ExportedPipeline(exported("executorch"), threads=1)(PROMPT, seed=0)
    b = ExportedPipeline(tmp_path / "int8", threads=1)(PROMPT, seed=0)
    assert a.shape == b.shape and 0 < np.abs(a - b).max() < 0.2 and np.abs(a - b).mean() < 0.02


def test_int4_table_packing_round_trips_exactly_representable_rows():
    from edgevid.export.quantize import quantize_table_int4
    from edgevid.export.runner import dequantize_table_int4

    rng = np.random.default_rng(0)
    q = rng.integers(-7, 8, size=(5, 64)).astype(np.float32)
    q[:, ::32] = 7  # every group reaches the top level: scale exactly 0.25 / 7 * 7
    table = q * 0.25
    packed, scales = quantize_table_int4(table)
    assert np.array_equal(dequantize_table_int4(packed, scales), table)
    assert np.array_equal(dequantize_table_int4(packed[[3, 1]], scales[[3, 1]]), table[[3, 1]])  # gathered rows
    assert quantize_table_int4(np.ones((2, 40), np.float32))[1].shape == (2, 5)  # groups of gcd(40, 32) = 8
    with pytest.raises(ValueError, match="must be even"):
        quantize_table_int4(np.zeros((2, 9), np.float32))
