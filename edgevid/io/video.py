"""Video and GIF files: write frames (H.264 MP4 via PyAV, GIF via Pillow), read them back.

Every writer is atomic: it writes to a hidden temporary file in the destination folder and
`os.replace`s it into place only once the file is complete, so a crash or an exception never
leaves a half-written video at the requested path.

Frames come in any of the layouts the rest of edgevid produces and are normalised by
`to_uint8_frames` to a uint8 numpy array of shape (T, H, W, 3).
"""
from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from edgevid.io.atomic import give_default_mode

VIDEO_SUFFIXES = (".mp4",)
# x264 speed/size trade-off at crf 18, 121 frames of 256x256 on the 2-core CPU (measured, issue 5):
# medium 0.65-0.88 s / 134 KB / 41.4 dB; veryfast 0.32-0.44 s / 147 KB / 40.5 dB; ultrafast
# 0.13-0.20 s / 313 KB / 41.4 dB. Writing is part of the real-time budget, so ultrafast it is;
# pass preset="medium" (CLI: --encoder-preset medium) for files half the size.
DEFAULT_X264_PRESET = "ultrafast"
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
GIF_SUFFIXES = (".gif",)


# --------------------------------------------------------------------------------------
# Frame normalisation
# --------------------------------------------------------------------------------------
def to_uint8_frames(frames: Any) -> np.ndarray:
    """Normalise frames to a uint8 array (T, H, W, 3).

    Accepts: uint8 numpy (T, H, W, 3); float numpy (T, H, W, 3) in [0, 1]; a list of PIL
    images or (H, W, 3) arrays; a torch tensor (T, 3, H, W) or (T, H, W, 3), float in [0, 1]
    or uint8. Grayscale (T, H, W) / (T, H, W, 1) is expanded to 3 channels, RGBA dropped to RGB.
    """
    if isinstance(frames, (list, tuple)):
        if len(frames) == 0:
            raise ValueError("no frames to write: got an empty list")
        frames = np.stack([_one_frame_to_array(f) for f in frames])  # (T, H, W, C)
    elif _is_torch_tensor(frames):
        t = frames.detach().cpu()
        if t.ndim == 4 and t.shape[1] in (1, 3, 4) and t.shape[-1] not in (1, 3, 4):
            t = t.permute(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
        if t.is_floating_point():
            t = t.float()
        frames = t.numpy()
    elif not isinstance(frames, np.ndarray):
        raise ValueError(
            f"frames must be a numpy array, a torch tensor or a list of PIL images/arrays, "
            f"got {type(frames).__name__}"
        )

    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[..., None]  # (T, H, W) -> (T, H, W, 1)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"frames must have shape (T, H, W, 3) or (T, 3, H, W), got {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0:
        raise ValueError("no frames to write: got 0 frames")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] == 4:
        arr = arr[..., :3]

    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("frames contain NaN or inf")
        # [0, 1] floats -> [0, 255]; values a sampler overshoots slightly are clipped.
        return np.ascontiguousarray((np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr.astype(np.uint8) * 255)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError("integer frames must lie in [0, 255]")
        return np.ascontiguousarray(arr.astype(np.uint8))
    raise ValueError(f"unsupported frame dtype {arr.dtype}")


def _is_av_error(e: BaseException) -> bool:
    """PyAV's FFmpegError (checked by module: av is imported lazily)."""
    return type(e).__module__.split(".")[0] == "av"


def _is_torch_tensor(x: Any) -> bool:
    # Checked by module name so that numpy-only callers never pay for importing torch.
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _one_frame_to_array(frame: Any) -> np.ndarray:
    if hasattr(frame, "convert") and hasattr(frame, "size"):  # a PIL image
        return np.asarray(frame.convert("RGB"))
    if _is_torch_tensor(frame):
        return to_uint8_frames(frame[None])[0]
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"each frame must be (H, W, 3), got shape {arr.shape}")
    return to_uint8_frames(arr[None])[0]


def _pad_to_even(frames: np.ndarray) -> np.ndarray:
    """yuv420p subsamples chroma 2x2, so H and W must be even: replicate the last row/column."""
    _, h, w, _ = frames.shape  # (T, H, W, 3)
    ph, pw = h % 2, w % 2
    if ph == 0 and pw == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")


# --------------------------------------------------------------------------------------
# Atomic file helpers
# --------------------------------------------------------------------------------------
def _check_output_path(path: str | os.PathLike, suffixes: tuple[str, ...]) -> Path:
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{path}: expected a file ending in {' or '.join(suffixes)}")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"{path}: output folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: output folder {folder} is not writable")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a file path")
    return path


def _temp_path_next_to(path: Path) -> Path:
    """A fresh, hidden temp file in the destination folder (same filesystem, so os.replace is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    give_default_mode(tmp)  # writers reopen the file, which keeps this mode through the rename
    return Path(tmp)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _check_fps(fps: float) -> float:
    if not (isinstance(fps, (int, float, Fraction)) and float(fps) > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return float(fps)


def _fps_fraction(fps: float) -> Fraction:
    # PyAV wants a rational rate; 1001 denominators cover NTSC rates such as 23.976.
    return Fraction(fps).limit_denominator(1001)


# --------------------------------------------------------------------------------------
# MP4 (H.264 through PyAV)
# --------------------------------------------------------------------------------------
class StreamingVideoWriter:
    """Append frames to an H.264 MP4 progressively; the file appears only on a clean close.

        with StreamingVideoWriter("out.mp4", fps=24) as writer:
            for chunk in decoded_chunks:          # each (t, H, W, 3) uint8 / (t, 3, H, W) float ...
                writer.write(chunk)

    The frame size is fixed by the first chunk (odd sizes are padded to even, as yuv420p needs).
    On an exception inside the `with` block (or `abort()`), the temporary file is removed and
    nothing is left at `path`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = 24,
        crf: int = 18,
        preset: str = DEFAULT_X264_PRESET,
        codec: str = "libx264",
    ):
        # crf 18: visually near-lossless for H.264, small files for the flat synthetic scenes.
        if not (0 <= int(crf) <= 51):
            raise ValueError(f"crf must be in [0, 51] (lower = better quality), got {crf}")
        if preset not in X264_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
        self.path = _check_output_path(path, VIDEO_SUFFIXES)
        self.fps = _check_fps(fps)
        self.crf = int(crf)
        self.preset = preset
        self.codec = codec
        self.num_frames = 0
        self._size: tuple[int, int] | None = None  # (H, W) after padding to even
        self._container = None
        self._stream = None
        self._tmp: Path | None = None
        self._closed = False

    def _open(self, height: int, width: int) -> None:
        import av  # imported lazily: PyAV is only needed when a video is actually written

        self._tmp = _temp_path_next_to(self.path)
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
            self._stream = self._container.add_stream(self.codec, rate=_fps_fraction(self.fps))
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = "yuv420p"  # the pixel format every phone/browser plays
            self._stream.options = {"crf": str(self.crf), "preset": self.preset}
        except Exception:
            self._cleanup()
            raise
        self._size = (height, width)

    def write(self, frames: Any) -> None:
        """Append a chunk of frames (any layout `to_uint8_frames` accepts, or a single (H, W, 3) frame)."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is already closed")
        if isinstance(frames, np.ndarray) and frames.ndim == 3 and frames.shape[-1] in (3, 4):
            frames = frames[None]  # a single (H, W, 3) frame -> (1, H, W, 3)
        arr = _pad_to_even(to_uint8_frames(frames))  # (T, H, W, 3)
        _, h, w, _ = arr.shape
        if self._size is None:
            self._open(h, w)
        elif (h, w) != self._size:
            raise ValueError(
                f"{self.path}: frame size changed from {self._size} to {(h, w)} mid-stream"
            )
        import av

        try:
            for frame in arr:
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                for packet in self._stream.encode(video_frame):
                    self._container.mux(packet)
                self.num_frames += 1
        except Exception as e:
            self.abort()
            if _is_av_error(e):  # e.g. libx264 refuses frames wider than 16384 pixels
                raise ValueError(f"{self.path}: the {self.codec} encoder failed on {w}x{h} frames ({e})") from e
            raise

    def close(self) -> Path:
        """Flush the encoder, close the file and move it into place. Returns the final path."""
        if self._closed:
            return self.path
        if self._size is None:
            self.abort()
            raise ValueError(f"{self.path}: no frames were written; refusing to create an empty video")
        try:
            for packet in self._stream.encode(None):  # flush delayed (B-)frames
                self._container.mux(packet)
            self._container.close()
            self._container = None
            os.replace(self._tmp, self.path)
        except Exception as e:
            self.abort()
            if _is_av_error(e):
                raise ValueError(f"{self.path}: the {self.codec} encoder failed while finishing the file ({e})") from e
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard everything written so far; nothing is left at `path`."""
        self._closed = True
        self._cleanup()

    def _cleanup(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass  # already failing: the temp file is removed below either way
            self._container = None
        if self._tmp is not None:
            _remove_quietly(self._tmp)
            self._tmp = None

    def __enter__(self) -> "StreamingVideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self):  # a writer dropped without close() must not leak its temp file
        if not getattr(self, "_closed", True):  # __init__ may have raised before setting it
            self._cleanup()


def export_to_video(
    frames: Any,
    path: str | os.PathLike,
    fps: float = 24,
    crf: int = 18,
    preset: str = DEFAULT_X264_PRESET,
) -> Path:
    """Write frames to an H.264 MP4 (yuv420p) atomically; odd H/W are edge-padded to even."""
    arr = to_uint8_frames(frames)  # validate before creating anything on disk
    with StreamingVideoWriter(path, fps=fps, crf=crf, preset=preset) as writer:
        writer.write(arr)
    return writer.path


# --------------------------------------------------------------------------------------
# GIF (Pillow)
# --------------------------------------------------------------------------------------
def export_to_gif(frames: Any, path: str | os.PathLike, fps: float = 12, loop: int = 0) -> Path:
    """Write frames to an animated GIF atomically (loop=0: loop forever)."""
    from PIL import Image

    arr = to_uint8_frames(frames)  # (T, H, W, 3)
    path = _check_output_path(path, GIF_SUFFIXES)
    # GIF stores delays in centiseconds, so fps above 50 cannot be represented exactly.
    duration_ms = 1000.0 / _check_fps(fps)
    images = [Image.fromarray(f) for f in arr]
    tmp = _temp_path_next_to(path)
    try:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=duration_ms,
            loop=loop,
            optimize=False,
            disposal=1,
        )
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def export(frames: Any, path: str | os.PathLike, fps: float = 24, preset: str = DEFAULT_X264_PRESET) -> Path:
    """Write frames, choosing the format from the suffix: .mp4 (H.264, x264 `preset`) or .gif."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return export_to_video(frames, path, fps=fps, preset=preset)
    if suffix in GIF_SUFFIXES:
        return export_to_gif(frames, path, fps=fps)
    raise ValueError(
        f"{path}: unknown output format {suffix or '(no suffix)'}; use .mp4 or .gif"
    )


# --------------------------------------------------------------------------------------
# Reading back
# --------------------------------------------------------------------------------------
def _check_input_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return path


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Decode every frame of a video (MP4, GIF, ...) -> (frames uint8 (T, H, W, 3), fps)."""
    import av

    path = _check_input_path(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = _stream_fps(stream)
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except (av.error.FFmpegError, IndexError) as e:
        raise ValueError(f"{path}: cannot read as video ({e})") from e
    if not frames:
        raise ValueError(f"{path}: contains no video frames")
    return np.stack(frames), fps  # (T, H, W, 3)


def probe_video(path: str | os.PathLike) -> dict:
    """Frame count, size, fps and duration (s) of a video, counting frames by demuxing packets."""
    import av

    path = _check_input_path(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = _stream_fps(stream)
            height, width = stream.codec_context.height, stream.codec_context.width
            # stream.frames is 0 for some containers (GIF): count packets that carry data.
            frames = stream.frames or sum(1 for p in container.demux(stream) if p.size > 0)
    except (av.error.FFmpegError, IndexError) as e:
        raise ValueError(f"{path}: cannot read as video ({e})") from e
    return {
        "frames": int(frames),
        "height": int(height),
        "width": int(width),
        "fps": fps,
        "duration": frames / fps if fps > 0 else 0.0,
    }


def _stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0
