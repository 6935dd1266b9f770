"""The image-to-video pipeline (EdgeVidImg2VidPipeline) cut into static-shape graphs.

    encoder        pixels (1, 3, 1, H, W) in [-1, 1]                -> image_latent (1, C, h, w)
    denoiser       r (1, C, K, h, w), image_latent, cond (1, C, h, w), emb (1, E)
                                                                     -> velocity (1, C, K, h, w)
    decoder_first / decoder_next   as for text-to-video (export.stages.DecoderStage)

The sampler runs in the flow's space (train.i2v.ImageAnchor): r is the motion residual of a
residual-flow model (residual_scale s > 0) or the latent itself (s = 0). The denoiser graph maps
r back to a latent, puts the clean image in latent frame 0 and returns the network's velocity,
exactly as the pipeline's `space.velocity(...)`. `cond` is the noise-augmented image latent that
conditions the network (SVD's concat and image token). The time grid and SVD's micro-conditions
(fps, motion bucket, augmentation strength) are fixed at export, so the time embedding of each
step is a constant shipped beside the graphs (SnapGen-V App. F), as in the text-to-video export.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgevid.export.mobile import mobile_friendly
from edgevid.export.stages import DecoderStage, Stage
from edgevid.flow.schedule import time_grid
from edgevid.models.i2v import Img2VidDenoiser, added_time_ids


@dataclass(frozen=True)
class Img2VidSpec:
    """The one clip the artifacts make (static shapes) and the fixed conditioning."""
    num_frames: int
    height: int
    width: int
    fps: int
    num_inference_steps: int
    shift: float
    motion_bucket_id: float
    noise_aug_strength: float
    residual_scale: float
    decode_chunk_latents: int


def img2vid_spec(pipe, num_frames: int | None = None, height: int | None = None, width: int | None = None,
                 num_inference_steps: int | None = None) -> Img2VidSpec:
    d = pipe.defaults
    num_frames, height, width = num_frames or d.num_frames, height or d.height, width or d.width
    steps = num_inference_steps or d.num_inference_steps
    pipe.check_inputs(num_frames, height, width, steps)
    # A short clip decodes in one call: MobileVD's 17 frames are 5 latents, which chunks of 4
    # would decode as 4 + a last chunk of 1 padded to 4 (export.runner.decode_chunks), 8 latents'
    # work for 5. Longer clips stream in the VAE's chunks.
    K = pipe.vae.latent_shape(num_frames, height, width)[1]
    chunk = pipe.vae.config.decode_chunk_frames or 4
    return Img2VidSpec(num_frames, height, width, d.fps, steps, d.shift, float(d.motion_bucket_id),
                       float(d.noise_aug_strength), float(pipe.unet.config.residual_scale),
                       K if K <= 2 * chunk else chunk)


class EncoderStage(nn.Module):
    """The given image -> its normalised latent (the posterior mean, as the pipeline encodes it)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, pixels: Tensor) -> Tensor:
        """pixels (1, 3, 1, H, W) -> (1, C, h, w): vae.encode_latents(pixels)[:, :, 0], written with
        slices and reshapes (chunk and select would stay off XNNPACK)."""
        vae, C = self.vae, self.vae.config.latent_channels
        _, _, _, H, W = pixels.shape
        s = vae.config.spatial_compression
        x = vae.spatial_encoder(pixels.reshape(1, 3, H, W))  # one frame: (1, 3, 1, H, W) -> (1, 3, H, W)
        h = vae.temporal_encoder(x.reshape(1, x.shape[1], 1, H // s, W // s))  # (1, 2C, 1, h, w): mean, logvar
        return vae.normalize(h[:, :C]).reshape(1, C, H // s, W // s)  # the posterior mean


class Img2VidDenoiserStage(nn.Module):
    """One sampler call in the flow's space, with the time embedding given."""

    def __init__(self, model: Img2VidDenoiser, latent_frames: int):
        super().__init__()
        self.model, self.scale = model, float(model.config.residual_scale)
        # cond repeated over the frames as a broadcast product (XNNPACK's concatenation wants distinct inputs)
        self.register_buffer("frames", torch.ones(1, 1, latent_frames, 1, 1), persistent=False)

    def forward(self, r: Tensor, image_latent: Tensor, cond: Tensor, emb: Tensor) -> Tensor:
        _, C, K, h, w = r.shape  # reshapes, not indexing with None: unsqueeze stays off XNNPACK
        frame0 = image_latent.reshape(1, C, 1, h, w)
        x = r if self.scale == 0 else frame0 + self.scale * r  # ImageAnchor.from_flow
        x = torch.cat([frame0, x[:, :, 1:]], dim=2)  # train.i2v.with_clean_image
        c = cond.reshape(1, C, 1, h, w) * self.frames  # Img2VidDenoiser's cond, (1, C, K, h, w)
        return self.model.unet.forward_embedded(torch.cat([x, c], dim=1), emb, self.model.image_embed(cond))


def build_i2v_stages(pipe, spec: Img2VidSpec, mobile: bool = True) -> tuple[list[Stage], dict]:
    """The stages of an EdgeVidImg2VidPipeline at `spec`'s shapes, with example inputs, and the
    constants the runner needs: {"timesteps": (S+1,), "time_embeddings": (S, E)}."""
    prep = mobile_friendly if mobile else (lambda m: m)
    unet, vae = prep(pipe.unet).eval(), prep(pipe.vae).eval()
    C, K, h, w = pipe.vae.latent_shape(spec.num_frames, spec.height, spec.width)
    n = min(spec.decode_chunk_latents, K)
    gen = torch.Generator().manual_seed(0)
    timesteps = time_grid(spec.num_inference_steps, spec.shift)
    ids = added_time_ids(1, spec.fps, spec.motion_bucket_id, spec.noise_aug_strength)
    with torch.no_grad():
        temb = pipe.unet.unet.embed_time(timesteps[:-1], ids.expand(len(timesteps) - 1, -1))  # (S, E)
        z = torch.randn(1, C, n, h, w, generator=gen)
        first = DecoderStage(vae, first=True)
        states = first(z)[1:]
    state_names = [f"state_{i}" for i in range(len(states))]
    latent = torch.randn(1, C, h, w, generator=gen)
    stages = [
        Stage("encoder", EncoderStage(vae).eval(), (torch.rand(1, 3, 1, spec.height, spec.width, generator=gen) * 2 - 1,),
              ["pixels"], ["image_latent"]),
        Stage("denoiser", Img2VidDenoiserStage(unet, K).eval(),
              (torch.randn(1, C, K, h, w, generator=gen), latent, latent + 0.02 * torch.randn(latent.shape, generator=gen),
               temb[:1].clone()), ["r", "image_latent", "cond", "emb"], ["velocity"]),
        Stage("decoder_first", first.eval(), (z,), ["z"], ["frames", *(f"next_{s}" for s in state_names)]),
        Stage("decoder_next", DecoderStage(vae, first=False).eval(), (z, *states), ["z", *state_names],
              ["frames", *(f"next_{s}" for s in state_names)]),
    ]
    with torch.no_grad():  # once eagerly, as export.stages.build_stages does
        for stage in stages:
            stage.module(*stage.inputs)
    return stages, {"timesteps": timesteps.numpy(), "time_embeddings": temb.numpy()}
