"""The pipeline cut into the graphs an on-device runtime runs, with static shapes.

    text      word_embeds (1, L, D), mask (1, L) float 1/0     -> tokens (1, L, D)
    denoiser  x (1, C, k, h, w), tokens, mask, temb (1, E)      -> velocity (1, C, k, h, w)
    denoiser_<k'>  the same at a second chunk length k' (a short last chunk), when the plan has one
    decoder_first  z (1, C, n, h, w)                            -> frames (1 + tc(n-1), 3, H, W), states...
    decoder_next   z (1, C, n, h, w), states...                 -> frames (tc n, 3, H, W), states...

The prompt is padded to the encoder's max_length L with a float mask (padded keys get no
weight, so the tokens equal the unpadded ones); its word-table rows are looked up outside the
graph (a gather: no compute to delegate), from a table shipped beside the graphs. The sampler's time grid is fixed, so the time
embeddings of its steps are constants (SnapGen-V App. F): they are computed here once and
shipped beside the graphs, and the denoiser takes one as an input. The decoder is the
streaming VAE decoder: latents go in in chunks of n (normalised, as the sampler makes them),
uint8-ready frames in [0, 1] come out, and the causal convolutions' last frames are explicit
inputs and outputs ("states"), so each chunk continues the previous one exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgevid.compiled import DenoiserStep
from edgevid.export.mobile import MobileCausalConv3d, mobile_friendly
from edgevid.flow.sample import chunk_plan
from edgevid.flow.schedule import time_grid
from edgevid.models.vae import CausalConv3d


class TextStage(nn.Module):
    """The text encoder after its word-table lookup: the lookup is a gather, which the runner does
    in numpy from the shipped table (`token_table.npy`, int8 with per-row scales in int8 exports)."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, word_embeds: Tensor, mask: Tensor) -> Tensor:
        return self.bert.forward_embeds(word_embeds, mask)


def causal_convs(vae: nn.Module) -> list[nn.Module]:
    """The temporal decoder's causal convs that carry past frames, in a fixed order."""
    return [m for m in vae.temporal_decoder.modules()
            if isinstance(m, (CausalConv3d, MobileCausalConv3d)) and m.kt > 1]


class DecoderStage(nn.Module):
    """One chunk of the streaming decoder: `first` starts the clip (no states in)."""

    def __init__(self, vae: nn.Module, first: bool):
        super().__init__()
        self.vae, self.first = vae, first
        self.convs = causal_convs(vae)

    def forward(self, z: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        cache = {} if self.first else dict(zip(self.convs, states))
        x = self.vae.temporal_decoder(self.vae.denormalize(z), cache, starts_clip=self.first)  # (1, Cs, t, h, w)
        _, Cs, t, h, w = x.shape
        frames = self.vae.spatial_decoder(x.transpose(1, 2).reshape(t, Cs, h, w))  # (t, 3, H, W) in about [-1, 1]
        return ((frames.clamp(-1.0, 1.0) + 1.0) * 0.5, *(cache[c] for c in self.convs))  # frames in [0, 1]


@dataclass(frozen=True)
class VideoSpec:
    """The one video the artifacts make (static shapes)."""
    num_frames: int
    height: int
    width: int
    fps: int
    num_inference_steps: int
    shift: float
    text_tokens: int  # prompts are padded / truncated to this many tokens
    decode_chunk_latents: int
    # The latent-frame ranges [start, end) denoised one after the other (the model's windows,
    # pipeline.SamplingRequest.plan), each continuing the one before (flow.sample_euler_with_prefix).
    plan: tuple[tuple[int, int], ...]
    continuation_start: str  # "noise" or "hold": how a continuing chunk's new frames start

    def denoiser_chunks(self) -> list[tuple[int, int, str]]:
        """(start, end, stage name) per chunk: the first chunk's length is stage `denoiser`, any
        other length (a short last chunk) `denoiser_<length>`: one static graph per length."""
        first = self.plan[0][1] - self.plan[0][0]
        return [(s, e, "denoiser" if e - s == first else f"denoiser_{e - s}") for s, e in self.plan]


def video_spec(pipe, num_frames: int | None = None, height: int | None = None, width: int | None = None,
               num_inference_steps: int | None = None) -> VideoSpec:
    d = pipe.defaults
    num_frames, height, width = num_frames or d.num_frames, height or d.height, width or d.width
    steps = num_inference_steps or d.num_inference_steps
    pipe.check_inputs("x", num_frames, height, width, steps, 1.0)
    if d.guidance_scale != 1.0:
        raise ValueError(f"export needs a guidance-free model (a distilled student, guidance_scale 1); this one "
                         f"uses guidance {d.guidance_scale}")
    K = pipe.vae.latent_shape(num_frames, height, width)[1]
    plan = tuple(chunk_plan(K, d.window_latent_frames, d.overlap_latent_frames))  # as the pipeline's __call__
    return VideoSpec(num_frames, height, width, d.fps, steps, d.shift, getattr(pipe.text_encoder, "max_length", 64),
                     pipe.vae.config.decode_chunk_frames or 4, plan, d.continuation_start)


@dataclass
class Stage:
    name: str
    module: nn.Module
    inputs: tuple[Tensor, ...]
    input_names: list[str]
    output_names: list[str]


def build_stages(pipe, spec: VideoSpec, mobile: bool = True) -> tuple[list[Stage], dict]:
    """The stages of `pipe` at `spec`'s shapes (text, one denoiser per chunk length, the two
    decoder chunks), with example inputs, and the constants the
    runner needs: {"timesteps": (S+1,), "time_embeddings": (S, E), "token_table": (V, D)}. mobile: the
    delegation-friendly layer forms (export.mobile), the same function."""
    prep = mobile_friendly if mobile else (lambda m: m)
    text_model = getattr(pipe.text_encoder, "model", None)
    if text_model is None:
        raise ValueError(f"{type(pipe.text_encoder).__name__} has no BERT model to export")
    unet, vae = prep(getattr(pipe.unet, "eager", pipe.unet)).eval(), prep(pipe.vae).eval()
    C, K, h, w = pipe.vae.latent_shape(spec.num_frames, spec.height, spec.width)
    L, n = spec.text_tokens, min(spec.decode_chunk_latents, K)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 1000, (1, L), generator=gen)
    mask = torch.zeros(1, L)
    mask[:, :8] = 1
    tokens = torch.randn(1, L, pipe.text_encoder.dim, generator=gen)
    timesteps = time_grid(spec.num_inference_steps, spec.shift)
    with torch.no_grad():
        temb = pipe.unet.time_embedding(timesteps[:-1])  # (S, E)
        z = torch.randn(1, C, n, h, w, generator=gen)
        first = DecoderStage(vae, first=True)
        states = first(z)[1:]
    state_names = [f"state_{i}" for i in range(len(states))]
    denoiser = DenoiserStep(unet).eval()
    lengths = {name: e - s for s, e, name in spec.denoiser_chunks()}  # name -> chunk length, in plan order
    stages = [
        Stage("text", TextStage(prep(text_model)).eval(), (text_model.word_embed.detach()[ids], mask),
              ["word_embeds", "mask"], ["tokens"]),
        *(Stage(name, denoiser, (torch.randn(1, C, k, h, w, generator=gen), tokens, mask, temb[:1].clone()),
                ["x", "tokens", "mask", "temb"], ["velocity"]) for name, k in lengths.items()),
        Stage("decoder_first", first.eval(), (z,), ["z"], ["frames", *(f"next_{s}" for s in state_names)]),
        Stage("decoder_next", DecoderStage(vae, first=False).eval(), (z, *states), ["z", *state_names],
              ["frames", *(f"next_{s}" for s in state_names)]),
    ]
    with torch.no_grad():  # once eagerly: shape-only tables (RoPE) are kept, so the traced graphs hold them as constants
        for stage in stages:
            stage.module(*stage.inputs)
    constants = {"timesteps": timesteps.numpy(), "time_embeddings": temb.numpy(),
                 "token_table": text_model.word_embed.detach().numpy()}
    return stages, constants
