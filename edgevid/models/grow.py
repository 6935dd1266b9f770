"""Function-preserving growth of a trained network: a wider copy that computes the same function.

Net2WiderNet (Chen et al., 2016) for the project's UNets: every channel of a widened layer is
duplicated, and the layers that read it divide their weights by the number of copies, so the
output is unchanged. Training then needs the copies to differ, so the weights that read a copy
get -delta and those that read its original +delta (their sum, and hence the output, stays the
same) and the copies' gradients differ from the first step.

Why duplication and not zero-padding: GroupNorm. With the group count fixed, a width of 2C puts
4 channels in a group where C had 2; duplicating channel c as (c, c) keeps every group's mean
and variance, zero channels would not.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def widening_index(old: int, new: int) -> Tensor:
    """Which old channel each of `new` channels copies. `new = k * old`: every channel k times,
    side by side. `old < new < 2 * old`: a concatenation whose first `2 * old - new` channels
    keep their width and whose last `new - old` are doubled."""
    if new > old and new % old == 0:
        return torch.arange(new) // (new // old)
    if not old < new < 2 * old:
        raise ValueError(f"cannot widen a dimension of {old} to {new}: need a multiple of it, or less than twice it")
    keep = 2 * old - new
    return torch.cat([torch.arange(keep), keep + torch.arange(2 * (old - keep)) // 2])


def _widen(value: Tensor, dim: int, index: Tensor, reads: bool, noise: float, generator) -> Tensor:
    """Copy `value`'s slices along `dim` by `index`. A dimension the layer reads (a weight's
    input dimension) is divided by the number of copies, and each extra copy gets -delta, its first copy +delta."""
    out = value.index_select(dim, index)
    if not reads:
        return out
    copies = torch.bincount(index, minlength=value.shape[dim]).to(value.dtype)
    shape = [1] * value.ndim
    shape[dim] = -1
    out = out / copies[index].view(shape)
    if noise > 0:
        lead = torch.ones(len(index), dtype=torch.bool)
        lead[1:] = index[1:] != index[:-1]  # the first copy of each channel; the others follow it
        first = torch.cummax(torch.where(lead, torch.arange(len(index)), 0), dim=0).values
        extra = (~lead).nonzero().flatten()  # every later copy moves by -delta, its first copy by +delta
        if len(extra):
            shape = list(out.shape)
            shape[dim] = len(extra)
            delta = noise * out.std() * torch.randn(shape, generator=generator)
            out.index_add_(dim, first[extra], delta)
            out.index_add_(dim, extra, -delta)
    return out


def widen_into(source: nn.Module, target: nn.Module, *, noise: float = 0.1, seed: int = 0,
               chunked: dict[str, int] | None = None) -> list[str]:
    """Load `source`'s weights into the wider `target` (same architecture, wider layers),
    so that `target` computes what `source` did. Returns the names of the widened tensors.

    A parameter's dim 0 is what it writes (copied); a weight's dim 1 is what it reads (copied and
    divided). `chunked` names parameters whose dim 0 is several same-size tensors side by side
    (a ResBlock's time projection -> (scale, shift)): each part is widened on its own. Buffers
    and every other parameter must match in shape. `noise` breaks the symmetry of the copies
    (relative to each weight's std; 0 = plain copies, which would stay identical in training).
    """
    generator = torch.Generator().manual_seed(seed)
    old, new = source.state_dict(), target.state_dict()
    if set(old) != set(new):
        raise ValueError(f"widening needs the same layers: only in source {sorted(set(old) - set(new))[:5]}, "
                         f"only in target {sorted(set(new) - set(old))[:5]}")
    chunked = chunked or {}
    widened, state = [], {}
    for name, value in old.items():
        want = new[name].shape
        if value.ndim != len(want):
            raise ValueError(f"{name}: {tuple(value.shape)} cannot become {tuple(want)}")
        for dim in range(value.ndim):
            if value.shape[dim] == want[dim]:
                continue
            parts = chunked.get(name, 1) if dim == 0 else 1
            pieces = value.chunk(parts, dim=0) if parts > 1 else (value,)
            index = widening_index(pieces[0].shape[dim], want[dim] // parts)
            value = torch.cat([_widen(p, dim, index, dim == 1, noise, generator) for p in pieces], dim=dim)
        if value.shape != want:
            raise ValueError(f"{name}: {tuple(old[name].shape)} cannot become {tuple(want)}")
        if value.shape != old[name].shape:
            widened.append(name)
        state[name] = value
    target.load_state_dict(state)
    return widened


def unet_chunked(model: nn.Module) -> dict[str, int]:
    """The UNet parameters whose dim 0 is (scale, shift): every ResBlock's time projection."""
    from edgevid.models.blocks import ResBlock

    return {f"{name}.emb.{p}": 2 for name, m in model.named_modules() if isinstance(m, ResBlock)
            for p in ("weight", "bias")}
