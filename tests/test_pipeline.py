import json
import shutil

import numpy as np
import pytest
import torch

from conftest import network_reorder_tol
from edgevid.pipeline import EdgeVidPipeline


def _gen(pipe, seed=0, **kw):
    return pipe("a red circle moving left", generator=torch.Generator().manual_seed(seed), **kw).frames


def test_output_shapes_and_types(tiny_pipeline):
    frames = _gen(tiny_pipeline)
    assert frames.shape == (1, 5, 32, 32, 3) and frames.dtype == np.float32
    assert frames.min() >= 0 and frames.max() <= 1
    pt = _gen(tiny_pipeline, output_type="pt", num_frames=1, height=32, width=64)
    assert pt.shape == (1, 1, 3, 32, 64)  # T = 1: an image
    pil = _gen(tiny_pipeline, output_type="pil", num_frames=9)
    assert len(pil) == 1 and len(pil[0]) == 9 and pil[0][0].size == (32, 32)
    batch = tiny_pipeline(["a red circle", "a blue square"], generator=torch.Generator().manual_seed(0)).frames
    assert batch.shape[0] == 2 and not np.allclose(batch[0], batch[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decoded_to_uint8_equals_the_float_frames_rounded(dtype):
    """The fused conversion the writers' path takes gives exactly frames_to_uint8 of the float
    frames, out-of-range values and exact .5 ties included, and leaves its input alone."""
    from edgevid.pipeline import _to_unit_frames, decoded_to_uint8, frames_to_uint8

    g = torch.Generator().manual_seed(0)
    nhwc = (torch.rand(2, 9, 8, 8, 3, generator=g) * 2.6 - 1.3).to(dtype)  # the decoder's NHWC frames
    nhwc.view(-1)[:256] = (torch.arange(256) / 127.5 - 1).to(dtype)  # every level, .5 ties at k + 0.5 / 127.5
    video = nhwc.permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W)
    before = video.clone()
    got = decoded_to_uint8(video)
    want = np.stack([frames_to_uint8(f.permute(0, 2, 3, 1).numpy()) for f in _to_unit_frames(video)])
    assert got.dtype == torch.uint8 and got.shape == (2, 9, 8, 8, 3)
    np.testing.assert_array_equal(got.numpy(), want)
    assert torch.equal(video, before)
    with pytest.raises(ValueError, match="out must be uint8"):
        decoded_to_uint8(video, torch.empty(2, 9, 8, 8, 3))


def test_uint8_output_is_the_np_output_rounded(tiny_pipeline):
    """output_type "uint8" (the CLI's and the bench's path): the "np" frames through frames_to_uint8,
    for __call__, decode_latents and stream."""
    from edgevid.pipeline import frames_to_uint8

    kw = dict(num_frames=9, height=32, width=32)
    floats = _gen(tiny_pipeline, seed=2, **kw)
    u8 = _gen(tiny_pipeline, seed=2, output_type="uint8", **kw)
    assert u8.dtype == np.uint8 and u8.shape == floats.shape == (1, 9, 32, 32, 3)
    np.testing.assert_array_equal(u8[0], frames_to_uint8(floats[0]))
    streamed = list(tiny_pipeline.stream("a red circle moving left", generator=torch.Generator().manual_seed(2),
                                         output_type="uint8", first_window_latent_frames=0, **kw))
    streamed_np = list(tiny_pipeline.stream("a red circle moving left", generator=torch.Generator().manual_seed(2),
                                            first_window_latent_frames=0, **kw))
    assert all(c.dtype == np.uint8 for c in streamed)
    np.testing.assert_array_equal(np.concatenate(streamed), frames_to_uint8(np.concatenate(streamed_np)))
    with pytest.raises(ValueError, match="output_type"):
        next(tiny_pipeline.stream("a red circle", output_type="pil", **kw))
    with pytest.raises(ValueError, match="output_type"):
        _gen(tiny_pipeline, output_type="u8")


def test_same_seed_same_frames_other_seed_other_frames(tiny_pipeline):
    a, b, c = _gen(tiny_pipeline, 7), _gen(tiny_pipeline, 7), _gen(tiny_pipeline, 8)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_prompt_and_guidance_change_the_output(tiny_pipeline):
    a = _gen(tiny_pipeline)
    b = tiny_pipeline("a blue square moving up", generator=torch.Generator().manual_seed(0)).frames
    c = _gen(tiny_pipeline, guidance_scale=1.0)
    assert not np.allclose(a, b) and not np.allclose(a, c)


def test_save_pretrained_round_trip_gives_identical_outputs(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "m")
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["_class_name"] == "EdgeVidPipeline" and index["defaults"]["num_frames"] == 5
    for sub in ("vae", "unet", "text_encoder"):
        assert (tmp_path / "m" / sub / "config.json").is_file()
    assert (tmp_path / "m" / "unet" / "model.safetensors").is_file()
    loaded = EdgeVidPipeline.from_pretrained(tmp_path / "m")
    assert np.array_equal(_gen(tiny_pipeline, 3), _gen(loaded, 3))


def test_callback_sees_every_step_and_can_edit_latents(tiny_pipeline):
    seen = []

    def cb(pipe, i, t, kwargs):
        seen.append((i, t, tuple(kwargs["latents"].shape)))
        return {"latents": torch.zeros_like(kwargs["latents"])} if i == 2 else None

    out = tiny_pipeline("a dot", num_inference_steps=3, generator=torch.Generator().manual_seed(0), callback_on_step_end=cb,
                        output_type="latent").frames
    assert [s[0] for s in seen] == [0, 1, 2] and seen[-1][1] == 0.0
    assert torch.count_nonzero(out) == 0  # the last callback zeroed the final latents


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompt=""), "prompt"),
    (dict(prompt="   "), "prompt"),
    (dict(prompt="?!"), "prompt"),
    (dict(prompt=123), "prompt"),
    (dict(prompt=[]), "prompt"),
    (dict(height=40), "multiples"),
    (dict(width=20), "multiples"),
    (dict(num_frames=6), "1 \\+ 4"),
    (dict(num_frames=0), "num_frames"),
    (dict(num_inference_steps=0), "num_inference_steps"),
    (dict(guidance_scale=float("nan")), "guidance"),
    (dict(output_type="gif"), "output_type"),
    (dict(latents=torch.zeros(1, 4, 1, 2, 2)), "latents"),
])
def test_bad_inputs_raise_clear_value_errors(tiny_pipeline, kwargs, match):
    kwargs = {"prompt": "a red circle", **kwargs}
    with pytest.raises(ValueError, match=match):
        tiny_pipeline(**kwargs)


def test_missing_corrupt_and_mismatched_weights(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        EdgeVidPipeline.from_pretrained(tmp_path / "nope")
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    (bad / "unet" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt weights"):
        EdgeVidPipeline.from_pretrained(bad)
    (bad / "unet" / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="missing weights"):
        EdgeVidPipeline.from_pretrained(bad)
    shutil.rmtree(bad)
    shutil.copytree(tiny_model_dir, bad)
    cfg = json.loads((bad / "unet" / "config.json").read_text())
    cfg["channels"] = [24, 32]
    (bad / "unet" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="do not match"):
        EdgeVidPipeline.from_pretrained(bad)
    (bad / "model_index.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt JSON"):
        EdgeVidPipeline.from_pretrained(bad)


def test_shift_overrides_the_grid_and_is_validated(tiny_pipeline):
    kw = dict(generator=None, output_type="latent")
    noise = torch.randn(1, *tiny_pipeline.vae.latent_shape(5, 32, 32), generator=torch.Generator().manual_seed(0))
    a = tiny_pipeline("a red circle", latents=noise.clone(), **kw).frames
    b = tiny_pipeline("a red circle", latents=noise.clone(), shift=3.0, **kw).frames
    same = tiny_pipeline("a red circle", latents=noise.clone(), shift=1.0, **kw).frames
    assert torch.equal(a, same) and not torch.allclose(a, b)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="shift"):
            tiny_pipeline("a red circle", shift=bad)


def test_shipped_model_names_resolve():
    from edgevid.pipeline import default_model_dir, resolve_model_dir, shipped_models

    assert resolve_model_dir(None) == default_model_dir() == resolve_model_dir("default")
    assert shipped_models() == ["default", "i2v", "teacher"]
    assert resolve_model_dir("teacher") == default_model_dir().parent / "teacher"
    assert resolve_model_dir("teacher") != default_model_dir()


@pytest.mark.parametrize("chunk_frames", [1, 2, None])
def test_stream_yields_the_same_frames_as_the_call(tiny_pipeline, chunk_frames):
    kw = dict(num_frames=17, height=32, width=32)  # 5 latent frames
    whole = _gen(tiny_pipeline, seed=3, **kw)[0]  # (17, 32, 32, 3)
    chunks = list(tiny_pipeline.stream("a red circle moving left", generator=torch.Generator().manual_seed(3),
                                       chunk_frames=chunk_frames, first_window_latent_frames=0, **kw))
    n = chunk_frames or tiny_pipeline.vae.config.decode_chunk_frames
    assert chunks[0].shape == (1 + 4 * (min(n, 5) - 1), 32, 32, 3)  # causal VAE: the first latent is one frame
    assert len(chunks) == -(-5 // n) and all(c.dtype == np.float32 for c in chunks)
    # Decoding latent by latent runs the decoder's convolutions over other shapes than one decode.
    np.testing.assert_allclose(np.concatenate(chunks), whole, **network_reorder_tol(tiny_pipeline.vae))


@pytest.mark.parametrize("first", [1, 2])
def test_stream_shows_a_short_first_chunk_first(tiny_pipeline, first):
    """By default stream() denoises the first latent (frame 0) alone and hands it out first; the
    rest continues it. __call__ with the same first window gives the same frames."""
    assert tiny_pipeline.defaults.stream_first_latent_frames == 1
    assert tiny_pipeline.defaults.continuation_start == "hold"
    kw = dict(num_frames=17, height=32, width=32)  # 5 latent frames
    noise = torch.randn(1, 4, 5, 4, 4, generator=torch.Generator().manual_seed(6))
    chunks = list(tiny_pipeline.stream("a red circle moving left", latents=noise, first_window_latent_frames=first,
                                       **kw))
    n = 1 + 4 * (first - 1)
    assert chunks[0].shape == (n, 32, 32, 3)  # the first chunk's frames, before the rest is denoised
    short = tiny_pipeline("a red circle moving left", latents=noise[:, :, :first].clone(), num_frames=n, height=32,
                          width=32).frames[0]
    tol = network_reorder_tol(tiny_pipeline.vae)  # streamed decoding: other conv shapes than one decode
    np.testing.assert_allclose(chunks[0], short, **tol)  # it is the plain short clip
    whole = tiny_pipeline("a red circle moving left", latents=noise, first_window_latent_frames=first, **kw).frames[0]
    np.testing.assert_allclose(np.concatenate(chunks), whole, **tol)
    plain = tiny_pipeline("a red circle moving left", latents=noise, **kw).frames[0]
    assert not np.allclose(whole, plain)  # the first window changed the sampling of the rest
    with pytest.raises(ValueError, match="first_window_latent_frames"):
        tiny_pipeline("a red circle", first_window_latent_frames=-1, **kw)


def test_generation_defaults_check_the_streaming_fields():
    from edgevid.pipeline import GenerationDefaults

    with pytest.raises(ValueError, match="continuation_start"):
        GenerationDefaults(continuation_start="zeros")
    with pytest.raises(ValueError, match="stream_first_latent_frames"):
        GenerationDefaults(stream_first_latent_frames=-1)


def test_stream_is_lazy_and_checks_its_input(tiny_pipeline):
    it = tiny_pipeline.stream("a red circle", num_frames=9, height=32, width=32, chunk_frames=1)
    first = next(it)
    assert first.shape == (1, 32, 32, 3)  # handed out before the other frames are decoded
    assert sum(len(c) for c in it) == 8
    with pytest.raises(ValueError, match="one video"):
        next(tiny_pipeline.stream(["a", "b"]))
    with pytest.raises(ValueError, match="num_frames"):
        next(tiny_pipeline.stream("a red circle", num_frames=6))


def test_chunkwise_generation_continues_each_chunk(tiny_pipeline):
    """9 latent frames in windows of 4 overlapping by 2: chunk 1 is the plain 4-latent clip, the
    whole is one causal sequence, and streaming gives the same frames."""
    kw = dict(num_frames=33, height=32, width=32, window_latent_frames=4, overlap_latent_frames=2)
    noise = torch.randn(1, 4, 9, 4, 4, generator=torch.Generator().manual_seed(5))
    lat = tiny_pipeline("a red circle moving left", latents=noise, output_type="latent", **kw).frames
    first = tiny_pipeline("a red circle moving left", latents=noise[:, :, :4].clone(), output_type="latent",
                          num_frames=13, height=32, width=32).frames
    assert lat.shape == (1, 4, 9, 4, 4)
    # The same sampler on an equal-sized (but sliced, non-contiguous) noise: kernels may block it differently.
    tol = network_reorder_tol(tiny_pipeline.unet, scale=float(first.abs().max()))
    torch.testing.assert_close(lat[:, :, :4], first, **tol)
    whole = tiny_pipeline("a red circle moving left", latents=noise, **kw).frames[0]
    unchunked = tiny_pipeline("a red circle moving left", latents=noise, num_frames=33, height=32, width=32).frames[0]
    assert whole.shape == (33, 32, 32, 3) and not np.allclose(whole, unchunked)  # chunking changed the sampling
    streamed = np.concatenate(list(tiny_pipeline.stream("a red circle moving left", latents=noise, chunk_frames=3,
                                                        first_window_latent_frames=0, **kw)))
    np.testing.assert_allclose(streamed, whole, **network_reorder_tol(tiny_pipeline.vae))  # chunked decoding
    with pytest.raises(ValueError, match="overlap"):
        tiny_pipeline("a red circle", num_frames=33, window_latent_frames=4, overlap_latent_frames=4)


def test_fast_path_precomputed_time_embeddings_and_prompt_cache(tiny_pipeline):
    """SnapGen-V App. F's precomputed time embeddings and the prompt cache change no output."""
    from edgevid.flow import time_grid

    pipe = tiny_pipeline
    velocity = pipe.encode_prompt(["a red circle"], "", 3.0)
    x = torch.randn(1, 4, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    grid = time_grid(4)
    plain = [velocity(x, t.expand(1)) for t in grid[:-1]]
    velocity.precompute_time_embeddings(grid[:-1])
    assert len(velocity.time_embeddings) == 4
    # The (4, D) embedding matmul is blocked differently from four (1, D) ones, and the CFG
    # combination v_u + g (v_c - v_u) amplifies it by up to 2g - 1 the difference: reorder tolerance of the whole UNet.
    tol = network_reorder_tol(pipe.unet, scale=(2 * 3.0 - 1) * max(float(p.detach().abs().max()) for p in plain))
    for t, ref in zip(grid[:-1], plain):
        torch.testing.assert_close(velocity(x, t.expand(1)), ref, **tol)
    assert (plain[0] - plain[1]).abs().max() > 10 * tol["atol"]  # the tolerance still tells the times apart
    assert velocity._time_embedding(torch.tensor([0.33]), 2) == {}  # off the grid: computed in the net
    assert velocity._time_embedding(torch.tensor([0.75, 0.5]), 2) == {}  # mixed times: computed in the net

    a = _gen(pipe, seed=1)
    hits, misses = pipe.prompt_cache.hits, pipe.prompt_cache.misses
    b = _gen(pipe, seed=1)  # the prompt and CFG's "" come from the cache
    assert (pipe.prompt_cache.hits, pipe.prompt_cache.misses) == (hits + 2, misses)
    assert np.array_equal(a, b)
