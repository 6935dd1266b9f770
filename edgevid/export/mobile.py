"""Delegation-friendly forms of the layers XNNPACK leaves on portable kernels (DESIGN.md).

ExecuTorch's XNNPACK partitioner takes convolutions (1D/2D, transposed too), linear/bmm,
elementwise arithmetic, softmax, permute/view/slice/cat and `mean` over the last two dims of a
4D tensor, but not GroupNorm, LayerNorm, RMSNorm, nearest upsampling, 3D convolutions,
`repeat_interleave`, `unbind` or a bool attention mask. Each one splits the graph into another
partition and runs unoptimised. `mobile_friendly(module)` returns a copy whose layers compute
the same function (to float rounding; tests/export/test_mobile.py) with only delegated ops:

    norm over a group      x.reshape(N, G, C/G, S) - mean(dims 2, 3) ... rsqrt ... affine
    nearest 2x upsample    depthwise 2x2 stride-2 transposed conv of ones
    causal 3D conv         kt time taps stacked on channels, one 2D conv over frames-in-batch
                           (depthwise: one depthwise 2D conv per tap, summed)
    repeat / resample of channels      a 1x1 conv with a fixed 0/1 (or 1/n) matrix
    attention              q k^T bmm + additive key bias, softmax, bmm; heads split by slicing

Export-only: nothing in `edgevid.models` imports this module.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgevid.models import blocks, i2v as i2v_lib, svd_unet, vae as vae_lib
from edgevid.text.bert import BertModel


# ----------------------------------------------------------------------------- normalisation
def _mean23(x: Tensor) -> Tensor:
    """Mean over dims 2 and 3 of a 4D tensor, keepdim: XNNPACK's global average pooling."""
    return x.mean(dim=(2, 3), keepdim=True)


class MobileGroupNorm(nn.Module):
    """nn.GroupNorm on (N, C, *) as reshapes, means over the last two of four dims and rsqrt."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.groups, self.eps = norm.num_groups, norm.eps
        self.weight, self.bias = norm.weight, norm.bias  # shared: same parameters as the original

    def forward(self, x: Tensor) -> Tensor:
        N, C = x.shape[:2]
        g = x.reshape(N, self.groups, C // self.groups, -1)  # (N, G, C/G, S)
        d = g - _mean23(g)
        y = (d * torch.rsqrt(_mean23(d * d) + self.eps)).reshape(x.shape)
        if self.weight is None:
            return y
        shape = (1, C) + (1,) * (x.dim() - 2)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


class MobileLayerNorm(nn.Module):
    """nn.LayerNorm over the last dim, on (M, 1, C, 1) views."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        if len(norm.normalized_shape) != 1:
            raise ValueError("MobileLayerNorm normalises over the last dim only")
        self.eps, self.weight, self.bias = norm.eps, norm.weight, norm.bias

    def forward(self, x: Tensor) -> Tensor:
        C = x.shape[-1]
        g = x.reshape(-1, 1, C, 1)  # (M, 1, C, 1)
        d = g - _mean23(g)
        y = (d * torch.rsqrt(_mean23(d * d) + self.eps)).reshape(x.shape)
        return y if self.weight is None else y * self.weight + self.bias


class MobileRMSNorm(nn.Module):
    """blocks.RMSNorm over the last dim, on (M, 1, C, 1) views."""

    def __init__(self, norm: blocks.RMSNorm):
        super().__init__()
        self.eps, self.weight = norm.eps, norm.weight

    def forward(self, x: Tensor) -> Tensor:
        g = x.reshape(-1, 1, x.shape[-1], 1)
        return (g * torch.rsqrt(_mean23(g * g) + self.eps)).reshape(x.shape) * self.weight


# ----------------------------------------------------------------------------- resampling
class MobileUpsample(nn.Module):
    """blocks.Upsample: nearest 2x as a depthwise transposed conv of ones (each pixel copied to its
    2x2 block), then the same 3x3 conv."""

    def __init__(self, up: blocks.Upsample):
        super().__init__()
        self.conv = up.conv
        ch = up.conv.in_channels
        self.register_buffer("ones", torch.ones(ch, 1, 2, 2), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.conv_transpose2d(x, self.ones, stride=2, groups=x.shape[1]))


def channel_map(matrix: Tensor) -> nn.Conv2d:
    """A fixed linear map of channels, (cout, cin), as a bias-free 1x1 conv."""
    conv = nn.Conv2d(matrix.shape[1], matrix.shape[0], 1, bias=False)
    conv.weight.data.copy_(matrix[:, :, None, None])
    conv.weight.requires_grad_(False)
    return conv


def _frames_conv(conv: nn.Module, x: Tensor) -> Tensor:
    """A 2D conv on every frame of (B, C, T, H, W), frames merged into the batch."""
    B, _, T, H, W = x.shape
    y = conv(x.transpose(1, 2).reshape(B * T, -1, H, W))  # (B*T, C', H', W')
    return y.reshape(B, T, *y.shape[1:]).transpose(1, 2)  # (B, C', T, H', W')


class MobileCausalConv3d(nn.Module):
    """vae.CausalConv3d (same cache protocol) as 2D convs over frames: a full conv takes the kt
    time taps x[t-kt+1] .. x[t] stacked on channels in one conv; a depthwise (separable) one is a
    depthwise 2D conv per tap, summed."""

    def __init__(self, layer: vae_lib.CausalConv3d):
        super().__init__()
        self.kt = layer.kt
        self.in_channels = layer.conv.in_channels
        self.out_channels = (layer.pointwise or layer.conv).out_channels
        w, conv = layer.conv.weight.detach(), layer.conv  # (Cout, Cin/groups, kt, kh, kw)
        self.depthwise = conv.groups > 1
        if self.depthwise:  # one depthwise 2D conv per tap, summed (the bias on the first)
            if conv.groups != conv.in_channels or w.shape[1] != 1:
                raise ValueError("only full or depthwise causal 3D convs are supported")
            C = conv.in_channels
            self.taps = nn.ModuleList(nn.Conv2d(C, C, tuple(w.shape[3:]), padding=conv.padding[1:], groups=C,
                                                bias=k == 0) for k in range(self.kt))
            for k, tap in enumerate(self.taps):
                tap.weight.data.copy_(w[:, :, k])
            self.taps[0].bias.data.copy_(conv.bias.detach())
        else:
            w2 = w.permute(0, 2, 1, 3, 4).reshape(w.shape[0], -1, *w.shape[3:])  # (Cout, kt*Cin, kh, kw)
            self.conv = nn.Conv2d(w2.shape[1], w2.shape[0], tuple(w2.shape[2:]), padding=conv.padding[1:])
            self.conv.weight.data.copy_(w2)
            self.conv.bias.data.copy_(conv.bias.detach())
        self.pointwise = None
        if layer.pointwise is not None:
            pw = layer.pointwise
            self.pointwise = nn.Conv2d(pw.in_channels, pw.out_channels, 1)
            self.pointwise.weight.data.copy_(pw.weight.detach()[:, :, 0])
            self.pointwise.bias.data.copy_(pw.bias.detach())

    def forward(self, x: Tensor, cache: vae_lib.ConvCache | None = None) -> Tensor:
        T = x.shape[2]
        if self.kt > 1:
            past = cache.get(self) if cache is not None else None
            if past is None:
                first = x if T == 1 else x[:, :, :1]  # (a whole-tensor slice would be an undelegated alias)
                past = torch.cat([first] + [first.clone() for _ in range(self.kt - 2)], dim=2)  # repeat frame 0
                # (XNNPACK's concatenation takes each input once: the copies are clones)
            x = torch.cat([past, x], dim=2)  # (B, C, kt-1 + T, H, W)
            if cache is not None:
                cache[self] = x[:, :, -(self.kt - 1):]
        taps = [x[:, :, k:k + T] for k in range(self.kt)]  # kt x (B, C, T, H, W)
        if self.depthwise:
            y = _frames_conv(self.taps[0], taps[0])
            for conv, tap in zip(self.taps[1:], taps[1:]):
                y = y + _frames_conv(conv, tap)
        else:
            y = _frames_conv(self.conv, torch.cat(taps, dim=1) if self.kt > 1 else taps[0])
        return y if self.pointwise is None else _frames_conv(self.pointwise, y)


class MobileConv3d1x1(nn.Module):
    """A 1x1x1 nn.Conv3d as a 1x1 conv2d over frames."""

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, 1)
        self.conv.weight.data.copy_(conv.weight.detach()[:, :, 0])
        self.conv.bias.data.copy_(conv.bias.detach())

    def forward(self, x: Tensor) -> Tensor:
        return _frames_conv(self.conv, x)


class MobileConv3d(nn.Module):
    """A stride-1, ungrouped nn.Conv3d (e.g. blocks.Conv3D's 3x3x3, zero-padded in time) as zero
    time padding, kt taps stacked on channels and one 2D conv over frames."""

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        if conv.groups != 1 or conv.stride != (1, 1, 1) or conv.dilation != (1, 1, 1) or isinstance(conv.padding, str):
            raise ValueError("MobileConv3d takes stride-1, dilation-1, ungrouped convs with int padding")
        w = conv.weight.detach()  # (Cout, Cin, kt, kh, kw)
        self.kt, self.pt = w.shape[2], conv.padding[0]
        self.conv = nn.Conv2d(w.shape[1] * self.kt, w.shape[0], tuple(w.shape[3:]), padding=conv.padding[1:],
                              bias=conv.bias is not None)
        self.conv.weight.data.copy_(w.permute(0, 2, 1, 3, 4).reshape(w.shape[0], -1, *w.shape[3:]))
        if conv.bias is not None:
            self.conv.bias.data.copy_(conv.bias.detach())

    def forward(self, x: Tensor) -> Tensor:
        T = x.shape[2] + 2 * self.pt - self.kt + 1
        if self.pt:
            x = F.pad(x, (0, 0, 0, 0, self.pt, self.pt))
        taps = [x[:, :, k:k + T] for k in range(self.kt)]
        return _frames_conv(self.conv, torch.cat(taps, dim=1) if self.kt > 1 else taps[0])


def _repeat_matrix(cin: int, repeat: int) -> Tensor:
    """(cin * repeat, cin): x.repeat_interleave(repeat, dim=1) as a channel map."""
    return torch.eye(cin).repeat_interleave(repeat, dim=0)


def _resample_matrix(cin: int, cout: int) -> Tensor:
    return vae_lib.shortcut_matrix(cin, cout, torch.empty(0))


class MobileTemporalDecoder(nn.Module):
    """vae.TemporalDecoder with its parameter-free shortcuts (channel resampling and the
    latent-to-frames repeat) as fixed 1x1 convs."""

    def __init__(self, dec: vae_lib.TemporalDecoder):
        super().__init__()
        self.tc, self.shortcuts = dec.tc, dec.shortcuts
        self.conv_in, self.blocks, self.conv_out = dec.conv_in, dec.blocks, dec.conv_out  # swapped by mobile_friendly
        self.up = dec.up
        cin, ct, cs = dec.conv_in.in_channels, dec.conv_in.out_channels, dec.conv_out.out_channels
        self.in_shortcut = channel_map(_resample_matrix(cin, ct))
        self.repeat = channel_map(_repeat_matrix(ct, self.tc))
        self.out_shortcut = channel_map(_resample_matrix(ct, cs))

    def forward(self, z: Tensor, cache: vae_lib.ConvCache | None = None, starts_clip: bool = True) -> Tensor:
        x = self.conv_in(z, cache)
        if self.shortcuts:
            x = x + _frames_conv(self.in_shortcut, z)
        for block in self.blocks:
            x = block(x, cache)
        h = self.up(F.silu(x))
        x = h + _frames_conv(self.repeat, x) if self.shortcuts else h
        if self.tc > 1:
            x = vae_lib.channels_to_time(x, self.tc)
            if starts_clip:
                x = x[:, :, self.tc - 1:]
        h = self.conv_out(F.silu(x), cache)
        return h + _frames_conv(self.out_shortcut, x) if self.shortcuts else h


class MobileSpatialDecoder(nn.Module):
    """vae.SpatialDecoder (shortcut form) with its shortcut matrices built once, as buffers."""

    def __init__(self, dec: vae_lib.SpatialDecoder):
        super().__init__()
        self.shortcuts, self.conv_in, self.levels = dec.shortcuts, dec.conv_in, dec.levels
        if self.shortcuts:
            cin, cout = dec.conv_in.in_channels, dec.conv_in.out_channels
            w = dec.conv_in.weight.detach() + vae_lib._centre_tap(_resample_matrix(cin, cout), 3)
            self.conv_in = nn.Conv2d(cin, cout, 3, padding=1)
            self.conv_in.weight.data.copy_(w)
            self.conv_in.bias.data.copy_(dec.conv_in.bias.detach())
            self.level_shortcuts = nn.ModuleList()
            for level in dec.levels:
                conv = level[-2]
                cin = _in_channels(conv)
                m = vae_lib.shortcut_matrix(cin, vae_lib.last_conv(conv).out_channels // 4, torch.empty(0), repeat=4)
                self.level_shortcuts.append(channel_map(m))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_in(x)
        for i, level in enumerate(self.levels):
            if not self.shortcuts:
                x = level(x)
                continue
            *body, act, conv, shuffle = level
            for block in body:
                x = block(x)
            x = shuffle(conv(act(x)) + self.level_shortcuts[i](x))
        return x


def _linear_kernel(fn, cin: int, k: int) -> Tensor:
    """The (cout, cin, k, k) kernel of a linear, parameter-free map `fn` from (1, cin, k, k) to
    (1, cout, 1, 1), read off one-hot inputs: e.g. `vae.down_shortcut` as a stride-k conv."""
    eye = torch.eye(cin * k * k).reshape(cin * k * k, cin, k, k)
    return fn(eye)[:, :, 0, 0].T.reshape(-1, cin, k, k)


class MobileSpatialEncoder(nn.Module):
    """vae.SpatialEncoder (shortcut form) without channel indexing or pixel_unshuffle: the input
    shortcut folded into conv_in's centre tap, each downsampling shortcut a fixed stride-2 conv,
    the output shortcut a fixed 1x1 conv. NCHW throughout (ExecuTorch's portable kernels refuse
    mixed dim orders)."""

    def __init__(self, enc: vae_lib.SpatialEncoder):
        super().__init__()
        self.shortcuts, self.conv_in, self.levels, self.conv_out = enc.shortcuts, enc.conv_in, enc.levels, enc.conv_out
        if not self.shortcuts:
            return
        cin, cout = enc.conv_in.in_channels, enc.conv_in.out_channels
        self.conv_in = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv_in.weight.data.copy_(enc.conv_in.weight.detach() + vae_lib._centre_tap(_resample_matrix(cin, cout), 3))
        self.conv_in.bias.data.copy_(enc.conv_in.bias.detach())
        self.down = nn.ModuleDict()
        for i, level in enumerate(enc.levels):
            for j, layer in enumerate(level):
                if isinstance(layer, nn.Conv2d):
                    conv = nn.Conv2d(layer.in_channels, layer.out_channels, 2, stride=2, bias=False)
                    conv.weight.data.copy_(_linear_kernel(
                        lambda x, c=layer.out_channels: vae_lib.down_shortcut(x, c), layer.in_channels, 2))
                    conv.weight.requires_grad_(False)
                    self.down[f"{i}_{j}"] = conv
        self.out_shortcut = channel_map(_resample_matrix(enc.conv_out.in_channels, enc.conv_out.out_channels))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_in(x)
        for i, level in enumerate(self.levels):
            for j, layer in enumerate(level):
                key = f"{i}_{j}"
                x = layer(x) + self.down[key](x) if self.shortcuts and key in self.down else layer(x)
        h = self.conv_out(F.silu(x))
        return h + self.out_shortcut(x) if self.shortcuts else h


class MobileTemporalEncoder(nn.Module):
    """vae.TemporalEncoder with its shortcuts as fixed 1x1 convs and frame 0's repeats as clones
    (XNNPACK's cat takes each input once)."""

    def __init__(self, enc: vae_lib.TemporalEncoder):
        super().__init__()
        self.tc, self.shortcuts = enc.tc, enc.shortcuts
        self.conv_in, self.down, self.blocks, self.conv_out = enc.conv_in, enc.down, enc.blocks, enc.conv_out
        cs, ct, c2 = _causal_in(enc.conv_in), _causal_in(enc.conv_out), _causal_out(enc.conv_out)  # c2 = 2C
        self.in_shortcut = channel_map(_resample_matrix(cs, ct))
        self.down_shortcut = channel_map(_resample_matrix(ct * self.tc, ct))
        self.out_shortcut = channel_map(_resample_matrix(ct, c2 // 2))

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.conv_in(x))
        x = h + _frames_conv(self.in_shortcut, x) if self.shortcuts else h
        if self.tc > 1:
            first = x if x.shape[2] == 1 else x[:, :, :1]  # a still: no slice (an undelegated alias)
            x = torch.cat([first.clone() for _ in range(self.tc - 1)] + [x], dim=2)
            B, C, T, H, W = x.shape  # vae.time_to_channels with H and W merged: rank 5 (Core ML's limit)
            x = x.reshape(B, C, T // self.tc, self.tc, H * W).transpose(2, 3).reshape(B, C * self.tc, T // self.tc, H, W)
        h = self.down(x)
        x = h + _frames_conv(self.down_shortcut, x) if self.shortcuts else h
        for block in self.blocks:
            x = block(x)
        h = self.conv_out(F.silu(x))
        if self.shortcuts:
            C = h.shape[1] // 2
            h = torch.cat([h[:, :C] + _frames_conv(self.out_shortcut, x), h[:, C:]], dim=1)
        return h


def _causal_in(conv: nn.Module) -> int:
    """Input channels of a vae.CausalConv3d or its MobileCausalConv3d."""
    return conv.in_channels if isinstance(conv, MobileCausalConv3d) else conv.conv.in_channels


def _causal_out(conv: nn.Module) -> int:
    return conv.out_channels if isinstance(conv, MobileCausalConv3d) else (conv.pointwise or conv.conv).out_channels


def _in_channels(conv: nn.Module) -> int:
    first = next(m for m in conv.modules() if isinstance(m, nn.Conv2d))
    return first.in_channels


# ----------------------------------------------------------------------------- attention
class MobileAttention(nn.Module):
    """blocks.Attention with the heads split by slicing, an explicit softmax(q k^T / sqrt(d) +
    bias) v, and a float key mask (1 = real token) as an additive bias; same parameters."""

    def __init__(self, attn: blocks.Attention):
        super().__init__()
        self.heads, self.head_dim, self.is_cross = attn.heads, attn.head_dim, attn.is_cross
        for name in ("to_q", "to_kv", "to_qkv", "out"):
            if hasattr(attn, name):
                setattr(self, name, getattr(attn, name))
        self.q_norm, self.k_norm = attn.q_norm, attn.k_norm

    def _split_heads(self, x: Tensor, n: int) -> list[Tensor]:
        N, L, _ = x.shape
        C = self.heads * self.head_dim
        parts = [x] if n == 1 else [x[:, :, i * C:(i + 1) * C] for i in range(n)]
        return [p.reshape(N, L, self.heads, self.head_dim).transpose(1, 2) for p in parts]  # n x (N, heads, L, d)

    def forward(self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None,
                rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        N, L, C = x.shape
        if self.is_cross:
            (q,) = self._split_heads(self.to_q(x), 1)
            k, v = self._split_heads(self.to_kv(context), 2)
        else:
            q, k, v = self._split_heads(self.to_qkv(x), 3)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = blocks.apply_rope(q, *rope), blocks.apply_rope(k, *rope)
        return self.out(attend(q, k, v, context_mask).transpose(1, 2).reshape(N, L, C))


def attend(q: Tensor, k: Tensor, v: Tensor, keep: Tensor | None = None, scale: float | None = None) -> Tensor:
    """softmax(q k^T * scale + key bias) v with 3D bmm: q and k (N, h, L or S, d), v (N, h, S, e),
    keep (N, S) 1/0 or bool or None, scale 1/sqrt(d) unless given -> (N, h, L, e)."""
    N, h, L, d = q.shape
    S, e = k.shape[2], v.shape[3]
    scale = d ** -0.5 if scale is None else scale
    scores = torch.bmm((q * scale).reshape(N * h, L, d), k.reshape(N * h, S, d).transpose(1, 2))
    scores = scores.reshape(N, h, L, S)
    if keep is not None:
        keep = keep if keep.is_floating_point() else keep.to(q.dtype)
        scores = scores + blocks.key_bias(keep).reshape(N, 1, 1, S)
    p = torch.softmax(scores, dim=-1).reshape(N * h, L, S)
    return torch.bmm(p, v.reshape(N * h, S, e)).reshape(N, h, L, e)


class MobileResBlock(nn.Module):
    """blocks.ResBlock with the scale/shift split by slicing and no addcmul."""

    def __init__(self, block: blocks.ResBlock):
        super().__init__()
        self.norm1, self.conv1, self.emb, self.norm2, self.conv2, self.skip = (
            block.norm1, block.conv1, block.emb, block.norm2, block.conv2, block.skip)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        film = self.emb(F.silu(emb))  # (N, 2C)
        C = film.shape[1] // 2
        scale, shift = film[:, :C].reshape(-1, C, 1, 1), film[:, C:].reshape(-1, C, 1, 1)
        h = self.conv2(F.silu(self.norm2(h) * (1.0 + scale) + shift))
        return self.skip(x) + h


class MobileConv1d(nn.Module):
    """nn.Conv1d on (N, C, T) as a (k, 1) conv2d on (N, C, T, 1)."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, (conv.kernel_size[0], 1),
                              padding=(conv.padding[0], 0), stride=(conv.stride[0], 1), groups=conv.groups,
                              bias=conv.bias is not None)
        self.conv.weight.data.copy_(conv.weight.detach()[..., None])
        if conv.bias is not None:
            self.conv.bias.data.copy_(conv.bias.detach())

    def forward(self, x: Tensor) -> Tensor:
        N, C, T = x.shape
        return self.conv(x.reshape(N, C, T, 1)).reshape(N, -1, T)


class MobileBert(nn.Module):
    """text.bert.BertModel with a float mask (1 = real token), explicit attention, slicing."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.cfg = bert.cfg
        self.word_embed, self.pos_embed, self.type_embed = bert.word_embed, bert.pos_embed, bert.type_embed
        self.embed_norm, self.layers = bert.embed_norm, bert.layers

    def forward(self, input_ids: Tensor, mask: Tensor) -> Tensor:
        return self.forward_embeds(F.embedding(input_ids, self.word_embed), mask)

    def forward_embeds(self, word_embeds: Tensor, mask: Tensor) -> Tensor:
        B, L, _ = word_embeds.shape
        x = self.embed_norm(word_embeds + self.pos_embed[:L] + self.type_embed[:1])  # (B, L, D)
        for layer in self.layers:
            x = self._layer(layer, x, mask)
        return x * mask.reshape(B, L, 1)

    @staticmethod
    def _layer(layer: nn.Module, x: Tensor, mask: Tensor) -> Tensor:
        B, L, D = x.shape
        h, d = layer.num_heads, D // layer.num_heads
        qkv = layer.qkv(x)  # (B, L, 3D)
        q, k, v = (qkv[:, :, i * D:(i + 1) * D].reshape(B, L, h, d).transpose(1, 2) for i in range(3))
        a = attend(q, k, v, mask).transpose(1, 2).reshape(B, L, D)
        x = layer.attn_norm(x + layer.attn_out(a))
        return layer.ffn_norm(x + layer.ffn_out(F.gelu(layer.ffn_in(x))))


# ----------------------------------------------------------------------------- the SVD UNet (image-to-video)
class MobileSVDAttention(nn.Module):
    """svd_unet.Attention with attend() in place of F.scaled_dot_product_attention, whose edge
    decomposition leaves its masking (eq, any, where, full_like, logical_not) on portable kernels.
    The softmax keeps the layer's own scale (a merged funnel's q/k are narrower than dim)."""

    def __init__(self, attn: svd_unet.Attention):
        super().__init__()
        self.heads, self.scale = attn.heads, attn.scale
        self.to_q, self.to_k, self.to_v, self.to_out = attn.to_q, attn.to_k, attn.to_v, attn.to_out

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        context = x if context is None else context
        (N, L, _), S, h = x.shape, context.shape[1], self.heads
        q = self.to_q(x).reshape(N, L, h, -1).transpose(1, 2)  # (N, L, qk) -> (N, heads, L, qk/heads)
        k = self.to_k(context).reshape(N, S, h, -1).transpose(1, 2)
        v = self.to_v(context).reshape(N, S, h, -1).transpose(1, 2)
        return self.to_out(attend(q, k, v, scale=self.scale).transpose(1, 2).reshape(N, L, -1))


class MobileFeedForward(nn.Module):
    """svd_unet.FeedForward (GEGLU) with value and gate cut by slices, not `chunk` (split_with_sizes
    stays off XNNPACK)."""

    def __init__(self, ff: svd_unet.FeedForward):
        super().__init__()
        self.proj, self.out = ff.proj, ff.out

    def forward(self, x: Tensor) -> Tensor:
        y = self.proj(x)
        n = y.shape[-1] // 2
        return self.out(y[..., :n] * F.gelu(y[..., n:]))


def halve_frames(h: Tensor, num_frames: int) -> Tensor:
    """svd_unet.halve_frames with the pair mean as a sum of two slices times 0.5 (XNNPACK's mean
    takes only the last two dims of a 4D tensor); the same numbers: both halve the same sum."""
    BT, C, H, W = h.shape
    v = h.reshape(BT // num_frames, num_frames, C * H * W)  # (B*T, C, H, W) -> (B, T, CHW)
    if num_frames % 2:
        v = torch.cat([v, v[:, -1:]], dim=1)
    v = v.reshape(v.shape[0], -1, 2 * C * H * W)  # (B, T/2, 2 CHW): the pairs side by side
    return ((v[:, :, :C * H * W] + v[:, :, C * H * W:]) * 0.5).reshape(-1, C, H, W)


def double_frames(h: Tensor, num_frames: int, out_frames: int, ones: Tensor) -> Tensor:
    """svd_unet.double_frames with the repeat as a broadcast product with `ones` (1, 1, 2, 1)
    (repeat_interleave and expand stay off XNNPACK, and its concatenation wants distinct inputs)."""
    BT, C, H, W = h.shape
    B = BT // num_frames
    v = h.reshape(B, num_frames, 1, C * H * W) * ones  # (B, T, 2, CHW): frame t at 2t and 2t + 1
    return v.reshape(B, 2 * num_frames, C * H * W)[:, :out_frames].reshape(-1, C, H, W)


class MobileSVDDownsample(nn.Module):
    """svd_unet.Downsample with the mobile halve_frames."""

    def __init__(self, down: svd_unet.Downsample):
        super().__init__()
        self.halve_time, self.conv = down.halve_time, down.conv

    def forward(self, h: Tensor, num_frames: int) -> Tensor:
        return self.conv(halve_frames(h, num_frames) if self.halve_time else h)


class MobileSVDUpsample(nn.Module):
    """svd_unet.Upsample: nearest 2x as a depthwise transposed conv of ones (as MobileUpsample),
    the same 3x3 conv, and the mobile double_frames."""

    def __init__(self, up: svd_unet.Upsample):
        super().__init__()
        self.double_time, self.conv = up.double_time, up.conv
        self.register_buffer("ones", torch.ones(up.conv.in_channels, 1, 2, 2), persistent=False)
        self.register_buffer("pair", torch.ones(1, 1, 2, 1), persistent=False)

    def forward(self, h: Tensor, num_frames: int, out_frames: int) -> Tensor:
        h = self.conv(F.conv_transpose2d(h, self.ones, stride=2, groups=h.shape[1]))
        return double_frames(h, num_frames, out_frames, self.pair) if self.double_time else h


class MobileResnetBlock2D(nn.Module):
    """svd_unet.ResnetBlock2D with the time embedding broadcast through a reshape, not indexing
    with None (unsqueeze stays off XNNPACK)."""

    def __init__(self, block: svd_unet.ResnetBlock2D):
        super().__init__()
        self.norm1, self.conv1, self.time_emb_proj = block.norm1, block.conv1, block.time_emb_proj
        self.norm2, self.conv2, self.conv_shortcut = block.norm2, block.conv2, block.conv_shortcut

    def forward(self, x: Tensor, emb: Tensor, num_frames: int) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        BT, C, H, W = h.shape
        t = self.time_emb_proj(F.silu(emb))  # (B, C)
        h = (h.reshape(BT // num_frames, num_frames, C, H, W) + t.reshape(-1, 1, C, 1, 1)).reshape(BT, C, H, W)
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class MobileTemporalResnetBlock(nn.Module):
    """svd_unet.TemporalResnetBlock with the time embedding broadcast through a reshape."""

    def __init__(self, block: svd_unet.TemporalResnetBlock):
        super().__init__()
        self.norm1, self.conv1, self.time_emb_proj = block.norm1, block.conv1, block.time_emb_proj
        self.norm2, self.conv2, self.gate = block.norm2, block.conv2, block.gate

    def forward(self, v: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(v)))
        h = h + self.time_emb_proj(F.silu(emb)).reshape(h.shape[0], -1, 1, 1, 1)
        return v + self.conv2(F.silu(self.norm2(h)))


MAX_FRAME_POSITIONS = 128  # latent frames (in input-frame units) the mobile position table covers


class MobileTransformerSpatioTemporal(nn.Module):
    """svd_unet.TransformerSpatioTemporalModel with its frame-position embeddings precomputed: the
    position MLP of the sinusoid of 0 .. MAX_FRAME_POSITIONS - 1 is a table, and the positions
    0, s, 2s, ... of a stage with frame stride s are its rows, picked by a reshape and a slice
    (arange, the sinusoid and index arithmetic would stay off XNNPACK). The blend weight
    sigmoid(mix_factor) is a constant too. For export: the table holds the weights of the moment."""

    def __init__(self, model: svd_unet.TransformerSpatioTemporalModel):
        super().__init__()
        self.norm, self.proj_in, self.proj_out = model.norm, model.proj_in, model.proj_out
        self.transformer_blocks, self.temporal_transformer_blocks = model.transformer_blocks, model.temporal_transformer_blocks
        self.has_temporal = model.time_pos_embed is not None
        if self.has_temporal:
            C = model.proj_in.out_features
            with torch.no_grad():
                positions = torch.arange(MAX_FRAME_POSITIONS, dtype=torch.float32)
                table = model.time_pos_embed(svd_unet.timestep_sinusoid(positions, C))  # (P, C)
                alpha = torch.sigmoid(model.time_mixer.mix_factor).reshape(1, 1, 1)
            self.register_buffer("positions", table, persistent=False)
            self.register_buffer("alpha", alpha, persistent=False)

    def forward(self, h: Tensor, context: Tensor, num_frames: int, frame_stride: int) -> Tensor:
        BT, C, H, W = h.shape
        B, T = BT // num_frames, num_frames
        x = self.proj_in(self.norm(h).permute(0, 2, 3, 1).reshape(BT, H * W, C))  # (B*T, H*W, C)
        if self.has_temporal:
            if T * frame_stride > MAX_FRAME_POSITIONS:
                raise ValueError(f"the mobile position table covers {MAX_FRAME_POSITIONS} frame positions, "
                                 f"this stage needs {T * frame_stride}")
            pos = self.positions[:T * frame_stride]
            if frame_stride > 1:  # rows 0, s, 2s, ...: the first column of a (T, s, C) view
                pos = pos.reshape(T, frame_stride, C)[:, :1]
            pos = pos.reshape(1, T, 1, C)
        for k, block in enumerate(self.transformer_blocks):
            x = block(x, context)
            if str(k) in self.temporal_transformer_blocks:
                temporal = self.temporal_transformer_blocks[str(k)]
                x_mix = (x.reshape(B, T, H * W, C) + pos).reshape(BT, H * W, C)
                blended = self.alpha * x + (1.0 - self.alpha) * temporal(x_mix, context, T)
                x = svd_unet.gated(x, blended, temporal.gate)
        x = self.proj_out(x)
        return x.reshape(BT, H, W, C).permute(0, 3, 1, 2) + h  # (B*T, H*W, C) -> (B*T, C, H, W)


class MobileLatentImageEmbedder(nn.Module):
    """i2v.LatentImageEmbedder with the global mean as XNNPACK's (keepdim, over dims 2 and 3) and
    the token axis added by a reshape."""

    def __init__(self, embed: i2v_lib.LatentImageEmbedder):
        super().__init__()
        self.convs, self.proj, self.norm = embed.convs, embed.proj, embed.norm

    def forward(self, z: Tensor) -> Tensor:
        h = _mean23(self.convs(z)).reshape(z.shape[0], -1)  # (B, 2w, H'/2, W'/2) -> (B, 2w)
        return self.norm(self.proj(h)).reshape(z.shape[0], 1, -1)  # (B, 1, dim)


# ----------------------------------------------------------------------------- the swap
def _replacement(module: nn.Module) -> nn.Module | None:
    if isinstance(module, nn.GroupNorm):
        return MobileGroupNorm(module)
    if isinstance(module, nn.LayerNorm):
        return MobileLayerNorm(module)
    if isinstance(module, blocks.RMSNorm):
        return MobileRMSNorm(module)
    if isinstance(module, blocks.Upsample):
        return MobileUpsample(module)
    if isinstance(module, blocks.Attention):
        return MobileAttention(module)
    if isinstance(module, blocks.ResBlock):
        return MobileResBlock(module)
    if isinstance(module, nn.Conv1d):
        return MobileConv1d(module)
    if isinstance(module, BertModel):
        return MobileBert(module)
    if isinstance(module, vae_lib.CausalConv3d):
        return MobileCausalConv3d(module)
    if isinstance(module, nn.Conv3d) and module.kernel_size == (1, 1, 1):
        return MobileConv3d1x1(module)
    if isinstance(module, nn.Conv3d):
        return MobileConv3d(module)
    if isinstance(module, vae_lib.TemporalDecoder):
        return MobileTemporalDecoder(module)
    if isinstance(module, vae_lib.SpatialDecoder):
        return MobileSpatialDecoder(module)
    if isinstance(module, vae_lib.SpatialEncoder):
        return MobileSpatialEncoder(module)
    if isinstance(module, vae_lib.TemporalEncoder):
        return MobileTemporalEncoder(module)
    svd_forms = {svd_unet.Attention: MobileSVDAttention, svd_unet.FeedForward: MobileFeedForward,
                 svd_unet.Downsample: MobileSVDDownsample, svd_unet.Upsample: MobileSVDUpsample,
                 svd_unet.ResnetBlock2D: MobileResnetBlock2D, svd_unet.TemporalResnetBlock: MobileTemporalResnetBlock,
                 svd_unet.TransformerSpatioTemporalModel: MobileTransformerSpatioTemporal,
                 i2v_lib.LatentImageEmbedder: MobileLatentImageEmbedder}
    form = svd_forms.get(type(module))
    return None if form is None else form(module)


def mobile_friendly(module: nn.Module) -> nn.Module:
    """A copy of `module` with every layer above replaced by its delegation-friendly form (the
    original is left alone). Children are swapped before their parents, so a replaced decoder
    holds already-replaced convolutions."""
    module = copy.deepcopy(module)
    _swap(module)
    new = _replacement(module)
    return module if new is None else new


def _swap(parent: nn.Module) -> None:
    for name, child in list(parent.named_children()):
        if not isinstance(child, vae_lib.CausalConv3d):  # it converts its own convs
            _swap(child)
        new = _replacement(child)
        if new is not None:
            setattr(parent, name, new)
