"""OOM / latency elimination and the temporal-layer search (SnapGen-V App. A, Alg. A1).

Coarse stage: every plan of the space whose predicted peak memory exceeds the memory budget is
dropped (OOM elimination), then every plan over the latency budget (`eliminate`).

Fine stage (`search`): evolve from the current plan by one action at a time. Each legal action
(add / remove a SelfAttnND, CrossAttnND or ConvND layer at a position, never mixing types at a
position) is valued by dQ/dLatency and dQ/dMemory, with dQ from `quality(plan)` (cached by the
plan's key) and the costs from the look-up table:

    1. the current plan is over the latency budget -> the removal that loses least quality per
       millisecond saved;
    2. otherwise a move that is not worse and saves latency (dQ >= 0, dLat < 0), the most saving;
    3. otherwise the addition with the best dQ/dLat (ties: dQ/dMemory) among those that gain
       quality and stay within both budgets;
    4. none: the plan is a local optimum and the search stops.
Every evaluated plan is kept (`SearchResult.evaluated`) for the Pareto plot.

A plan with spatial blocks (space.SpatialPlan, `edgevid search run --spatial`) adds the spatial
actions: drop or restore a position's spatial transformer, narrow or widen a stage's ResBlocks.
Removals of either kind save latency, so rules 1-3 treat them alike.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Callable

from edgevid.config import TEMPORAL_LAYER_TYPES
from edgevid.search.lut import LatencyTable
from edgevid.search.predict import Cost, predict
from edgevid.search.space import MAX_PER_POSITION, Action, SpatialPlan, UNetPlan, actions


def all_plans(num_positions: int, kinds: tuple[str, ...] = TEMPORAL_LAYER_TYPES,
              max_per_position: int = MAX_PER_POSITION, spatial: list[SpatialPlan] | None = None) -> list[UNetPlan]:
    """Every temporal plan, times every spatial plan of `spatial` when given (space.spatial_plans)."""
    options = [(None, 0)] + [(k, c) for k in kinds for c in range(1, max_per_position + 1)]
    return [UNetPlan(p, s) for s in (spatial or [None]) for p in itertools.product(options, repeat=num_positions)]


def eliminate(plans: list[UNetPlan], table: LatencyTable, memory_budget: float | None = None,
              latency_budget: float | None = None) -> tuple[list[UNetPlan], int, int]:
    """(plans within both budgets, number dropped for memory, number then dropped for latency).
    Budgets: memory in bytes (activations + fp32 weights), latency in ms; None = no limit."""
    kept, oom, slow = [], 0, 0
    for plan in plans:
        cost = predict(table, plan)
        if memory_budget is not None and memory_bytes(cost) > memory_budget:
            oom += 1
        elif latency_budget is not None and cost.ms > latency_budget:
            slow += 1
        else:
            kept.append(plan)
    return kept, oom, slow


def eliminate_counts(plans: list[UNetPlan], table: LatencyTable, spatial: list[SpatialPlan],
                     memory_budget: float | None = None, latency_budget: float | None = None) -> tuple[int, int, int]:
    """`eliminate`'s three counts over every (temporal plan of `plans`) x (spatial plan of `spatial`),
    without building the product (12.5 M plans for `small`): a spatial plan moves every temporal
    plan's latency and parameters by the same amounts (predict.spatial_difference)."""
    import numpy as np

    from edgevid.search.predict import spatial_difference

    costs = [predict(table, p) for p in plans]
    ms = np.array([c.ms for c in costs])
    memory = np.array([memory_bytes(c) for c in costs], dtype=np.float64)
    kept = oom = slow = 0
    for s in spatial:
        d_ms, d_params = spatial_difference(table, s)
        over_memory = memory + 4 * d_params > memory_budget if memory_budget is not None else np.zeros(len(ms), bool)
        over_latency = ms + d_ms > latency_budget if latency_budget is not None else np.zeros(len(ms), bool)
        oom += int(over_memory.sum())
        slow += int((over_latency & ~over_memory).sum())
        kept += int((~over_latency & ~over_memory).sum())
    return kept, oom, slow


def memory_bytes(cost: Cost) -> int:
    return cost.peak_bytes + 4 * cost.params  # fp32 weights stay resident


@dataclass
class Evaluated:
    plan: UNetPlan
    quality: float
    cost: Cost


@dataclass
class SearchResult:
    best: Evaluated
    path: list[tuple[str, Evaluated]]  # (action taken, plan after it), from the start
    evaluated: dict[str, Evaluated] = field(default_factory=dict)  # every plan scored, by key


def choose(current: Evaluated, moves: list[tuple[Action, Evaluated]], latency_budget: float | None
           ) -> tuple[Action, Evaluated] | None:
    """Rules 1-4 of the module docstring over already-evaluated moves (each within the memory
    budget; additions also within the latency budget)."""
    def d(m):
        return m[1].quality - current.quality, m[1].cost.ms - current.cost.ms, \
            memory_bytes(m[1].cost) - memory_bytes(current.cost)

    if latency_budget is not None and current.cost.ms > latency_budget:
        removals = [m for m in moves if m[0].op == "remove" and d(m)[1] < 0]
        return min(removals, key=lambda m: -d(m)[0] / -d(m)[1]) if removals else None
    savers = [m for m in moves if d(m)[0] >= 0 and d(m)[1] < 0]
    if savers:
        return min(savers, key=lambda m: d(m)[1])
    gains = [m for m in moves if d(m)[0] > 0 and d(m)[1] > 0
             and (latency_budget is None or m[1].cost.ms <= latency_budget)]
    if gains:
        return max(gains, key=lambda m: (d(m)[0] / d(m)[1], d(m)[0] / max(d(m)[2], 1)))
    return None


def search(table: LatencyTable, start: UNetPlan, quality: Callable[[UNetPlan], float], *,
           latency_budget: float | None = None, memory_budget: float | None = None, max_iterations: int = 10,
           kinds: tuple[str, ...] = TEMPORAL_LAYER_TYPES, sample_actions: int | None = None, seed: int = 0,
           log: Callable[[str], None] | None = None) -> SearchResult:
    """Alg. A1 from `start`. `sample_actions` evaluates only a random subset of that many legal
    actions per iteration (the evolutionary variant, when quality is expensive)."""
    rng, say = random.Random(seed), log or (lambda s: None)
    evaluated: dict[str, Evaluated] = {}

    def evaluate(plan: UNetPlan) -> Evaluated:
        if plan.key not in evaluated:
            evaluated[plan.key] = Evaluated(plan, float(quality(plan)), predict(table, plan))
        return evaluated[plan.key]

    current = evaluate(start)
    path = [("start", current)]
    for it in range(max_iterations):
        legal = actions(current.plan, kinds, table.base)
        if latency_budget is not None and current.cost.ms > latency_budget:
            legal = [a for a in legal if a.op == "remove"]  # rule 1 takes only removals: sample among them
        if sample_actions is not None and len(legal) > sample_actions:
            legal = rng.sample(legal, sample_actions)
        moves = []
        for action in legal:
            plan = action.apply(current.plan, table.base)
            cost = predict(table, plan)
            if memory_budget is not None and memory_bytes(cost) > memory_budget:
                continue  # OOM elimination before paying for its quality
            if action.op == "add" and latency_budget is not None and cost.ms > latency_budget:
                continue
            moves.append((action, evaluate(plan)))
        chosen = choose(current, moves, latency_budget)
        if chosen is None:
            say(f"iteration {it + 1}: no move improves {current.plan.key}; stop")
            break
        action, current = chosen
        path.append((str(action), current))
        say(f"iteration {it + 1}: {action} -> {current.plan.key} (quality {current.quality:.3f}, "
            f"{current.cost.ms:.1f} ms)")
    within = [e for e in evaluated.values() if (latency_budget is None or e.cost.ms <= latency_budget)
              and (memory_budget is None or memory_bytes(e.cost) <= memory_budget)]
    best = max(within or [current], key=lambda e: (e.quality, -e.cost.ms))
    return SearchResult(best, path, evaluated)


def pareto_front(points: list[Evaluated]) -> list[Evaluated]:
    """The evaluated plans no other beats on both quality (higher) and latency (lower)."""
    front = [p for p in points if not any(
        (q.quality >= p.quality and q.cost.ms < p.cost.ms) or (q.quality > p.quality and q.cost.ms <= p.cost.ms)
        for q in points)]
    return sorted(front, key=lambda p: p.cost.ms)
