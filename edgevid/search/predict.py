"""A temporal plan's cost from a look-up table: the additive model of SnapGen-V App. A.

    latency = backbone + sum over positions of (layers there) x (blocks at the position) x entry
    params  = backbone + the same sum of entry params                       (exact)
    peak    = backbone peak + the largest entry peak among the plan's layers (an estimate: a layer's
              working memory comes on top of what the backbone holds at that moment)

Blocks at a position: stage i runs its temporal layers after each of its num_res_blocks[i] down
blocks and num_res_blocks[i] + 1 up blocks; the mid block once.
"""
from __future__ import annotations

from typing import NamedTuple

from edgevid.search.lut import LatencyTable, stage_geometry
from edgevid.search.space import TemporalPlan


class Cost(NamedTuple):
    ms: float
    peak_bytes: int
    params: int


def blocks_per_position(table: LatencyTable) -> list[int]:
    return [2 * n + 1 for n in table.base.num_res_blocks] + [1]


def predict(table: LatencyTable, plan: TemporalPlan) -> Cost:
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
    return Cost(ms, table.backbone["peak_bytes"] + peak, params)
