"""manifest.json of an export folder: read and check it against the files (json, hashlib, numpy)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"
# 2: the word-table lookup moved out of the text graph (token_table.npy); 3: windowed sampling
# (sampler.chunks, a denoiser graph per chunk length); 4: stages may be methods of one file
# ("method"), int8 exports have linears-only int8 graphs and an int4 word table
MANIFEST_VERSION = 4
READABLE_VERSIONS = (3, 4)  # a version-3 folder reads as one with no methods and an int8 or float32 word table
STAGES = ("text", "denoiser", "decoder_first", "decoder_next")  # text-to-video
TASKS = {  # manifest["task"] (absent: text-to-video) -> (sections, stages) an export must have
    "text-to-video": (("format", "video", "latent", "sampler", "text", "decoder", "stages", "files"), STAGES),
    "image-to-video": (("format", "video", "image", "latent", "sampler", "decoder", "stages", "files"),
                       ("encoder", "denoiser", "decoder_first", "decoder_next")),
}


def manifest_task(manifest: dict) -> str:
    return manifest.get("task", "text-to-video")


def file_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files in name order (a Core ML .mlpackage)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path)).encode() if path.is_dir() else b"")
        h.update(f.read_bytes())
    return h.hexdigest()


def read_manifest(folder: str | Path, verify: bool = True) -> dict:
    """The manifest of an export folder; a ValueError (one line) for a missing or malformed
    manifest, a missing stage file, or a file that is not the one exported (size or sha256)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ValueError(f"{folder}: no {MANIFEST}; is this a folder written by `edgevid export`?")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("manifest_version") not in READABLE_VERSIONS:
        raise ValueError(f"{path}: manifest_version {manifest.get('manifest_version') if isinstance(manifest, dict) else None!r}"
                         f" is not one of {READABLE_VERSIONS}; re-export with this edgevid")
    task = manifest_task(manifest)
    if task not in TASKS:
        raise ValueError(f"{path}: unknown task {task!r}; this edgevid reads {', '.join(TASKS)}")
    sections, stages = TASKS[task]
    for key in sections:
        if key not in manifest:
            raise ValueError(f"{path}: missing {key!r}")
    chunk_stages = []
    if task == "text-to-video":
        sampler = manifest["sampler"] if isinstance(manifest["sampler"], dict) else {}
        chunk_stages = [c.get("stage") for c in sampler.get("chunks", [])]
        if not chunk_stages:
            raise ValueError(f"{path}: the sampler has no chunks; re-export with this edgevid")
    missing = [s for s in dict.fromkeys([*stages, *chunk_stages]) if s not in manifest["stages"]]
    if missing:
        raise ValueError(f"{path}: no entry for stage(s) {', '.join(map(str, missing))}")
    checked = set()
    for name in manifest["stages"]:
        entry = manifest["stages"][name]
        file = folder / entry["file"]
        if not file.exists():
            raise ValueError(f"{folder}: {entry['file']} (stage {name}) is missing")
        if verify and entry["file"] not in checked and file_digest(file) != entry["sha256"]:
            raise ValueError(f"{folder}: {entry['file']} does not match the manifest (sha256 differs): "
                             f"the artifact and manifest.json come from different exports")
        checked.add(entry["file"])
    for name, digest in manifest.get("files", {}).items():  # the arrays and the tokenizer beside the graphs
        if not (folder / name).is_file():
            raise ValueError(f"{folder}: {name} is missing")
        if verify and file_digest(folder / name) != digest:
            raise ValueError(f"{folder}: {name} does not match the manifest (sha256 differs): "
                             f"it and manifest.json come from different exports")
    return manifest


def artifact_bytes(manifest: dict) -> int:
    """Bytes of the stages' files, each file once (stages that are methods of one file share it)."""
    return sum({entry["file"]: entry["bytes"] for entry in manifest["stages"].values()}.values())
