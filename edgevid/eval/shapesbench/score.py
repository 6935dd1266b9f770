"""Score a generated video against the SceneSpec its prompt describes (not against caption text).

    result = score_video(video, spec, fps=8)   # one clip -> flat dict of attribute results
    summary = aggregate([result, ...])          # means and per-attribute accuracies

prompt_adherence = mean of five attribute accuracies, equally weighted:
    colour (spec objects found as one coherent object of their colour: analyze.is_coherent_object),
    shape and motion (of those objects, judged on that object), count (number of coherent objects
    == spec count), background colour.
A missing object counts as wrong shape and wrong motion too. Per-object terms are averaged over
the spec's objects first, so a 3-object scene weighs as much as a 1-object one. Count and
background only earn credit in a video that shows at least one of the prompt's objects: a video
of none of them follows nothing of the prompt (issue 16: a recoloured scene, or colour noise over
the right background, scored 0.4 before).

The noise floor (tests/eval/test_shapesbench.py): smooth random colour fields, white noise,
decoded random latents and scenes with every object recoloured score <= 0.10; ground truth >= 0.95.
The pre-issue-16 definition (colour = the colour is present anywhere) is kept as `legacy_*`
fields for side-by-side comparisons.

Temporal metrics (no spec needed): temporal_flickering (VBench), motion_smoothness (centroid jerk),
subject_consistency (area/colour stability), dynamic_degree (Farneback flow, VBench's rule).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from edgevid.data.world import SceneSpec, camera_state, render_object_mask
from edgevid.eval.shapesbench.analyze import (
    classify_motion, estimate_background, is_coherent_object, segment, track_colours, track_shape,
)

ATTRIBUTES = ("colour", "shape", "motion", "count", "background")


def _check_video(video: np.ndarray, fps: float) -> None:
    if not (isinstance(video, np.ndarray) and video.ndim == 4 and video.shape[-1] == 3 and video.dtype == np.uint8):
        got = getattr(video, "shape", type(video)), getattr(video, "dtype", None)
        raise ValueError(f"video must be a uint8 array (T, H, W, 3), got {got}; convert with np.uint8 first")
    if video.shape[0] < 2:
        raise ValueError("score_video needs at least 2 frames to judge motion")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")


def score_video(video: np.ndarray, spec: SceneSpec | dict, fps: float) -> dict:
    """Per-attribute results for one clip (T, H, W, 3) uint8 whose frame k shows time k / fps."""
    spec = SceneSpec.from_dict(spec) if isinstance(spec, dict) else spec
    _check_video(video, fps)
    t_len = video.shape[0]
    # 1. Background and colour segmentation.
    background = estimate_background(video)
    labels = segment(video, background)  # (T, H, W)
    tracks = track_colours(video, labels)
    # 2. Camera as the renderer defines it, so motion is judged in world coordinates.
    times = np.minimum(np.arange(t_len) / fps, spec.duration)
    cam_x, zoom = camera_state(spec, times) if spec.camera != "none" else (None, None)
    # 3. Spec objects matched by colour (a scene's objects have distinct colours); an object is
    # found only if its colour's track is one coherent object of the spec's size.
    expected = expected_areas(spec, t_len, *video.shape[1:3], fps)  # (objects, T)
    spec_area = {obj.colour: area for obj, area in zip(spec.objects, expected)}
    coherent = {c for c, tr in tracks.items() if is_coherent_object(tr, fps, spec_area.get(c))}
    objects = []
    for obj in spec.objects:
        track = tracks.get(obj.colour)
        found = obj.colour in coherent
        shape = track_shape(video, track) if track else None
        motion = classify_motion(video, track, times, cam_x, zoom) if track else None
        objects.append({
            "colour": obj.colour, "shape": obj.shape, "motion": obj.motion,
            "colour_present": int(found), "legacy_colour_present": int(track is not None),
            "shape_pred": shape, "shape_correct": int(found and shape == obj.shape),
            "motion_pred": motion, "motion_correct": int(found and motion == obj.motion),
            "legacy_shape_correct": int(shape == obj.shape), "legacy_motion_correct": int(motion == obj.motion),
        })
    any_found = any(o["colour_present"] for o in objects)
    result = {
        "objects": objects,
        "colour_acc": float(np.mean([o["colour_present"] for o in objects])),
        "shape_acc": float(np.mean([o["shape_correct"] for o in objects])),
        "motion_acc": float(np.mean([o["motion_correct"] for o in objects])),
        "count_pred": len(coherent),
        "count_correct": int(any_found and len(coherent) == len(spec.objects)),
        "background_pred": background,
        "background_correct": int(any_found and background == spec.background_colour),
    }
    result["prompt_adherence"] = float(np.mean([
        result["colour_acc"], result["shape_acc"], result["motion_acc"],
        result["count_correct"], result["background_correct"],
    ]))
    legacy = {
        "colour_acc": np.mean([o["legacy_colour_present"] for o in objects]),
        "shape_acc": np.mean([o["legacy_shape_correct"] for o in objects]),
        "motion_acc": np.mean([o["legacy_motion_correct"] for o in objects]),
        "count_correct": int(len(tracks) == len(spec.objects)),
        "background_correct": int(background == spec.background_colour),
    }
    result.update({f"legacy_{k}": float(v) for k, v in legacy.items()})
    result["legacy_prompt_adherence"] = float(np.mean(list(legacy.values())))
    # 4. Temporal quality.
    result["temporal_flickering"] = temporal_flickering(video)
    result["motion_smoothness"] = motion_smoothness(tracks)
    result["subject_consistency"] = subject_consistency(tracks)
    moving = dynamic_pairs(video, fps)
    result["dynamic_fraction"] = float(moving.mean())
    result["dynamic_degree"] = int(moving.sum() >= max(1, round(4 * len(moving) / 16)))
    return result


def expected_areas(spec: SceneSpec, num_frames: int, height: int, width: int, fps: float) -> np.ndarray:
    """(objects, T) area of each spec object alone, in fractions of the frame, as the renderer
    draws it at these frames (at most ~96 px on the short side: areas are scale-free)."""
    f = max(1, min(height, width) // 96)
    h, w = max(8, height // f), max(8, width // f)
    areas = []
    for obj in spec.objects:
        alone = SceneSpec(objects=(obj,), background=spec.background, background_colour=spec.background_colour,
                          camera=spec.camera, camera_speed=spec.camera_speed, duration=spec.duration, seed=spec.seed)
        areas.append(render_object_mask(alone, num_frames, h, w, fps).mean(axis=(1, 2)))  # (T,)
    return np.stack(areas)


# --------------------------------------------------------------------------------------
# Temporal metrics
# --------------------------------------------------------------------------------------
def temporal_flickering(video: np.ndarray) -> float:
    """VBench temporal_flickering: (255 - mean |frame_k+1 - frame_k|) / 255, in [0, 1]; 1 = static.
    (VBench applies it to static-scene prompts; on moving clips it also counts real motion.)"""
    diff = np.abs(np.diff(video.astype(np.float32), axis=0))  # (T-1, H, W, 3)
    return float((255.0 - diff.mean()) / 255.0)


def motion_smoothness(tracks: dict) -> float:
    """Mean over tracks of 1 / (1 + |jerk| / |velocity|), in (0, 1]: the third difference of the
    centroid path against its first difference (both per frame, frame fractions), so a steady
    glide scores ~1 and a jittering centroid ~0. Tracks with < 4 consecutive frames are skipped;
    1.0 if none qualifies."""
    scores = []
    for tr in tracks.values():
        p = tr.centroid[tr.present]  # (T', 2); gaps are rare and bridged
        if len(p) < 4:
            continue
        vel = np.linalg.norm(np.diff(p, axis=0), axis=1).mean()
        jerk = np.linalg.norm(np.diff(p, n=3, axis=0), axis=1).mean()
        scores.append(1.0 / (1.0 + jerk / (vel + 2e-3)))  # 2e-3: ~0.2 px at 96 px, ignores resting jitter
    return float(np.mean(scores)) if scores else 1.0


def subject_consistency(tracks: dict) -> float:
    """Mean over tracks of presence * exp(-std(d log area)) * (1 - colour drift / 255), in [0, 1].

    A steady grow/shrink has a constant d log area (std 0); flicker in size, a vanishing object or
    a colour that drifts lowers the score. 0.0 if nothing was tracked."""
    scores = []
    for tr in tracks.values():
        ok = tr.present
        log_area = np.log(tr.area[ok])
        size_term = math.exp(-float(np.std(np.diff(log_area)))) if ok.sum() > 2 else 1.0
        colour_drift = float(np.linalg.norm(tr.mean_rgb[ok] - tr.mean_rgb[ok][0], axis=1).mean())
        scores.append(float(ok.mean()) * size_term * max(0.0, 1.0 - colour_drift / 255.0))
    return float(np.mean(scores)) if scores else 0.0


def dynamic_pairs(video: np.ndarray, fps: float) -> np.ndarray:
    """Per consecutive frame pair (T-1,) bool: does it move? Follows VBench dynamic_degree (which
    uses RAFT) with Farneback flow: a pair moves if the mean of its top 5% flow magnitudes exceeds
    6 px * (shorter side / 256). The threshold is scaled by 8 / fps so that the same motion in
    seconds counts alike at any frame rate (VBench samples ~8 fps). A clip is dynamic if at least
    round(4 * pairs / 16) pairs move (VBench's count rule)."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video]
    thresh = 6.0 * min(video.shape[1:3]) / 256.0 * 8.0 / fps
    out = []
    for a, b in zip(grey[:-1], grey[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # (H, W, 2)
        mag = np.linalg.norm(flow, axis=-1).ravel()
        top = np.sort(mag)[-max(1, int(0.05 * mag.size)):]
        out.append(float(top.mean()) > thresh)
    return np.asarray(out, bool)


# --------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------
def aggregate(results: list[dict]) -> dict:
    """Means of every scalar metric over clips, plus per-object accuracies pooled over all objects
    and broken down by the spec's shape and motion."""
    if not results:
        raise ValueError("aggregate needs at least one score_video result")
    scalar_keys = [k for k, v in results[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {k: float(np.mean([r[k] for r in results])) for k in scalar_keys}
    objects = [o for r in results for o in r["objects"]]
    out["num_videos"], out["num_objects"] = len(results), len(objects)
    for attr in ("colour_present", "shape_correct", "motion_correct"):
        out[f"object_{attr}"] = float(np.mean([o[attr] for o in objects]))
    for key in ("shape", "motion"):
        by = {}
        for o in objects:
            by.setdefault(o[key], []).append(o[f"{key}_correct"])
        out[f"{key}_accuracy_by_{key}"] = {k: float(np.mean(v)) for k, v in sorted(by.items())}
    return out


def to_builtin(value):
    """json.dumps's `default` for score rows: numpy scalars and arrays as Python numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")
