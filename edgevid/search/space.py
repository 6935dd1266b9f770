"""The search space: a temporal plan says, per position (each UNet stage, down and up path
together, then the mid block), which temporal layer type it uses and how many of it. One type per
position (SnapGen-V Alg. A1 never mixes types at a position), at most MAX_PER_POSITION copies.

    plan = TemporalPlan.from_config(UNET_PRESETS["small"])   # (conv1d x1, self_attn1d x1, self_attn1d x1 | mid self_attn1d x1)
    plan.to_config(base)                                      # the UNetConfig with these temporal layers
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgevid.config import TEMPORAL_LAYER_TYPES, UNetConfig

MAX_PER_POSITION = 3  # the paper's search repeats a layer up to a few times per resolution


@dataclass(frozen=True)
class TemporalPlan:
    """positions[i] = (kind, count) for stage i (i < n) and the mid block (i = n); (None, 0) = none."""
    positions: tuple[tuple[str | None, int], ...]

    def __post_init__(self):
        for kind, count in self.positions:
            if (kind is None) != (count == 0) or not 0 <= count <= MAX_PER_POSITION:
                raise ValueError(f"a position is (kind, 1..{MAX_PER_POSITION}) or (None, 0), got {(kind, count)}")
            if kind is not None and kind not in TEMPORAL_LAYER_TYPES:
                raise ValueError(f"unknown temporal layer {kind!r}; choose from {TEMPORAL_LAYER_TYPES}")

    @property
    def key(self) -> str:
        """A stable name, e.g. 'conv1d1-self_attn1d1-self_attn1d1|self_attn1d1' (caches, plots)."""
        parts = [f"{k}{c}" if k else "none" for k, c in self.positions]
        return "-".join(parts[:-1]) + "|" + parts[-1]

    @classmethod
    def from_key(cls, key: str) -> "TemporalPlan":
        """The inverse of `key`: 'conv1d1-self_attn1d3-none|self_attn1d1' -> its plan."""
        import re

        stages, sep, mid = key.partition("|")
        if not sep:
            raise ValueError(f"a plan key is 'stage-stage-...|mid', e.g. 'conv1d1-self_attn1d1-none|self_attn1d1'; got {key!r}")
        positions = []
        for part in (*stages.split("-"), mid):
            m = re.fullmatch(r"([a-z0-9_]+?)(\d+)", part)
            if part == "none":
                positions.append((None, 0))
            elif m:
                positions.append((m.group(1), int(m.group(2))))
            else:
                raise ValueError(f"cannot read {part!r} in plan key {key!r}: expected 'none' or a layer type and a count")
        return cls(tuple(positions))

    @classmethod
    def from_config(cls, config: UNetConfig) -> "TemporalPlan":
        positions = []
        for layers in (*config.temporal_layers, config.mid_temporal_layers):
            kinds = set(layers)
            if len(kinds) > 1:
                raise ValueError(f"the search space has one temporal layer type per position; this config "
                                 f"mixes {sorted(kinds)}")
            positions.append((layers[0], len(layers)) if layers else (None, 0))
        return cls(tuple(positions))

    def to_config(self, base: UNetConfig) -> UNetConfig:
        n = len(base.channels)
        if len(self.positions) != n + 1:
            raise ValueError(f"the plan has {len(self.positions)} positions, the UNet {n} stages + mid")
        layers = tuple((k,) * c if k else () for k, c in self.positions)
        return dataclasses.replace(base, temporal_layers=layers[:n], mid_temporal_layers=layers[n])


@dataclass(frozen=True)
class Action:
    """Add or remove one layer of `kind` at `position` (SnapGen-V Alg. A1's action set)."""
    op: str  # "add" | "remove"
    kind: str
    position: int

    def apply(self, plan: TemporalPlan) -> TemporalPlan:
        positions = list(plan.positions)
        kind, count = positions[self.position]
        if self.op == "add":
            if kind not in (None, self.kind):
                raise ValueError(f"position {self.position} holds {kind}: adding {self.kind} would mix types")
            if count >= MAX_PER_POSITION:
                raise ValueError(f"position {self.position} already holds {MAX_PER_POSITION} layers")
            positions[self.position] = (self.kind, count + 1)
        else:
            if kind != self.kind:
                raise ValueError(f"position {self.position} holds no {self.kind} to remove")
            positions[self.position] = (kind, count - 1) if count > 1 else (None, 0)
        return TemporalPlan(tuple(positions))

    def __str__(self) -> str:
        return f"{self.op} {self.kind} @ {self.position}"


def actions(plan: TemporalPlan, kinds: tuple[str, ...] = TEMPORAL_LAYER_TYPES) -> list[Action]:
    """Every legal action from `plan`: add a layer where the position is empty or holds the same
    type (and has room), remove one where the type is present. Never a mixed position."""
    out = []
    for i, (kind, count) in enumerate(plan.positions):
        if kind is None:
            out += [Action("add", k, i) for k in kinds]
        else:
            if count < MAX_PER_POSITION:
                out.append(Action("add", kind, i))
            out.append(Action("remove", kind, i))
    return out
