"""Clip sources: the training loop asks for clip `index` at a bucket size; data is a pure function
of (seed, index, size), so a resumed run sees exactly the clips it would have seen.

    >>> src = ProceduralClips(seed=0)
    >>> clip = src.clip(3, num_frames=9, height=64, width=96)
    >>> clip.video.shape, clip.video.dtype
    ((9, 64, 96, 3), dtype('uint8'))
    >>> video, captions = make_batch(src, [0, 1], bucket=(9, 64, 64))
    >>> tuple(video.shape)
    (2, 3, 9, 64, 64)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from edgevid.data.captions import canonical_caption, caption
from edgevid.data.splits import SPLITS, sample_spec
from edgevid.data.world import SceneSpec, render_object_mask, render_video

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, eq=False)
class Clip:
    video: np.ndarray  # uint8 (T, H, W, 3)
    caption: str
    spec: dict | None  # SceneSpec.to_dict() for procedural clips, None for real video


class ProceduralClips:
    """Rendered clips from random scene specs; endless (any integer index is a clip)."""

    def __init__(self, split: str = "train", seed: int = 0, fps: float = 8, varied_captions: bool = True,
                 camera_prob: float = 0.3, min_duration: float = 2.5, max_objects: int = 3,
                 backgrounds: tuple[str, ...] | None = None, canonical_fraction: float = 0.0):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
        if not fps > 0 or not 0 <= camera_prob <= 1:
            raise ValueError(f"need fps > 0 and 0 <= camera_prob <= 1, got {fps}, {camera_prob}")
        if max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {max_objects}")
        # A narrower world (the learnability ladder's rungs); None = every background type.
        self.max_objects, self.backgrounds = max_objects, tuple(backgrounds) if backgrounds else None
        self.split, self.seed, self.fps = split, seed, fps
        self.varied_captions = varied_captions  # False: canonical captions (evaluation prompts)
        # With varied captions, this share of clips still gets the canonical wording (a caption
        # curriculum: one consistent vocabulary beside the synonyms). 0 draws nothing extra, so
        # every clip keeps the caption it had before the option existed.
        if not 0 <= canonical_fraction <= 1:
            raise ValueError(f"canonical_fraction must be in [0, 1], got {canonical_fraction}")
        self.canonical_fraction = canonical_fraction
        self.camera_prob = camera_prob
        # Scenes are built for max(min_duration, clip length) seconds: every bucket up to
        # min_duration * fps frames gets the same scene for an index, just sampled shorter.
        self.min_duration = min_duration

    def _spec(self, index: int, num_frames: int):
        """(scene spec of clip `index` at this length, the rng that goes on to draw its caption)."""
        # The split is part of the seed so that train and holdout streams are independent.
        rng = np.random.default_rng([self.seed, index, SPLITS.index(self.split)])
        duration = max(self.min_duration, num_frames / self.fps)
        narrow = {"backgrounds": self.backgrounds} if self.backgrounds else {}
        return sample_spec(rng, self.split, duration=duration, camera_prob=self.camera_prob,
                           max_objects=self.max_objects, **narrow), rng

    def scene(self, index: int, num_frames: int = 1) -> SceneSpec:
        """The scene spec of clip `index` (the same for every bucket up to min_duration * fps frames)."""
        return self._spec(index, num_frames)[0]

    def caption(self, index: int, num_frames: int = 1) -> str:
        """The caption of clip `index` at this length, without rendering it."""
        spec, rng = self._spec(index, num_frames)
        canonical = not self.varied_captions or (self.canonical_fraction > 0 and rng.random() < self.canonical_fraction)
        return canonical_caption(spec) if canonical else caption(spec, rng)

    def clip(self, index: int, num_frames: int, height: int, width: int) -> Clip:
        spec = self.scene(index, num_frames)
        video = render_video(spec, num_frames, height, width, self.fps)
        return Clip(video=video, caption=self.caption(index, num_frames), spec=spec.to_dict())

    def object_mask(self, index: int, num_frames: int, height: int, width: int) -> np.ndarray:
        """Object coverage (T, H, W) float32 in [0, 1] of `clip(index, ...)`'s video (same spec)."""
        spec, _ = self._spec(index, num_frames)
        return render_object_mask(spec, num_frames, height, width, self.fps)


class VideoFolderClips:
    """Clips from a folder of videos with a JSON-lines caption file.

    Each line of `captions` is {"file": "a.mp4", "caption": "..."}. Clip `index` reads video
    `index % len(self)`, resamples it to `fps` from the file's own frame rate (nearest frame),
    takes a window of `num_frames` at an offset drawn from (seed, index), and scales + centre-crops
    it to (height, width). A video shorter than the window holds its last frame.
    """

    def __init__(self, root: str | Path, captions: str = "captions.jsonl", fps: float = 8, seed: int = 0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"video folder {self.root} does not exist; pass a folder of videos and {captions}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps, self.seed = fps, seed
        self.entries: list[tuple[Path, str]] = _read_captions(self.root, self.root / captions)
        self._meta: dict[Path, tuple[int, float]] = {}  # file -> (frame count, fps), read once

    def __len__(self) -> int:
        return len(self.entries)

    def clip(self, index: int, num_frames: int, height: int, width: int) -> Clip:
        path, text = self.entries[index % len(self.entries)]
        n_src, src_fps = self._probe(path)
        span = (num_frames - 1) / self.fps  # seconds covered by the window
        slack = max(0.0, (n_src - 1) / src_fps - span)  # how far the window can slide
        rng = np.random.default_rng([self.seed, index])
        start = rng.uniform(0.0, slack) if slack > 0 else 0.0
        times = start + np.arange(num_frames) / self.fps  # (T,) seconds
        # Nearest source frame; the small epsilon keeps exact multiples from rounding down.
        wanted = np.minimum(np.floor(times * src_fps + 0.5 + 1e-6).astype(np.int64), n_src - 1)
        frames = _decode_frames(path, set(wanted.tolist()))
        last = max(frames)  # the file may hold fewer frames than its header claims
        resized = {i: _resize_crop(f, height, width) for i, f in frames.items()}
        video = np.stack([resized.get(i, resized[last]) for i in wanted])  # (T, H, W, 3)
        return Clip(video=video, caption=text, spec=None)

    def _probe(self, path: Path) -> tuple[int, float]:
        if path not in self._meta:
            import av  # lazy: keeps `import edgevid.data` light for the CLI

            try:
                with av.open(str(path)) as container:
                    stream = container.streams.video[0]
                    rate = stream.average_rate or stream.guessed_rate
                    n = stream.frames or sum(1 for _ in container.decode(stream))
            except (av.FFmpegError, IndexError, OSError) as e:
                raise ValueError(f"cannot read video {path}: {e}") from None
            if not rate or n < 1:
                raise ValueError(f"video {path} has no frames or no frame rate")
            self._meta[path] = (int(n), float(rate))
        return self._meta[path]


def _read_captions(root: Path, path: Path) -> list[tuple[Path, str]]:
    if not path.is_file():
        raise ValueError(f"missing caption file {path}; write one JSON line per video: "
                         '{"file": "a.mp4", "caption": "..."}')
    entries = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            file, text = row["file"], row["caption"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path}:{n}: expected a JSON object with \"file\" and \"caption\", got {line[:80]!r}") from None
        if not isinstance(file, str) or not isinstance(text, str):
            raise ValueError(f"{path}:{n}: \"file\" and \"caption\" must be strings")
        if not (root / file).is_file():
            raise ValueError(f"{path}:{n}: video {root / file} does not exist")
        entries.append((root / file, text))
    if not entries:
        raise ValueError(f"caption file {path} lists no videos")
    return entries


def _decode_frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """Decode from the start up to the last wanted frame; returns {index: (H, W, 3) uint8}."""
    import av

    frames: dict[int, np.ndarray] = {}
    last_wanted, last_i, last_frame = max(wanted), -1, None
    try:
        with av.open(str(path)) as container:
            for last_i, last_frame in enumerate(container.decode(video=0)):
                if last_i in wanted:
                    frames[last_i] = last_frame.to_ndarray(format="rgb24")
                if last_i >= last_wanted:
                    break
            if last_frame is not None and last_i not in frames:  # the header over-counted frames
                frames[last_i] = last_frame.to_ndarray(format="rgb24")
    except (av.FFmpegError, OSError) as e:
        raise ValueError(f"cannot decode video {path}: {e}") from None
    if not frames:
        raise ValueError(f"video {path} decoded to no frames")
    return frames


def _resize_crop(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale (H, W, 3) uint8 to cover (height, width), centre-cropping the overflow."""
    h, w = frame.shape[:2]
    scale = max(height / h, width / w)
    crop_w, crop_h = width / scale, height / scale  # source box with the target's aspect
    left, top = (w - crop_w) / 2, (h - crop_h) / 2
    # PIL's resize filters anti-alias when shrinking; `box` crops in source pixels.
    img = Image.fromarray(frame).resize((width, height), Image.BICUBIC, box=(left, top, left + crop_w, top + crop_h))
    return np.asarray(img)


def make_batch(source, indices: list[int], bucket: tuple[int, int, int]) -> tuple[torch.Tensor, list[str]]:
    """Clips `indices` of `source` at bucket = (frames, height, width) ->
    (video float32 (B, 3, T, H, W) in [-1, 1], captions)."""
    import torch  # lazy: the world and captions work without torch (CLI start-up time)

    num_frames, height, width = bucket
    clips = [source.clip(i, num_frames, height, width) for i in indices]
    video = torch.from_numpy(np.stack([c.video for c in clips]))  # (B, T, H, W, 3) uint8
    video = video.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)  # (B, 3, T, H, W)
    return video.contiguous(), [c.caption for c in clips]
