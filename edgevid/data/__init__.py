"""Training data: a procedural captioned video world and clip sources.

    scene spec (world.py) ─► frames (render_video) + caption (captions.py)
    sample_spec (splits.py, train / hold-out by attribute combination)
    ProceduralClips / VideoFolderClips (sources.py) ─► Clip ─► make_batch ─► (B, 3, T, H, W)
    preview_grid (preview.py): a contact sheet for `edgevid dataset preview`
"""
from edgevid.data.captions import canonical_caption, caption
from edgevid.data.preview import preview_grid
from edgevid.data.sources import Clip, ProceduralClips, VideoFolderClips, make_batch
from edgevid.data.splits import HOLDOUT_COMBINATIONS, VALID_COMBINATIONS, is_holdout, sample_spec
from edgevid.data.world import (
    BACKGROUND_COLOURS, BACKGROUNDS, CAMERAS, COLOURS, MOTIONS, SHAPES, ObjectSpec, SceneSpec, render_video,
)

__all__ = [
    "BACKGROUND_COLOURS", "BACKGROUNDS", "CAMERAS", "COLOURS", "HOLDOUT_COMBINATIONS", "MOTIONS", "SHAPES",
    "VALID_COMBINATIONS", "Clip", "ObjectSpec", "ProceduralClips", "SceneSpec", "VideoFolderClips",
    "canonical_caption", "caption", "is_holdout", "make_batch", "preview_grid", "render_video", "sample_spec",
]
