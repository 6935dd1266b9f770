"""Image-to-video inference (MobileVD): image -> VAE latent -> Euler sampler over the
image-conditioned SVDUNet -> VAE decoder -> frames whose first frame is the image.

Same conventions as `EdgeVidPipeline` (diffusers' layout: model_index.json + vae/ + unet/):

    >>> pipe = EdgeVidImg2VidPipeline.from_pretrained(default_i2v_model_dir())
    >>> out = pipe(load_image("still.png"), generator=torch.Generator().manual_seed(0))
    >>> out.frames.shape  # (B, T, H, W, 3) float in [0, 1]
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgevid.config import SVDUNetConfig, VAEConfig, config_from_dict, config_to_dict
from edgevid.flow.sample import sample_euler
from edgevid.flow.schedule import time_grid
from edgevid.io.atomic import atomic_write_text
from edgevid.models.i2v import Img2VidDenoiser, added_time_ids
from edgevid.models.vae import VideoVAE
from edgevid.models.weights import load_component, read_json, save_component
from edgevid.pipeline import (MODEL_INDEX, OUTPUT_TYPES, EdgeVidPipelineOutput, _convert, _to_unit_frames, _version,
                              decoded_to_uint8)
from edgevid.precision import PipelinePrecision
from edgevid.train.i2v import NOISE_AUG_DEFAULT, ImageAnchor


@dataclass(frozen=True)
class Img2VidDefaults:
    """What `pipe(image)` does when a keyword is not given; stored in model_index.json."""
    # MobileVD's clip: 14 frames of 512x256. The causal VAE makes 1 + 4k frames, and 17 (5
    # latent frames) is the nearest count that is not shorter (issue 18).
    num_frames: int = 17
    height: int = 256
    width: int = 512
    fps: int = 24  # 17 frames = 0.7 s: at 8 fps the 4x temporal VAE caps the I2V score at 0.31 (0.76 at 24; docs/MOBILEVD.md)
    num_inference_steps: int = 25  # the teacher's; a 1-step student stores 1
    shift: float = 1.0  # timestep shift of the sampling grid (1 = uniform)
    # SVD's motion strength in edgevid.models.i2v.latent_motion units. `train i2v` stores its
    # training clips' median instead (train.i2v.training_motion): this is only a fallback.
    motion_bucket_id: float = 30.0
    noise_aug_strength: float = NOISE_AUG_DEFAULT

    def __post_init__(self):
        if self.num_frames < 5 or self.num_inference_steps < 1 or min(self.height, self.width) < 1:
            raise ValueError("Img2VidDefaults: num_frames >= 5, num_inference_steps >= 1 and a positive size needed")


class EdgeVidImg2VidPipeline(PipelinePrecision):  # set_precision, autocast, device
    def __init__(self, vae: VideoVAE, unet: Img2VidDenoiser, defaults: Img2VidDefaults = Img2VidDefaults(),
                 precision: str | None = None):
        if unet.config.out_channels != vae.config.latent_channels:
            raise ValueError(f"the denoiser makes {unet.config.out_channels} channels, VAE latents have "
                             f"{vae.config.latent_channels}")
        self.vae, self.unet, self.defaults = vae.eval(), unet.eval(), defaults
        self.set_precision(precision)
        self.check_inputs(defaults.num_frames, defaults.height, defaults.width, defaults.num_inference_steps)

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",
                        precision: str | None = None) -> "EdgeVidImg2VidPipeline":
        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"model folder {path} does not exist")
        index = read_json(path / MODEL_INDEX)
        if index.get("_class_name") != cls.__name__:
            raise ValueError(f"{path} holds a {index.get('_class_name')}, not an image-to-video model; "
                             "use EdgeVidPipeline for text-to-video folders")
        try:
            defaults = config_from_dict(Img2VidDefaults, index.get("defaults", {}))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path / MODEL_INDEX}: invalid defaults ({e})") from None
        vae = load_component(VideoVAE, VAEConfig, path / "vae")
        unet = load_component(Img2VidDenoiser, SVDUNetConfig, path / "unet")
        return cls(vae, unet, defaults).to(device).set_precision(precision)

    def save_pretrained(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_component(self.vae, self.vae.config, path / "vae")
        save_component(self.unet, self.unet.config, path / "unet")
        index = {"_class_name": type(self).__name__, "_edgevid_version": _version(),
                 "vae": ["edgevid", type(self.vae).__name__], "unet": ["edgevid", type(self.unet).__name__],
                 "defaults": config_to_dict(self.defaults)}
        atomic_write_text(path / MODEL_INDEX, json.dumps(index, indent=2) + "\n")
        return path

    def to(self, device: str | torch.device) -> "EdgeVidImg2VidPipeline":
        self.vae.to(device), self.unet.to(device)
        return self

    @property
    def size_multiple(self) -> int:
        return self.vae.config.spatial_compression * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def check_inputs(self, num_frames: int, height: int, width: int, num_inference_steps: int) -> None:
        m, k = self.size_multiple, self.vae.config.temporal_compression
        if height % m or width % m or height < m or width < m:
            raise ValueError(f"height and width must be positive multiples of {m}, got {height}x{width}")
        if num_frames < 1 + k or (num_frames - 1) % k:
            raise ValueError(f"num_frames must be 1 + {k}k with k >= 1 (the causal VAE), got {num_frames}; "
                             f"e.g. {1 + k * max(1, round((num_frames - 1) / k))}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def __call__(self, image, num_frames: int | None = None, height: int | None = None, width: int | None = None,
                 num_inference_steps: int | None = None, generator: torch.Generator | None = None,
                 motion_bucket_id: float | None = None, noise_aug_strength: float | None = None,
                 output_type: str = "np", latents: torch.Tensor | None = None,
                 callback_on_step_end: Callable | None = None) -> EdgeVidPipelineOutput:
        """`image`: uint8 (H, W, 3) of the model's size (edgevid.io.load_image(path, h, w) resizes and
        crops a file to it), or a list of them."""
        d = self.defaults
        num_frames, height, width = num_frames or d.num_frames, height or d.height, width or d.width
        steps = num_inference_steps or d.num_inference_steps
        self.check_inputs(num_frames, height, width, steps)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(map(repr, OUTPUT_TYPES))}, got {output_type!r}")
        # 1. Encode the image: (B, 3, 1, H, W) in [-1, 1] -> its latent (B, C, H', W').
        pixels = self.prepare_image(image, height, width)
        image_latent = self.vae.encode_latents(pixels)[:, :, 0]
        B = image_latent.shape[0]
        # 2. Noise, and the conditioning: SVD's noise-augmented copy and micro-conditioning.
        shape = (B, *self.vae.latent_shape(num_frames, height, width))
        if latents is None:
            latents = torch.randn(shape, generator=generator).to(self.device)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        aug = d.noise_aug_strength if noise_aug_strength is None else noise_aug_strength
        aug_noise = torch.randn(image_latent.shape, generator=generator).to(self.device)
        cond = image_latent + aug * aug_noise
        ids = added_time_ids(B, d.fps, d.motion_bucket_id if motion_bucket_id is None else motion_bucket_id, aug,
                             device=self.device)
        # 3. Integrate the flow from noise to data, the first latent frame held at the image.
        #    (In the flow's space: the clip's residual from its frozen video for a residual model.)
        space = ImageAnchor(image_latent, self.unet.config.residual_scale)
        velocity = space.velocity(lambda x, t: self.unet(x, t, cond, ids))
        callback = None
        if callback_on_step_end is not None:
            callback = lambda i, t, x: callback_on_step_end(self, i, float(t), {"latents": space.from_flow(x)})  # noqa: E731
        with self.autocast():
            x = space.from_flow(sample_euler(velocity, latents, time_grid(steps, d.shift), callback=callback))
        x[:, :, 0] = image_latent
        if output_type == "latent":
            return EdgeVidPipelineOutput(frames=x)
        # 4. Decode ("uint8": straight to the writers' frames, no float frames).
        with self.autocast():
            decoded = self.vae.decode_latents(x)  # (B, 3, T, H, W) in about [-1, 1]
        if output_type == "uint8":
            return EdgeVidPipelineOutput(frames=decoded_to_uint8(decoded).numpy())  # (B, T, H, W, 3)
        return EdgeVidPipelineOutput(frames=_convert(_to_unit_frames(decoded), output_type))

    def prepare_image(self, image, height: int, width: int) -> torch.Tensor:
        """uint8 (H, W, 3) or a list of them -> (B, 3, 1, H, W) float in [-1, 1] on the device."""
        images = image if isinstance(image, (list, tuple)) else [image]
        arrays = []
        for im in images:
            im = np.asarray(im)
            if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
                raise ValueError(f"image must be uint8 RGB (H, W, 3), got {im.dtype} {im.shape}; "
                                 "edgevid.io.load_image reads a file")
            if im.shape[:2] != (height, width):
                raise ValueError(f"image is {im.shape[0]}x{im.shape[1]}, the clip {height}x{width}; "
                                 f"resize it first (edgevid.io.load_image(path, {height}, {width}))")
            arrays.append(im)
        x = torch.from_numpy(np.stack(arrays)).float().div(127.5).sub(1)  # (B, H, W, 3) in [-1, 1]
        return x.permute(0, 3, 1, 2)[:, :, None].to(self.device)  # -> (B, 3, 1, H, W)


def replace_i2v_defaults(pipe: EdgeVidImg2VidPipeline, **changes) -> EdgeVidImg2VidPipeline:
    return EdgeVidImg2VidPipeline(pipe.vae, pipe.unet, dataclasses.replace(pipe.defaults, **changes),
                                  precision=pipe.requested_precision)
