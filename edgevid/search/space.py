"""The search space. A plan says, per position (each UNet stage, down and up path together, then
the mid block), which temporal layer type it uses and how many of it: one type per position
(SnapGen-V Alg. A1 never mixes types at a position), at most MAX_PER_POSITION copies. A plan may
also carry the spatial blocks (`SpatialPlan`): which stages keep their spatial transformer, and
the hidden width of each stage's ResBlocks. Spatial actions only shrink the trained backbone or
undo a shrink (search/quality.py inherits every candidate's weights from it).

    plan = UNetPlan.from_config(UNET_PRESETS["small"])   # (conv1d x1, self_attn1d x1, self_attn1d x1 | mid self_attn1d x1)
    plan.to_config(base)                                  # the UNetConfig with these temporal layers
    UNetPlan.from_config(base, spatial=True).key          # '...|self_attn1d1+sa0111-h32.64.160'
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from edgevid.config import TEMPORAL_LAYER_TYPES, UNetConfig

MAX_PER_POSITION = 3  # the paper's search repeats a layer up to a few times per resolution
SPATIAL_KINDS = ("spatial_attn", "res_hidden")  # the spatial actions' "kinds"
HIDDEN_FRACTIONS = (1, 2, 4)  # a stage's ResBlock hidden width: the base's, its half or its quarter


def hidden_options(width: int, groups: int) -> tuple[int, ...]:
    """The hidden widths a stage of base width `width` may take, widest first (GroupNorm needs a
    multiple of `groups`)."""
    return tuple(w for w in dict.fromkeys(width // f for f in HIDDEN_FRACTIONS) if w >= groups and w % groups == 0)


@dataclass(frozen=True)
class SpatialPlan:
    """attention[i]: stage i keeps its spatial transformer (i = n: the mid block's); hidden[i]: the
    hidden width of stage i's ResBlocks (UNetConfig.res_hidden_channels)."""
    attention: tuple[bool, ...]
    hidden: tuple[int, ...]

    def __post_init__(self):
        if len(self.attention) != len(self.hidden) + 1:
            raise ValueError(f"a spatial plan has one attention flag per stage plus the mid block, and one hidden "
                             f"width per stage; got {len(self.attention)} flags and {len(self.hidden)} widths")

    @property
    def key(self) -> str:
        return "sa" + "".join("1" if a else "0" for a in self.attention) + "-h" + ".".join(map(str, self.hidden))

    @classmethod
    def from_key(cls, key: str) -> "SpatialPlan":
        m = re.fullmatch(r"sa([01]+)-h(\d+(?:\.\d+)*)", key)
        if not m:
            raise ValueError(f"cannot read the spatial part {key!r}: expected e.g. 'sa0111-h32.64.160' (attention per "
                             f"stage and mid, ResBlock hidden width per stage)")
        return cls(tuple(c == "1" for c in m.group(1)), tuple(int(h) for h in m.group(2).split(".")))

    @classmethod
    def from_config(cls, config: UNetConfig) -> "SpatialPlan":
        return cls((*config.spatial_attention, config.mid_attention),
                   tuple(config.res_hidden_channels or config.channels))

    def check_within(self, base: UNetConfig) -> None:
        """Only shrinks of `base`: attention where it has some, hidden widths among hidden_options."""
        own = SpatialPlan.from_config(base)
        if len(self.hidden) != len(own.hidden):
            raise ValueError(f"the spatial plan has {len(self.hidden)} stages, the UNet {len(own.hidden)}")
        for i, (a, b) in enumerate(zip(self.attention, own.attention)):
            if a and not b:
                raise ValueError(f"the spatial plan adds attention at position {i}, which the backbone has not "
                                 "(a candidate can only inherit what the backbone trained)")
        for i, (h, b) in enumerate(zip(self.hidden, own.hidden)):
            if h not in hidden_options(b, base.norm_groups):
                raise ValueError(f"stage {i}: hidden width {h} is not one of {hidden_options(b, base.norm_groups)}")


@dataclass(frozen=True)
class UNetPlan:
    """positions[i] = (kind, count) for stage i (i < n) and the mid block (i = n); (None, 0) = none.
    spatial: the spatial blocks, or None when the search leaves them as the backbone has them."""
    positions: tuple[tuple[str | None, int], ...]
    spatial: SpatialPlan | None = None

    def __post_init__(self):
        for kind, count in self.positions:
            if (kind is None) != (count == 0) or not 0 <= count <= MAX_PER_POSITION:
                raise ValueError(f"a position is (kind, 1..{MAX_PER_POSITION}) or (None, 0), got {(kind, count)}")
            if kind is not None and kind not in TEMPORAL_LAYER_TYPES:
                raise ValueError(f"unknown temporal layer {kind!r}; choose from {TEMPORAL_LAYER_TYPES}")
        if self.spatial is not None and len(self.spatial.attention) != len(self.positions):
            raise ValueError(f"the spatial plan has {len(self.spatial.attention)} positions, the temporal one "
                             f"{len(self.positions)}")

    @property
    def key(self) -> str:
        """A stable name, e.g. 'conv1d1-self_attn1d1-self_attn1d1|self_attn1d1' (caches, plots), with
        '+' and the spatial plan's key when it has one."""
        parts = [f"{k}{c}" if k else "none" for k, c in self.positions]
        key = "-".join(parts[:-1]) + "|" + parts[-1]
        return key if self.spatial is None else f"{key}+{self.spatial.key}"

    @classmethod
    def from_key(cls, key: str) -> "UNetPlan":
        """The inverse of `key`: 'conv1d1-self_attn1d3-none|self_attn1d1' -> its plan."""
        key, plus, spatial_key = key.partition("+")
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
        return cls(tuple(positions), SpatialPlan.from_key(spatial_key) if plus else None)

    @classmethod
    def from_config(cls, config: UNetConfig, spatial: bool = False) -> "UNetPlan":
        """The config's plan; `spatial=True` also records its spatial blocks (a spatial search)."""
        positions = []
        for layers in (*config.temporal_layers, config.mid_temporal_layers):
            kinds = set(layers)
            if len(kinds) > 1:
                raise ValueError(f"the search space has one temporal layer type per position; this config "
                                 f"mixes {sorted(kinds)}")
            positions.append((layers[0], len(layers)) if layers else (None, 0))
        return cls(tuple(positions), SpatialPlan.from_config(config) if spatial else None)

    def to_config(self, base: UNetConfig) -> UNetConfig:
        n = len(base.channels)
        if len(self.positions) != n + 1:
            raise ValueError(f"the plan has {len(self.positions)} positions, the UNet {n} stages + mid")
        layers = tuple((k,) * c if k else () for k, c in self.positions)
        config = dataclasses.replace(base, temporal_layers=layers[:n], mid_temporal_layers=layers[n])
        if self.spatial is None:
            return config
        self.spatial.check_within(base)
        hidden = self.spatial.hidden
        if not base.res_hidden_channels and hidden == tuple(base.channels):
            hidden = ()  # the base's own form, so that a plan of the base gives back the base config
        return dataclasses.replace(config, spatial_attention=self.spatial.attention[:n],
                                   mid_attention=self.spatial.attention[n], res_hidden_channels=hidden)

    def with_temporal(self, positions) -> "UNetPlan":
        return UNetPlan(tuple(positions), self.spatial)


@dataclass(frozen=True)
class Action:
    """Add or remove one layer of `kind` at `position` (SnapGen-V Alg. A1's action set). The
    spatial kinds: 'spatial_attn' removes or restores a position's spatial transformer;
    'res_hidden' narrows (remove) or widens (add) stage `position`'s ResBlocks by one option of
    hidden_options."""
    op: str  # "add" | "remove"
    kind: str
    position: int

    def apply(self, plan: UNetPlan, base: UNetConfig | None = None) -> UNetPlan:
        if self.kind in SPATIAL_KINDS:
            return self._apply_spatial(plan, base)
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
        return plan.with_temporal(positions)

    def _apply_spatial(self, plan: UNetPlan, base: UNetConfig | None) -> UNetPlan:
        if plan.spatial is None or base is None:
            raise ValueError(f"{self} needs a plan with spatial blocks and the backbone's config")
        s, i = plan.spatial, self.position
        if self.kind == "spatial_attn":
            attention = list(s.attention)
            attention[i] = self.op == "add"
            new = SpatialPlan(tuple(attention), s.hidden)
        else:
            options = hidden_options(SpatialPlan.from_config(base).hidden[i], base.norm_groups)
            j = options.index(s.hidden[i]) + (1 if self.op == "remove" else -1)
            if not 0 <= j < len(options):
                raise ValueError(f"stage {i}'s hidden width {s.hidden[i]} cannot be "
                                 f"{'narrowed' if self.op == 'remove' else 'widened'}: options {options}")
            hidden = list(s.hidden)
            hidden[i] = options[j]
            new = SpatialPlan(s.attention, tuple(hidden))
        if new == s:
            raise ValueError(f"{self} changes nothing in {s.key}")
        new.check_within(base)
        return UNetPlan(plan.positions, new)

    def __str__(self) -> str:
        return f"{self.op} {self.kind} @ {self.position}"


def actions(plan: UNetPlan, kinds: tuple[str, ...] = TEMPORAL_LAYER_TYPES,
            base: UNetConfig | None = None) -> list[Action]:
    """Every legal action from `plan`: add a layer where the position is empty or holds the same
    type (and has room), remove one where the type is present. Never a mixed position. With a
    spatial plan and the backbone's config, also each spatial shrink and each undo of one."""
    out = []
    for i, (kind, count) in enumerate(plan.positions):
        if kind is None:
            out += [Action("add", k, i) for k in kinds]
        else:
            if count < MAX_PER_POSITION:
                out.append(Action("add", kind, i))
            out.append(Action("remove", kind, i))
    if plan.spatial is None or base is None:
        return out
    own = SpatialPlan.from_config(base)
    for i, (a, b) in enumerate(zip(plan.spatial.attention, own.attention)):
        if b:
            out.append(Action("remove" if a else "add", "spatial_attn", i))
    for i, (h, b) in enumerate(zip(plan.spatial.hidden, own.hidden)):
        options = hidden_options(b, base.norm_groups)
        if h != options[-1]:
            out.append(Action("remove", "res_hidden", i))
        if h != options[0]:
            out.append(Action("add", "res_hidden", i))
    return out


def spatial_plans(base: UNetConfig) -> list[SpatialPlan]:
    """Every spatial plan within `base` (the coarse stage's spatial factor)."""
    import itertools

    own = SpatialPlan.from_config(base)
    attention = [(False, True) if b else (False,) for b in own.attention]
    hidden = [hidden_options(b, base.norm_groups) for b in own.hidden]
    return [SpatialPlan(a, h) for a in itertools.product(*attention) for h in itertools.product(*hidden)]
