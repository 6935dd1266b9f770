"""Causal video VAE with decoupled spatial and temporal parts (SnapGen-V §3.1, §3.2, App. B).

Read top-down, in data-flow order:

    video (B, 3, T, H, W), T = 1 + tc*k, values in [-1, 1]
      -> SpatialEncoder   per frame, 2D:   (B*T, 3, H, W) -> (B, Cs, T, h, w), h = H / s
      -> TemporalEncoder  causal in time:  (B, Cs, T, h, w) -> mean, logvar (B, C, 1 + k, h, w)
      -> DiagonalGaussian -> z (raw latents)
      -> TemporalDecoder  causal in time:  (B, C, 1 + k, h, w) -> (B, Cs, T, h, w)
      -> SpatialDecoder   per frame, 2D:   (B*T, Cs, h, w) -> (B, 3, T, H, W)

Time is causal everywhere: latent 0 sees frame 0 only (so an image is a one-frame video and
encodes to one latent frame), latent i sees frames <= tc*i, and decoded frame t depends on
latents <= ceil(t / tc). Normalisation is per frame (GroupNorm over C, H, W of one frame),
never across time, which keeps this true and lets `decode` run chunk by chunk with a cache of
past frames (App. B: splitting the latent bounds peak memory) and give the same result.

The spatial decoder does almost nothing at full resolution: it decodes 121 frames of 256x256
on a 2-core CPU, so work per full-resolution pixel is the budget (DESIGN.md).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgevid.config import VAEConfig

# Streaming state of the causal convolutions: layer -> its last (kt - 1) input frames.
ConvCache = dict[nn.Module, Tensor]


# --------------------------------------------------------------------------------------
# Posterior
# --------------------------------------------------------------------------------------
class DiagonalGaussian:
    """q(z | x) = N(mean, exp(logvar)) per latent value."""

    def __init__(self, mean: Tensor, logvar: Tensor):
        self.mean = mean
        # Clamped as in the SD/LDM VAE: exp() stays finite early in training.
        self.logvar = logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        # Draw on the generator's device (CPU generators stay reproducible across devices).
        device = generator.device if generator is not None else self.mean.device
        eps = torch.randn(self.mean.shape, generator=generator, device=device, dtype=self.mean.dtype)
        return self.mean + self.std * eps.to(self.mean.device)

    def mode(self) -> Tensor:
        return self.mean

    def kl(self) -> Tensor:
        """KL(q || N(0, I)) summed over all latent values of a sample: (B,)."""
        kl = 0.5 * (self.mean.square() + self.logvar.exp() - 1.0 - self.logvar)
        return kl.flatten(1).sum(1)


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------
class SeparableConv2d(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 (MobileNet): 9*cin + cin*cout MACs per pixel instead of
    9*cin*cout. Used by compressed decoders (SnapGen-V App. B)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin)
        self.pointwise = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


def conv3x3(cin: int, cout: int, separable: bool = False) -> nn.Module:
    return SeparableConv2d(cin, cout) if separable else nn.Conv2d(cin, cout, 3, padding=1)


def last_conv(module: nn.Module) -> nn.Conv2d | nn.Conv3d:
    """The convolution that produces a (possibly separable / causal) conv module's output."""
    if isinstance(module, SeparableConv2d):
        return module.pointwise
    if isinstance(module, CausalConv3d):
        return module.pointwise if module.pointwise is not None else module.conv
    return module


class ResBlock2d(nn.Module):
    """GroupNorm-SiLU-Conv3x3 twice, plus a (1x1 if widths differ) skip. Per frame."""

    def __init__(self, cin: int, cout: int, groups: int, separable: bool = False):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = conv3x3(cin, cout, separable)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = conv3x3(cout, cout, separable)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class CausalConv3d(nn.Module):
    """Conv3d that pads only the past in time (by repeating frame 0) and 'same' in space.

    With a `cache` dict it streams: the first call pads as usual, and every call stores its
    last kt - 1 input frames for the next call, so a clip processed in consecutive chunks
    gives exactly what it gives processed whole.
    """

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (3, 3, 3), separable: bool = False):
        super().__init__()
        kt, kh, kw = kernel
        self.kt = kt
        # separable: depthwise kt x kh x kw, then pointwise 1x1x1 (compressed temporal decoders)
        self.conv = nn.Conv3d(cin, cin if separable else cout, kernel, padding=(0, kh // 2, kw // 2),
                              groups=cin if separable else 1)
        self.pointwise = nn.Conv3d(cin, cout, 1) if separable else None

    def forward(self, x: Tensor, cache: ConvCache | None = None) -> Tensor:
        # x: (B, C, T, H, W)
        if self.kt > 1:
            past = cache.get(self) if cache is not None else None
            if past is None:
                past = x[:, :, :1].expand(-1, -1, self.kt - 1, -1, -1)  # (B, C, kt-1, H, W): repeat frame 0
            x = torch.cat([past, x], dim=2)  # (B, C, kt-1 + T, H, W)
            if cache is not None:
                cache[self] = x[:, :, -(self.kt - 1):]
        x = self.conv(x)
        return x if self.pointwise is None else self.pointwise(x)


def frame_norm(norm: nn.GroupNorm, x: Tensor) -> Tensor:
    """GroupNorm of each frame on its own (never across time, which would break causality)."""
    B, C, T, H, W = x.shape
    y = norm(x.transpose(1, 2).reshape(B * T, C, H, W))  # (B*T, C, H, W)
    return y.reshape(B, T, C, H, W).transpose(1, 2)  # (B, C, T, H, W)


class CausalResBlock3d(nn.Module):
    """ResBlock2d with causal 3x3x3 convolutions and per-frame GroupNorm."""

    def __init__(self, channels: int, groups: int, separable: bool = False):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = CausalConv3d(channels, channels, separable=separable)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.conv2 = CausalConv3d(channels, channels, separable=separable)

    def forward(self, x: Tensor, cache: ConvCache | None = None) -> Tensor:
        h = self.conv1(F.silu(frame_norm(self.norm1, x)), cache)
        h = self.conv2(F.silu(frame_norm(self.norm2, h)), cache)
        return x + h


def time_to_channels(x: Tensor, tc: int) -> Tensor:
    """(B, C, K*tc, H, W) -> (B, C*tc, K, H, W): each group of tc frames becomes one frame."""
    B, C, T, H, W = x.shape
    x = x.reshape(B, C, T // tc, tc, H, W).transpose(2, 3)  # (B, C, tc, K, H, W)
    return x.reshape(B, C * tc, T // tc, H, W)


def channels_to_time(x: Tensor, tc: int) -> Tensor:
    """(B, C*tc, K, H, W) -> (B, C, K*tc, H, W), the inverse of `time_to_channels`."""
    B, Ctc, K, H, W = x.shape
    x = x.reshape(B, Ctc // tc, tc, K, H, W).transpose(2, 3)  # (B, C, K, tc, H, W)
    return x.reshape(B, Ctc // tc, K * tc, H, W)


def resample_channels(x: Tensor, cout: int) -> Tensor:
    """Parameter-free channel change for residual shortcuts, (N, C, ...) -> (N, cout, ...):
    averages neighbouring channels when narrowing, repeats them when widening."""
    cin = x.shape[1]
    if cin == cout:
        return x
    if cin % cout == 0:
        return x.unflatten(1, (cout, cin // cout)).mean(2)
    if cout % cin == 0:
        return x.repeat_interleave(cout // cin, dim=1)
    if cout > cin:  # e.g. RGB -> 16: each input channel repeated about cout / cin times
        return x[:, [i * cin // cout for i in range(cout)]]  # a Python list: torch.export traces it
    return torch.stack([group.mean(1) for group in x.tensor_split(cout, dim=1)], 1)  # e.g. 16 -> RGB


def down_shortcut(x: Tensor, cout: int) -> Tensor:
    """(N, C, H, W) -> (N, cout, H/2, W/2): space-to-channel, then channel averaging (DC-AE)."""
    return resample_channels(F.pixel_unshuffle(x, 2), cout)


def up_shortcut(x: Tensor, cout: int) -> Tensor:
    """(N, C, h, w) -> (N, cout, 2h, 2w): channel resampling, then each value copied to its 2x2 block."""
    return F.pixel_shuffle(resample_channels(x, cout).repeat_interleave(4, dim=1), 2)


def _frames_to_batch(x: Tensor) -> Tensor:
    B, C, T, H, W = x.shape
    return x.transpose(1, 2).reshape(B * T, C, H, W)  # (B*T, C, H, W)


def _batch_to_frames(x: Tensor, B: int) -> Tensor:
    BT, C, H, W = x.shape
    return x.reshape(B, BT // B, C, H, W).transpose(1, 2)  # (B, C, T, H, W)


# --------------------------------------------------------------------------------------
# Encoder: spatial (per frame) then temporal (causal)
# --------------------------------------------------------------------------------------
class SpatialEncoder(nn.Module):
    """Per-frame 2D encoder: (N, 3, H, W) -> (N, Cs, H/s, W/s), strided-conv downsampling."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch, g = cfg.encoder_channels, cfg.norm_groups
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.levels = nn.ModuleList()
        for i, c in enumerate(ch):
            blocks = [ResBlock2d(c, c, g) for _ in range(cfg.num_res_blocks)]
            if i + 1 < len(ch):  # halve H and W, widen to the next level
                blocks.append(nn.Conv2d(c, ch[i + 1], 3, stride=2, padding=1))
            self.levels.append(nn.Sequential(*blocks))
        self.conv_out = nn.Conv2d(ch[-1], cfg.spatial_latent_channels, 3, padding=1)
        self.shortcuts = cfg.residual_shortcuts

    def forward(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # NHWC, as in SpatialDecoder
        h = self.conv_in(x)
        x = h + resample_channels(x, h.shape[1]) if self.shortcuts else h
        for level in self.levels:
            for layer in level:
                if isinstance(layer, nn.Conv2d):  # the strided 2x downsampling
                    x = layer(x) + down_shortcut(x, layer.out_channels) if self.shortcuts else layer(x)
                else:
                    x = layer(x)
        h = self.conv_out(F.silu(x))
        return h + resample_channels(x, h.shape[1]) if self.shortcuts else h


class TemporalEncoder(nn.Module):
    """Causal time downsampling of spatial latents: (B, Cs, 1 + tc*k, h, w) -> (B, 2C, 1 + k, h, w).

    Frame 0 is repeated tc - 1 times in front so that latent 0 sees frame 0 alone and latent i
    sees the group of frames tc*(i-1)+1 .. tc*i (plus, through the causal convs, earlier ones).
    """

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ct, g, self.tc = cfg.temporal_channels, cfg.norm_groups, cfg.temporal_compression
        self.conv_in = CausalConv3d(cfg.spatial_latent_channels, ct)
        self.down = nn.Conv3d(ct * self.tc, ct, 1)  # merges each group of tc frames
        self.blocks = nn.ModuleList(CausalResBlock3d(ct, g) for _ in range(cfg.num_res_blocks))
        self.conv_out = CausalConv3d(ct, 2 * cfg.latent_channels)
        self.shortcuts = cfg.residual_shortcuts
        # Start the posterior narrow (std ~0.05). With the default logvar ~ 0 the decoder first
        # sees unit noise on near-zero means, and the encoder can only win by inflating the
        # means without bound (KL -> 1e8 and a very slow, unstable start: measured).
        with torch.no_grad():
            self.conv_out.conv.bias[cfg.latent_channels:].fill_(-6.0)

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.conv_in(x))  # (B, Ct, T, h, w)
        x = h + resample_channels(x, h.shape[1]) if self.shortcuts else h
        if self.tc > 1:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.tc - 1, -1, -1), x], dim=2)  # (B, Ct, tc*(k+1), h, w)
            x = time_to_channels(x, self.tc)  # (B, Ct*tc, k+1, h, w)
        h = self.down(x)  # (B, Ct, k+1, h, w)
        x = h + resample_channels(x, h.shape[1]) if self.shortcuts else h  # shortcut: mean over each group of frames
        for block in self.blocks:
            x = block(x)
        h = self.conv_out(F.silu(x))  # (B, 2C, k+1, h, w)
        if self.shortcuts:  # the mean half gets the averaged features; the log-variance none
            C = h.shape[1] // 2
            h = torch.cat([h[:, :C] + resample_channels(x, C), h[:, C:]], dim=1)
        return h


# --------------------------------------------------------------------------------------
# Decoder: temporal (causal, streamable) then spatial (per frame)
# --------------------------------------------------------------------------------------
class TemporalDecoder(nn.Module):
    """Causal time upsampling: (B, C, K, h, w) -> (B, Cs, 1 + tc*(K-1), h, w) for the chunk
    that starts the clip, (B, Cs, tc*K, h, w) for later chunks.

    Latent i becomes tc frames by a channels-to-time shuffle; for the chunk that starts the
    clip the first tc - 1 of them are dropped (latent 0 stands for frame 0 alone).
    """

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ct, g, self.tc = cfg.temporal_decoder_channels or cfg.temporal_channels, cfg.norm_groups, cfg.temporal_compression
        n, sep = cfg.num_res_blocks if cfg.temporal_decoder_res_blocks < 0 else cfg.temporal_decoder_res_blocks, \
            cfg.temporal_decoder_separable
        self.conv_in = CausalConv3d(cfg.latent_channels, ct)  # 8 input channels: separable saves nothing
        self.blocks = nn.ModuleList(CausalResBlock3d(ct, g, sep) for _ in range(n))
        self.up = nn.Conv3d(ct, ct * self.tc, 1)  # one set of ct channels per output frame
        # Full frame rate: mixes neighbouring frames across group borders (against flicker).
        self.conv_out = CausalConv3d(ct, cfg.spatial_latent_channels, separable=sep)
        self.shortcuts = cfg.residual_shortcuts

    def forward(self, z: Tensor, cache: ConvCache | None = None, starts_clip: bool = True) -> Tensor:
        x = self.conv_in(z, cache)  # (B, Ct, K, h, w)
        if self.shortcuts:
            x = x + resample_channels(z, x.shape[1])
        for block in self.blocks:
            x = block(x, cache)
        h = self.up(F.silu(x))  # (B, Ct*tc, K, h, w)
        x = h + x.repeat_interleave(self.tc, dim=1) if self.shortcuts else h  # shortcut: latent copied to its tc frames
        if self.tc > 1:
            x = channels_to_time(x, self.tc)  # (B, Ct, K*tc, h, w)
            if starts_clip:
                x = x[:, :, self.tc - 1:]  # (B, Ct, 1 + tc*(K-1), h, w)
        h = self.conv_out(F.silu(x), cache)  # (B, Cs, T, h, w)
        return h + resample_channels(x, h.shape[1]) if self.shortcuts else h


class SpatialDecoder(nn.Module):
    """Per-frame 2D decoder: (N, Cs, h, w) -> (N, 3, h*s, w*s).

    Deepest level first: ResBlocks, then a 2x upsampling made of a 3x3 conv at the lower
    resolution and a pixel shuffle (no nearest upsample: cheaper, and it stays on XNNPACK,
    DESIGN.md). Nothing runs at full resolution: the last conv makes 4*3 channels at half
    resolution that the last pixel shuffle turns into RGB. On a 2-core CPU a conv of 8-16
    channels at 128-256 px runs at ~10 GFLOP/s (vs ~60 at 32 px), so full-resolution work
    would cost more than the rest of the decoder together.
    """

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch, g = cfg.decoder_channels, cfg.norm_groups  # ch[i]: width at resolution H / 2**(i+1)
        sep = cfg.decoder_separable or (False,) * len(ch)
        self.conv_in = nn.Conv2d(cfg.spatial_latent_channels, ch[-1], 3, padding=1)
        self.levels = nn.ModuleList()
        for i in range(len(ch) - 1, -1, -1):  # deepest level first
            cout = ch[i - 1] if i > 0 else cfg.in_channels
            blocks = [ResBlock2d(ch[i], ch[i], g, sep[i]) for _ in range(cfg.decoder_res_blocks[i])]
            blocks += [nn.SiLU(), conv3x3(ch[i], 4 * cout, sep[i]), nn.PixelShuffle(2)]
            self.levels.append(nn.Sequential(*blocks))
        self.shortcuts = cfg.residual_shortcuts

    def forward(self, x: Tensor) -> Tensor:
        # NHWC: oneDNN's fast path for narrow convs, ~1.7x faster on the CPU (measured).
        z = x.contiguous(memory_format=torch.channels_last)
        if not self.shortcuts:
            x = self.conv_in(z)  # (N, ch[-1], h, w)
            for level in self.levels:
                x = level(x)  # ... last: (N, 3, H, W)
            return x
        # With shortcuts, the parameter-free shortcut maps are linear, so they are applied as
        # fixed 1x1 convolutions (fast on NHWC; no mean / repeat_interleave passes):
        #   conv_in(z) + resample(z)            = conv_in with resample folded into its centre tap
        #   shuffle(conv(silu x)) + up_shortcut(x) = shuffle(conv(silu x) + R x), one pixel shuffle
        # The same function as the plain form, to float rounding.
        x = F.conv2d(z, self.conv_in.weight + _centre_tap(shortcut_matrix(z.shape[1], self.conv_in.out_channels,
                                                                          z), 3), self.conv_in.bias, padding=1)
        for level in self.levels:
            *blocks, act, conv, shuffle = level
            for block in blocks:
                x = block(x)
            r = shortcut_matrix(x.shape[1], last_conv(conv).out_channels // 4, x, repeat=4)  # (4*cout, cin)
            x = shuffle(conv(act(x)) + F.conv2d(x, r[:, :, None, None]))  # (N, ch[i-1], 2h, 2w) ... (N, 3, H, W)
        return x


def shortcut_matrix(cin: int, cout: int, like: Tensor, repeat: int = 1) -> Tensor:
    """The (cout * repeat, cin) matrix of `resample_channels(x, cout)` with each output channel
    repeated `repeat` times (`repeat=4` before a pixel shuffle is `up_shortcut`)."""
    eye = torch.eye(cin, dtype=like.dtype, device=like.device)[:, :, None, None]  # cin unit "pixels"
    m = resample_channels(eye, cout)[:, :, 0, 0].T  # (cout, cin)
    return m.repeat_interleave(repeat, dim=0)


def _centre_tap(m: Tensor, k: int) -> Tensor:
    """(cout, cin) -> a (cout, cin, k, k) kernel that applies m at the centre tap only."""
    w = m.new_zeros(*m.shape, k, k)
    w[:, :, k // 2, k // 2] = m
    return w


# --------------------------------------------------------------------------------------
# The VAE
# --------------------------------------------------------------------------------------
class VideoVAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.spatial_encoder = SpatialEncoder(config)
        self.temporal_encoder = TemporalEncoder(config)
        self.temporal_decoder = TemporalDecoder(config)
        self.spatial_decoder = SpatialDecoder(config)
        if config.residual_shortcuts:
            self._start_as_shortcuts()

    @torch.no_grad()
    def _start_as_shortcuts(self) -> None:
        """Zero every layer that a shortcut runs beside (and the last conv of each ResBlock), so a
        fresh VAE is exactly its shortcut path: block-averaged colours through the latent, copied
        back up. Training then learns residuals on a working autoencoder (~15 dB at step 0)."""
        se, te, td, sd = self.spatial_encoder, self.temporal_encoder, self.temporal_decoder, self.spatial_decoder
        convs = [se.conv_in, se.conv_out, te.conv_in, te.down, td.conv_in, td.up, td.conv_out, sd.conv_in]
        convs += [layer for level in se.levels for layer in level if isinstance(layer, nn.Conv2d)]
        convs += [level[-2] for level in sd.levels]
        convs += [m.conv2 for m in self.modules() if isinstance(m, (ResBlock2d, CausalResBlock3d))]
        convs = [last_conv(c) for c in convs]  # zeroing the pointwise half zeroes a separable conv
        for conv in convs:
            conv.weight.zero_()
            conv.bias.zero_()
        C = self.config.latent_channels  # te.conv_out: means from the shortcut, log-variance starts at -6
        te.conv_out.conv.weight.zero_()
        te.conv_out.conv.bias[:C].zero_()

    # ---- geometry --------------------------------------------------------------------
    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, T', H', W') of the latents of a (num_frames, height, width) video."""
        cfg = self.config
        tc, s = cfg.temporal_compression, cfg.spatial_compression
        if num_frames < 1 or (num_frames - 1) % tc:
            k = max(0, round((num_frames - 1) / tc))
            raise ValueError(
                f"num_frames={num_frames} is not 1 + {tc}*k (the VAE is causal with {tc}x time "
                f"compression); use e.g. {1 + tc * k} or {1 + tc * (k + 1)}"
            )
        if height % s or width % s or height < s or width < s:
            raise ValueError(
                f"height and width must be positive multiples of {s} (the VAE's spatial compression), "
                f"got {height}x{width}; use e.g. {max(s, height // s * s)}x{max(s, width // s * s)}"
            )
        return cfg.latent_channels, 1 + (num_frames - 1) // tc, height // s, width // s

    def num_frames(self, latent_frames: int) -> int:
        """Video frames decoded from `latent_frames` latent frames: 1 + tc*(latent_frames - 1)."""
        if latent_frames < 1:
            raise ValueError(f"latent_frames must be >= 1, got {latent_frames}")
        return 1 + self.config.temporal_compression * (latent_frames - 1)

    # ---- latent normalisation ----------------------------------------------------------
    def normalize(self, z: Tensor) -> Tensor:
        """Raw VAE latents -> the roughly unit-variance latents that diffusion works on."""
        return (z - self._per_channel(self.config.shift_factor, z)) * self._per_channel(self.config.scaling_factor, z)

    def denormalize(self, z: Tensor) -> Tensor:
        return z / self._per_channel(self.config.scaling_factor, z) + self._per_channel(self.config.shift_factor, z)

    @staticmethod
    def _per_channel(value: float | tuple[float, ...], z: Tensor) -> float | Tensor:
        """A float as is; a per-channel tuple as a (1, C, 1, 1, 1) tensor that broadcasts over z."""
        if isinstance(value, tuple):
            return torch.tensor(value, dtype=z.dtype, device=z.device).view(1, -1, 1, 1, 1)
        return value

    # ---- encode / decode ---------------------------------------------------------------
    def encode(self, video: Tensor) -> DiagonalGaussian:
        """(B, 3, T, H, W) in [-1, 1] -> posterior over raw latents (B, C, T', H', W')."""
        if video.ndim != 5 or video.shape[1] != self.config.in_channels:
            raise ValueError(f"expected video (B, {self.config.in_channels}, T, H, W), got {tuple(video.shape)}")
        B, _, T, H, W = video.shape
        self.latent_shape(T, H, W)  # validates T, H, W
        x = _batch_to_frames(self.spatial_encoder(_frames_to_batch(video)), B)  # (B, Cs, T, h, w)
        mean, logvar = self.temporal_encoder(x).chunk(2, dim=1)  # 2 x (B, C, T', h, w)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: Tensor, chunk_frames: int | None = None) -> Tensor:
        """Raw latents (B, C, T', H', W') -> video (B, 3, 1 + tc*(T'-1), H, W), roughly in [-1, 1].

        Decodes `chunk_frames` latent frames at a time (default config.decode_chunk_frames;
        0 = all at once), carrying the causal convolutions' past frames between chunks, so
        the result does not depend on the chunk size; only peak memory does.
        """
        # Concatenated frame-major: the spatial decoder writes NHWC frames, so each chunk is a
        # contiguous (B, t, H, W, 3) block and the result an RGB-last (B, 3, T, H, W) view that
        # converts to (T, H, W, 3) images without a transposing copy.
        chunks = [c.permute(0, 2, 3, 4, 1) for c in self.decode_chunks(z, chunk_frames)]  # (B, t, H, W, 3)
        return torch.cat(chunks, dim=1).permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W)

    def decode_chunks(self, z: Tensor, chunk_frames: int | None = None) -> Iterator[Tensor]:
        """Like `decode`, but hands out each chunk's frames as soon as they are decoded (streaming).

        Yields (B, 3, t, H, W): t = 1 + tc*(n-1) frames for the first chunk of n latent frames,
        tc*n for the later ones. Concatenated along time they equal `decode(z, chunk_frames)`.
        """
        self._check_latents(z)
        n = self.config.decode_chunk_frames if chunk_frames is None else chunk_frames
        K = z.shape[2]
        n = K if n <= 0 else n
        decoder = StreamingDecoder(self)
        for start in range(0, K, n):
            yield decoder.push(z[:, :, start:start + n])

    def _check_latents(self, z: Tensor) -> None:
        if z.ndim != 5 or z.shape[1] != self.config.latent_channels:
            raise ValueError(f"expected latents (B, {self.config.latent_channels}, T', H', W'), got {tuple(z.shape)}")

    def decode_frames(self, x: Tensor) -> Tensor:
        """Spatial decoder alone, frame by frame: (B, Cs, T, h, w) -> (B, 3, T, H, W)."""
        return _batch_to_frames(self.spatial_decoder(_frames_to_batch(x)), x.shape[0])

    def encode_latents(self, video: Tensor, generator: torch.Generator | None = None, sample: bool = False) -> Tensor:
        """Video -> normalised latents for diffusion (posterior mean unless `sample`)."""
        posterior = self.encode(video)
        z = posterior.sample(generator) if sample else posterior.mode()
        return self.normalize(z)

    def decode_latents(self, z: Tensor) -> Tensor:
        """Normalised latents (from diffusion) -> video in roughly [-1, 1]."""
        return self.decode(self.denormalize(z))

    def forward(self, video: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, DiagonalGaussian]:
        """Training pass: (reconstruction from a posterior sample, posterior)."""
        posterior = self.encode(video)
        return self.decode(posterior.sample(generator), chunk_frames=0), posterior


class StreamingDecoder:
    """Decodes a latent video that arrives in pieces (raw latents, in order), carrying the causal
    convolutions' past frames between pieces: pushing z in any split gives the frames of
    `vae.decode(z)`. Used for streaming and for chunk-wise generated long videos.

        >>> dec = StreamingDecoder(vae)
        >>> frames = [dec.push(z[:, :, :4]), dec.push(z[:, :, 4:])]   # (B, 3, 13, H, W), (B, 3, 4*(K-4), H, W)
    """

    def __init__(self, vae: VideoVAE):
        self.vae = vae
        self.cache: ConvCache = {}
        self.started = False

    def push(self, z: Tensor) -> Tensor:
        """Raw latents (B, C, n, h, w) that follow the ones pushed before -> their frames (B, 3, t, H, W)."""
        self.vae._check_latents(z)
        x = self.vae.temporal_decoder(z, self.cache, starts_clip=not self.started)  # (B, Cs, t, h, w)
        self.started = True
        return self.vae.decode_frames(x)


@torch.no_grad()
def fit_latent_normalization(vae: VideoVAE, videos: Iterable[Tensor], per_channel: bool = False
                             ) -> tuple[float, float] | tuple[tuple[float, ...], tuple[float, ...]]:
    """(scaling_factor, shift_factor) = (1 / std, mean) of the posterior means over `videos`.

    By default one scalar pair over all channels and positions (as SD3 / FLUX do); with
    `per_channel` one pair per latent channel (tuples), for VAEs whose channels differ in
    scale. Either way diffusion then sees zero-mean, unit-variance latents. Store it with
    `dataclasses.replace(vae.config, scaling_factor=..., shift_factor=...)`.
    """
    total = total_sq = None
    count = 0
    for video in videos:
        mean = vae.encode(video).mean.double()  # (B, C, T', H', W')
        dims = (0, 2, 3, 4) if per_channel else tuple(range(mean.ndim))
        s, sq = mean.sum(dims), mean.square().sum(dims)
        total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)
        count += mean.numel() // (mean.shape[1] if per_channel else 1)
    if count < 2:
        raise ValueError("fit_latent_normalization needs at least one non-empty batch of videos")
    mu = total / count
    std = (total_sq / count - mu * mu).clamp_min(0.0).sqrt()
    if (std == 0).any():
        raise ValueError("posterior means have zero variance; is the VAE trained?")
    if per_channel:
        return tuple((1.0 / std).tolist()), tuple(mu.tolist())
    return 1.0 / std.item(), mu.item()
