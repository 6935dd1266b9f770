import os

import numpy as np
import pytest
import torch
from PIL import Image

from edgevid.io import (
    StreamingVideoWriter,
    export,
    export_to_gif,
    export_to_video,
    load_image,
    probe_video,
    read_video,
    to_uint8_frames,
)


def _ramp(t=9, h=32, w=48) -> np.ndarray:
    """(T, H, W, 3) uint8: flat frames whose red level ramps over time, green fixed, blue 0/200 halves."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[..., 0] = np.linspace(0, 240, t).astype(np.uint8)[:, None, None]
    frames[..., 1] = 128
    frames[:, :, w // 2 :, 2] = 200
    return frames


def _assert_only(folder, names):
    assert sorted(os.listdir(folder)) == sorted(names)  # no partial output, no leftover temp file


def test_mp4_round_trip(tmp_path):
    frames = _ramp()
    path = export_to_video(frames, tmp_path / "out.mp4", fps=12)
    assert path == tmp_path / "out.mp4"
    _assert_only(tmp_path, ["out.mp4"])
    info = probe_video(path)
    assert info == {"frames": 9, "height": 32, "width": 48, "fps": 12.0, "duration": 0.75}
    got, fps = read_video(path)
    assert got.shape == (9, 32, 48, 3) and got.dtype == np.uint8 and fps == 12.0
    # H.264 + yuv420p is lossy: compare per-frame, per-channel means of each half
    for half in (slice(0, 24), slice(24, 48)):
        want = frames[:, :, half].reshape(9, -1, 3).mean(1)
        have = got[:, :, half].reshape(9, -1, 3).astype(float).mean(1)
        assert np.abs(want - have).max() < 6


def test_frame_layouts_are_equivalent():
    frames = _ramp(t=3, h=8, w=10)
    as_float = torch.from_numpy(frames).float() / 255  # (T, H, W, 3) in [0, 1]
    layouts = [
        frames,
        as_float,
        as_float.permute(0, 3, 1, 2),  # (T, 3, H, W)
        [Image.fromarray(f) for f in frames],
        list(frames),
        frames.astype(np.float32) / 255,
    ]
    for layout in layouts:
        np.testing.assert_array_equal(to_uint8_frames(layout), frames)
    for bad in ([], np.zeros((2, 4, 4, 5)), np.zeros((0, 4, 4, 3)), "frames", np.full((1, 2, 2, 3), np.nan)):
        with pytest.raises(ValueError):
            to_uint8_frames(bad)


def test_odd_sizes_are_padded_to_even(tmp_path):
    frames = _ramp(t=3, h=33, w=47)
    got, _ = read_video(export_to_video(frames, tmp_path / "odd.mp4", fps=8))
    assert got.shape == (3, 34, 48, 3)  # yuv420p needs even sizes: last row/column repeated
    assert abs(got[:, :33, :47].astype(float).mean() - frames.mean()) < 3


def test_gif_round_trip(tmp_path):
    frames = _ramp(t=5, h=16, w=20)  # few flat colours: the GIF palette holds them exactly
    path = export(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, tmp_path / "out.gif", fps=10)
    _assert_only(tmp_path, ["out.gif"])
    got, fps = read_video(path)
    np.testing.assert_array_equal(got, frames)
    assert fps == 10.0  # 10 fps = 10 cs per frame: representable exactly in GIF
    assert probe_video(path)["frames"] == 5


def test_export_dispatch_and_bad_suffix(tmp_path):
    assert export(_ramp(t=2, h=8, w=8), tmp_path / "a.MP4", fps=4).suffix == ".MP4"
    with pytest.raises(ValueError, match="use .mp4 or .gif"):
        export(_ramp(t=2), tmp_path / "a.avi")
    with pytest.raises(ValueError, match="fps"):
        export(_ramp(t=2), tmp_path / "b.mp4", fps=0)
    _assert_only(tmp_path, ["a.MP4"])


def test_missing_or_unwritable_folder_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        export_to_video(_ramp(t=2), tmp_path / "missing" / "out.mp4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="does not exist"):
        export_to_gif(_ramp(t=2), tmp_path / "file" / "out.gif")  # parent is a file
    os.chmod(tmp_path / "file", 0o644)
    if os.geteuid() != 0:  # root can write anywhere; the permission case is only testable as a user
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(ValueError, match="not writable"):
            export_to_video(_ramp(t=2), ro / "out.mp4")
        _assert_only(ro, [])
    _assert_only(tmp_path, ["file"] + (["ro"] if os.geteuid() != 0 else []))


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = export_to_video(_ramp(t=2, h=8, w=8), tmp_path / "out.mp4", fps=4)
    before = path.read_bytes()
    with pytest.raises(Exception):
        with StreamingVideoWriter(path, fps=4, codec="no-such-codec") as w:
            w.write(_ramp(t=2, h=8, w=8))
    assert path.read_bytes() == before
    _assert_only(tmp_path, ["out.mp4"])


def test_streaming_writer_equals_one_shot(tmp_path):
    frames = _ramp(t=9)
    one_shot, _ = read_video(export_to_video(frames, tmp_path / "a.mp4", fps=12))
    with StreamingVideoWriter(tmp_path / "b.mp4", fps=12) as writer:
        for chunk in (frames[:4], torch.from_numpy(frames[4:8]).permute(0, 3, 1, 2) / 255.0, frames[8]):
            writer.write(chunk)  # uint8 chunk, float (T, 3, H, W) chunk, single (H, W, 3) frame
    assert writer.num_frames == 9
    streamed, fps = read_video(tmp_path / "b.mp4")
    assert streamed.shape == one_shot.shape and fps == 12.0
    assert np.abs(streamed.astype(int) - one_shot).mean() < 1


def test_exception_inside_streaming_writer_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError, match="decoder blew up"):
        with StreamingVideoWriter(tmp_path / "out.mp4", fps=12) as writer:
            writer.write(_ramp(t=3))
            raise RuntimeError("decoder blew up")
    with pytest.raises(ValueError, match="frame size changed"):
        with StreamingVideoWriter(tmp_path / "out.mp4", fps=12) as writer:
            writer.write(_ramp(t=3, h=16, w=16))
            writer.write(_ramp(t=3, h=32, w=32))
    with pytest.raises(ValueError, match="no frames"):
        StreamingVideoWriter(tmp_path / "out.mp4").close()
    _assert_only(tmp_path, [])


def test_load_image_resize_and_centre_crop(tmp_path):
    img = np.zeros((20, 60, 3), np.uint8)  # (H, W, 3): red | green | blue bands, 20 px each
    img[:, :20, 0] = img[:, 20:40, 1] = img[:, 40:, 2] = 255
    Image.fromarray(img).save(tmp_path / "bands.png")
    np.testing.assert_array_equal(load_image(tmp_path / "bands.png"), img)
    crop = load_image(tmp_path / "bands.png", height=10, width=10)  # 60x20 -> 30x10 -> centre 10x10
    assert crop.shape == (10, 10, 3) and crop[..., 1].min() > 230 and crop[..., [0, 2]].max() < 25  # bicubic rings a little
    assert load_image(tmp_path / "bands.png", height=40, width=40).shape == (40, 40, 3)
    with pytest.raises(ValueError, match="both height and width"):
        load_image(tmp_path / "bands.png", height=10)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read as an image"):
        load_image(tmp_path / "junk.png")
    with pytest.raises(ValueError, match="no such"):
        load_image(tmp_path / "missing.png")


def test_encoder_presets(tmp_path):
    """The default x264 preset is the fastest; slower presets give the same frames within H.264's
    loss and are accepted by name; an unknown preset fails before anything is written."""
    from edgevid.io.video import DEFAULT_X264_PRESET

    assert DEFAULT_X264_PRESET == "ultrafast"
    frames = _ramp()
    fast, _ = read_video(export_to_video(frames, tmp_path / "fast.mp4"))
    small, _ = read_video(export(frames, tmp_path / "small.mp4", preset="medium"))
    assert fast.shape == small.shape == frames.shape
    assert np.abs(fast.astype(int) - small.astype(int)).mean() < 3
    with pytest.raises(ValueError, match="preset"):
        export_to_video(frames, tmp_path / "bad.mp4", preset="warp-speed")
    _assert_only(tmp_path, ["fast.mp4", "small.mp4"])
