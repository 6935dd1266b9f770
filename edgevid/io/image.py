"""Image files for image-to-video conditioning (Pillow)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def load_image(
    path: str | os.PathLike, height: int | None = None, width: int | None = None
) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3).

    With `height` and `width`, the image is resized so that it covers the target size (aspect
    ratio kept, bicubic) and then centre-cropped to exactly (height, width). Giving only one of
    them is an error: silently guessing the other would distort the conditioning frame.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such image file")
    if (height is None) != (width is None):
        raise ValueError("give both height and width, or neither")
    if height is not None and (int(height) <= 0 or int(width) <= 0):
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: cannot read as an image ({e})") from e

    if height is not None:
        img = _resize_and_center_crop(img, int(height), int(width))
    return np.asarray(img, dtype=np.uint8)


def _resize_and_center_crop(img, height: int, width: int):
    from PIL import Image

    w, h = img.size
    scale = max(height / h, width / w)  # cover the target, then crop the overflow
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return img.crop((left, top, left + width, top + height))


def save_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 (H, W, 3) array (e.g. one frame) as PNG/JPEG, atomically."""
    from PIL import Image

    from edgevid.io.video import _check_output_path, _remove_quietly, _temp_path_next_to, to_uint8_frames

    path = _check_output_path(path, (".png", ".jpg", ".jpeg", ".webp"))
    frame = to_uint8_frames(np.asarray(image)[None] if not isinstance(image, list) else image)[0]
    tmp = _temp_path_next_to(path)
    try:
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), path.suffix[1:].upper())
        Image.fromarray(frame).save(tmp, format=fmt)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path
