"""Text-to-video inference: prompt -> text encoder -> Euler sampler over the UNet -> VAE decoder -> frames.

Inference only (diffusers PHILOSOPHY): training lives in `edgevid.train`. The folder layout
of `save_pretrained` mirrors diffusers: `model_index.json` plus one subfolder per component,
each with `config.json` and `model.safetensors`.

    >>> pipe = EdgeVidPipeline.from_pretrained(default_model_dir())
    >>> out = pipe("a red circle moving right on a white background", generator=torch.Generator().manual_seed(0))
    >>> out.frames.shape  # (B, T, H, W, 3) float in [0, 1]
"""
from __future__ import annotations

import dataclasses
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from edgevid.config import UNetConfig, VAEConfig, config_from_dict, config_to_dict
from edgevid.flow.denoiser import GuidedVelocity
from edgevid.flow.sample import chunk_plan, sample_euler, sample_euler_with_prefix
from edgevid.flow.schedule import time_grid
from edgevid.models.unet import SpatioTemporalUNet
from edgevid.models.vae import StreamingDecoder, VideoVAE
from edgevid.io.atomic import atomic_write_text
from edgevid.models.weights import load_component, read_json, save_component
from edgevid.precision import PipelinePrecision
from edgevid.text import TextEncoder, load_text_encoder_from_dir, save_text_encoder
from edgevid.text.base import check_unicode
from edgevid.text.cache import PromptCache

MODEL_INDEX = "model_index.json"
OUTPUT_TYPES = ("np", "pt", "uint8", "pil", "latent")


@dataclass(frozen=True)
class GenerationDefaults:
    """What `pipe(prompt)` does when a keyword is not given; stored in model_index.json."""
    num_frames: int = 121  # 1 + 4 * 30: five seconds at 24 fps with the causal 4x VAE
    height: int = 256
    width: int = 256
    fps: int = 24
    num_inference_steps: int = 25  # the teacher's conventional recipe (SnapGen-V §3.2)
    guidance_scale: float = 5.0
    shift: float = 1.0  # timestep shift of the sampling grid (1 = uniform)
    # Longer clips are generated in chunks of this many latent frames (0 = all at once), each
    # continuing the last overlap_latent_frames latents of the one before.
    window_latent_frames: int = 0
    overlap_latent_frames: int = 4
    # stream() denoises a first chunk of only this many latent frames (1 + 4 * (n - 1) video
    # frames; 1 = the first frame alone, an image) and shows it while the rest is generated as
    # its continuation: time to first frame. 0 = no short first chunk. __call__ uses none unless
    # asked (first_window_latent_frames=). docs/REALTIME.md has the measurements behind 1.
    stream_first_latent_frames: int = 1
    # How a continuing chunk's new frames start (flow.sample.sample_euler_with_prefix): "noise"
    # (the plain sampler) or "hold" (one step later, from the held last known latent). "hold"
    # halves the jump at chunk borders at equal ShapesBench adherence (docs/REALTIME.md).
    continuation_start: str = "hold"

    def __post_init__(self):
        if self.continuation_start not in ("noise", "hold"):
            raise ValueError(f"continuation_start must be 'noise' or 'hold', got {self.continuation_start!r}")
        if self.stream_first_latent_frames < 0:
            raise ValueError(f"stream_first_latent_frames must be >= 0, got {self.stream_first_latent_frames}")
        if self.window_latent_frames < 0 or self.overlap_latent_frames < 1 or (
                self.window_latent_frames and self.overlap_latent_frames >= self.window_latent_frames):
            raise ValueError(f"window_latent_frames must be >= 0 and overlap_latent_frames in [1, window - 1], got "
                             f"{self.window_latent_frames} / {self.overlap_latent_frames}")


@dataclass(frozen=True)
class SamplingRequest:
    """One generation call, its arguments resolved against the model's defaults and checked
    (`EdgeVidPipeline.sampling_request`): what steps 1-3 read."""
    prompts: tuple[str, ...]
    num_frames: int
    height: int
    width: int
    num_inference_steps: int
    guidance_scale: float
    negative_prompt: str
    shift: float
    plan: tuple[tuple[int, int], ...]  # latent-frame ranges [start, end) denoised one after the other


@dataclass
class EdgeVidPipelineOutput:
    # "np": float32 (B, T, H, W, 3) in [0, 1]; "pt": float32 (B, T, 3, H, W) in [0, 1];
    # "uint8": numpy uint8 (B, T, H, W, 3), what video writers take (the fastest: no float frames);
    # "pil": list (per video) of lists of PIL images; "latent": (B, C, T', H', W').
    frames: Any


def default_model_dir() -> Path:
    """The model shipped inside the package."""
    return Path(__file__).resolve().parent / "weights" / "default"


def shipped_models() -> list[str]:
    """Names of the pipelines shipped inside the package: "default" and "teacher" (text-to-video),
    "i2v" (image-to-video, an EdgeVidImg2VidPipeline folder)."""
    root = default_model_dir().parent
    return sorted(p.name for p in root.iterdir() if (p / MODEL_INDEX).is_file())


def resolve_model_dir(model: str | Path | None) -> Path:
    """None or a shipped model's name ("default", "teacher", "i2v") -> its folder; anything else is a path."""
    if model is None:
        return default_model_dir()
    path = Path(model)
    if path.is_dir() or str(model) not in ("default", "teacher", "i2v"):
        return path
    shipped = default_model_dir().parent / str(model)
    if not (shipped / MODEL_INDEX).is_file():
        raise ValueError(f"no model named {model!r} ships with this edgevid; shipped: {', '.join(shipped_models())}")
    return shipped


class EdgeVidPipeline(PipelinePrecision):  # set_precision, autocast, device
    def __init__(self, vae: VideoVAE, unet: SpatioTemporalUNet, text_encoder: TextEncoder,
                 defaults: GenerationDefaults = GenerationDefaults(), precision: str | None = None):
        if unet.config.in_channels != vae.config.latent_channels:
            raise ValueError(f"UNet takes {unet.config.in_channels} channels, VAE latents have {vae.config.latent_channels}")
        if unet.config.text_dim != text_encoder.dim:
            raise ValueError(f"UNet expects {unet.config.text_dim}-d text tokens, the text encoder gives {text_encoder.dim}")
        self.vae, self.unet, self.text_encoder = vae.eval(), unet.eval(), text_encoder.eval()
        self.prompt_cache = PromptCache(text_encoder, max_entries=256)
        self.defaults = defaults
        self.set_precision(precision)
        self.check_inputs("x", defaults.num_frames, defaults.height, defaults.width, defaults.num_inference_steps,
                          defaults.guidance_scale)

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",
                        precision: str | None = None) -> "EdgeVidPipeline":
        """Load a saved pipeline. `precision` "auto" (the default, or $EDGEVID_PRECISION) runs the
        denoiser and decoder in bf16 on a CPU with native bf16 and in fp32 elsewhere (edgevid.precision)."""
        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"model folder {path} does not exist")
        index = read_json(path / MODEL_INDEX)
        try:  # config_from_dict type-checks every field, here and in load_component
            defaults = config_from_dict(GenerationDefaults, index.get("defaults", {}))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path / MODEL_INDEX}: invalid defaults ({e})") from None
        vae = load_component(VideoVAE, VAEConfig, path / "vae")
        unet = load_component(SpatioTemporalUNet, UNetConfig, path / "unet")
        text_encoder = load_text_encoder_from_dir(path / "text_encoder")
        return cls(vae, unet, text_encoder, defaults).to(device).set_precision(precision)

    def save_pretrained(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_component(self.vae, self.vae.config, path / "vae")
        save_component(getattr(self.unet, "eager", self.unet), self.unet.config, path / "unet")  # never a compiled wrapper
        save_text_encoder(self.text_encoder, path / "text_encoder")
        index = {"_class_name": type(self).__name__, "_edgevid_version": _version(),
                 "vae": ["edgevid", type(self.vae).__name__], "unet": ["edgevid", type(self.unet).__name__],
                 "text_encoder": ["edgevid", type(self.text_encoder).__name__],
                 "defaults": config_to_dict(self.defaults)}
        atomic_write_text(path / MODEL_INDEX, json.dumps(index, indent=2) + "\n")
        return path

    def to(self, device: str | torch.device) -> "EdgeVidPipeline":
        for module in (self.vae, self.unet, self.text_encoder):
            module.to(device)
        return self

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (VAE factor x UNet downsampling)."""
        return self.vae.config.spatial_compression * self.unet.config.downsample_factor

    # ------------------------------------------------------------------ validation
    def check_inputs(self, prompt, num_frames: int, height: int, width: int, num_inference_steps: int,
                     guidance_scale: float) -> list[str]:
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, (list, tuple)) or not prompts:
            raise ValueError("prompt must be a non-empty string or a non-empty list of strings")
        for p in prompts:
            if not isinstance(p, str) or not any(ch.isalnum() for ch in p):
                raise ValueError(f"prompt must be text with at least one letter or digit, got {p!r}")
            check_unicode(p)
            control = next((i for i, ch in enumerate(p)
                            if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r"), None)
            if control is not None:  # tabs and newlines are spaces to the tokenizer; escape codes are a mistake
                raise ValueError(f"prompt contains the control character U+{ord(p[control]):04X} at character "
                                 f"{control}; remove it")
        for name, v in (("num_frames", num_frames), ("height", height), ("width", width),
                        ("num_inference_steps", num_inference_steps)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        m = self.size_multiple
        if height % m or width % m:
            raise ValueError(f"height and width must be multiples of {m} (VAE x{self.vae.config.spatial_compression}, "
                             f"UNet x{self.unet.config.downsample_factor}), got {height}x{width}; "
                             f"e.g. {max(m, height // m * m)}x{max(m, width // m * m)}")
        tc = self.vae.config.temporal_compression
        if (num_frames - 1) % tc:
            lo = (num_frames - 1) // tc * tc + 1
            raise ValueError(f"num_frames must be 1 + {tc}*k for the causal VAE (1, {1 + tc}, {1 + 2 * tc}, ...), "
                             f"got {num_frames}; try {lo} or {lo + tc}")
        if not isinstance(guidance_scale, (int, float)) or not np.isfinite(guidance_scale) or guidance_scale < 0:
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale!r}")
        return list(prompts)

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def __call__(self, prompt: str | list[str], num_frames: int | None = None, height: int | None = None,
                 width: int | None = None, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, negative_prompt: str = "", shift: float | None = None,
                 generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
                 output_type: str = "np",
                 callback_on_step_end: Callable[["EdgeVidPipeline", int, float, dict], dict | None] | None = None,
                 window_latent_frames: int | None = None, overlap_latent_frames: int | None = None,
                 first_window_latent_frames: int = 0) -> EdgeVidPipelineOutput:
        """Generate videos. Clips longer than `window_latent_frames` latent frames (default: the
        model's; 0 = no limit) are generated chunk by chunk, each chunk continuing the last
        `overlap_latent_frames` latents of the one before (`sample_euler_with_prefix`), and decoded
        as one causal sequence, so there is no decoder seam; the callback then runs per chunk.
        `first_window_latent_frames` > 0 makes the first chunk that short (what `stream` does)."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(map(repr, OUTPUT_TYPES))}, got {output_type!r}")
        request = self.sampling_request(prompt, num_frames, height, width, num_inference_steps, guidance_scale,
                                        negative_prompt, shift, window_latent_frames, overlap_latent_frames,
                                        first_window_latent_frames)
        latents = torch.cat(list(self._latent_pieces(request, generator, latents, callback_on_step_end)),
                            dim=2)  # (B, C, T', H', W')
        if output_type == "latent":
            return EdgeVidPipelineOutput(frames=latents)
        if output_type == "uint8":
            return EdgeVidPipelineOutput(frames=self.decode_latents(latents, output_type="uint8"))  # 4.
        video = self.decode_latents(latents)  # 4. (B, T, 3, H, W) in [0, 1]
        return EdgeVidPipelineOutput(frames=_convert(video, output_type))

    def stream(self, prompt: str, num_frames: int | None = None, height: int | None = None,
               width: int | None = None, num_inference_steps: int | None = None,
               guidance_scale: float | None = None, negative_prompt: str = "", shift: float | None = None,
               generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
               chunk_frames: int | None = None, window_latent_frames: int | None = None,
               overlap_latent_frames: int | None = None, first_window_latent_frames: int | None = None,
               callback_on_step_end: Callable[["EdgeVidPipeline", int, float, dict], dict | None] | None = None,
               output_type: str = "np") -> Iterator[np.ndarray]:
        """Generate one video and yield its frames while the rest is still being decoded (and, for
        chunk-wise generation, generated).

        Same arguments and, for the same seed, the same frames as `__call__` (output_type "np"),
        concatenated: each item is float32 (t, H, W, 3) in [0, 1] (output_type "np"), or uint8
        (t, H, W, 3) with output_type "uint8", what a video writer takes. Up to `chunk_frames` latent
        frames are decoded per item (default: the VAE's decode_chunk_frames); the first latent
        is one frame, each later one 4. The first `first_window_latent_frames` latents (default:
        the model's stream_first_latent_frames, 1 = the first frame; 0 = off) are denoised alone and
        shown first, so the first frames come after a fraction of the denoising (time to first
        frame); the rest of the clip is generated as their continuation. Pass the same value to
        `__call__` to get the same frames there.

            >>> for frames in pipe.stream("a red circle moving right", generator=torch.Generator().manual_seed(0)):
            ...     writer.write(frames)
        """
        if not isinstance(prompt, str):
            raise ValueError(f"stream() makes one video: prompt must be a string, got {type(prompt).__name__}")
        n = self.vae.config.decode_chunk_frames if chunk_frames is None else chunk_frames
        if n < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {n}")
        if output_type not in ("np", "uint8"):
            raise ValueError(f"stream() yields 'np' or 'uint8' frames, got output_type={output_type!r}")
        first = self.defaults.stream_first_latent_frames if first_window_latent_frames is None \
            else first_window_latent_frames
        request = self.sampling_request(prompt, num_frames, height, width, num_inference_steps, guidance_scale,
                                        negative_prompt, shift, window_latent_frames, overlap_latent_frames, first)
        with torch.inference_mode():
            pieces = self._latent_pieces(request, generator, latents, callback_on_step_end)
            decoder = StreamingDecoder(self.vae)
        while True:
            with torch.inference_mode():  # not held across yields: the caller may run its own autograd code
                piece = next(pieces, None)  # newly final latents (1, C, k, H', W')
            if piece is None:
                return
            for start in range(0, piece.shape[2], n):
                with torch.inference_mode(), self.autocast():
                    frames = decoder.push(self.vae.denormalize(piece[:, :, start:start + n]))  # (1, 3, t, H, W)
                if output_type == "uint8":
                    yield decoded_to_uint8(frames)[0].numpy()  # (t, H, W, 3)
                else:
                    yield _to_unit_frames(frames)[0].permute(0, 2, 3, 1).numpy()  # (t, H, W, 3)

    def sampling_request(self, prompt, num_frames: int | None = None, height: int | None = None,
                         width: int | None = None, num_inference_steps: int | None = None,
                         guidance_scale: float | None = None, negative_prompt: str = "", shift: float | None = None,
                         window_latent_frames: int | None = None, overlap_latent_frames: int | None = None,
                         first_window_latent_frames: int = 0) -> "SamplingRequest":
        """The call's arguments with the model's defaults filled in, every one checked."""
        d = self.defaults
        pick = lambda v, default: default if v is None else v  # noqa: E731
        num_frames, height, width = pick(num_frames, d.num_frames), pick(height, d.height), pick(width, d.width)
        steps, guidance = pick(num_inference_steps, d.num_inference_steps), pick(guidance_scale, d.guidance_scale)
        shift = pick(shift, d.shift)
        window, overlap = pick(window_latent_frames, d.window_latent_frames), pick(overlap_latent_frames,
                                                                                   d.overlap_latent_frames)
        first = first_window_latent_frames
        prompts = self.check_inputs(prompt, num_frames, height, width, steps, guidance)
        if not isinstance(shift, (int, float)) or not np.isfinite(shift) or shift <= 0:
            raise ValueError(f"shift must be a finite number > 0, got {shift!r}")
        if not isinstance(first, int) or isinstance(first, bool) or first < 0:
            raise ValueError(f"first_window_latent_frames must be an integer >= 0, got {first!r}")
        for name, v, lo in (("window_latent_frames", window, 0), ("overlap_latent_frames", overlap, 1)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if window and overlap >= window:
            raise ValueError(f"overlap_latent_frames must be in [1, window - 1] = [1, {window - 1}], got {overlap}")
        latent_frames = self.vae.latent_shape(num_frames, height, width)[1]
        plan = tuple(chunk_plan(latent_frames, window, overlap, first))  # validates window and overlap
        return SamplingRequest(tuple(prompts), num_frames, height, width, steps, float(guidance),
                               negative_prompt, float(shift), plan)

    def _latent_pieces(self, request: "SamplingRequest", generator, latents, callback) -> Iterator[torch.Tensor]:
        """Steps 1-3: the request's final latents chunk by chunk, each piece the latent frames that
        follow the previous ones."""
        velocity = self.encode_prompt(list(request.prompts), request.negative_prompt, request.guidance_scale)  # 1.
        noise = self.prepare_latents(len(request.prompts), request.num_frames, request.height, request.width,
                                     generator, latents)  # 2.
        return self.denoise_chunks(velocity, noise, request, callback)

    def denoise_chunks(self, velocity: GuidedVelocity, noise: torch.Tensor, request: "SamplingRequest",
                       callback: Callable | None = None) -> Iterator[torch.Tensor]:
        """3. The request's denoising as `__call__` and `stream` run it: chunk by chunk along its
        plan (`denoise` per chunk, each continuing the one before), yielding each chunk's new
        latent frames. torch.cat(list(...), dim=2) is the whole clip's final latents."""
        prev, prev_end = None, 0
        for start, end in request.plan:  # 3.
            prefix = None  # a continuing chunk: the previous one's last prev_end - start latents are its prefix
            if prev is not None:
                prefix = prev[:, :, prev.shape[2] - (prev_end - start):]
            x = self.denoise(velocity, noise[:, :, start:end], request.num_inference_steps, request.shift, callback,
                             prefix=prefix)
            if not bool(torch.isfinite(x).all()):
                raise FloatingPointError("sampling diverged (the latents became NaN or inf); "
                                         "use a smaller guidance scale or shift")
            yield x[:, :, prev_end - start:]
            prev, prev_end = x, end

    # The stages, public so that benchmarks and custom loops can time or replace each one.
    def encode_prompt(self, prompts: list[str], negative_prompt: str = "", guidance_scale: float = 1.0,
                      guidance_min_t: float = 0.0) -> GuidedVelocity:
        """1. Prompts (and the negative/empty prompt when guidance != 1) -> the guided velocity v(x, t);
        guidance only at t >= guidance_min_t (GuidedVelocity)."""
        device = self.device
        text = self.prompt_cache.encode(prompts)  # a repeated prompt (and CFG's "") is encoded once
        uncond = self.prompt_cache.encode([negative_prompt]) if guidance_scale != 1.0 else None
        return GuidedVelocity(self.unet, text.tokens.to(device), text.mask.to(device),
                              None if uncond is None else uncond.tokens.to(device),
                              None if uncond is None else uncond.mask.to(device), guidance_scale, guidance_min_t)

    def prepare_latents(self, batch: int, num_frames: int, height: int, width: int,
                        generator: torch.Generator | None = None, latents: torch.Tensor | None = None) -> torch.Tensor:
        """2. Gaussian noise in latent space (B, C, T', H', W'), or the given latents checked."""
        shape = (batch, *self.vae.latent_shape(num_frames, height, width))
        if latents is None:
            latents = torch.randn(shape, generator=generator)  # drawn on CPU: same seed, same video on any device
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        return latents.to(self.device)

    def denoise(self, velocity: GuidedVelocity, latents: torch.Tensor, num_inference_steps: int, shift: float = 1.0,
                callback_on_step_end: Callable | None = None, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """3. Integrate the flow from t = 1 (noise) to t = 0 (data) on the Euler grid; with `prefix`,
        the clip's first frames are those known latents (chunk-wise generation)."""
        timesteps = time_grid(num_inference_steps, shift)
        if hasattr(self.unet, "time_embedding"):
            velocity.precompute_time_embeddings(timesteps[:-1])  # App. F: one MLP call for the whole grid
        def on_step(i, t, x):
            result = callback_on_step_end(self, i, float(t), {"latents": x})
            if result and "latents" in result:  # diffusers convention: the callback may edit latents
                x.copy_(result["latents"])

        callback = on_step if callback_on_step_end else None
        with self.autocast():  # bf16 for the UNet's matmuls and convolutions; the Euler updates stay fp32
            if prefix is None:
                return sample_euler(velocity, latents, timesteps, callback=callback)
            return sample_euler_with_prefix(velocity, latents, timesteps, prefix, callback=callback,
                                            start=self.defaults.continuation_start)

    def decode_latents(self, latents: torch.Tensor, on_chunk: Callable[[int], None] | None = None,
                       output_type: str = "pt") -> torch.Tensor | np.ndarray:
        """4. Latents -> float32 frames (B, T, 3, H, W) in [0, 1] on the CPU, or with output_type
        "uint8" numpy uint8 frames (B, T, H, W, 3), converted chunk by chunk as they are decoded
        (`decoded_to_uint8`). `on_chunk(n)` is called after each chunk of n latent frames is
        decoded (progress bars)."""
        if output_type not in ("pt", "uint8"):
            raise ValueError(f"decode_latents makes 'pt' or 'uint8' frames, got output_type={output_type!r}")
        if output_type == "pt" and on_chunk is None:
            with self.autocast():
                return _to_unit_frames(self.vae.decode_latents(latents))
        B, _, K, h, w = latents.shape
        cfg = self.vae.config
        out = torch.empty(B, self.vae.num_frames(K), h * cfg.spatial_compression, w * cfg.spatial_compression, 3,
                          dtype=torch.uint8) if output_type == "uint8" else None
        chunks, start = [], 0
        with self.autocast():
            for chunk in self.vae.decode_chunks(self.vae.denormalize(latents)):  # (B, 3, t, H, W)
                if out is None:
                    chunks.append(chunk.permute(0, 2, 3, 4, 1))  # (B, t, H, W, 3), as VideoVAE.decode lays them out
                else:
                    decoded_to_uint8(chunk, out[:, start:start + chunk.shape[2]])
                    start += chunk.shape[2]
                if on_chunk is not None:
                    on_chunk(-(-chunk.shape[2] // cfg.temporal_compression))
        if out is not None:
            return out.numpy()
        return _to_unit_frames(torch.cat(chunks, dim=1).permute(0, 4, 1, 2, 3))  # (B, 3, T, H, W) -> (B, T, 3, H, W)


def _to_unit_frames(video: torch.Tensor) -> torch.Tensor:
    """Decoder output (B, 3, T, H, W) in about [-1, 1] -> float32 (B, T, 3, H, W) in [0, 1] on the CPU."""
    return video.float().clamp(-1, 1).add_(1).mul_(0.5).permute(0, 2, 1, 3, 4).cpu()  # one new tensor, same layout


# Frames per pass of decoded_to_uint8: ~3 MB of fp32 at 256x256, so each pass stays in cache.
# The default video's 121 frames took 11-12 ms at 1-16 frames per pass and 49 ms in one pass
# (2 threads, EPYC).
UINT8_FRAMES_PER_PASS = 4


def decoded_to_uint8(video: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Decoder output (B, 3, T, H, W) in about [-1, 1], any float dtype -> uint8 (B, T, H, W, 3):
    round(127.5 * (clamp(x, -1, 1) + 1)) in fp32, written to `out` when given.

    The same values as `frames_to_uint8` of the float frames `_to_unit_frames` makes (both round
    the same product once: x 0.5 is exact in fp32), without float frames: one fused pass per few
    frames instead of seven passes over the whole video, 12 against 113 ms for the default
    121 frames (2 threads, EPYC). The decoder writes NHWC frames, so the permuted view is
    contiguous and no transposing copy is made."""
    src = video.permute(0, 2, 3, 4, 1)  # (B, 3, T, H, W) -> (B, T, H, W, 3)
    if out is None:
        out = torch.empty(src.shape, dtype=torch.uint8)
    elif tuple(out.shape) != tuple(src.shape) or out.dtype != torch.uint8:
        raise ValueError(f"out must be uint8 {tuple(src.shape)}, got {out.dtype} {tuple(out.shape)}")
    for s in range(0, src.shape[1], UINT8_FRAMES_PER_PASS):
        y = src[:, s:s + UINT8_FRAMES_PER_PASS].to(device="cpu", dtype=torch.float32, copy=True)
        out[:, s:s + UINT8_FRAMES_PER_PASS].copy_(y.clamp_(-1, 1).add_(1).mul_(127.5).round_())
    return out


def _convert(video: torch.Tensor, output_type: str):
    if output_type == "pt":
        return video
    frames = video.permute(0, 1, 3, 4, 2).numpy()  # (B, T, 3, H, W) -> (B, T, H, W, 3)
    if output_type == "np":
        return frames
    from PIL import Image

    return [[Image.fromarray((f * 255).round().astype(np.uint8)) for f in clip] for clip in frames]


def frames_to_uint8(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) float in [0, 1] -> uint8, for writers. In torch: one multithreaded pass plus
    in-place ops, ~2.5x faster than the numpy expression for a 121-frame 256x256 video; the
    same values (both round half to even)."""
    t = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    return t.mul(255).clamp_(0, 255).round_().to(torch.uint8).numpy()


def _version() -> str:
    from edgevid import __version__

    return __version__


def replace_defaults(pipe: EdgeVidPipeline, **changes) -> EdgeVidPipeline:
    """Return the same pipeline with other generation defaults (validated)."""
    return EdgeVidPipeline(pipe.vae, pipe.unet, pipe.text_encoder, dataclasses.replace(pipe.defaults, **changes),
                           precision=pipe.requested_precision)
