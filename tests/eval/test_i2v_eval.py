"""Image-to-video evaluation: the ground-truth continuation scores high; a frozen copy of the
image, noise, a recoloured scene, another scene and shuffled frames score low."""
import numpy as np
import pytest

from edgevid.data.world import render_video
from edgevid.eval.i2v import aggregate_i2v, psnr, score_i2v
from edgevid.eval.shapesbench import benchmark_specs
from edgevid.eval.shapesbench.controls import recoloured

FRAMES, H, W, FPS = 17, 64, 128, 8  # MobileVD's 2:1 frame at a test size
NUM_SPECS = 12


@pytest.fixture(scope="module")
def clips():
    specs = [spec for spec, _ in benchmark_specs(NUM_SPECS)]
    return [(spec, render_video(spec, FRAMES, H, W, FPS)) for spec in specs]


def _score(clips, make):
    return aggregate_i2v([score_i2v(make(spec, video), video[0], spec, FPS) for spec, video in clips])


def test_ground_truth_continuation_scores_high(clips):
    result = _score(clips, lambda spec, video: video)
    assert result["i2v_score"] >= 0.95, result
    assert result["fidelity"] == 1.0 and result["motion_match"] >= 0.9, result


def test_frozen_copy_of_the_image_scores_low_on_motion(clips):
    result = _score(clips, lambda spec, video: np.repeat(video[:1], FRAMES, 0))
    assert result["fidelity"] == 1.0 and result["objects"] >= 0.95, result  # it does keep the image
    assert result["motion"] <= 0.10 and result["i2v_score"] <= 0.10, result


def test_noise_recolouring_other_scenes_and_shuffles_score_low(clips):
    rng = np.random.default_rng(0)
    others = [video for _, video in clips[1:] + clips[:1]]
    controls = {
        "white noise": lambda spec, video: rng.integers(0, 256, video.shape, dtype=np.uint8),
        "recoloured": lambda spec, video: recoloured(spec, FRAMES, H, FPS, width=W),
        "the image, then noise": lambda spec, video: np.concatenate(
            [video[:1], rng.integers(0, 256, video[1:].shape, dtype=np.uint8)]),
        "frames shuffled after the first": lambda spec, video: np.concatenate(
            [video[:1], video[1:][rng.permutation(FRAMES - 1)]]),
    }
    for name, make in controls.items():
        result = _score(clips, make)
        assert result["i2v_score"] <= 0.10, (name, result)
    other = aggregate_i2v([score_i2v(o, v[0], s, FPS) for (s, v), o in zip(clips, others)])
    assert other["i2v_score"] <= 0.10 and other["fidelity"] <= 0.2, other


def test_psnr_and_input_checks(clips):
    spec, video = clips[0]
    assert psnr(video[0], video[0]) == 100.0
    assert 0 < psnr(video[0], 255 - video[0]) < 10
    with pytest.raises(ValueError, match="same size"):
        score_i2v(video, video[0, :32], spec, FPS)
    with pytest.raises(ValueError, match="uint8"):
        score_i2v(video, video[0].astype(np.float32), spec, FPS)
