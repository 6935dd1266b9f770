"""Image-to-video evaluation: the ground-truth continuation scores high; a frozen copy of the
image, noise, a recoloured scene, another scene and shuffled frames score low; the graded score
also ranks a half-speed continuation between the truth and the frozen image."""
import numpy as np
import pytest

from edgevid.data.world import render_video
from edgevid.eval.i2v import aggregate_i2v, aligned_iou, colour_tracks, psnr, score_i2v
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


def _graded(clips, make):
    """With the truth given: the graded factors too."""
    return aggregate_i2v([score_i2v(make(spec, video), video[0], spec, FPS, truth=video) for spec, video in clips])


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


def test_graded_score_ranks_the_controls(clips):
    rng = np.random.default_rng(0)
    truth = _graded(clips, lambda spec, video: video)
    assert truth["i2v_graded"] == 1.0 and truth["objects_graded"] == 1.0 and truth["motion_graded"] == 1.0
    # the same scene at half the speed: right objects, too little motion, partial credit
    half = _graded(clips, lambda spec, video: render_video(spec, FRAMES, H, W, FPS * 2))
    assert half["objects_graded"] >= 0.8 and 0.3 <= half["motion_graded"] <= 0.9, half
    assert 0.3 <= half["i2v_graded"] <= 0.9, half
    frozen = _graded(clips, lambda spec, video: np.repeat(video[:1], FRAMES, 0))
    assert frozen["objects_graded"] >= 0.8 and frozen["motion_graded"] <= 0.2, frozen  # keeps the image, never moves
    shuffled = _graded(clips, lambda spec, video: np.concatenate([video[:1], video[1:][rng.permutation(FRAMES - 1)]]))
    for name, bad in (("frozen", frozen), ("shuffled", shuffled)):
        assert bad["i2v_graded"] <= 0.2 and bad["i2v_graded"] < half["i2v_graded"] - 0.3, (name, bad)
    for make in (lambda spec, video: rng.integers(0, 256, video.shape, dtype=np.uint8),
                 lambda spec, video: recoloured(spec, FRAMES, H, FPS, width=W)):
        assert _graded(clips, make)["i2v_graded"] == 0.0
    with pytest.raises(ValueError, match="truth"):
        score_i2v(clips[0][1], clips[0][1][0], clips[0][0], FPS, truth=clips[0][1][:5])
    # the truth's tracks, computed once and shared by several clips, give the very same scores
    spec, video = clips[1]
    slow = np.repeat(video[: FRAMES // 2 + 1], 2, 0)[:FRAMES]
    assert score_i2v(slow, video[0], spec, FPS, video, colour_tracks(video)) == score_i2v(slow, video[0], spec, FPS,
                                                                                         truth=video)


def test_aligned_iou_compares_shape_and_size_wherever_they_are():
    a = np.zeros((40, 60), dtype=bool)
    a[5:15, 5:15] = True
    b = np.roll(a, (20, 30), axis=(0, 1))  # the same square elsewhere
    assert aligned_iou(a, b) == 1.0
    big = np.zeros_like(a)
    big[10:30, 10:30] = True  # 4x the area
    assert aligned_iou(a, big) == pytest.approx(0.25)
    assert aligned_iou(a, np.zeros_like(a)) == 0.0
