"""Every architecture and training config as a frozen dataclass, plus presets in plain dicts.

A searched, pruned or compressed network is just another config of the same classes
(DESIGN.md). Configs round-trip through JSON with `config_to_dict` / `config_from_dict`,
which is how `save_pretrained` and the training run folder store them.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

# SnapGen-V §3.2: the temporal-layer zoo that the architecture search chooses from.
CHANNEL_WEIGHTINGS = ("uniform", "decoder")  # TrainConfig.channel_weighting / ProxyConfig.channel_weighting
TemporalLayer = Literal["conv1d", "conv3d", "self_attn1d", "self_attn3d", "cross_attn1d", "cross_attn3d"]
TEMPORAL_LAYER_TYPES: tuple[str, ...] = typing.get_args(TemporalLayer)


# --------------------------------------------------------------------------------------
# Video VAE (SnapGen-V §3.1 + App. B: OpenSora-style spatial/temporal-decoupled VAE)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VAEConfig:
    in_channels: int = 3
    latent_channels: int = 4  # SnapGen-V §3.1: 4-channel latents
    spatial_compression: int = 8  # H' = H / 8, W' = W / 8 (a power of two)
    temporal_compression: int = 4  # causal: 1 + 4k frames <-> 1 + k latent frames
    # Spatial (per-frame, 2D) encoder widths, one per resolution level, full resolution
    # first; len == log2(spatial_compression) + 1.
    encoder_channels: tuple[int, ...] = (16, 32, 64, 128)  # narrow at full resolution: training cost is per-pixel here
    # Spatial decoder widths, half resolution first, latent resolution last; len ==
    # log2(spatial_compression). No full-resolution level: the decoder's last conv makes 4*3
    # channels at half resolution and a pixel shuffle turns them into RGB, because decoding
    # 121 frames of 256x256 is the CPU budget to watch (DESIGN.md) and narrow convs at full
    # resolution run at ~10 GFLOP/s on the project CPU (vs ~60 at latent resolution).
    decoder_channels: tuple[int, ...] = (16, 32, 64)
    # ResBlocks per decoder level (same order as decoder_channels): none at half resolution,
    # where each one costs about as much as the whole latent-resolution level.
    decoder_res_blocks: tuple[int, ...] = (0, 1, 1)
    # Channels of the intermediate per-frame latent between the spatial and temporal parts.
    spatial_latent_channels: int = 4
    # Width of the temporal (causal 3D) encoder/decoder that works on spatial latents.
    # 32, not 64: at 64 the temporal decoder alone took ~0.5 s of a 121-frame decode.
    temporal_channels: int = 32
    num_res_blocks: int = 1
    # GroupNorm groups in every VAE ResBlock (applied per frame, never across time, so the
    # VAE stays causal); 8 fits the narrow decoder widths. All widths must divide by it.
    norm_groups: int = 8
    # Latent normalisation, z_model = (z - shift_factor) * scaling_factor, fitted after VAE
    # training so that diffusion sees zero-mean, unit-variance latents. A float applies to
    # every channel; a tuple (one value per latent channel) normalises each channel on its
    # own, which matters when channels differ in scale (docs/DESIGN.md: 0.14-0.25 std after
    # one scalar pair).
    scaling_factor: float | tuple[float, ...] = 1.0
    shift_factor: float | tuple[float, ...] = 0.0
    # Parameter-free residual shortcuts around every resolution/width change (space-to-channel
    # + channel averaging down, channel repeat + channel-to-space up, frame-group mean in
    # time), after DC-AE ("deep compression autoencoder", papers/snap-research-abstracts.md
    # lists Snap's high-compression sibling). A fresh VAE then already passes a coarse picture
    # through the latent and the layers learn residuals: far faster training (measured).
    residual_shortcuts: bool = True
    # Latent frames per chunk when decoding (bounds peak memory; 0 = decode all at once).
    decode_chunk_frames: int = 4
    # Decoder compression (SnapGen-V §3.2 "VAE Decoder Compression", App. B; MobileVD Tab. 9):
    # a compressed decoder is this config with other decoder fields, distilled from the full
    # decoder with the encoder frozen (edgevid.compress.decoder). Per spatial-decoder level
    # (same order as decoder_channels), whether its 3x3 convs are depthwise-separable
    # (depthwise 3x3 + pointwise 1x1); empty = none. On the project CPU that is ~4x faster
    # at 64 channels of 32x32 but slower at 16-32 channels of 64-128 px (memory-bound).
    decoder_separable: tuple[bool, ...] = ()
    # Temporal decoder width and ResBlocks (0 / -1 = temporal_channels / num_res_blocks, i.e.
    # the same as the temporal encoder), and depthwise-separable causal 3x3x3 convs.
    temporal_decoder_channels: int = 0
    temporal_decoder_res_blocks: int = -1
    temporal_decoder_separable: bool = False

    def __post_init__(self):
        # Checked inline: VAE_PRESETS is built at import time, before the module's helpers exist.
        for name in ("spatial_compression", "temporal_compression"):
            v = getattr(self, name)
            if v < 1 or v & (v - 1):
                raise ValueError(f"VAEConfig.{name} must be a power of two, got {v}")
        if self.spatial_compression < 2:
            raise ValueError("VAEConfig.spatial_compression must be >= 2 (the decoder upsamples at least once)")
        levels = self.spatial_compression.bit_length()  # log2(s) + 1
        for name, n in (("encoder_channels", levels), ("decoder_channels", levels - 1), ("decoder_res_blocks", levels - 1)):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"VAEConfig.{name} needs {n} entries for spatial_compression="
                    f"{self.spatial_compression} (one per level), got {getattr(self, name)}"
                )
        if self.decoder_separable and len(self.decoder_separable) != levels - 1:
            raise ValueError(f"VAEConfig.decoder_separable needs {levels - 1} entries (one per decoder level) "
                             f"or none, got {self.decoder_separable}")
        if self.temporal_decoder_channels < 0 or self.temporal_decoder_res_blocks < -1:
            raise ValueError("VAEConfig.temporal_decoder_channels must be >= 0 and temporal_decoder_res_blocks >= -1")
        for c in (*self.encoder_channels, *self.decoder_channels, self.temporal_channels,
                  self.temporal_decoder_channels or self.temporal_channels):
            if c < 1 or c % self.norm_groups:
                raise ValueError(f"VAEConfig widths must be positive multiples of norm_groups={self.norm_groups}, got {c}")
        for name in ("scaling_factor", "shift_factor"):
            value = getattr(self, name)
            if isinstance(value, tuple) and len(value) != self.latent_channels:
                raise ValueError(f"VAEConfig.{name} needs one value per latent channel ({self.latent_channels}), "
                                 f"got {len(value)}")
        scales = self.scaling_factor if isinstance(self.scaling_factor, tuple) else (self.scaling_factor,)
        if min(scales) <= 0:
            raise ValueError(f"VAEConfig.scaling_factor must be > 0, got {self.scaling_factor}")


VAE_PRESETS: dict[str, VAEConfig] = {
    # Tests: 80k parameters, same 8x/4x geometry as the real one.
    "tiny": VAEConfig(encoder_channels=(8, 8, 16, 16), decoder_channels=(8, 16, 16),
                      temporal_channels=16, num_res_blocks=1),
    # SnapGen-V geometry: 4 channels, 8x8 spatial, 4x temporal. 1.26M parameters; the decoder
    # (0.26M, 0.67 GFLOP per 256x256 frame) decodes 121 frames of 256x256 in 2.1 s on one
    # thread of the 2-core CPU (fp32; bf16 is slower there: GroupNorm and pixel shuffle).
    "snapgen": VAEConfig(),
    # The shipped default: SnapGen-V geometry with 8 latent channels and a 16-channel per-frame
    # latent between the spatial and temporal halves. The paper's limitations (§5) note that
    # more latent channels help reconstruction; our denoiser's cost barely changes (only its
    # first and last convolutions see the latent width).
    "snapgen8": VAEConfig(latent_channels=8, spatial_latent_channels=16),
    # High-compression autoencoder (Snap's mobile video AE, papers/snap-research-abstracts.md):
    # 32x32 spatial and 4x temporal with 32 channels, i.e. 384 input values per latent value
    # against 192 for "snapgen"; the denoiser then works on 16x fewer positions.
    "hc32": VAEConfig(latent_channels=32, spatial_compression=32, spatial_latent_channels=32,
                      encoder_channels=(32, 64, 128, 128, 256, 256),
                      decoder_channels=(16, 32, 64, 128, 256), decoder_res_blocks=(0, 1, 1, 1, 1),
                      temporal_channels=128),
}


# --------------------------------------------------------------------------------------
# Denoiser: spatio-temporal UNet (SnapGen-V §3.2)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 4
    out_channels: int = 4
    # Width per stage; stage i works at latent resolution / 2**i. Narrow at full resolution,
    # where every conv runs on T*H*W tokens: ~6.8 M params, ~41 GFLOP per step on 31x32x32
    # latents ((64, 128, 192) was 11.5 M / 104 GFLOP, over the CPU budget).
    channels: tuple[int, ...] = (32, 64, 160)
    # Spatial ResBlocks per stage (down path; the up path uses one more, as in SD's UNet).
    num_res_blocks: tuple[int, ...] = (1, 1, 1)
    # Width inside each stage's ResBlocks (after the first conv, before the second); () = the
    # stage width. Capacity where the objects are (issue 16: the full-resolution stage draws
    # them) without widening the skips; models/grow.py widens a trained model into it exactly.
    res_hidden_channels: tuple[int, ...] = ()
    # Spatial self-attention + text cross-attention per stage. None at the highest
    # resolution: it is the most mobile-unfriendly op (SnapGen-V §3.2, SnapFusion).
    spatial_attention: tuple[bool, ...] = (False, True, True)
    # Temporal layers per stage, from the zoo, applied after each ResBlock of the stage;
    # repeating a name is the "count per stage" that the architecture search changes.
    temporal_layers: tuple[tuple[TemporalLayer, ...], ...] = (("conv1d",), ("self_attn1d",), ("self_attn1d",))
    # The bottleneck block: attention on/off and its temporal layers.
    mid_attention: bool = True
    mid_temporal_layers: tuple[TemporalLayer, ...] = ("self_attn1d",)
    text_dim: int = 384  # all-MiniLM-L6-v2 token width
    head_dim: int = 32  # attention heads = width // head_dim
    norm_groups: int = 16  # GroupNorm groups in ResBlocks
    qk_norm: bool = True  # RMS-normalise queries and keys: stabler attention at low precision
    rope: bool = True  # rotary position embeddings (temporal in 1D, 3D RoPE in 3D attention)
    time_embed_dim: int = 256  # sinusoid width = MLP width
    # Pooled-text path beside cross-attention: an MLP of the masked mean of the text tokens is
    # added to the time embedding, so every ResBlock (also at full latent resolution, where no
    # attention runs) gets the prompt as a scale/shift (FiLM; Imagen / SDXL pooled conditioning).
    # Issue 16 measured a gain in object colour at equal compute. Zero-initialised: off at start.
    pooled_text: bool = False
    # Text refiner: this many trainable pre-LN transformer layers (masked self-attention + MLP, at
    # text_dim) over the frozen encoder's tokens before any cross-attention, so the UNet can
    # learn which colour word belongs to which noun ("a blue ring on a black background"): a
    # frozen sentence encoder's tokens bind attributes weakly (issue 16's ladder). Residual with
    # zero-initialised outputs: a model with it starts as the one without (HunyuanDiT-style token
    # refiner). A few MFLOP per prompt, nothing per frame.
    text_refiner_layers: int = 0

    def __post_init__(self):
        if self.text_refiner_layers < 0:
            raise ValueError(f"UNetConfig.text_refiner_layers must be >= 0, got {self.text_refiner_layers}")
        n = len(self.channels)
        for name in ("num_res_blocks", "spatial_attention", "temporal_layers"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"UNetConfig.{name} must have one entry per stage ({n}), got {getattr(self, name)}")
        for layers in (*self.temporal_layers, self.mid_temporal_layers):
            for kind in layers:
                if kind not in TEMPORAL_LAYER_TYPES:
                    raise ValueError(f"unknown temporal layer {kind!r}; choose from {TEMPORAL_LAYER_TYPES}")
        if self.res_hidden_channels and len(self.res_hidden_channels) != n:
            raise ValueError(f"UNetConfig.res_hidden_channels must be empty or have one entry per stage ({n}), "
                             f"got {self.res_hidden_channels}")
        for c in self.res_hidden_channels:
            if c < 1 or c % self.norm_groups:
                raise ValueError(f"UNetConfig.res_hidden_channels must be positive multiples of "
                                 f"norm_groups={self.norm_groups}, got {self.res_hidden_channels}")
        for c in self.channels:
            if c % self.head_dim or c % self.norm_groups:
                raise ValueError(f"stage width {c} must be divisible by head_dim={self.head_dim} and norm_groups={self.norm_groups}")
        if self.rope and (self.head_dim % 2 or self.head_dim < 6):
            raise ValueError(f"rope=True needs an even head_dim >= 6 (3D RoPE rotates >= 1 pair per t/h/w axis), "
                             f"got {self.head_dim}")
        if self.time_embed_dim % 2:
            raise ValueError(f"time_embed_dim must be even (cos/sin halves), got {self.time_embed_dim}")

    @property
    def downsample_factor(self) -> int:
        """Latent H', W' must be divisible by this."""
        return 2 ** (len(self.channels) - 1)


UNET_PRESETS: dict[str, UNetConfig] = {
    # Tests: every temporal-layer type appears somewhere.
    "tiny": UNetConfig(channels=(16, 32), num_res_blocks=(1, 1), spatial_attention=(False, True),
                       temporal_layers=(("conv1d", "conv3d"), ("self_attn1d", "cross_attn1d")),
                       mid_temporal_layers=("self_attn3d", "cross_attn3d"),
                       text_dim=32, head_dim=8, norm_groups=4, time_embed_dim=32),
    # The CPU default (see MODEL_CARD.md for FLOPs per step).
    "small": UNetConfig(),
    # "small" plus the pooled-text (FiLM) path; the same FLOPs to within 0.1 %.
    "small-pooled": UNetConfig(pooled_text=True),
    # "small" plus a 1-layer text refiner (+1.8 M parameters, no per-frame FLOPs).
    "small-refiner": UNetConfig(text_refiner_layers=1),
    # What `edgevid search run --spatial` found (docs/SEARCH.md): "small" without the mid block's
    # spatial transformer, stage 2's and the mid block's temporal layers, and with stage 2's
    # ResBlocks at half width. 4.95 M parameters; one denoiser call measured 18 % faster on eager
    # (14 % on ExecuTorch) at the same ShapesBench after equal training compute. Plan key
    # 'conv1d1-self_attn1d1-none|none+sa0110-h32.64.80'.
    "small-searched": UNetConfig(temporal_layers=(("conv1d",), ("self_attn1d",), ()), mid_temporal_layers=(),
                                 mid_attention=False, res_hidden_channels=(32, 64, 80)),
    # "small-searched" with stage 1's temporal self-attention a Conv1D (docs/SEARCH.md, 2026-12-07):
    # at equal training compute on ladder rung (d) 0.133 and 0.142 (two seeds) against `small`'s
    # 0.117 and 0.119 on 144 specs; one call 22.5 % faster on eager, 27 % less activation memory.
    # Not the default: no teacher or 4-step student of it yet. Plan key
    # 'conv1d1-conv1d1-none|none+sa0110-h32.64.80'.
    "small-searched-conv": UNetConfig(temporal_layers=(("conv1d",), ("conv1d",), ()), mid_temporal_layers=(),
                                      mid_attention=False, res_hidden_channels=(32, 64, 80)),
}


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Rectified-flow text-to-video training (SnapGen-V §3.1-3.2)."""
    steps: int = 2000
    batch_size: int = 8
    lr: float = 3e-4  # small UNet, short schedule: higher than the paper's large-model lr
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100  # linear warm-up keeps early AdamW steps from blowing up attention
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # ~1000-step horizon, matched to a few-thousand-step run
    bf16: bool = False  # bf16 autocast (CPU and CUDA); fp32 master weights
    seed: int = 0
    # Logit-normal time sampling, SnapGen-V Eq. 3 (m=0, s=1 as in SD3).
    t_mean: float = 0.0
    t_std: float = 1.0
    text_dropout: float = 0.1  # drop the prompt this often so classifier-free guidance works
    # Loss weight of the latent cells that objects cover (1 + foreground_weight there, 1 on the
    # background; `rectified_flow_loss(weight=...)`): objects are a small share of each frame,
    # and a small denoiser otherwise spends its capacity on textured backgrounds. 0 = off.
    foreground_weight: float = 0.0
    # "decoder": weight each latent channel's flow loss by how much the decoder's output moves per
    # unit of error in it (`decoder_channel_weights`, measured on the first batch and kept in the
    # run folder); "uniform": every channel alike (the normalised latent's own geometry).
    channel_weighting: Literal["uniform", "decoder"] = "uniform"
    # SnapGen-V's second stage (§3.2, Fig. 2): add and train the temporal layers on video with the
    # spatial backbone frozen or at a lower learning rate. The learning rate of every parameter
    # outside the temporal layers is lr * spatial_lr_scale (0 = frozen); 1 = one rate for all.
    spatial_lr_scale: float = 1.0
    # Image-video joint training: (frames, height, width) buckets in pixel space; a 1-frame
    # bucket is an image. Several lengths and aspect ratios (SnapGen-V §3.2).
    buckets: tuple[tuple[int, int, int], ...] = ((1, 64, 64), (9, 64, 64), (17, 64, 64), (9, 64, 96), (9, 96, 64))
    fps: int = 8
    # 0 = a fresh procedural clip for every sample (unbounded data); N > 0 = reuse N clips,
    # which makes caching their latents worthwhile.
    num_clips: int = 0
    cache_latents: bool = False  # keep VAE latents (and prompt embeddings) of seen clips in memory
    lr_schedule: Literal["constant", "cosine"] = "cosine"  # cosine to 10% sharpens the final EMA
    checkpoint_every: int = 200
    log_every: int = 25

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("TrainConfig.steps and batch_size must be >= 1")
        if not self.buckets:
            raise ValueError("TrainConfig.buckets must not be empty")
        if self.cache_latents and self.num_clips <= 0:
            raise ValueError("TrainConfig.cache_latents needs num_clips > 0 (a finite set of clips to cache)")
        if not self.t_std > 0:
            raise ValueError(f"TrainConfig.t_std must be > 0, got {self.t_std}")
        if self.foreground_weight < 0:
            raise ValueError(f"TrainConfig.foreground_weight must be >= 0, got {self.foreground_weight}")
        if self.channel_weighting not in CHANNEL_WEIGHTINGS:
            raise ValueError(f"TrainConfig.channel_weighting must be one of {CHANNEL_WEIGHTINGS}, got {self.channel_weighting!r}")
        if not 0 <= self.spatial_lr_scale <= 1:
            raise ValueError(f"TrainConfig.spatial_lr_scale must be in [0, 1], got {self.spatial_lr_scale}")


@dataclass(frozen=True)
class VAETrainConfig:
    steps: int = 2000
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    kl_weight: float = 1e-6  # tiny KL: keeps latents bounded without blurring (SD-VAE practice)
    # Penalty on frame-to-frame differences of the reconstruction error: fights flicker.
    temporal_weight: float = 0.5
    # Fit the latent scale/shift per channel (see VAEConfig.scaling_factor) rather than one pair.
    per_channel_normalization: bool = True
    bf16: bool = False
    seed: int = 0
    buckets: tuple[tuple[int, int, int], ...] = ((1, 64, 64), (9, 64, 64), (17, 64, 64))
    # > 0: render clips at the bucket size, then train on one random crop_size x crop_size
    # window per clip. The VAE is convolutional, so it learns the pixel statistics of
    # full-size renders (e.g. 256 px stripes and edges) at the cost of small windows.
    crop_size: int = 0
    fps: int = 8
    warmup_steps: int = 50
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    checkpoint_every: int = 200
    log_every: int = 25

    def __post_init__(self):
        if self.crop_size < 0 or self.kl_weight < 0:
            raise ValueError("VAETrainConfig.crop_size and kl_weight must be >= 0")
        if self.crop_size and any(min(h, w) < self.crop_size for _, h, w in self.buckets):
            raise ValueError(f"VAETrainConfig.crop_size={self.crop_size} is larger than a bucket {self.buckets}")


@dataclass(frozen=True)
class DistillConfig:
    """Latent adversarial step distillation (SnapGen-V §3.3, §4; SF-V).

    The generator starts as the teacher; the discriminator is the teacher's frozen encoder
    (down blocks + mid) with trainable heads. The student samples on the uniform grid
    1 = T_1 > ... > T_k > 0 (`edgevid.flow.schedule.time_grid(k)`), without guidance.
    """
    num_steps: int = 4  # k generator time steps (SnapGen-V sets k = 4)
    steps: int = 1000  # optimisation steps (the paper: 6K iterations on 64 GPUs)
    batch_size: int = 8
    # The paper tunes a 0.6B UNet at lr 1e-7 after 150K pre-training iterations; our 7M UNet
    # trained for a few thousand steps moves much further per step, so a larger lr.
    generator_lr: float = 1e-5
    discriminator_lr: float = 1e-4  # as in the paper (§4)
    generator_betas: tuple[float, float] = (0.9, 0.999)  # §4
    discriminator_betas: tuple[float, float] = (0.5, 0.999)  # §4: low beta1, usual for GAN critics
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.95  # §4, following SF-V: a short average of the generator
    # Logit-normal t' for the discriminator's noise level (Eq. 3); m = -1, s = 1 by default (§4).
    disc_t_mean: float = -1.0
    disc_t_std: float = 1.0
    adv_weight: float = 1.0  # 0 = reconstruction only (App. G ablation)
    recon_weight: float = 1.0
    # c of the pseudo-Huber loss (Eq. 6) per sample of dimension d; 0 = 0.00054 * sqrt(d),
    # the consistency-training choice (Song & Dhariwal 2023), which SF-V follows.
    huber_c: float = 0.0
    # "unified": one spatial-temporal head per backbone stage (SnapGen-V Fig. 2);
    # "separate": SF-V's spatial and temporal heads (Tab. 5 ablation).
    head: Literal["unified", "separate"] = "unified"
    head_channels: int = 64  # width of each discriminator head (after a 1x1 projection)
    # Image-video joint batches: 1-frame buckets are images (Tab. 5 ablation: drop them).
    buckets: tuple[tuple[int, int, int], ...] = ((1, 64, 64), (9, 64, 64), (17, 64, 64))
    fps: int = 8
    num_clips: int = 0
    cache_latents: bool = False
    shift: float = 1.0  # timestep shift of the student's grid (1 = uniform T_i = 1 - (i-1)/k)
    # x0 from the teacher's guided sampler instead of encoded clips (LADD's synthetic data;
    # edgevid.distill.synthetic): the student then learns the guided distribution. Needs num_clips.
    teacher_data: bool = False
    teacher_guidance: float = 3.0
    teacher_shift: float = 3.0
    teacher_sample_steps: int = 25
    # With teacher_data: build x_t from the noise the teacher's sample came from (reflow coupling).
    paired_noise: bool = False
    # With teacher_data: rejection sampling. Up to teacher_attempts draws per clip, keeping the
    # first that passes the static-attribute verifier at this threshold (else the best); 1 = none.
    teacher_attempts: int = 1
    # The reconstruction target: the clean latent x0 (default), or the teacher's guided solve from
    # the student's x_t (its sampler settings above): consistency distillation with exact targets.
    teacher_targets: bool = False
    teacher_verify_threshold: float = 0.75
    # With teacher_data: train only on the teacher samples that pass the verifier at
    # teacher_verify_threshold (a draw of a failing clip is redrawn); each cached sample is scored
    # once. Unlike teacher_attempts it draws no extra samples, so it applies to an existing cache.
    teacher_filter: bool = False
    teacher_filter_buckets: tuple[tuple[int, int, int], ...] = ()  # the buckets filtered; () = every bucket
    warmup_steps: int = 20
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    # Best-EMA selection (image-to-video): every select_every steps the EMA is scored on
    # select_videos validation scenes (not the benchmark's) and the best is kept; 0 = the last EMA.
    select_every: int = 0
    select_videos: int = 12

    def __post_init__(self):
        if self.num_steps < 1 or self.steps < 1 or self.batch_size < 1:
            raise ValueError("DistillConfig.num_steps, steps and batch_size must be >= 1")
        if self.head not in ("unified", "separate"):
            raise ValueError(f"DistillConfig.head must be 'unified' or 'separate', got {self.head!r}")
        if min(self.adv_weight, self.recon_weight, self.huber_c) < 0 or self.adv_weight + self.recon_weight == 0:
            raise ValueError("DistillConfig.adv_weight, recon_weight and huber_c must be >= 0, and one weight > 0")
        if not self.disc_t_std > 0 or not self.shift > 0:
            raise ValueError("DistillConfig.disc_t_std and shift must be > 0")
        if self.teacher_data and self.num_clips <= 0:
            raise ValueError("DistillConfig.teacher_data needs num_clips > 0 (each clip is sampled once and cached)")
        if self.paired_noise and not self.teacher_data:
            raise ValueError("DistillConfig.paired_noise needs teacher_data (real clips have no source noise)")
        if self.teacher_filter and not self.teacher_data:
            raise ValueError("DistillConfig.teacher_filter needs teacher_data (it filters the teacher's samples)")
        if self.select_every < 0 or self.select_videos < 1:
            raise ValueError("DistillConfig.select_every must be >= 0 (0 = off) and select_videos >= 1")
        if self.teacher_filter_buckets and (not self.teacher_filter
                                            or not set(map(tuple, self.teacher_filter_buckets)) <= set(map(tuple, self.buckets))):
            raise ValueError("DistillConfig.teacher_filter_buckets needs teacher_filter and must be among the buckets")
        if self.teacher_attempts < 1 or (self.teacher_attempts > 1 and not self.teacher_data):
            raise ValueError("DistillConfig.teacher_attempts must be >= 1, and > 1 only with teacher_data")
        if not 0 < self.teacher_verify_threshold <= 1:
            raise ValueError("DistillConfig.teacher_verify_threshold must be in (0, 1]")
        if self.teacher_sample_steps < 1 or not self.teacher_shift > 0 or not self.teacher_guidance >= 0:
            raise ValueError("DistillConfig: teacher_sample_steps >= 1, teacher_shift > 0, teacher_guidance >= 0")
        if not self.buckets:
            raise ValueError("DistillConfig.buckets must not be empty")
        if self.cache_latents and self.num_clips <= 0:
            raise ValueError("DistillConfig.cache_latents needs num_clips > 0 (a finite set of clips to cache)")


# --------------------------------------------------------------------------------------
# VAE decoder compression (SnapGen-V §3.2 + App. B; MobileVD Tab. 9)
# --------------------------------------------------------------------------------------
# A compressed decoder is the teacher VAE's config with these decoder fields replaced
# (encoder, latent geometry and normalisation stay). Named here so runs and docs can refer
# to them; `edgevid compress decoder --preset NAME`.
DECODER_PRESETS: dict[str, dict[str, Any]] = {
    # Tests: the tiny VAE's decoder, halved and separable.
    "tiny-fast": dict(decoder_channels=(8, 8, 16), decoder_res_blocks=(0, 0, 1), decoder_separable=(False, False, True),
                      temporal_decoder_channels=8, temporal_decoder_res_blocks=0, temporal_decoder_separable=True),
    # For the shipped snapgen8 VAE (decoder 276 k params, 90 GFLOP per 121 frames of 256x256):
    # depthwise-separable convs where they are fast on the CPU (64 channels at latent
    # resolution), pruned widths and no ResBlock at the memory-bound 64 and 128 px levels,
    # and a separable temporal decoder of half the width.
    "fast": dict(decoder_channels=(8, 16, 64), decoder_res_blocks=(0, 0, 1), decoder_separable=(False, False, True),
                 temporal_decoder_channels=16, temporal_decoder_res_blocks=1, temporal_decoder_separable=True),
    # The teacher's own decoder, all weights copied: fine-tuning it with the encoder frozen
    # (e.g. towards the objects with `object_weight`) keeps the latent space, so every
    # denoiser trained on that VAE still works with the result.
    "full": dict(),
}


@dataclass(frozen=True)
class DecoderCompressConfig:
    """Distil a compressed decoder from the full one with the encoder frozen (SnapGen-V App. B).

    loss = distill_weight * (L1 + MSE)(student(z), teacher(z)) + pixel_weight * (L1 + MSE)(student(z), x)
           + temporal_weight * frame-difference L1 against the teacher's output, with z the frozen
    encoder's latents of clip x (plus latent_noise, so the decoder also sees latents that are
    not exact encodings: what a few-step sampler produces). With object_weight > 0 the pixel
    term is a weighted mean that counts pixels under objects 1 + object_weight times.
    """
    steps: int = 2000
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    distill_weight: float = 1.0
    pixel_weight: float = 0.5
    temporal_weight: float = 0.5
    latent_noise: float = 0.05  # std of noise added to the normalised latents (0 = exact encodings)
    # "fixed": every clip gets std latent_noise; "uniform": each clip draws its std from
    # U(0, latent_noise), so one decoder stays sharp on exact encodings and smooth (no rainbow
    # speckle) on the noisier latents a denoiser leaves behind (issue 16: decoder robustness).
    latent_noise_mode: Literal["fixed", "uniform"] = "fixed"
    # Pixels under objects count 1 + object_weight times in the pixel term (procedural data only:
    # coverage from the clip's scene spec, widened by object_margin pixels so edges count too).
    object_weight: float = 0.0
    object_margin: int = 2
    ema_decay: float = 0.999
    buckets: tuple[tuple[int, int, int], ...] = ((1, 256, 256), (9, 256, 256), (17, 128, 128))
    crop_size: int = 64  # train on one random window per clip (a multiple of the VAE's factor); 0 = whole
    fps: int = 24
    seed: int = 0
    warmup_steps: int = 50
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    checkpoint_every: int = 200
    log_every: int = 25
    bf16: bool = False

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("DecoderCompressConfig.steps and batch_size must be >= 1")
        if min(self.distill_weight, self.pixel_weight, self.temporal_weight, self.latent_noise, self.object_weight,
               self.object_margin) < 0 \
                or self.distill_weight + self.pixel_weight == 0:
            raise ValueError("DecoderCompressConfig weights and latent_noise must be >= 0, with a reconstruction weight > 0")
        if self.latent_noise_mode not in ("fixed", "uniform"):
            raise ValueError(f"DecoderCompressConfig.latent_noise_mode must be 'fixed' or 'uniform', got {self.latent_noise_mode!r}")
        if self.crop_size < 0 or (self.crop_size and any(min(h, w) < self.crop_size for _, h, w in self.buckets)):
            raise ValueError(f"DecoderCompressConfig.crop_size={self.crop_size} must be >= 0 and fit every bucket")


# --------------------------------------------------------------------------------------
# Image-to-video denoiser: the SVD spatio-temporal UNet (Blattmann et al. 2023) and the
# MobileVD optimisations of it (Ben Yahia et al., arXiv 2412.07583)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SVDUNetConfig:
    """Architecture of `edgevid.models.svd_unet.SVDUNet`.

    The defaults are exactly the SVD / SVD-XT UNet (diffusers `UNetSpatioTemporalConditionModel`
    with its default config). The MobileVD fields at the end default to "off"; a MobileVD model
    is this config with them set, and a pruned or funnelled network is just another config.

    Fixed orders that the per-block fields index (`temporal_block_names(all_blocks=True)` and
    `attention_layer_names(all_layers=True)` list them as module paths): the UNet is walked in forward order,
    down blocks, mid block, up blocks; inside a block, layer j's SpatioTemporalResBlock comes
    before layer j's TransformerSpatioTemporalModel; the mid block is resnet 0, transformer 0,
    resnet 1. A temporal block is the temporal resnet of every SpatioTemporalResBlock and each
    temporal transformer layer of every TransformerSpatioTemporalModel. The attention layers of
    one transformer layer are: spatial self-attention, spatial cross-attention, temporal
    self-attention, temporal cross-attention.
    """
    in_channels: int = 8  # 4 noisy latent channels + 4 of the clean first-frame latent, concatenated (SVD I2V)
    out_channels: int = 4  # the denoiser's output in latent space
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)  # SD 2.1's widths, which SVD inflates
    layers_per_block: int = 2  # SpatioTemporalResBlocks per down stage; the up stages use one more (SD UNet layout)
    # Per stage: spatio-temporal transformers after each ResBlock (CrossAttn*BlockSpatioTemporal) or
    # none (*BlockSpatioTemporal). SVD has none at the deepest, 1/8-resolution stage.
    cross_attention: tuple[bool, ...] = (True, True, True, False)
    num_attention_heads: tuple[int, ...] = (5, 10, 20, 20)  # per stage: head width 64 everywhere
    cross_attention_dim: int = 1024  # CLIP ViT-H image embedding of the conditioning frame, one token
    transformer_layers_per_block: int = 1  # spatial + temporal transformer layers per transformer
    # Micro-conditioning (SVD §4): fps, motion_bucket_id and noise_aug_strength, each a sinusoid of
    # addition_time_embed_dim channels; the MLP that adds them to the time embedding takes 3 * 256.
    addition_time_embed_dim: int = 256
    num_added_time_ids: int = 3
    norm_groups: int = 32  # GroupNorm groups everywhere (diffusers hard-codes 32); widths must divide by it
    # Clip length the weights were trained for (SVD-XT: 25). Informational, as in diffusers: frame
    # positions are sinusoids of the frame index, so any T >= 1 runs.
    num_frames: int = 25
    # The network embeds timestep * timestep_scale. SVD's EDM preconditioning passes
    # c_noise = 0.25 * log(sigma) (scale 1); edgevid's rectified flow passes t in [0, 1] (scale 1000).
    timestep_scale: float = 1.0
    # Image-to-video only (edgevid.train.i2v.ImageAnchor): 0 = the flow runs from pure noise to the
    # clip's latent (SVD's setting); s > 0 = it runs on the clip's residual from its frozen video,
    # (x0 - image latent at every frame) / s, so that a static region is exactly 0 and the model's
    # error reaches the latent s times smaller. The frozen video's latent *is* the image latent at
    # every frame with edgevid's causal VAE (checked in tests/train/test_i2v.py).
    residual_scale: float = 0.0

    # ---- MobileVD optimisations (all off = SVD) ----
    # MobileVD Fig. 2 / Tab. 8 "optimized cross-attention": with a single context token the softmax
    # is identically 1, so cross-attention = to_out(to_v(context)) broadcast over the queries. Its
    # q/k projections and the norm before it are not built; a context of > 1 token is an error.
    optimized_cross_attention: bool = False
    # MobileVD "temporal multiscaling" (Tab. 3, Tab. 8), one flag per stage (empty = none): True at
    # stage i halves the frame count after stage i's spatial downsampler, and the up path doubles
    # it again in the upsampler that returns to stage i's resolution. Frames are averaged in pairs
    # (0, 1), (2, 3), ...; an odd last frame is a group of its own, so T -> ceil(T / 2) and any T
    # works. The last stage has no downsampler, so its flag must be False.
    temporal_downsample: tuple[bool, ...] = ()
    # MobileVD Fig. 4 "temporal block pruning": which temporal blocks are kept, in the order of
    # temporal_block_names(all_blocks=True) (empty = all; SVD has 38). A removed block is not
    # built: its AlphaBlender output is the spatial path x_s (x_s + z (1 - alpha) r_t, gate z = 0).
    temporal_blocks: tuple[bool, ...] = ()
    # MobileVD Fig. 3 "channel funnels", merged: the inner width of each attention layer's q/k
    # projections (funnel_qk_dims) and v/out projections (funnel_vo_dims), in the order of
    # attention_layer_names(all_layers=True) (SVD has 64); 0 = full width (empty = all full).
    # The head count stays and the softmax keeps the full width's 1/sqrt(head_dim), so a merged
    # funnel computes the same function as the funnelled layer. A width must divide by the
    # layer's heads; entries of layers that are not built (removed blocks, q/k of optimized
    # cross-attention) must be 0.
    funnel_qk_dims: tuple[int, ...] = ()
    funnel_vo_dims: tuple[int, ...] = ()

    def __post_init__(self):
        n = len(self.block_out_channels)
        if n < 1:
            raise ValueError("SVDUNetConfig.block_out_channels needs at least one stage")
        for name in ("cross_attention", "num_attention_heads"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"SVDUNetConfig.{name} needs one entry per stage ({n}, as block_out_channels), "
                                 f"got {getattr(self, name)}")
        if min(self.layers_per_block, self.transformer_layers_per_block, self.in_channels, self.out_channels,
               self.addition_time_embed_dim, self.num_added_time_ids, self.cross_attention_dim) < 1:
            raise ValueError("SVDUNetConfig channel counts, layers_per_block and transformer_layers_per_block "
                             "must be >= 1")
        for c, heads in zip(self.block_out_channels, self.num_attention_heads):
            if c % self.norm_groups:
                raise ValueError(f"SVDUNetConfig: stage width {c} must be a multiple of norm_groups={self.norm_groups}; "
                                 f"change the width or norm_groups")
            if heads < 1 or c % heads:
                raise ValueError(f"SVDUNetConfig: stage width {c} must divide by its num_attention_heads ({heads})")
        if self.block_out_channels[0] % 2 or self.addition_time_embed_dim % 2:
            raise ValueError("SVDUNetConfig.block_out_channels[0] and addition_time_embed_dim must be even "
                             "(the sinusoids have cos/sin halves)")
        if not self.timestep_scale > 0:
            raise ValueError(f"SVDUNetConfig.timestep_scale must be > 0, got {self.timestep_scale}")
        if not self.residual_scale >= 0:
            raise ValueError(f"SVDUNetConfig.residual_scale must be >= 0 (0 = off), got {self.residual_scale}")
        if self.temporal_downsample:
            if len(self.temporal_downsample) != n:
                raise ValueError(f"SVDUNetConfig.temporal_downsample needs one flag per stage ({n}) or none, "
                                 f"got {self.temporal_downsample}")
            if self.temporal_downsample[-1]:
                raise ValueError("SVDUNetConfig.temporal_downsample[-1] must be False: the last stage has no "
                                 "downsampler; put the temporal downsampling on an earlier stage")
        blocks = self.temporal_block_names(all_blocks=True)
        if self.temporal_blocks and len(self.temporal_blocks) != len(blocks):
            raise ValueError(f"SVDUNetConfig.temporal_blocks needs one flag per temporal block ({len(blocks)}, in the "
                             f"order of temporal_block_names(all_blocks=True)) or none, got {len(self.temporal_blocks)}")
        layers = self.attention_layer_names(all_layers=True)
        built = set(self.attention_layer_names())
        for name in ("funnel_qk_dims", "funnel_vo_dims"):
            dims = getattr(self, name)
            if not dims:
                continue
            if len(dims) != len(layers):
                raise ValueError(f"SVDUNetConfig.{name} needs one width per attention layer ({len(layers)}, in the "
                                 f"order of attention_layer_names(all_layers=True)) or none, got {len(dims)}")
            for layer, d in zip(layers, dims):
                width, heads = self._attention_width(layer)
                if d and (d < 0 or d > width or d % heads):
                    raise ValueError(f"SVDUNetConfig.{name}: {layer} has width {width} and {heads} heads; its "
                                     f"funnel width must be 0 (full) or a multiple of {heads} up to {width}, got {d}")
                is_cross_qk = name == "funnel_qk_dims" and layer.endswith("attn2") and self.optimized_cross_attention
                if d and (layer not in built or is_cross_qk):
                    raise ValueError(f"SVDUNetConfig.{name}: {layer} is not built (a removed temporal block, or the "
                                     f"q/k of optimized cross-attention), so its funnel width must be 0, got {d}")

    @property
    def time_embed_dim(self) -> int:
        """Width of the time embedding that every ResBlock receives (SD: 4 x the first stage)."""
        return 4 * self.block_out_channels[0]

    @property
    def downsample_factor(self) -> int:
        """Latent H', W' must be divisible by this."""
        return 2 ** (len(self.block_out_channels) - 1)

    def temporal_block_names(self, all_blocks: bool = False) -> list[str]:
        """Module paths of the kept temporal blocks (all of them with all_blocks=True), in the fixed
        order that temporal_blocks indexes (class docstring)."""
        names = [name for name, _ in self._walk() if name.endswith("temporal_res_block")
                 or ".temporal_transformer_blocks." in name]
        if all_blocks or not self.temporal_blocks:
            return names
        return [name for name, keep in zip(names, self.temporal_blocks) if keep]

    def attention_layer_names(self, all_layers: bool = False) -> list[str]:
        """Module paths of the attention layers that are built (all with all_layers=True: also those
        of removed temporal blocks), in the fixed order that funnel_qk_dims / funnel_vo_dims index."""
        kept = set(self.temporal_block_names())
        names = []
        for name, _ in self._walk():
            is_spatial = ".transformer_blocks." in name  # not ".temporal_transformer_blocks."
            if is_spatial or (".temporal_transformer_blocks." in name and (all_layers or name in kept)):
                names += [f"{name}.attn1", f"{name}.attn2"]
        return names

    def _walk(self) -> list[tuple[str, int]]:
        """(module path, stage) of every temporal resnet and transformer layer, in forward order."""
        n, K = len(self.block_out_channels), self.transformer_layers_per_block
        out: list[tuple[str, int]] = []

        def layer(prefix: str, j: int, stage: int, attention: bool) -> None:
            out.append((f"{prefix}.resnets.{j}.temporal_res_block", stage))
            if attention:
                for k in range(K):
                    out.append((f"{prefix}.attentions.{j}.transformer_blocks.{k}", stage))
                    out.append((f"{prefix}.attentions.{j}.temporal_transformer_blocks.{k}", stage))

        for i in range(n):
            for j in range(self.layers_per_block):
                layer(f"down_blocks.{i}", j, i, self.cross_attention[i])
        out.append(("mid_block.resnets.0.temporal_res_block", n - 1))
        for k in range(K):
            out.append((f"mid_block.attentions.0.transformer_blocks.{k}", n - 1))
            out.append((f"mid_block.attentions.0.temporal_transformer_blocks.{k}", n - 1))
        out.append(("mid_block.resnets.1.temporal_res_block", n - 1))
        for u, i in enumerate(reversed(range(n))):
            for j in range(self.layers_per_block + 1):
                layer(f"up_blocks.{u}", j, i, self.cross_attention[i])
        return out

    def _attention_width(self, layer: str) -> tuple[int, int]:
        """(width, heads) of an attention layer named by attention_layer_names()."""
        stage = dict(self._walk())[layer.rsplit(".", 1)[0]]
        return self.block_out_channels[stage], self.num_attention_heads[stage]


SVD_UNET_PRESETS: dict[str, SVDUNetConfig] = {
    # The real SVD-XT UNet (stabilityai/stable-video-diffusion-img2vid-xt, 1.52 B parameters):
    # diffusers' defaults.
    "svd": SVDUNetConfig(),
    # Tests: the same block types (one attention stage, one without) at 32/64 channels; the
    # widths are 32-multiples because diffusers hard-codes 32 GroupNorm groups.
    "svd-tiny": SVDUNetConfig(block_out_channels=(32, 64), layers_per_block=1, cross_attention=(True, False),
                              num_attention_heads=(2, 4), cross_attention_dim=32, addition_time_embed_dim=8,
                              num_frames=5),
    # The CPU-sized image-to-video teacher (issue 18) on "snapgen8" latents, trained here on the procedural world.
    "svd-cpu": SVDUNetConfig(
        in_channels=16,  # 8 noisy + 8 clean first-frame latent channels (snapgen8 latents)
        out_channels=8,  # the velocity in snapgen8's 8-channel latent space
        block_out_channels=(32, 64, 128),  # the "small" UNet's budget: narrow where T*H*W is largest
        layers_per_block=1,  # one ResBlock per stage (2 in the up path), as UNET_PRESETS["small"]
        # No attention at full latent resolution, the most mobile-unfriendly op (SnapGen-V §3.2); the
        # mid block always has one.
        cross_attention=(False, True, True),
        num_attention_heads=(1, 2, 4),  # head width 32, as the "small" UNet
        cross_attention_dim=384,  # one all-MiniLM-L6-v2 sentence / image embedding token
        addition_time_embed_dim=32,  # 3 micro-conditions of 32 sinusoid channels: 96 inputs suffice
        norm_groups=8,  # 4-16 channels per group at widths 32-128
        num_frames=5,  # 5 latent frames = 17 video frames of the causal VAE
        timestep_scale=1000.0,  # edgevid passes rectified-flow t in [0, 1]: the sinusoid of t * 1000 (as UNetConfig)
        # No MobileVD optimisation: this is the image-to-video teacher, the "SVD" row of the
        # ablation; `edgevid compress mobilevd` turns them on one by one.
    ),
}



@dataclass(frozen=True)
class MobileVDConfig:
    """`edgevid compress mobilevd`: MobileVD's optimisations applied in turn to a trained
    image-to-video model (edgevid.compress.mobilevd.compress_mobilevd), each stage written as a
    model folder so that every row of the ablation can be scored.

    Order: optimized cross-attention (exact) -> temporal multiscaling (+ fine-tuning) -> learned
    temporal-block pruning (gates trained with the model, then the top blocks kept, + fine-tuning)
    -> channel funnels (CSI, fine-tuning, merged) -> adversarial fine-tuning to num_steps steps.
    MobileVD distils to one step right after the cross-attention and fine-tunes the later stages
    adversarially; here the architecture stages fine-tune with the rectified-flow loss and one
    adversarial run comes last, so the CPU pays for one distillation, not four.
    """
    optimized_cross_attention: bool = True  # exact for a one-token context: always worth it
    temporal_downsample: tuple[bool, ...] = (True, False, False)  # after stage 0: MobileVD's 8.24 -> 5.42 TFLOPs
    prune_keep_fraction: float = 0.3  # MobileVD Tab. 6: removing 70 % of the temporal blocks was best
    funnel_factor: float = 0.5  # MobileVD Tab. 4: fun-factor 0.5 (below it quality drops)
    finetune_steps: int = 300  # rectified-flow steps after each architecture change (0 = none)
    prune_steps: int = 300  # steps that learn the gates' importances (with the model)
    distill_steps: int = 600  # adversarial steps at the end (0 = no distillation)
    num_steps: int = 1  # the student's sampling steps (MobileVD: 1)
    # The adversarial stage keeps its best EMA, scored every select_every steps on select_videos
    # validation scenes (docs/MOBILEVD.md: at 1500 steps the last EMA had collapsed); 0 = the last.
    select_every: int = 100
    select_videos: int = 12
    # The adversarial stage's generator lr, adversarial weight and EMA decay (DistillConfig's
    # generator_lr, adv_weight, ema_decay; the defaults are the shipped run's).
    distill_lr: float = 1e-5
    adv_weight: float = 1.0
    distill_ema_decay: float = 0.95
    # The adversarial stage's x0: encoded real clips, or the teacher's own samples for the clips'
    # first frames, each paired with the noise it came from (edgevid.distill.i2v.I2VTeacherSamples).
    teacher_data: bool = False
    # What the selection maximises: the stepped i2v_score, or the graded i2v_graded (eval.i2v).
    select_metric: str = "i2v_score"
    batch_size: int = 4
    lr: float = 5e-5  # fine-tuning a trained model: a sixth of the teacher's lr
    # The fine-tuning loss as the shipped I2V teacher's last runs had it (docs/MOBILEVD.md): each
    # latent channel weighted by what the decoder shows, and t skewed low, where its error was.
    channel_weighting: str = "decoder"
    t_mean: float = -0.5
    buckets: tuple[tuple[int, int, int], ...] = ((17, 128, 256), (17, 256, 512))
    fps: int = 24  # as the teacher: at 8 fps the 4x temporal VAE caps the I2V score at 0.31
    num_clips: int = 1500
    cache_latents: bool = True
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.prune_keep_fraction <= 1 or not 0 < self.funnel_factor <= 1:
            raise ValueError("MobileVDConfig.prune_keep_fraction and funnel_factor must be in (0, 1] (1 = off)")
        if min(self.finetune_steps, self.prune_steps, self.distill_steps, self.select_every) < 0 \
                or self.num_steps < 1 or self.select_videos < 1 or self.distill_lr <= 0 or self.adv_weight < 0 \
                or not 0 <= self.distill_ema_decay < 1:
            raise ValueError("MobileVDConfig step counts and select_every must be >= 0, num_steps and select_videos >= 1, "
                             "distill_lr > 0, adv_weight >= 0 and distill_ema_decay in [0, 1)")
        if self.channel_weighting not in CHANNEL_WEIGHTINGS:
            raise ValueError(f"MobileVDConfig.channel_weighting must be one of {CHANNEL_WEIGHTINGS}, "
                             f"got {self.channel_weighting!r}")
        if self.select_metric not in ("i2v_score", "i2v_graded"):
            raise ValueError(f"MobileVDConfig.select_metric must be 'i2v_score' or 'i2v_graded', got {self.select_metric!r}")
        if self.teacher_data and self.num_clips <= 0:
            raise ValueError("MobileVDConfig.teacher_data needs num_clips > 0 (each clip is sampled once and cached)")

# --------------------------------------------------------------------------------------
# JSON round trip
# --------------------------------------------------------------------------------------
C = TypeVar("C")


def config_to_dict(cfg: Any) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_from_dict(cls: type[C], data: dict, where: str = "") -> C:
    """Build `cls` from a JSON dict: every value type-checked against its field's annotation
    (edgevid.validate), lists become tuples (recursively); unknown or missing keys are an error.
    Every failure is a ValueError that names `where` (default: the class) and the field, so no
    wrong type from a config.json reaches torch as a TypeError."""
    from edgevid.validate import check_config_types

    where = where or cls.__name__
    check_config_types(cls, data, where)  # also: data is a dict
    fields = dataclasses.fields(cls)
    unknown = set(data) - {f.name for f in fields}
    if unknown:
        raise ValueError(f"{where}: unknown config keys {sorted(unknown)}")
    missing = [f.name for f in fields if f.name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{where}: missing config keys {missing}")
    return cls(**{k: _tuplify(v) for k, v in data.items()})


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")


def load_config(cls: type[C], path: str | Path) -> C:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"missing config file {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"corrupt config file {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"corrupt config file {path}: expected a JSON object")
    data.pop("_class_name", None)
    return config_from_dict(cls, data, str(path))


def _tuplify(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_tuplify(x) for x in v)
    return v

