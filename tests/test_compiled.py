"""The AOT-compiled denoiser (edgevid compile): one package per latent-frame count of the
default video's plans, same results as eager, used only when built, eager for calls it does not fit.

Real AOTInductor compilation of even the tiny UNet takes minutes on 2 cores, so by default the
C++ build is replaced by running the exported program itself (torch.export runs for real: the
padded-prompt graph, the cache, the fallbacks and the CLI are what is tested). Set
EDGEVID_SLOW_TESTS=1 to compile for real (the benchmark `edgevid bench --compiled` reports the
parity of the real package on the shipped model).
"""
import os

import pytest
import torch

REAL_COMPILE = bool(os.environ.get("EDGEVID_SLOW_TESTS"))

from conftest import make_tiny_pipeline, network_reorder_tol
from edgevid.cli import main
from edgevid.compiled import CompiledUNet, compile_unet, compiled_frame_counts, load_compiled_unet, package_paths
from edgevid.pipeline import EdgeVidPipeline


class _ExportedProgramRunner:
    """Stands in for a compiled package: the exported program (saved with torch.export.save)."""

    def __init__(self, path):
        self.module = torch.export.load(path).module()

    def __call__(self, *args):
        return self.module(*args)


def _fake_compile(program, package_path, inductor_configs=None):
    assert inductor_configs == {"freezing": True}
    assert all(not isinstance(d, torch.SymInt) for d in program.example_inputs[0][0].shape)  # static shapes
    torch.export.save(program, package_path)
    return package_path


@pytest.fixture(scope="module")
def compiled_cache(tmp_path_factory):
    """(cache root, tiny model folder) with the tiny model's denoiser compiled for 1 thread."""
    root = tmp_path_factory.mktemp("edgevid_cache")
    model_dir = tmp_path_factory.mktemp("tiny_compiled_model")
    pipe = make_tiny_pipeline(num_frames=9)
    pipe.save_pretrained(model_dir)
    with pytest.MonkeyPatch.context() as mp:
        if not REAL_COMPILE:
            mp.setattr(torch._inductor, "aoti_compile_and_package", _fake_compile)
        mp.setenv("EDGEVID_CACHE", str(root))
        torch.set_num_threads(1)
        assert not load_compiled_unet(pipe)  # nothing built yet, and loading never compiles
        paths = compile_unet(pipe)
        # one package per chunk length of __call__'s plan (3 latents) and stream's (a first frame, then the rest)
        assert compiled_frame_counts(pipe) == (1, 3) and sorted(paths) == [1, 3]
        assert all(p.is_file() and p.parent == root / "compiled" for p in paths.values())
    return root, model_dir


@pytest.fixture
def use_cache(compiled_cache, monkeypatch):
    root, model_dir = compiled_cache
    monkeypatch.setenv("EDGEVID_CACHE", str(root))
    if not REAL_COMPILE:
        monkeypatch.setattr(torch._inductor, "aoti_load_package", _ExportedProgramRunner)
    return model_dir


def test_compiled_denoiser_matches_eager(use_cache, tmp_path):
    model_dir = use_cache
    torch.set_num_threads(1)  # the package was compiled for 1 thread (EDGEVID_TEST_THREADS may say 2)
    pipe = EdgeVidPipeline.from_pretrained(model_dir)
    kw = dict(num_frames=9, guidance_scale=1.0, output_type="latent")  # 3 latent frames, batch 1
    ref = pipe("a red circle moving left", generator=torch.Generator().manual_seed(0), **kw).frames
    assert load_compiled_unet(pipe) and isinstance(pipe.unet, CompiledUNet)
    out = pipe("a red circle moving left", generator=torch.Generator().manual_seed(0), **kw).frames
    # Compiled kernels fuse and reorder every sum of the UNet, once per sampling step (errors add up).
    steps = pipe.defaults.num_inference_steps
    torch.testing.assert_close(out, ref, **network_reorder_tol(pipe.unet, scale=steps * float(ref.abs().max())))
    assert pipe.unet.calls == {"compiled": 2, "eager": 0}
    # calls it does not fit run eager: CFG (batch 2), two latent frames (no package)
    pipe("a red circle", guidance_scale=2.0, num_frames=9, output_type="latent")
    pipe("a red circle", guidance_scale=1.0, num_frames=5, output_type="latent")
    assert pipe.unet.calls == {"compiled": 2, "eager": 4}
    # a one-frame call has its own package (stream's first chunk)
    pipe("a red circle", guidance_scale=1.0, num_frames=1, output_type="latent")
    assert pipe.unet.calls == {"compiled": 4, "eager": 4}
    # saving writes the eager UNet's weights, not the wrapper
    pipe.save_pretrained(tmp_path / "saved")
    again = EdgeVidPipeline.from_pretrained(tmp_path / "saved")
    for a, b in zip(again.unet.state_dict().values(), pipe.unet.eager.state_dict().values()):
        assert torch.equal(a, b)
    # other weights -> another cache key -> not picked up
    with torch.no_grad():
        again.unet.conv_out.bias.add_(1.0)
    assert package_paths(again)[3] != package_paths(pipe)[3] and not load_compiled_unet(again)
    # with a package missing, nothing is loaded
    package_paths(pipe)[1].rename(tmp_path / "moved.pt2")
    try:
        assert not load_compiled_unet(EdgeVidPipeline.from_pretrained(model_dir))
    finally:
        (tmp_path / "moved.pt2").rename(package_paths(pipe)[1])


def test_cli_generate_uses_the_compiled_denoiser(use_cache, tmp_path, capsys):
    model_dir = use_cache
    assert main(["compile", "--model", str(model_dir), "--threads", "1"]) == 0
    assert "already compiled" in capsys.readouterr().out
    argv = ["generate", "a red circle", "--model", str(model_dir), "--threads", "1", "--guidance", "1"]
    assert main([*argv, "-o", str(tmp_path / "a.mp4"), "--compiled"]) == 0
    assert "compiled denoiser" in capsys.readouterr().out
    assert main([*argv, "-o", str(tmp_path / "b.mp4")]) == 0  # opt-in: without the flag, eager
    assert "compiled denoiser" not in capsys.readouterr().out
    assert main([*argv, "-o", str(tmp_path / "c.mp4"), "--compiled", "--threads", "2"]) == 1  # not built for 2
    assert "edgevid compile" in capsys.readouterr().err and not (tmp_path / "c.mp4").exists()


def test_bf16_package_serves_bf16_calls_only(use_cache, monkeypatch):
    model_dir = use_cache
    torch.set_num_threads(1)
    pipe = EdgeVidPipeline.from_pretrained(model_dir, precision="bf16")
    fp32_paths = package_paths(EdgeVidPipeline.from_pretrained(model_dir, precision="fp32"))
    assert set(package_paths(pipe).values()).isdisjoint(fp32_paths.values())
    assert all(p.name.endswith("-bf16.pt2") for p in package_paths(pipe).values())
    assert not load_compiled_unet(pipe)  # only the fp32 package is built
    if not REAL_COMPILE:
        monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", _fake_compile)
    compile_unet(pipe)
    kw = dict(num_frames=9, guidance_scale=1.0, output_type="latent")
    ref = pipe("a red circle moving left", generator=torch.Generator().manual_seed(0), **kw).frames
    assert load_compiled_unet(pipe) and pipe.unet.precision == "bf16"
    out = pipe("a red circle moving left", generator=torch.Generator().manual_seed(0), **kw).frames
    assert pipe.unet.calls == {"compiled": 2, "eager": 0} and out.dtype == torch.float32
    # bf16 weights against bf16 autocast of fp32 weights: the same bf16 matmuls, rounded elsewhere
    torch.testing.assert_close(out, ref, atol=0.05 * float(ref.abs().max()), rtol=0.05)
    pipe.set_precision("fp32")  # an fp32 call never runs the bf16 package ...
    pipe("a red circle", num_frames=9, guidance_scale=1.0, output_type="latent")
    assert pipe.unet.calls == {"compiled": 2, "eager": 2}
    assert load_compiled_unet(pipe) and pipe.unet.precision == "fp32"  # ... and loading swaps in the fp32 one


def test_cli_eval_scores_the_compiled_denoiser(use_cache, tmp_path, capsys):
    import json

    model_dir = use_cache
    argv = ["eval", "--model", str(model_dir), "--limit", "1", "--no-progress", "--threads", "1", "--guidance", "1"]
    assert main([*argv, "--output", str(tmp_path / "c.json"), "--compiled"]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["settings"]["compiled"] is True
    # no packages for 2 threads: one line naming the command that builds them, no result
    assert main([*argv[:-4], "--threads", "2", "--output", str(tmp_path / "d.json"), "--compiled"]) == 1
    assert "edgevid compile" in capsys.readouterr().err and not (tmp_path / "d.json").exists()
