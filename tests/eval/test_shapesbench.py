"""ShapesBench: ground-truth renders score high, broken pairs and corrupted videos score lower."""
import numpy as np
import pytest

from edgevid.data.captions import canonical_caption
from edgevid.data.sources import ProceduralClips
from edgevid.data.splits import HOLDOUT_COMBINATIONS
from edgevid.data.world import COLOURS, ObjectSpec, SceneSpec, render_video
from edgevid.eval.shapesbench import aggregate, benchmark_specs, score_video

SIZE, FRAMES, FPS = 64, 17, 8  # 2 seconds of motion at the smallest training resolution
NUM_SPECS = 30


@pytest.fixture(scope="module")
def clips():
    """30 hold-out specs with their ground-truth renders."""
    return [(spec, render_video(spec, FRAMES, SIZE, SIZE, FPS)) for spec, _ in benchmark_specs(NUM_SPECS)]


@pytest.fixture(scope="module")
def clean(clips):
    return aggregate([score_video(v, spec, FPS) for spec, v in clips])


def _mean_adherence(pairs) -> float:
    return aggregate([score_video(v, spec, FPS) for spec, v in pairs])["prompt_adherence"]


def test_ground_truth_renders_score_high(clean):
    assert clean["prompt_adherence"] >= 0.95, clean
    assert clean["object_shape_correct"] >= 0.9 and clean["object_motion_correct"] >= 0.9, clean


def test_mild_blur_keeps_the_score(clips, clean):
    """A decoder's softness is not a wrong shape: half a pixel of Gaussian blur at 64 px (what a
    good VAE reconstruction looks like) keeps ground truth near its score."""
    import cv2

    blurred = [(s, np.stack([cv2.GaussianBlur(f, (0, 0), 0.5) for f in v])) for s, v in clips]
    result = aggregate([score_video(v, s, FPS) for s, v in blurred])
    assert result["prompt_adherence"] >= clean["prompt_adherence"] - 0.03, result
    assert result["object_shape_correct"] >= 0.9, result


def test_spec_as_dict_and_other_resolution():
    spec = SceneSpec(objects=(ObjectSpec("red", "triangle", "right", 0.3, 0.4, 0.12, speed=0.2),
                              ObjectSpec("blue", "ring", "still", 0.7, 0.7, 0.12)),
                     background="stripes", background_colour="gray")
    for size, frames, fps in ((96, 9, 8), (128, 31, 24)):
        r = score_video(render_video(spec, frames, size, size, fps), spec.to_dict(), fps)
        assert r["prompt_adherence"] == 1.0, r
        assert [o["shape_pred"] for o in r["objects"]] == ["triangle", "ring"]


def test_shuffled_pairs_score_lower(clips, clean):
    specs = [spec for spec, _ in clips]
    shuffled = [(specs[(i + 7) % len(specs)], v) for i, (_, v) in enumerate(clips)]  # every video with another's spec
    assert _mean_adherence(shuffled) < clean["prompt_adherence"] - 0.4


def test_corruptions_score_lower(clips, clean):
    rng = np.random.default_rng(0)
    sub = clips[:12]
    base = _mean_adherence(sub)
    noisy = [(s, np.clip(v + rng.normal(0, 80, v.shape), 0, 255).astype(np.uint8)) for s, v in sub]
    assert _mean_adherence(noisy) < base - 0.2

    frozen = [(s, np.repeat(v[:1], len(v), 0)) for s, v in sub]
    frozen_motion = aggregate([score_video(v, s, FPS) for s, v in frozen])["motion_acc"]
    assert frozen_motion < clean["motion_acc"] - 0.4

    # Recolour the main object to a palette colour absent from the scene (and not the background).
    recoloured = []
    for s, _ in sub:
        used = {o.colour for o in s.objects} | {s.background_colour}
        new = next(c for c in COLOURS if c not in used)
        main = s.objects[0]
        objs = (ObjectSpec(new, main.shape, main.motion, main.x, main.y, main.size, main.speed, main.angle),) + s.objects[1:]
        changed = SceneSpec(objs, s.background, s.background_colour, s.camera, s.camera_speed, s.duration, s.seed)
        recoloured.append((s, render_video(changed, FRAMES, SIZE, SIZE, FPS)))
    assert aggregate([score_video(v, s, FPS) for s, v in recoloured])["colour_acc"] < clean["colour_acc"] - 0.3

    # Reversed frames: directions flip, grow <-> shrink; only judge clips whose main motion is directional.
    directional = [(s, v) for s, v in clips if s.objects[0].motion in
                   ("left", "right", "up", "down", "up_left", "up_right", "down_left", "down_right", "grow", "shrink")]
    assert len(directional) >= 5
    reversed_ = aggregate([score_video(v[::-1].copy(), s, FPS) for s, v in directional])
    forward = aggregate([score_video(v, s, FPS) for s, v in directional])
    assert reversed_["motion_acc"] < forward["motion_acc"] - 0.4


def test_flicker_and_dynamic_degree():
    spec = SceneSpec(objects=(ObjectSpec("red", "square", "right", 0.25, 0.5, 0.15, speed=0.25),))
    video = render_video(spec, FRAMES, SIZE, SIZE, FPS)
    rng = np.random.default_rng(0)
    gain = rng.uniform(0.5, 1.0, (FRAMES, 1, 1, 1))  # random per-frame brightness jumps
    flicker = (video * gain).astype(np.uint8)
    assert score_video(flicker, spec, FPS)["temporal_flickering"] < score_video(video, spec, FPS)["temporal_flickering"] - 0.05

    moving = score_video(video, spec, FPS)
    frozen = score_video(np.repeat(video[:1], FRAMES, 0), spec, FPS)
    assert frozen["dynamic_fraction"] == 0.0 and frozen["dynamic_degree"] == 0
    assert moving["dynamic_fraction"] > 0.5 and moving["dynamic_degree"] == 1


def test_smoothness_and_consistency_drop_on_jitter():
    spec = SceneSpec(objects=(ObjectSpec("blue", "circle", "right", 0.25, 0.5, 0.12, speed=0.2),))
    video = render_video(spec, FRAMES, SIZE, SIZE, FPS)
    shifts = np.random.default_rng(1).integers(-4, 5, (FRAMES, 2))
    jitter = np.stack([np.roll(f, tuple(s), axis=(0, 1)) for f, s in zip(video, shifts)])  # solid bg: a pure shake
    assert score_video(jitter, spec, FPS)["motion_smoothness"] < score_video(video, spec, FPS)["motion_smoothness"] - 0.2
    blink = video.copy()
    blink[::3] = video[0, 0, 0]  # the object vanishes every third frame
    assert score_video(blink, spec, FPS)["subject_consistency"] < score_video(video, spec, FPS)["subject_consistency"] - 0.2


def test_benchmark_specs_deterministic_and_holdout():
    a, b = benchmark_specs(), benchmark_specs()
    assert len(a) >= 200 and a == b
    assert benchmark_specs(20, seed=1) != a[:20]
    for spec, caption in a:
        main = spec.objects[0]
        assert (main.colour, main.shape, main.motion) in HOLDOUT_COMBINATIONS
        assert spec.camera == "none" and main.colour in caption


def test_train_split_specs_are_the_training_streams_scenes():
    specs = benchmark_specs(12, split="train")
    assert specs == benchmark_specs(12, split="train") and specs != benchmark_specs(12)
    stream = ProceduralClips(split="train", seed=0, fps=24)
    expected = [s for s in (stream.scene(i) for i in range(60)) if s.camera == "none"][:12]
    assert [spec for spec, _ in specs] == expected
    # what the trainer renders for a short bucket is that scene
    index = next(i for i in range(60) if stream.scene(i) == expected[0])
    assert stream.clip(index, 9, 32, 32).spec == expected[0].to_dict()
    for spec, caption in specs:
        assert caption == canonical_caption(spec)
        assert all((o.colour, o.shape, o.motion) not in HOLDOUT_COMBINATIONS for o in spec.objects)
    with pytest.raises(ValueError, match="split"):
        benchmark_specs(3, split="val")


def test_bad_input_fails_loudly():
    spec = benchmark_specs(1)[0][0]
    with pytest.raises(ValueError, match="uint8"):
        score_video(np.zeros((4, 8, 8, 3), np.float32), spec, FPS)


# --------------------------------------------------------------------------------------
# The noise floor (issue 16): videos that do not show the prompt's objects score <= 0.10
# --------------------------------------------------------------------------------------
FLOOR = 0.10


@pytest.mark.parametrize("kind", ["smooth_per_frame", "smooth_frozen", "white_noise", "recoloured"])
def test_noise_floor(clips, clean, kind):
    from edgevid.eval.shapesbench.controls import recoloured, smooth_colour_field, white_noise

    rng = np.random.default_rng(0)
    make = {
        "smooth_per_frame": lambda s: smooth_colour_field(rng, FRAMES, SIZE, frozen=False),
        "smooth_frozen": lambda s: smooth_colour_field(rng, FRAMES, SIZE, frozen=True),
        "white_noise": lambda s: white_noise(rng, FRAMES, SIZE),
        "recoloured": lambda s: recoloured(s, FRAMES, SIZE, FPS),
    }[kind]
    result = aggregate([score_video(make(s), s, FPS) for s, _ in clips])
    assert result["prompt_adherence"] <= FLOOR, result
    assert clean["prompt_adherence"] >= 0.95
    if kind.startswith("smooth"):  # what the old presence-only colour test was fooled by
        assert result["legacy_colour_acc"] > 0.5, "the control lost its bite: it no longer fools presence"


def test_noise_floor_untrained_model():
    """An untrained denoiser's samples through the shipped VAE decoder (rainbow speckle) score <= 0.10."""
    import dataclasses

    import torch

    from conftest import randomize_
    from edgevid.config import UNET_PRESETS
    from edgevid.models.unet import SpatioTemporalUNet
    from edgevid.pipeline import EdgeVidPipeline, GenerationDefaults, frames_to_uint8, resolve_model_dir
    from edgevid.text import TinyTextEncoder

    vae = EdgeVidPipeline.from_pretrained(resolve_model_dir("teacher")).vae
    text = TinyTextEncoder(dim=32)
    cfg = dataclasses.replace(UNET_PRESETS["tiny"], text_dim=text.dim, in_channels=vae.config.latent_channels,
                              out_channels=vae.config.latent_channels)
    unet = randomize_(SpatioTemporalUNet(cfg))
    pipe = EdgeVidPipeline(vae, unet, text, GenerationDefaults(num_frames=FRAMES, height=SIZE, width=SIZE, fps=FPS,
                                                               num_inference_steps=2, guidance_scale=1.0))
    results = []
    for i, (spec, caption) in enumerate(benchmark_specs(12)):
        frames = pipe(caption, generator=torch.Generator().manual_seed(i)).frames[0]
        results.append(score_video(frames_to_uint8(frames), spec, FPS))
    assert aggregate(results)["prompt_adherence"] <= FLOOR


def test_coherence_needs_one_region_of_the_right_size():
    """The same colour split into two regions, or drawn at 4x the spec's area, is not the object."""
    spec = SceneSpec(objects=(ObjectSpec("red", "circle", "right", 0.3, 0.5, 0.12, speed=0.2),))
    video = render_video(spec, FRAMES, SIZE, SIZE, FPS)
    assert score_video(video, spec, FPS)["colour_acc"] == 1.0
    twin = SceneSpec(objects=spec.objects + (ObjectSpec("red", "circle", "right", 0.3, 0.15, 0.12, speed=0.2),))
    assert score_video(render_video(twin, FRAMES, SIZE, SIZE, FPS), spec, FPS)["colour_acc"] == 0.0
    big = SceneSpec(objects=(ObjectSpec("red", "circle", "right", 0.35, 0.5, 0.26, speed=0.1),))
    assert score_video(render_video(big, FRAMES, SIZE, SIZE, FPS), spec, FPS)["colour_acc"] == 0.0


def test_paraphrase_split_is_worded_outside_the_training_captions():
    """>= 60 hold-out scenes (the benchmark's own, in order) whose prompts use none of captions.py's
    colour/shape words nor its canonical motion phrases, deterministically."""
    import re

    from edgevid.data import captions
    from edgevid.eval.shapesbench import paraphrase

    pairs = benchmark_specs(60, split="paraphrase")
    assert len(pairs) == 60 and pairs == benchmark_specs(60, split="paraphrase")
    assert [s for s, _ in pairs] == [s for s, _ in benchmark_specs(60)]
    train_words = {w for ws in (*captions.COLOUR_WORDS.values(), *captions.SHAPE_WORDS.values()) for w in ws}
    for table, words in ((paraphrase.COLOUR_SYNONYMS, captions.COLOUR_WORDS), (paraphrase.SHAPE_SYNONYMS, captions.SHAPE_WORDS)):
        assert set(table) == set(words)
        assert not {w for ws in table.values() for w in ws} & train_words
    train_motion = {p for pairs_ in captions.MOTION_WORDS.values() for pair in pairs_ for p in pair}
    for spec, text in pairs:
        assert text not in {captions.canonical_caption(spec)} | {captions.caption(spec, np.random.default_rng(k)) for k in range(20)}
        assert not any(re.search(rf"\b{re.escape(p)}\b", text) for p in train_motion | set(captions.CANONICAL_MOTION.values()))
        o = spec.objects[0]
        assert any(c in text for c in paraphrase.COLOUR_SYNONYMS[o.colour])
        assert any(sh in text for sh in paraphrase.SHAPE_SYNONYMS[o.shape])


def test_ground_truth_rows_are_cached_per_size_and_code(tmp_path, monkeypatch):
    """The truth's rows come back from the cache equal to freshly scored ones, without rendering;
    another size or another scorer version scores again."""
    from edgevid.data.world import render_video
    from edgevid.eval.shapesbench import truth
    from edgevid.eval.shapesbench.score import aggregate, score_video

    monkeypatch.setenv("EDGEVID_CACHE", str(tmp_path))
    specs = [spec for spec, _ in benchmark_specs(n=3)]
    renders = []

    def render(*a):
        renders.append(a[1:])
        return render_video(*a)

    fresh = truth.ground_truth_rows(specs, 5, 64, 64, 8, score_video, render, cache=False)
    assert len(renders) == 3 and not list(tmp_path.iterdir())  # cache=False writes nothing
    first = truth.ground_truth_rows(specs, 5, 64, 64, 8, score_video, render)
    again = truth.ground_truth_rows(specs[:2], 5, 64, 64, 8, score_video, render)
    assert len(renders) == 6  # the second call rendered nothing
    assert first == fresh and again == fresh[:2]
    assert aggregate(again) == aggregate([score_video(render_video(s, 5, 64, 64, 8), s, 8) for s in specs[:2]])
    truth.ground_truth_rows(specs[:1], 5, 32, 64, 8, score_video, render)
    monkeypatch.setattr(truth, "code_version", lambda: "changed")
    truth.ground_truth_rows(specs[:1], 5, 64, 64, 8, score_video, render)
    assert renders[6:] == [(5, 32, 64, 8), (5, 64, 64, 8)]
    assert len(list((tmp_path / "shapesbench_truth").glob("*.json"))) == 3


def test_truth_cache_code_covers_every_module_a_row_is_computed_by():
    """The cache's code hash reads the world, the scorer and what they import from edgevid, so a
    change to any of them starts a fresh cache; other modules (previews, captions) do not."""
    import ast
    from pathlib import Path

    from edgevid.eval.shapesbench import truth

    root = Path(truth.__file__).resolve().parents[2]
    hashed = set(truth._SOURCES)
    assert {"data/world.py", "eval/shapesbench/score.py"} <= hashed
    for name in hashed:
        for node in ast.parse((root / name).read_text()).body:  # module level (world's from_dict parses JSON only)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgevid."):
                assert node.module.removeprefix("edgevid.").replace(".", "/") + ".py" in hashed, (name, node.module)
