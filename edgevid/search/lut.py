"""Look-up tables of latency and memory, measured on the target runtime (SnapGen-V App. A).

A table is one JSON file keyed by (runtime, threads, machine): a user builds one on their phone's
runtime and searches against it. It holds

    backbone                          the UNet with no temporal layers (the spatial blocks), measured whole
    entries[kind/cC/TxHxW]            one temporal layer of `kind` at width C on a T x H x W latent
    entries[res/iI/oO/hH/TxHxW]       one ResBlock (I -> hidden H -> O channels) on T frames of H x W
    entries[spatial_attn/cC/TxHxW]    one spatial transformer at width C on T frames of H x W

for every temporal layer type and every stage (width, latent resolution) of the base UNet at the
table's latent size; for each of the backbone's ResBlocks at every hidden width of
space.hidden_options, and for each stage's spatial transformer (a spatial search prices a
shrunk backbone as the measured one plus the entries' differences). Each entry has `ms`
(median latency), `peak_bytes` (activation peak of the call, traced on meta tensors:
runtime-independent) and `params`. predict.py sums them.

    table = build_table(UNET_PRESETS["small"], (8, 31, 32, 32), runtime="eager", threads=2)
    table.save("lut.json"); LatencyTable.load("lut.json")
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from edgevid.config import TEMPORAL_LAYER_TYPES, UNetConfig, config_from_dict, config_to_dict
from edgevid.estimate import cpu_name

RUNTIMES = ("eager", "executorch")
CONTEXT_TOKENS = 16  # the prompt length the tables are measured at (MiniLM's padded prompts are ~10-20)


def entry_key(kind: str, channels: int, frames: int, height: int, width: int) -> str:
    return f"{kind}/c{channels}/{frames}x{height}x{width}"


@dataclass
class LatencyTable:
    runtime: str
    threads: int
    machine: str
    torch_version: str
    latent: tuple[int, int, int, int]  # (C, T, H, W) of the base UNet's input, batch 1
    base: UNetConfig  # the backbone the entries were measured for (its temporal layers are ignored)
    backbone: dict  # {"ms", "peak_bytes", "params"}
    entries: dict[str, dict] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        data = {**dataclasses.asdict(self), "base": config_to_dict(self.base), "latent": list(self.latent)}
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            data["base"] = config_from_dict(UNetConfig, data["base"], str(path))
            data["latent"] = tuple(data["latent"])
            return cls(**data)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a look-up table ({e}); build one with `edgevid search lut`") from None

    def entry(self, kind: str, channels: int, frames: int, height: int, width: int) -> dict:
        return self.lookup(entry_key(kind, channels, frames, height, width))

    def lookup(self, key: str) -> dict:
        if key not in self.entries:
            raise ValueError(f"the table has no entry {key}; it was built for other widths, sizes or layer types, "
                             f"or before spatial entries existed (rebuild it with `edgevid search lut` for this UNet)")
        return self.entries[key]


def res_entry_key(in_ch: int, out_ch: int, hidden: int, frames: int, height: int, width: int) -> str:
    return f"res/i{in_ch}/o{out_ch}/h{hidden}/{frames}x{height}x{width}"


def res_block_shapes(base: UNetConfig) -> list[tuple[int, int, int]]:
    """(stage, in channels, out channels) of every down and up ResBlock whose hidden width the
    stage's plan sets, in the order SpatioTemporalUNet builds them (the mid block's are fixed)."""
    ch, n = base.channels, len(base.channels)
    out, skips, width = [], [ch[0]], ch[0]
    for i in range(n):
        for _ in range(base.num_res_blocks[i]):
            out.append((i, width, ch[i]))
            width = ch[i]
            skips.append(width)
        if i < n - 1:
            skips.append(width)  # the downsampler's output
    for i in reversed(range(n)):
        for _ in range(base.num_res_blocks[i] + 1):
            out.append((i, width + skips.pop(), ch[i]))
            width = ch[i]
    return out


def stage_geometry(base: UNetConfig, latent: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """(channels, T, H, W) of each position's temporal layers: stages 0..n-1, then the mid block."""
    C, T, H, W = latent
    n = len(base.channels)
    stages = [(base.channels[i], T, H >> i, W >> i) for i in range(n)]
    return stages + [stages[-1]]


def backbone_config(base: UNetConfig) -> UNetConfig:
    return dataclasses.replace(base, temporal_layers=((),) * len(base.channels), mid_temporal_layers=())


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _trace_peak(module: nn.Module, inputs: tuple) -> int:
    import copy

    from edgevid.estimate import trace

    meta = copy.deepcopy(module).to("meta")
    meta_inputs = tuple(x.to("meta") if isinstance(x, torch.Tensor) else x for x in inputs)
    with torch.no_grad():
        return trace(lambda *a: meta(*a), *meta_inputs).peak


def module_timer(module: nn.Module, inputs: tuple, runtime: str, threads: int, calls: int = 3) -> Callable[[], float]:
    """A zero-argument function that times `module(*inputs)` on `runtime`: the median of `calls`
    calls, in ms, after a warm-up call. The module is frozen and (ExecuTorch) exported once, here,
    so that timers of several modules can be run in interleaved rounds."""
    torch.set_num_threads(threads)
    module = module.eval().requires_grad_(False)  # torch.export's decompositions fail on trainable params here
    if runtime == "eager":
        def run() -> float:
            with torch.no_grad():
                return 1e3 * median_seconds(lambda: module(*inputs), calls)
        return run
    if runtime == "executorch":
        from edgevid.export.formats import export_executorch
        from edgevid.export.mobile import mobile_friendly
        from edgevid.export.runner import _ExecuTorch

        folder = tempfile.TemporaryDirectory(prefix="edgevid_lut_")  # removed with the timer
        path = Path(folder.name) / "layer.pte"
        with torch.no_grad():
            # frozen after the swap too: the mobile forms build some layers anew (Conv1d, Conv3d)
            export_executorch(mobile_friendly(module).eval().requires_grad_(False), inputs,
                              [f"in{i}" for i in range(len(inputs))], ["out"], path)
        program, arrays = _ExecuTorch(path, threads), [x.numpy() for x in inputs]

        def run() -> float:
            return 1e3 * median_seconds(lambda: program(*arrays), calls)
        run.folder = folder  # the program's folder lives as long as the timer
        return run
    raise ValueError(f"unknown runtime {runtime!r}; choose from {RUNTIMES}")


def time_module(module: nn.Module, inputs: tuple, runtime: str, threads: int, repeats: int) -> float:
    """Median latency in ms of module(*inputs) on `runtime`, after a warm-up call."""
    return module_timer(module, inputs, runtime, threads, repeats)()


def build_table(base: UNetConfig, latent: tuple[int, int, int, int], runtime: str = "eager", threads: int = 1,
                repeats: int = 5, kinds: tuple[str, ...] = TEMPORAL_LAYER_TYPES, seed: int = 0,
                progress: Callable[[str], None] | None = None) -> LatencyTable:
    """Measure the backbone and every (kind, stage geometry) entry. Weights are random (seeded):
    latency does not depend on their values."""
    from edgevid.compiled import DenoiserStep
    from edgevid.models.blocks import TEMPORAL_LAYERS, AttnSpec
    from edgevid.models.unet import SpatioTemporalUNet

    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose from {RUNTIMES}")
    C, T, H, W = latent
    if C != base.in_channels or H % base.downsample_factor or W % base.downsample_factor:
        raise ValueError(f"latent {latent} does not fit the UNet (in_channels {base.in_channels}, sizes divisible "
                         f"by {base.downsample_factor})")
    torch.manual_seed(seed)
    say = progress or (lambda s: None)
    context = torch.randn(1, CONTEXT_TOKENS, base.text_dim)
    backbone = DenoiserStep(SpatioTemporalUNet(backbone_config(base))).eval()
    inputs = unet_inputs(base, latent)
    say("backbone")
    table = LatencyTable(runtime=runtime, threads=threads, machine=cpu_name(), torch_version=torch.__version__,
                         latent=(C, T, H, W), base=base, backbone={
                             "ms": time_module(backbone, inputs, runtime, threads, repeats),
                             "peak_bytes": _trace_peak(backbone, inputs),
                             "params": sum(p.numel() for p in backbone.parameters())})
    spec = AttnSpec(head_dim=base.head_dim, qk_norm=base.qk_norm, rope=base.rope)
    geometry = stage_geometry(base, latent)
    for ch, t, h, w in dict.fromkeys(geometry):
        for kind in kinds:
            key = entry_key(kind, ch, t, h, w)
            say(key)
            layer = TEMPORAL_LAYERS[kind](ch, context_dim=base.text_dim, spec=spec, groups=base.norm_groups).eval()
            layer_inputs = (torch.randn(1, ch, t, h, w), context)
            table.entries[key] = {"ms": time_module(layer, layer_inputs, runtime, threads, repeats),
                                  "peak_bytes": _trace_peak(layer, layer_inputs),
                                  "params": sum(p.numel() for p in layer.parameters())}
    _measure_spatial_entries(table, context, spec, repeats, say)
    return table


class _Transformer(nn.Module):
    """A spatial transformer with its frame count fixed (a runtime's inputs are tensors only)."""

    def __init__(self, layer: nn.Module, num_frames: int):
        super().__init__()
        self.layer, self.num_frames = layer, num_frames

    def forward(self, x, context, mask):
        return self.layer(x, context, mask, self.num_frames)


def _measure_spatial_entries(table: LatencyTable, context, spec, repeats: int, say) -> None:
    """The ResBlocks at every hidden option and the spatial transformers (module docstring)."""
    from edgevid.models.blocks import ResBlock, SpatialTransformer
    from edgevid.search.space import SpatialPlan, hidden_options

    base, (_, T, H, W) = table.base, table.latent
    own = SpatialPlan.from_config(base)
    emb = torch.randn(1, base.time_embed_dim)
    for stage, cin, cout in dict.fromkeys(res_block_shapes(base)):
        h, w = H >> stage, W >> stage
        x = torch.randn(T, cin, h, w)
        for hidden in hidden_options(own.hidden[stage], base.norm_groups):
            key = res_entry_key(cin, cout, hidden, T, h, w)
            say(key)
            block = ResBlock(cin, cout, base.time_embed_dim, base.norm_groups, hidden).eval()
            table.entries[key] = _entry(block, (x, emb), table.runtime, table.threads, repeats)
    mask = torch.ones(1, CONTEXT_TOKENS, dtype=torch.bool)
    for ch, t, h, w in dict.fromkeys(g for g, a in zip(stage_geometry(base, table.latent), own.attention) if a):
        key = entry_key("spatial_attn", ch, t, h, w)
        say(key)
        layer = _Transformer(SpatialTransformer(ch, base.text_dim, spec), t).eval()
        table.entries[key] = _entry(layer, (torch.randn(t, ch, h, w), context, mask), table.runtime, table.threads,
                                    repeats)


def _entry(module: nn.Module, inputs: tuple, runtime: str, threads: int, repeats: int) -> dict:
    return {"ms": time_module(module, inputs, runtime, threads, repeats), "peak_bytes": _trace_peak(module, inputs),
            "params": sum(p.numel() for p in module.parameters())}


def plan_timer(table: LatencyTable, plan, calls: int = 3, seed: int = 0) -> Callable[[], float]:
    """module_timer of the whole UNet of `plan` on the table's runtime, threads and latent size."""
    from edgevid.compiled import DenoiserStep
    from edgevid.models.unet import SpatioTemporalUNet

    torch.manual_seed(seed)
    unet = DenoiserStep(SpatioTemporalUNet(plan.to_config(table.base))).eval()
    return module_timer(unet, unet_inputs(table.base, table.latent), table.runtime, table.threads, calls)


def measure_plan(table: LatencyTable, plan, repeats: int = 5, seed: int = 0) -> float:
    """The whole UNet of `plan` timed on the table's runtime, threads and latent size (ms): what
    predict.predict must match (the additive model's validation)."""
    return plan_timer(table, plan, repeats, seed)()


def measure_plan_rounds(table: LatencyTable, plans: list, rounds: int = 3, calls: int = 3) -> list[list[float]]:
    """Each plan's UNet timed as in measure_plan, in `rounds` interleaved rounds (every plan once
    per round, median of `calls` calls): every plan's reading of every round (ms), so that a
    benchmark can show how far the rounds spread."""
    timers = [plan_timer(table, plan, calls) for plan in plans]
    times: list[list[float]] = [[] for _ in plans]
    for _ in range(rounds):
        for timer, ts in zip(timers, times):
            ts.append(timer())
    return times


def measure_plans(table: LatencyTable, plans: list, rounds: int = 3, calls: int = 3) -> list[float]:
    """The median over measure_plan_rounds' rounds (ms): a slow moment of a shared machine then
    hits every plan alike instead of all of one plan's calls."""
    return [statistics.median(ts) for ts in measure_plan_rounds(table, plans, rounds, calls)]


def unet_inputs(base: UNetConfig, latent: tuple[int, int, int, int]) -> tuple:
    """(x, context, mask, temb) of one denoiser call, as the sampler and the exporter make it: the
    time embedding precomputed (SnapGen-V App. F, edgevid.compiled.DenoiserStep)."""
    return (torch.randn(1, *latent), torch.randn(1, CONTEXT_TOKENS, base.text_dim),
            torch.ones(1, CONTEXT_TOKENS, dtype=torch.bool), torch.randn(1, base.time_embed_dim))
