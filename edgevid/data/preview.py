"""A contact sheet of clips: tiles several clips side by side, each with its caption underneath.

    >>> from edgevid.data.splits import sample_spec
    >>> specs = [sample_spec(np.random.default_rng(i)) for i in range(4)]
    >>> preview_grid(specs, num_frames=9, height=64, width=64, fps=8).shape
    (9, 216, 140, 3)
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edgevid.data.captions import canonical_caption
from edgevid.data.sources import Clip
from edgevid.data.world import SceneSpec, render_video

GAP = 4  # pixels between tiles
LINE_HEIGHT = 12  # PIL's default font is ~11 px tall


def preview_grid(items: Sequence[SceneSpec | Clip], num_frames: int, height: int, width: int,
                 fps: float = 8, caption_lines: int = 3) -> np.ndarray:
    """Tile specs (rendered, with their canonical caption) or clips (looped or cut to num_frames,
    resized to height x width) into one video (T, H_grid, W_grid, 3) uint8, near-square grid.
    Each tile gets `caption_lines` lines of word-wrapped caption underneath (0: none)."""
    if not items:
        raise ValueError("preview_grid needs at least one spec or clip")
    tiles, texts = [], []
    for item in items:
        if isinstance(item, SceneSpec):
            tiles.append(render_video(item, num_frames, height, width, fps))
            texts.append(canonical_caption(item))
        elif isinstance(item, Clip):
            idx = np.arange(num_frames) % item.video.shape[0]  # loop a short clip
            frames = item.video[idx]  # (T, h, w, 3)
            if frames.shape[1:3] != (height, width):
                frames = np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames])
            tiles.append(frames)
            texts.append(item.caption)
        else:
            raise ValueError(f"preview_grid takes SceneSpec or Clip items, got {type(item).__name__}")
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    caption_h = LINE_HEIGHT * caption_lines + (2 if caption_lines else 0)
    cell_h = height + caption_h
    grid = np.full((num_frames, rows * cell_h + (rows + 1) * GAP, cols * width + (cols + 1) * GAP, 3), 255, np.uint8)
    for n, (tile, text) in enumerate(zip(tiles, texts)):
        r, c = divmod(n, cols)
        y, x = GAP + r * (cell_h + GAP), GAP + c * (width + GAP)
        grid[:, y:y + height, x:x + width] = tile
        if caption_lines:
            grid[:, y + height:y + cell_h, x:x + width] = _caption_strip(text, caption_lines, width)
    return grid


def _caption_strip(text: str, num_lines: int, width: int) -> np.ndarray:
    """The caption word-wrapped onto a white (num_lines * LINE_HEIGHT + 2, width, 3) strip;
    overflow is cut."""
    img = Image.new("RGB", (width, num_lines * LINE_HEIGHT + 2), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=font) > width - 2:
            lines.append(line)
            line = word
        else:
            line = candidate
    lines.append(line)
    for i, line in enumerate(lines[:num_lines]):
        draw.text((1, 1 + LINE_HEIGHT * i), line, fill=(0, 0, 0), font=font)
    return np.asarray(img)


def paste_frames(sheet: Image.Image, frames: np.ndarray, count: int, x: int, y: int, tile_w: int, tile_h: int,
                 gap: int = 2) -> None:
    """Paste `count` frames of a clip (T, H, W, 3) uint8, evenly spaced from the first to the last,
    side by side onto `sheet` from (x, y), each resized to tile_w x tile_h."""
    for c, t in enumerate(np.linspace(0, len(frames) - 1, count).round().astype(int)):
        sheet.paste(Image.fromarray(frames[t]).resize((tile_w, tile_h), Image.BILINEAR), (x + c * (tile_w + gap), y))


def save_sheet(sheet: Image.Image, path) -> None:
    """Write a picture as PNG atomically, creating its folder."""
    from pathlib import Path

    from edgevid.io.atomic import atomic_write

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))
