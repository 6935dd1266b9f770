"""The ground-truth row of every benchmark spec, scored once per size and cached.

Every eval reads its figures against the world's own render of the same specs (the ceiling).
That render and its scoring are the same for every model, and on 200 videos of 121 frames they
take ~15 min on one core, so each spec's row is kept in
$EDGEVID_CACHE/shapesbench_truth/<size>-<code>.json. `code` hashes the scorer's and the world's
source files: any change to how a video is rendered or scored starts a fresh cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from edgevid.eval.shapesbench.score import to_builtin

# Under edgevid/: the modules a truth row is computed by (the world that renders it, the scorer and
# its analysis; from edgevid they import only each other). The specs themselves are the cache's keys.
# A change elsewhere (captions, previews, the benchmark's spec list) leaves the rows valid.
_SOURCES = ("data/world.py", "eval/shapesbench/analyze.py", "eval/shapesbench/score.py")


def code_version() -> str:
    """sha256 (12 hex) of the scorer's and the world's source files."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for name in _SOURCES:
        h.update(name.encode())
        h.update((root / name).read_bytes())
    return h.hexdigest()[:12]


def cache_path(num_frames: int, height: int, width: int, fps: float) -> Path:
    root = Path(os.environ.get("EDGEVID_CACHE") or Path.home() / ".cache" / "edgevid")
    return root / "shapesbench_truth" / f"{num_frames}x{height}x{width}@{fps:g}-{code_version()}.json"


def spec_key(spec) -> str:
    return hashlib.sha256(repr(spec).encode()).hexdigest()[:16]


def ground_truth_rows(specs, num_frames: int, height: int, width: int, fps: float, score, render,
                      cache: bool = True, progress: bool = False) -> list[dict]:
    """score(render(spec, num_frames, height, width, fps), spec, fps) for each spec, from the cache
    where it holds the spec at this size; new rows are added to it (with a progress bar if asked)."""
    from tqdm.auto import tqdm

    path = cache_path(num_frames, height, width, fps)
    known: dict = {}
    if cache and path.is_file():
        try:
            known = json.loads(path.read_text())
        except ValueError:
            known = {}  # a torn or foreign file: score again
    keys = [spec_key(spec) for spec in specs]
    missing = {key: spec for key, spec in zip(keys, specs) if key not in known}
    for key, spec in tqdm(missing.items(), desc="ShapesBench truth (scored once per size, then cached)",
                          disable=not progress or not missing):
        row = score(render(spec, num_frames, height, width, fps), spec, fps)
        known[key] = json.loads(json.dumps(row, default=to_builtin))  # as the cache gives it back
    rows = [known[key] for key in keys]
    if cache and missing:
        from edgevid.io.atomic import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(known) + "\n")
    return rows
