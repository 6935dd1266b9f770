import dataclasses
import json
import math

import numpy as np
import pytest

from edgevid.data.world import (
    BACKGROUND_COLOURS, BACKGROUNDS, CAMERAS, COLOURS, MOTIONS, ORBIT_RADIUS, SHAPES, ObjectSpec, SceneSpec,
    render_video,
)


def _one(motion="still", shape="circle", colour="red", x=0.5, y=0.5, size=0.15, speed=0.0, **scene):
    return SceneSpec(objects=(ObjectSpec(colour, shape, motion, x=x, y=y, size=size, speed=speed),), **scene)


def _mask(frames, colour):
    """(T, H, W) bool: pixels nearer the object colour than half the way to the background."""
    d = np.linalg.norm(frames.astype(np.float32) - np.asarray(COLOURS[colour], np.float32), axis=-1)
    return d < 60


def _coverage(frames, colour, background="white"):
    """(T, H, W) float: the object's anti-aliased coverage, undoing the linear colour blend."""
    c = np.asarray(COLOURS[colour], np.float32)
    d = np.linalg.norm(frames.astype(np.float32) - c, axis=-1)
    return np.clip(1 - d / np.linalg.norm(np.asarray(BACKGROUND_COLOURS[background], np.float32) - c), 0, 1)


def _centroids(mask):
    """Centroid x, y (pixels) and area of a (T, H, W) hard or soft mask."""
    t, h, w = mask.shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    area = mask.sum(axis=(1, 2))
    return (mask * xs).sum(axis=(1, 2)) / area, (mask * ys).sum(axis=(1, 2)) / area, area


def test_render_is_deterministic_with_right_shape():
    spec = _one("right", speed=0.2, background="noise", camera="zoom_in", camera_speed=0.1, seed=3)
    a = render_video(spec, 9, 32, 48, fps=8)
    assert a.shape == (9, 32, 48, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, render_video(spec, 9, 32, 48, fps=8))
    assert not np.array_equal(a, render_video(dataclasses.replace(spec, seed=4), 9, 32, 48, fps=8))


def test_single_frame_is_the_first_frame_of_the_clip():
    spec = _one("down", speed=0.2, background="stripes")
    still = render_video(spec, 1, 40, 40)
    assert still.shape == (1, 40, 40, 3)
    np.testing.assert_array_equal(still[0], render_video(spec, 5, 40, 40)[0])


def test_spec_json_round_trip():
    spec = SceneSpec(objects=(ObjectSpec("blue", "star", "orbit", 0.4, 0.6, 0.1, speed=2.0, angle=1.0),
                              ObjectSpec("yellow", "ring", "grow", 0.2, 0.2, 0.08, speed=0.3)),
                     background="checker", background_colour="gray", camera="pan_left", camera_speed=0.04,
                     duration=3.0, seed=7)
    back = SceneSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and isinstance(back.objects, tuple)
    with pytest.raises(ValueError, match="SceneSpec"):
        SceneSpec.from_dict({"background": "solid"})


@pytest.mark.parametrize("bad", [dict(colour="mauve"), dict(shape="blob"), dict(motion="teleport"), dict(size=0.0),
                                 dict(size=1e300), dict(size=1.5), dict(size=math.nan), dict(speed=1e300),
                                 dict(speed=-101.0), dict(x=math.inf), dict(y=-11.0), dict(angle=math.nan)])
def test_bad_object_spec_raises(bad):
    kwargs = dict(colour="red", shape="circle", motion="still", x=0.5, y=0.5, size=0.1) | bad
    with pytest.raises(ValueError, match="ObjectSpec|unknown"):
        ObjectSpec(**kwargs)


@pytest.mark.parametrize("bad, words", [
    (dict(duration=1e300), "duration must be in"), (dict(duration=math.inf), "duration must be in"),
    (dict(camera="pan_left", camera_speed=1e300), "camera_speed must be a finite number"),
    (dict(camera="zoom_in", camera_speed=10.0), "camera_speed x duration"),  # a zoom of e^25 over 2.5 s
    (dict(motion="grow", speed=50.0), "speed x duration"), (dict(seed=-1), "seed must be in")])
def test_scene_spec_refuses_numbers_past_its_bounds(bad, words):
    scene = {k: v for k, v in bad.items() if k not in ("motion", "speed")}
    obj = dict(motion=bad.get("motion", "still"), speed=bad.get("speed", 0.0))
    with pytest.raises(ValueError, match=words):
        _one(**obj, **scene)
    spec = _one(motion="grow", speed=0.3, camera="zoom_in", camera_speed=0.2, duration=3.6)  # inside every bound
    assert render_video(spec, 2, 16, 16).shape == (2, 16, 16, 3)


def test_scene_spec_from_dict_names_the_field_past_its_bound():
    data = _one().to_dict()
    data["objects"][0]["size"] = 1e300
    with pytest.raises(ValueError, match=r"ObjectSpec.size must be in \(0, 1\]"):
        SceneSpec.from_dict(data)


def test_bad_render_arguments_raise():
    with pytest.raises(ValueError):
        render_video(_one(), 0, 32, 32)
    with pytest.raises(ValueError):
        render_video(_one(), 4, 32, 32, fps=0)


# Each motion on a plain background: the centroid/area/mask change in the stated way.
@pytest.mark.parametrize("motion", MOTIONS)
def test_motion_moves_the_object_as_named(motion):
    shape = "square" if motion == "rotate" else "circle"
    speed = {"bounce": 1.0, "grow": 0.3, "shrink": 0.3, "rotate": 0.6, "orbit": 1.5}.get(motion, 0.2)
    x, y = (0.5, 0.7) if motion == "bounce" else (0.5, 0.5)
    spec = _one(motion, shape=shape, x=x, y=y, size=0.12, speed=speed, duration=1.0)
    frames = render_video(spec, 9, 64, 64, fps=8)  # t = 0 .. 1 s
    mask = _mask(frames, "red")
    cx, cy, area = _centroids(_coverage(frames, "red"))
    dx, dy = cx[-1] - cx[0], cy[-1] - cy[0]
    moved = 0.2 * 64 * 1.0  # pixels a 0.2/s translation covers in 1 s
    expect = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1),
              "up_left": (-1, -1), "up_right": (1, -1), "down_left": (-1, 1), "down_right": (1, 1)}
    if motion in expect:
        ex, ey = expect[motion]
        scale = moved / math.hypot(ex, ey)
        assert dx == pytest.approx(ex * scale, abs=0.25) and dy == pytest.approx(ey * scale, abs=0.25)
        assert np.all(np.diff(cx) * ex >= 0) and np.all(np.diff(cy) * ey >= 0)  # monotone
    elif motion == "grow":
        assert area[-1] > 1.25 * area[0] and np.all(np.diff(area) > 0)
    elif motion == "shrink":
        assert area[-1] < 0.8 * area[0] and np.all(np.diff(area) < 0)
    elif motion in ("rotate", "still"):
        assert np.abs(cx - cx[0]).max() < 0.2 and np.abs(cy - cy[0]).max() < 0.2
        changed = (mask[1:] != mask[0]).sum(axis=(1, 2))
        assert (changed.max() > 20) == (motion == "rotate")
    elif motion == "bounce":
        assert cy.min() < cy[0] - 0.2 * 64 and abs(cy[-1] - cy[0]) < 0.5  # up, and back to the floor at t=1
        assert np.abs(cx - cx[0]).max() < 0.2
    elif motion == "orbit":
        r = np.hypot(cx - 32, cy - 32)
        assert r == pytest.approx(np.full(9, ORBIT_RADIUS * 64), abs=0.5)
        assert math.hypot(dx, dy) > 5


def test_same_motion_at_any_fps_and_size():
    spec = _one("down_right", x=0.3, y=0.3, size=0.1, speed=0.25, duration=2.0)
    slow = render_video(spec, 9, 64, 64, fps=4)  # t = k / 4
    fast = render_video(spec, 25, 96, 128, fps=12)  # t = k / 12: frame 3k is the same time
    xs, ys, _ = _centroids(_coverage(slow, "red"))
    xf, yf, _ = _centroids(_coverage(fast[::3], "red"))
    np.testing.assert_allclose(xs / 64, xf / 128, atol=0.25 / 64)
    np.testing.assert_allclose(ys / 64, yf / 96, atol=0.25 / 64)
    # The shape is not stretched on a wide frame: its mask is as tall as it is wide.
    m = _mask(fast[:1], "red")[0]
    rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    assert abs(len(rows) - len(cols)) <= 1


def test_frames_after_the_duration_hold_the_last_state():
    spec = _one("left", x=0.7, speed=0.2, duration=0.5)
    frames = render_video(spec, 12, 32, 32, fps=8)
    np.testing.assert_array_equal(frames[4], frames[-1])  # t = 0.5 s onwards
    assert not np.array_equal(frames[0], frames[4])


@pytest.mark.parametrize("colour", list(COLOURS))
def test_object_colour_is_in_the_pixels(colour):
    bg = "black" if colour == "white" else "white"
    frame = render_video(_one(colour=colour, background_colour=bg), 1, 32, 32)[0]
    assert (frame == COLOURS[colour]).all(axis=-1).sum() > 50  # the solid interior
    assert (frame == BACKGROUND_COLOURS[bg]).all(axis=-1).sum() > 500


def test_shapes_are_distinct_and_anti_aliased():
    masks = {}
    for shape in SHAPES:
        frame = render_video(_one(shape=shape, colour="black", size=0.4), 1, 64, 64)[0].astype(int)
        assert (frame[32, 32] == COLOURS["black"]).all() or shape == "ring"
        grey = frame[..., 0]
        assert ((grey > 40) & (grey < 225)).sum() > 10  # partial-coverage edge pixels
        masks[shape] = grey < 128
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                assert (masks[a] != masks[b]).sum() > 30, (a, b)


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_backgrounds_and_cameras(background):
    for camera in CAMERAS:
        spec = _one("still", colour="red", background=background, background_colour="blue",
                    camera=camera, camera_speed=0.1)
        frames = render_video(spec, 4, 32, 48, fps=2)
        assert ((frames == COLOURS["red"]).all(axis=-1).sum(axis=(1, 2)) > 10).all()  # visible throughout
        corner = frames[:, :6, :6].reshape(4, -1, 3)
        # A moving camera moves a textured background (a vertical gradient only under zooms);
        # a still camera never changes it.
        moves = background != "solid" and camera != "none" and not (background == "gradient" and "pan" in camera)
        assert (corner == corner[:1]).all() != moves, camera
