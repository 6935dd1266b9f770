"""A plan's cost from a look-up table: the additive model of SnapGen-V App. A.

    latency = backbone + sum over positions of (layers there) x (blocks at the position) x entry
              + the spatial plan's differences from the backbone: for each ResBlock, its entry at
              the plan's hidden width minus its entry at the backbone's; for each position whose
              spatial transformer the plan drops, minus (blocks at the position) x its entry
    params  = backbone + the same sums of entry params                      (exact)
    peak    = backbone peak + the largest entry peak among the plan's layers (an estimate: a layer's
              working memory comes on top of what the backbone holds at that moment; a shrunk
              backbone keeps the full one's peak, an upper bound)

Blocks at a position: stage i runs its temporal layers (and spatial transformer, if any) after
each of its num_res_blocks[i] down blocks and num_res_blocks[i] + 1 up blocks; the mid block once.
"""
from __future__ import annotations

from typing import NamedTuple

from edgevid.search.lut import LatencyTable, entry_key, res_block_shapes, res_entry_key, stage_geometry
from edgevid.search.space import SpatialPlan, UNetPlan


class Cost(NamedTuple):
    ms: float
    peak_bytes: int
    params: int


def blocks_per_position(table: LatencyTable) -> list[int]:
    return [2 * n + 1 for n in table.base.num_res_blocks] + [1]


def predict(table: LatencyTable, plan: UNetPlan) -> Cost:
    geometry = stage_geometry(table.base, table.latent)
    if len(plan.positions) != len(geometry):
        raise ValueError(f"the plan has {len(plan.positions)} positions, the table's UNet {len(geometry)}")
    ms, params, peak = table.backbone["ms"], table.backbone["params"], 0
    for (kind, count), blocks, (ch, t, h, w) in zip(plan.positions, blocks_per_position(table), geometry):
        if kind is None:
            continue
        e = table.entry(kind, ch, t, h, w)
        ms += count * blocks * e["ms"]
        params += count * blocks * e["params"]
        peak = max(peak, e["peak_bytes"])
    if plan.spatial is not None:
        d_ms, d_params = spatial_difference(table, plan.spatial)
        ms, params = ms + d_ms, params + d_params
    return Cost(ms, table.backbone["peak_bytes"] + peak, params)


def spatial_difference(table: LatencyTable, spatial: SpatialPlan) -> tuple[float, int]:
    """(ms, params) of `spatial` minus those of the backbone's own spatial blocks."""
    spatial.check_within(table.base)
    own = SpatialPlan.from_config(table.base)
    geometry = stage_geometry(table.base, table.latent)
    ms, params = 0.0, 0
    for stage, cin, cout in res_block_shapes(table.base):
        if spatial.hidden[stage] != own.hidden[stage]:
            _, t, h, w = geometry[stage]
            new = table.lookup(res_entry_key(cin, cout, spatial.hidden[stage], t, h, w))
            old = table.lookup(res_entry_key(cin, cout, own.hidden[stage], t, h, w))
            ms, params = ms + new["ms"] - old["ms"], params + new["params"] - old["params"]
    for kept, had, blocks, (ch, t, h, w) in zip(spatial.attention, own.attention, blocks_per_position(table), geometry):
        if had and not kept:
            e = table.lookup(entry_key("spatial_attn", ch, t, h, w))
            ms, params = ms - blocks * e["ms"], params - blocks * e["params"]
    return ms, params
