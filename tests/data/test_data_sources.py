import json

import av
import numpy as np
import pytest
import torch

from edgevid.data import (
    ProceduralClips, SceneSpec, VideoFolderClips, canonical_caption, is_holdout, make_batch, preview_grid,
)


# ---------------------------------------------------------------------------------------------
# Procedural clips
# ---------------------------------------------------------------------------------------------
def test_procedural_clips_are_deterministic_per_index():
    src = ProceduralClips(seed=0)
    a, b = src.clip(5, 9, 32, 48), src.clip(5, 9, 32, 48)
    assert a.video.shape == (9, 32, 48, 3) and a.video.dtype == np.uint8
    np.testing.assert_array_equal(a.video, b.video)
    assert a.caption == b.caption and a.spec == b.spec
    json.dumps(a.spec)  # JSON-serialisable
    other = src.clip(6, 9, 32, 48)
    assert other.spec != a.spec
    assert ProceduralClips(seed=1).clip(5, 9, 32, 48).spec != a.spec


def test_an_index_is_the_same_scene_in_every_training_bucket():
    src = ProceduralClips(seed=0, fps=8)
    short, long, wide = src.clip(3, 9, 64, 64), src.clip(3, 17, 64, 64), src.clip(3, 1, 64, 96)
    assert short.spec == long.spec == wide.spec and short.caption == long.caption
    np.testing.assert_array_equal(short.video, long.video[:9])  # same motion, just fewer frames


def test_holdout_source_and_canonical_captions():
    src = ProceduralClips(split="holdout", seed=0, varied_captions=False)
    for i in range(5):
        clip = src.clip(i, 1, 32, 32)
        main = clip.spec["objects"][0]
        assert is_holdout(main["colour"], main["shape"], main["motion"])
        assert clip.caption == canonical_caption(SceneSpec.from_dict(clip.spec))
    with pytest.raises(ValueError, match="split"):
        ProceduralClips(split="val")


def test_make_batch_shape_and_range():
    video, captions = make_batch(ProceduralClips(seed=0), [0, 1, 2], bucket=(5, 32, 40))
    assert video.shape == (3, 3, 5, 32, 40) and video.dtype == torch.float32
    assert video.min() >= -1 and video.max() <= 1 and video.min() < -0.5 and video.max() > 0.5
    assert len(captions) == 3 and all(isinstance(c, str) and c for c in captions)
    clip = ProceduralClips(seed=0).clip(1, 5, 32, 40)  # channel order and scaling undo exactly
    back = ((video[1].permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(back, clip.video)


def test_preview_grid_tiles_specs_and_clips():
    src = ProceduralClips(seed=0)
    items = [SceneSpec.from_dict(src.clip(i, 1, 8, 8).spec) for i in range(2)] + [src.clip(9, 3, 16, 16)]
    grid = preview_grid(items, num_frames=4, height=32, width=32, fps=8, caption_lines=2)
    assert grid.dtype == np.uint8 and grid.shape[0] == 4
    assert grid.shape[1] > 2 * 32 and grid.shape[2] > 2 * 32  # 2 x 2 tiles plus captions
    with pytest.raises(ValueError):
        preview_grid([], 4, 32, 32)


# ---------------------------------------------------------------------------------------------
# Video folders
# ---------------------------------------------------------------------------------------------
def _level(i):  # grey level of source frame i: frames are recognisable after lossy coding
    return 20 + 10 * i


def _write_mp4(path, num_frames=20, fps=10, width=64, height=48):
    """Flat grey frames whose level encodes the frame index; a black bar marks the left edge."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "10"}
        for i in range(num_frames):
            img = np.full((height, width, 3), _level(i), np.uint8)
            img[:, :8] = 0
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _source_indices(video):
    """Recover source frame indices from the grey level at the frame centre."""
    h, w = video.shape[1:3]
    return np.rint((video[:, h // 2, w // 2].astype(float).mean(-1) - 20) / 10).astype(int)


@pytest.fixture
def folder(tmp_path):
    _write_mp4(tmp_path / "a.mp4")
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file": "a.mp4", "caption": "a grey ramp"}) + "\n\n")
    return tmp_path


def test_video_folder_resamples_fps_and_crops(folder):
    src = VideoFolderClips(folder, fps=5, seed=0)
    assert len(src) == 1
    clip = src.clip(0, 5, 32, 32)  # 5 frames at 5 fps = 0.8 s of a 2 s, 10 fps video
    assert clip.video.shape == (5, 32, 32, 3) and clip.caption == "a grey ramp" and clip.spec is None
    idx = _source_indices(clip.video)
    assert (np.diff(idx) == 2).all() and 0 <= idx[0] and idx[-1] <= 19  # every 2nd source frame
    # A 64x48 source centre-cropped to square loses its left 8-px bar (8 of 64 columns).
    assert clip.video[:, :, 0].min() > 10
    assert (clip.video == src.clip(0, 5, 32, 32).video).all()  # deterministic
    starts = {int(_source_indices(src.clip(i, 5, 32, 32).video)[0]) for i in range(8)}
    assert len(starts) > 1  # the window offset varies with the index
    wide = src.clip(0, 2, 24, 64)  # a wider target keeps the full width (the bar shows)
    assert wide.video.shape == (2, 24, 64, 3) and wide.video[:, :, 0].max() < 15


def test_video_folder_upsamples_and_holds_the_last_frame(folder):
    fast = VideoFolderClips(folder, fps=20).clip(0, 9, 16, 16)
    idx = _source_indices(fast.video)
    assert set(np.diff(idx)) <= {0, 1} and idx[-1] - idx[0] == 4  # 0.4 s at 10 fps
    long = VideoFolderClips(folder, fps=10).clip(0, 30, 16, 16)  # 3 s from a 2 s video
    idx = _source_indices(long.video)
    np.testing.assert_array_equal(idx[:20], np.arange(20))
    assert (idx[20:] == 19).all()


def test_make_batch_from_a_video_folder(folder):
    video, captions = make_batch(VideoFolderClips(folder), [0, 1], bucket=(3, 16, 24))
    assert video.shape == (2, 3, 3, 16, 24) and captions == ["a grey ramp"] * 2
    assert -1 <= video.min() and video.max() <= 1


def test_video_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        VideoFolderClips(tmp_path / "nope")
    with pytest.raises(ValueError, match="missing caption file"):
        VideoFolderClips(tmp_path)
    jsonl = tmp_path / "captions.jsonl"
    jsonl.write_text("{not json\n")
    with pytest.raises(ValueError, match=":1:"):
        VideoFolderClips(tmp_path)
    jsonl.write_text(json.dumps({"file": "a.mp4"}) + "\n")
    with pytest.raises(ValueError, match="caption"):
        VideoFolderClips(tmp_path)
    jsonl.write_text(json.dumps({"file": "missing.mp4", "caption": "x"}) + "\n")
    with pytest.raises(ValueError, match="missing.mp4 does not exist"):
        VideoFolderClips(tmp_path)
    jsonl.write_text("")
    with pytest.raises(ValueError, match="no videos"):
        VideoFolderClips(tmp_path)
    (tmp_path / "bad.mp4").write_bytes(b"this is not a video" * 10)
    jsonl.write_text(json.dumps({"file": "bad.mp4", "caption": "x"}) + "\n")
    src = VideoFolderClips(tmp_path)
    with pytest.raises(ValueError, match="bad.mp4"):
        src.clip(0, 4, 16, 16)


def test_narrowed_world_for_the_ladder():
    """max_objects / backgrounds narrow the stream; the defaults keep the full world draw for draw."""
    full, default = ProceduralClips(split="train", seed=0), ProceduralClips(split="train", seed=0, max_objects=3)
    assert [full.scene(i) for i in range(10)] == [default.scene(i) for i in range(10)]
    easy = ProceduralClips(split="train", seed=0, camera_prob=0.0, max_objects=1, backgrounds=("solid",))
    scenes = [easy.scene(i) for i in range(40)]
    assert all(len(s.objects) == 1 and s.background == "solid" and s.camera == "none" for s in scenes)
    assert len({s.background_colour for s in scenes}) > 3
    with pytest.raises(ValueError, match="backgrounds"):
        ProceduralClips(backgrounds=("plaid",)).scene(0)
    with pytest.raises(ValueError, match="max_objects"):
        ProceduralClips(max_objects=0)


def test_canonical_fraction_mixes_canonical_and_varied_wordings_of_the_same_scenes():
    """The caption curriculum: at 0 every clip keeps its old caption (no extra random draw), at
    0.5 about half the clips are worded canonically, and the scene itself never changes."""
    from edgevid.data.captions import canonical_caption
    from edgevid.data.world import SceneSpec

    base = ProceduralClips(seed=0)
    zero = ProceduralClips(seed=0, canonical_fraction=0.0)
    half = ProceduralClips(seed=0, canonical_fraction=0.5)
    n, canonical = 200, 0
    for i in range(n):
        a, b, c = base.clip(i, 1, 16, 16), zero.clip(i, 1, 16, 16), half.clip(i, 1, 16, 16)
        assert a.caption == b.caption and a.spec == c.spec
        canonical += c.caption == canonical_caption(SceneSpec.from_dict(c.spec))
    assert 0.35 * n < canonical < 0.65 * n
    with pytest.raises(ValueError, match="canonical_fraction"):
        ProceduralClips(canonical_fraction=1.5)
