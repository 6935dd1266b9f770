"""Generate a video from an export folder alone: its runtime, the tokenizer and numpy.

Text-to-video folders run with ExportedPipeline, image-to-video ones with
ExportedImg2VidPipeline; open_exported(folder) picks by the manifest's task.

No edgevid model code is imported (tests/export/test_runner.py blocks it): the sampler and the
chunked decoding are re-stated here in numpy from manifest.json, so what runs is only what was
exported. torch is imported only by the ExecuTorch runtime, whose Python API takes torch tensors.

    >>> pipe = ExportedPipeline("out/default-et")
    >>> video = pipe("a red circle moving right on a white background", seed=0)  # (T, H, W, 3) float in [0, 1]

The noise is numpy's (seed -> np.random.default_rng); pass `noise=` to reproduce a video of the
PyTorch pipeline (its `latents=`).
"""
from __future__ import annotations

import os
import re
import time
import zlib
from pathlib import Path

import numpy as np

from edgevid.export.manifest import manifest_task, read_manifest

_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")  # the test encoder's hashing tokenizer (text/tiny.py)


# ----------------------------------------------------------------------------- runtimes
def _executorch_runtime():
    """executorch.runtime.Runtime, without importing ExecuTorch's compiler.

    ExecuTorch 1.5's runtime bindings (`portable_lib`) import `executorch.exir._warnings` for one
    warning class, and that import runs `executorch.exir/__init__`: the whole compiler, torch
    dynamo and sympy, 3 s of a 2-core cold start (8 s beside a busy core). The one file is loaded
    on its own under a placeholder parent package, which is removed afterwards, so a later
    `import executorch.exir` still loads the real package. Any surprise falls back to the plain
    import."""
    import importlib.util
    import sys
    import types

    if "executorch.exir" in sys.modules or "executorch.runtime" in sys.modules:
        from executorch.runtime import Runtime

        return Runtime
    placeholder = None
    try:
        (root,) = importlib.util.find_spec("executorch").submodule_search_locations[:1]
        exir = Path(root) / "exir"
        spec = importlib.util.spec_from_file_location("executorch.exir._warnings", exir / "_warnings.py")
        warnings_module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(warnings_module)
        placeholder = types.ModuleType("executorch.exir")
        placeholder.__path__, placeholder._warnings = [str(exir)], warnings_module
        sys.modules["executorch.exir"], sys.modules["executorch.exir._warnings"] = placeholder, warnings_module
        from executorch.runtime import Runtime
    except Exception:  # a layout this workaround does not know: the plain (slow) import
        Runtime = None
    finally:
        if placeholder is not None and sys.modules.get("executorch.exir") is placeholder:
            del sys.modules["executorch.exir"]
            import executorch

            if getattr(executorch, "exir", None) is placeholder:
                delattr(executorch, "exir")
    if Runtime is None:
        sys.modules.pop("executorch.exir._warnings", None)
        from executorch.runtime import Runtime
    return Runtime


class _ExecuTorch:
    """One method of a .pte program; the methods of one file share its program (and weights)."""

    def __init__(self, path: Path, threads: int, method: str = "forward", programs: dict | None = None):
        Runtime = _executorch_runtime()

        import torch

        self.torch = torch
        torch.set_num_threads(threads)
        programs = {} if programs is None else programs
        if path not in programs:
            programs[path] = Runtime.get().load_program(path)
        self.method = programs[path].load_method(method)

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        outs = self.method.execute([self.torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
        return [o.numpy() for o in outs]


class _Onnx:
    def __init__(self, path: Path, threads: int, method: str = "forward", programs: dict | None = None):
        _one_method(path, method)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, dict(zip(self.names, inputs)))


class _LiteRT:
    def __init__(self, path: Path, threads: int, method: str = "forward", programs: dict | None = None):
        _one_method(path, method)
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        self.names = sorted(details, key=lambda n: _arg_index(n))
        self.dtypes = [details[n]["dtype"] for n in self.names]
        self.out_names = sorted(self.runner.get_output_details(), key=lambda n: _arg_index(n))

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        out = self.runner(**{n: np.ascontiguousarray(x, dtype=d) for n, x, d in zip(self.names, inputs, self.dtypes)})
        return [out[n] for n in self.out_names]


def _one_method(path: Path, method: str) -> None:
    if method != "forward":
        raise ValueError(f"{path.name}: this format has one graph per file; the manifest names method {method!r}")


def _arg_index(name: str) -> int:
    digits = re.findall(r"\d+", name)
    return int(digits[-1]) if digits else 0


RUNTIMES = {"executorch": _ExecuTorch, "onnx": _Onnx, "litert": _LiteRT}


# ----------------------------------------------------------------------------- tokenizers
class _Tokenizer:
    """Prompt -> ids (1, L) int64 and mask (1, L) float32 (1 = real token), padded to L."""

    def __init__(self, folder: Path, spec: dict, max_length: int):
        self.spec, self.L = spec, max_length
        if spec["kind"] == "wordpiece":
            from tokenizers import Tokenizer

            self.tok = Tokenizer.from_file(str(folder / spec["file"]))
            self.tok.enable_truncation(max_length=max_length)
            self.tok.no_padding()
        elif spec["kind"] != "hash":
            raise ValueError(f"unknown tokenizer kind {spec['kind']!r} in the manifest")

    def __call__(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        if self.spec["kind"] == "wordpiece":
            ids = self.tok.encode(prompt).ids
        else:
            s = self.spec
            ids = [s["bos_id"]] + [s["num_special"] + zlib.crc32(w.encode()) % (s["vocab_size"] - s["num_special"])
                                   for w in _WORD.findall(prompt.lower())]
            ids = ids[:self.L]
        out, mask = np.zeros((1, self.L), np.int64), np.zeros((1, self.L), np.float32)
        out[0, :len(ids)], mask[0, :len(ids)] = ids, 1.0
        return out, mask


# ----------------------------------------------------------------------------- the pipeline
def open_exported(folder: str | Path, threads: int | None = None, verify: bool = True):
    """The runner for an export folder's task: ExportedPipeline (text-to-video) or
    ExportedImg2VidPipeline (image-to-video)."""
    task = manifest_task(read_manifest(folder, verify=False))
    cls = ExportedImg2VidPipeline if task == "image-to-video" else ExportedPipeline
    return cls(folder, threads=threads, verify=verify)


class _Exported:
    """What both runners share: the manifest (checked), the runtime's stages, the decoder loop."""
    task = ""

    def __init__(self, folder: str | Path, threads: int | None = None, verify: bool = True):
        self.folder = Path(folder)
        self.manifest = m = read_manifest(self.folder, verify=verify)
        if manifest_task(m) != self.task:
            other = "ExportedImg2VidPipeline" if self.task == "text-to-video" else "ExportedPipeline"
            raise ValueError(f"{self.folder}: the export's task is {manifest_task(m)}; run it with {other} "
                             "(or `edgevid run-exported`, which picks the runner)")
        fmt = m["format"]
        if fmt == "coreml":
            raise ValueError("Core ML packages run on macOS only (coremltools' MLModel.predict); see docs/EXPORT.md")
        if fmt not in RUNTIMES:
            raise ValueError(f"unknown format {fmt!r} in the manifest")
        threads = threads or min(2, os.cpu_count() or 1)
        load_t0 = time.perf_counter()
        programs = {}  # file -> loaded program: stages that are methods of one file share it
        self.stages = {name: RUNTIMES[fmt](self.folder / entry["file"], threads, entry.get("method", "forward"), programs)
                       for name, entry in m["stages"].items()}
        self.load_seconds = time.perf_counter() - load_t0
        self.temb = np.load(self.folder / m["sampler"]["time_embeddings"]).astype(np.float32)
        self.timesteps = np.asarray(m["sampler"]["timesteps"], np.float32)
        lat = m["latent"]
        self.latent_shape = (1, lat["channels"], lat["frames"], lat["height"], lat["width"])
        self.timings: dict[str, float] = {}

    @property
    def fps(self) -> int:
        return self.manifest["video"]["fps"]

    def _decode(self, x: np.ndarray):
        t0 = time.perf_counter()
        yield from decode_chunks(self.stages, x, self.manifest["decoder"]["chunk_latents"],
                                 self.manifest["latent"]["temporal_compression"])
        self.timings["decode"] = time.perf_counter() - t0


class ExportedPipeline(_Exported):
    task = "text-to-video"

    def __init__(self, folder: str | Path, threads: int | None = None, verify: bool = True):
        super().__init__(folder, threads, verify)
        m = self.manifest
        self.tokenize = _Tokenizer(self.folder, m["text"]["tokenizer"], m["text"]["max_length"])
        table = m["text"]["token_table"]
        self.token_table = np.load(self.folder / table["file"])  # (V, D) float32, or quantized with scales
        self.token_scales = np.load(self.folder / table["scales"]) if "scales" in table else None
        self.token_dtype = table["dtype"]
        if self.token_dtype not in ("float32", "int8", "int4"):
            raise ValueError(f"unknown word-table dtype {self.token_dtype!r} in the manifest")

    def __call__(self, prompt: str, seed: int = 0, noise: np.ndarray | None = None) -> np.ndarray:
        """-> float32 (T, H, W, 3) in [0, 1]."""
        return np.concatenate(list(self.stream(prompt, seed, noise)), axis=0)

    def stream(self, prompt: str, seed: int = 0, noise: np.ndarray | None = None):
        """Yield the video's frames chunk by chunk, (t, H, W, 3) float32 in [0, 1]."""
        if not isinstance(prompt, str) or not any(ch.isalnum() for ch in prompt):
            raise ValueError(f"prompt must be text with at least one letter or digit, got {prompt!r}")
        if noise is None:
            noise = np.random.default_rng(seed).standard_normal(self.latent_shape, dtype=np.float32)
        elif tuple(noise.shape) != self.latent_shape:
            raise ValueError(f"noise must have shape {self.latent_shape} (this export's static video), "
                             f"got {tuple(noise.shape)}")
        timings = self.timings = {}
        t0 = time.perf_counter()
        ids, mask = self.tokenize(prompt)
        (tokens,) = self.stages["text"](self.word_embeds(ids), mask)
        timings["text"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sampler = self.manifest["sampler"]
        x = sample_chunks(lambda stage, x, i: self.stages[stage](x, tokens, mask, self.temb[i:i + 1])[0],
                          noise.astype(np.float32), self.timesteps, sampler["chunks"], sampler["continuation_start"])
        timings["denoise"] = time.perf_counter() - t0
        if not np.isfinite(x).all():
            raise FloatingPointError("sampling diverged (the latents became NaN or inf)")
        yield from self._decode(x)

    def word_embeds(self, ids: np.ndarray) -> np.ndarray:
        """ids (1, L) -> the word table's rows (1, L, D) float32: the text graph's input."""
        rows = self.token_table[ids]
        if self.token_dtype == "int4":
            return dequantize_table_int4(rows, self.token_scales[ids])
        if self.token_dtype == "int8":
            rows = rows.astype(np.float32) * self.token_scales[ids]
        return rows.astype(np.float32)


class ExportedImg2VidPipeline(_Exported):
    """An image-to-video export (export.stages_i2v): the image's latent, the flow in numpy as the
    manifest's sampler.flow states it, then the streaming decoder.

        >>> pipe = ExportedImg2VidPipeline("out/i2v-et")
        >>> video = pipe(image, seed=0)  # image uint8 (H, W, 3) of the export's size -> (T, H, W, 3) in [0, 1]
    """
    task = "image-to-video"

    @property
    def image_size(self) -> tuple[int, int]:
        return self.manifest["video"]["height"], self.manifest["video"]["width"]

    def __call__(self, image: np.ndarray, seed: int = 0, noise: np.ndarray | None = None,
                 aug_noise: np.ndarray | None = None) -> np.ndarray:
        """-> float32 (T, H, W, 3) in [0, 1]."""
        return np.concatenate(list(self.stream(image, seed, noise, aug_noise)), axis=0)

    def stream(self, image: np.ndarray, seed: int = 0, noise: np.ndarray | None = None,
               aug_noise: np.ndarray | None = None):
        """Yield the clip's frames chunk by chunk, (t, H, W, 3) float32 in [0, 1]. The noise is
        numpy's: the clip's, then the image augmentation's (the PyTorch pipeline draws its
        `latents` and augmentation noise in that order; pass both to reproduce one of its clips)."""
        image = np.asarray(image)
        H, W = self.image_size
        if image.dtype != np.uint8 or image.shape != (H, W, 3):
            raise ValueError(f"image must be uint8 (H, W, 3) = ({H}, {W}, 3), the export's size, got {image.dtype} "
                             f"{image.shape}; edgevid.io.load_image(path, {H}, {W}) resizes and crops a file")
        rng = np.random.default_rng(seed)
        C, h, w = self.latent_shape[1], self.latent_shape[3], self.latent_shape[4]
        if noise is None:
            noise = rng.standard_normal(self.latent_shape, dtype=np.float32)
        if aug_noise is None:
            aug_noise = rng.standard_normal((1, C, h, w), dtype=np.float32)
        for name, array, shape in (("noise", noise, self.latent_shape), ("aug_noise", aug_noise, (1, C, h, w))):
            if tuple(array.shape) != tuple(shape):
                raise ValueError(f"{name} must have shape {tuple(shape)} (this export's static clip), got {tuple(array.shape)}")
        timings = self.timings = {}
        sampler = self.manifest["sampler"]
        t0 = time.perf_counter()
        pixels = (image.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None, :, None]  # (1, 3, 1, H, W)
        (latent,) = self.stages["encoder"](np.ascontiguousarray(pixels))
        timings["encode"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cond = (latent + np.float32(sampler["noise_aug_strength"]) * aug_noise).astype(np.float32)
        r = noise.astype(np.float32)
        for i in range(len(self.timesteps) - 1):
            v = self.stages["denoiser"](r, latent, cond, self.temb[i:i + 1])[0]
            r = r + np.float32(self.timesteps[i + 1] - self.timesteps[i]) * v
        s = np.float32(sampler["residual_scale"])
        x = r if s == 0 else latent[:, :, None] + s * r
        x[:, :, 0] = latent
        timings["denoise"] = time.perf_counter() - t0
        if not np.isfinite(x).all():
            raise FloatingPointError("sampling diverged (the latents became NaN or inf)")
        yield from self._decode(np.ascontiguousarray(x, dtype=np.float32))


# ----------------------------------------------------------------------------- the loops, in numpy
def dequantize_table_int4(packed: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Rows of an int4 word table (export.quantize.quantize_table_int4): packed (..., D/2) uint8,
    two values per byte (low nibble first, offset by 8), and scales (..., D/group) -> float32 (..., D)."""
    low = (packed & 0x0F).astype(np.int8) - 8
    high = (packed >> 4).astype(np.int8) - 8
    q = np.stack([low, high], axis=-1).reshape(*packed.shape[:-1], 2 * packed.shape[-1])
    groups = scales.shape[-1]
    out = q.reshape(*q.shape[:-1], groups, -1).astype(np.float32) * scales[..., None].astype(np.float32)
    return out.reshape(q.shape)


def sample_chunks(velocity, noise: np.ndarray, timesteps: np.ndarray, chunks: list[dict],
                  continuation_start: str = "noise") -> np.ndarray:
    """Euler from t = 1 (noise) to t = 0, chunk by chunk (the pipeline's windows): each chunk after
    the first continues the last latents of the one before, as flow.sample_euler_with_prefix does
    (the known frames replaced by their forward-process sample before every step; "hold": the new
    frames start one step later from the held last known latent). velocity(stage, x, i) is the
    chunk's denoiser graph at step i. -> latents (1, C, K, h, w)."""
    pieces, prev, prev_end = [], None, 0
    for chunk in chunks:
        start, end, stage = chunk["start"], chunk["end"], chunk["stage"]
        eps = noise[:, :, start:end]
        x, first, P = eps.copy(), 0, 0
        if prev is not None:  # the previous chunk's last prev_end - start latents are this one's prefix
            P = prev_end - start
            prefix = prev[:, :, prev.shape[2] - P:]
            if continuation_start == "hold" and len(timesteps) > 2:
                first, t1 = 1, float(timesteps[1])
                x[:, :, P:] = (1 - t1) * prefix[:, :, -1:] + t1 * eps[:, :, P:]
        for i in range(first, len(timesteps) - 1):
            t = float(timesteps[i])
            if P:
                x[:, :, :P] = (1 - t) * prefix + t * eps[:, :, :P]
            x = x + np.float32(timesteps[i + 1] - timesteps[i]) * velocity(stage, x, i)
        if P:
            x[:, :, :P] = prefix
        pieces.append(x[:, :, prev_end - start:])
        prev, prev_end = x, end
    return np.concatenate(pieces, axis=2)


def decode_chunks(stages, x: np.ndarray, n: int, tc: int):
    """The streaming decoder over latents x (1, C, K, h, w), n latents at a time, yielding frames
    (t, H, W, 3). A short last chunk is padded with copies of its last latent (the decoder is
    causal, so the padding changes no earlier frame) and its extra frames cut."""
    K = x.shape[2]
    states = None
    for start in range(0, K, n):
        chunk = x[:, :, start:start + n]
        real = chunk.shape[2]
        if real < n:
            chunk = np.concatenate([chunk] + [chunk[:, :, -1:]] * (n - real), axis=2)
        if states is None:
            frames, *states = stages["decoder_first"](chunk)
            keep = 1 + tc * (real - 1)
        else:
            frames, *states = stages["decoder_next"](chunk, *states)
            keep = tc * real
        yield frames[:keep].transpose(0, 2, 3, 1)  # (t, 3, H, W) -> (t, H, W, 3)
