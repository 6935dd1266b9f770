"""A pipeline -> a folder of on-device artifacts + manifest.json (what `edgevid run-exported` reads).

    >>> from edgevid.export.exporter import export_pipeline
    >>> export_pipeline(pipe, "out/default-et", "executorch")   # text.pte, denoiser.pte, decoder_*.pte

    out/default-et/
      manifest.json          shapes, dtypes, time grid, fps, sha256 of every file, toolchain versions
      tokenizer.json         (MiniLM WordPiece) or the hashing tokenizer's parameters in the manifest
      time_embeddings.npy    (steps, E) float32: the denoiser's time input at each step (App. F)
      token_table.npy        (V, D) the text encoder's word table (int4 + token_table_scales.npy in int8 exports)
      text.pte  denoiser.pte  decoder_first.pte  decoder_next.pte
                             a model that generates in windows also has the short last window's
                             denoiser graph: method "denoiser_3" of denoiser.pte (ExecuTorch: one
                             copy of the weights), or its own file denoiser_3.onnx / .tflite / .mlpackage
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from edgevid.export.formats import EXPORTERS, FORMATS, MULTI_METHOD, SUFFIX, toolchain_versions
from edgevid.export.manifest import MANIFEST, MANIFEST_VERSION, file_digest
from edgevid.export.stages import build_stages, video_spec
from edgevid.export.stages_i2v import build_i2v_stages, img2vid_spec

PRECISIONS = ("fp32", "int8")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _tokenizer(text_encoder, out: Path) -> dict:
    config = getattr(text_encoder, "config", {})
    if config.get("kind") == "tiny":
        return {"kind": "hash", "vocab_size": text_encoder.model.cfg.vocab_size, "pad_id": 0, "bos_id": 1,
                "num_special": 2}
    tok = getattr(text_encoder, "tokenizer", None)
    if tok is None or not hasattr(tok, "to_str"):
        raise ValueError(f"{type(text_encoder).__name__}: no Hugging Face tokenizer to export")
    (out / "tokenizer.json").write_text(tok.to_str())
    return {"kind": "wordpiece", "file": "tokenizer.json"}


def _write_token_table(table: np.ndarray, out: Path, precision: str) -> dict:
    """The text encoder's word table (V, D), looked up by the runner: float32, or in int8 exports
    int4 with a float16 scale per 32 values of a row (export.quantize.quantize_table_int4; 1/7 of
    the bytes)."""
    if precision != "int8":
        np.save(out / "token_table.npy", table.astype(np.float32))
        return {"file": "token_table.npy", "dtype": "float32"}
    from edgevid.export.quantize import quantize_table_int4

    packed, scales = quantize_table_int4(table)
    np.save(out / "token_table.npy", packed)
    np.save(out / "token_table_scales.npy", scales)
    return {"file": "token_table.npy", "dtype": "int4", "scales": "token_table_scales.npy",
            "quantization": f"symmetric, one float16 scale per {table.shape[1] // scales.shape[1]} values of a row; "
                            "two values per byte, low nibble first, stored + 8"}


def _io(names, tensors) -> list[dict]:
    return [{"name": n, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")} for n, t in zip(names, tensors)]


def export_pipeline(pipe, out_dir: str | Path, fmt: str, precision: str = "fp32", mobile: bool = True,
                    num_frames: int | None = None, height: int | None = None, width: int | None = None,
                    progress: bool = True) -> dict:
    """Export every stage of `pipe` (a guidance-free text-to-video student, or an image-to-video
    pipeline) for `fmt` into out_dir; returns the manifest. mobile: the delegation-friendly layer
    forms (edgevid.export.mobile)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and fmt != "executorch":
        raise ValueError("int8 artifacts are made for --format executorch (XNNPACK's quantized kernels)")
    versions = toolchain_versions(fmt)
    image_to_video = _is_img2vid(pipe)
    spec = (img2vid_spec if image_to_video else video_spec)(pipe, num_frames, height, width)
    final = Path(out_dir)
    if final.exists() and (not final.is_dir() or (any(final.iterdir()) and not (final / MANIFEST).is_file())):
        raise ValueError(f"{final} exists and is not an export folder; choose an empty or new folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    # Built next to the destination and moved into place when complete: a failed export leaves
    # no half folder, and an earlier export there stays until the new one is whole.
    out = final.with_name(f".{final.name}.partial")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    try:
        export_into = _export_img2vid_into if image_to_video else _export_into
        manifest = export_into(pipe, out, fmt, precision, mobile, spec, versions, progress)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    out.rename(final)
    return manifest


def _export_into(pipe, out: Path, fmt: str, precision: str, mobile: bool, spec, versions: dict, progress: bool) -> dict:
    stages, constants = build_stages(pipe, spec, mobile=mobile)
    by_name = {s.name: s for s in stages}
    np.save(out / "time_embeddings.npy", constants["time_embeddings"].astype(np.float32))
    table = _write_token_table(constants["token_table"], out, precision)
    C, K, h, w = pipe.vae.latent_shape(spec.num_frames, spec.height, spec.width)
    entries = _write_stages(stages, out, fmt, precision, progress)
    manifest = {
        "manifest_version": MANIFEST_VERSION, "format": fmt, "precision": precision, "mobile_ops": mobile,
        "toolchain": versions, "edgevid_version": _version(),
        **({"quantization": {"linear": "int8 weights per channel, dynamic int8 activations",
                             "conv2d": "fp32", "other_ops": "fp32", "word_table": table["quantization"]}}
           if precision == "int8" else {}),
        "video": {"num_frames": spec.num_frames, "height": spec.height, "width": spec.width, "fps": spec.fps},
        "latent": {"channels": C, "frames": K, "height": h, "width": w,
                   "temporal_compression": pipe.vae.config.temporal_compression,
                   "normalisation": "the decoder graphs take normalised latents (denormalised inside)",
                   "scaling_factor": pipe.vae.config.scaling_factor, "shift_factor": pipe.vae.config.shift_factor},
        "sampler": {"kind": "euler", "steps": spec.num_inference_steps, "shift": spec.shift,
                    "timesteps": [float(t) for t in constants["timesteps"]],
                    "time_embeddings": "time_embeddings.npy", "noise": "standard normal, float32, (1, C, K, h, w)",
                    # the model's windows: each chunk continues the last latents of the one before
                    "chunks": [{"start": s, "end": e, "stage": name} for s, e, name in spec.denoiser_chunks()],
                    "continuation_start": spec.continuation_start},
        "text": {"max_length": spec.text_tokens, "dim": pipe.text_encoder.dim, "tokenizer": _tokenizer(pipe.text_encoder, out),
                 "token_table": table},
        "decoder": {"chunk_latents": min(spec.decode_chunk_latents, K), "states": len(by_name["decoder_first"].output_names) - 1},
        "shapes": "static: one video size per export (re-export for another size)",
        "stages": entries,
    }
    extra = [manifest["sampler"]["time_embeddings"], table["file"], *([table["scales"]] if "scales" in table else []),
             *([manifest["text"]["tokenizer"]["file"]] if "file" in manifest["text"]["tokenizer"] else [])]
    manifest["files"] = {name: file_digest(out / name) for name in extra}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _is_img2vid(pipe) -> bool:
    from edgevid.pipeline_i2v import EdgeVidImg2VidPipeline

    return isinstance(pipe, EdgeVidImg2VidPipeline)


def _export_img2vid_into(pipe, out: Path, fmt: str, precision: str, mobile: bool, spec, versions: dict,
                         progress: bool) -> dict:
    """An image-to-video pipeline (export.stages_i2v): encoder, denoiser, the two decoder chunks."""
    stages, constants = build_i2v_stages(pipe, spec, mobile=mobile)
    np.save(out / "time_embeddings.npy", constants["time_embeddings"].astype(np.float32))
    C, K, h, w = pipe.vae.latent_shape(spec.num_frames, spec.height, spec.width)
    entries = _write_stages(stages, out, fmt, precision, progress)
    manifest = {
        "manifest_version": MANIFEST_VERSION, "task": "image-to-video", "format": fmt, "precision": precision,
        "mobile_ops": mobile, "toolchain": versions, "edgevid_version": _version(),
        **({"quantization": {"linear": "int8 weights per channel, dynamic int8 activations", "conv2d": "fp32",
                             "other_ops": "fp32"}} if precision == "int8" else {}),
        "video": {"num_frames": spec.num_frames, "height": spec.height, "width": spec.width, "fps": spec.fps},
        "image": {"input": "uint8 (H, W, 3) of the video's size -> float32 (1, 3, 1, H, W) = pixels / 127.5 - 1"},
        "latent": {"channels": C, "frames": K, "height": h, "width": w,
                   "temporal_compression": pipe.vae.config.temporal_compression,
                   "normalisation": "the encoder graph returns and the decoder graphs take normalised latents"},
        "sampler": {"kind": "euler", "steps": spec.num_inference_steps, "shift": spec.shift,
                    "timesteps": [float(t) for t in constants["timesteps"]], "time_embeddings": "time_embeddings.npy",
                    "residual_scale": spec.residual_scale, "noise_aug_strength": spec.noise_aug_strength,
                    "motion_bucket_id": spec.motion_bucket_id,
                    "noise": "standard normal, float32: the clip (1, C, K, h, w), then the image augmentation (1, C, h, w)",
                    "flow": "r from the noise; cond = image_latent + noise_aug_strength * augmentation noise; "
                            "r += (t[i+1] - t[i]) * denoiser(r, image_latent, cond, time_embeddings[i]); "
                            "latents = image_latent + residual_scale * r (r itself if residual_scale is 0), "
                            "latent frame 0 = image_latent"},
        "decoder": {"chunk_latents": min(spec.decode_chunk_latents, K),
                    "states": len(entries["decoder_first"]["outputs"]) - 1},
        "shapes": "static: one video size per export (re-export for another size)",
        "stages": entries,
    }
    manifest["files"] = {"time_embeddings.npy": file_digest(out / "time_embeddings.npy")}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _write_stages(stages, out: Path, fmt: str, precision: str, progress: bool) -> dict:
    """Export each stage into `out`; returns the manifest's "stages" entries."""
    import torch

    # Stages that are one module at several input shapes (the denoiser per chunk length) go into
    # one file as methods where the format allows it, so its weights are stored once.
    files: dict = {}
    for stage in stages:
        files.setdefault(id(stage.module) if fmt in MULTI_METHOD else stage.name, []).append(stage)
    entries = {}
    for head, *more in files.values():
        path = out / (head.name + SUFFIX[fmt])
        t0 = time.perf_counter()
        if progress:
            extra = f" with {', '.join(st.name for st in more)} as method(s)" if more else ""
            print(f"exporting {head.name}{extra} ({fmt}, {precision}) ...", flush=True)
        graphs = {st.name: _prepared(st, precision) for st in (head, *more)}
        kwargs = {"methods": {st.name: (graphs[st.name], st.inputs) for st in more}} if more else {}
        facts = EXPORTERS[fmt](graphs[head.name], head.inputs, head.input_names, head.output_names, path, precision,
                               **kwargs)
        method_facts = facts.pop("methods", {})
        seconds = round(time.perf_counter() - t0, 1)
        digest, size = file_digest(path), _size(path)
        for st in (head, *more):
            with torch.no_grad():
                outputs = st.module(*st.inputs)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            entries[st.name] = {"file": path.name, **({"method": st.name} if st is not head else {}),
                                "sha256": digest, "bytes": size, "inputs": _io(st.input_names, st.inputs),
                                "outputs": _io(st.output_names, outputs), "export_seconds": seconds,
                                **(facts if st is head else method_facts.get(st.name, {}))}
        if progress:
            extra = ""
            if "delegation" in facts:
                d = facts["delegation"]
                extra = f", {d['partitions']} XNNPACK partition(s), {100 * d['delegated_share']:.1f}% of ops delegated"
            print(f"  {path.name}: {size / 2**20:.1f} MB in {seconds} s{extra}", flush=True)
    return entries


def _prepared(stage, precision: str):
    """The module to export for a stage: itself, or its int8 graph (export.quantize)."""
    if precision != "int8":
        return stage.module
    from edgevid.export.quantize import quantize_pt2e

    return quantize_pt2e(stage.module, stage.inputs)


def _version() -> str:
    from edgevid import __version__

    return __version__
