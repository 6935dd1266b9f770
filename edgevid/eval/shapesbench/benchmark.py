"""The fixed ShapesBench prompt set: hold-out specs (unseen colour/shape/motion triples) + captions.

    >>> specs = benchmark_specs(200, seed=0)   # [(SceneSpec, "a red star spinning on ..."), ...]

Cameras are off (camera_prob=0) so that motion is scored without camera compensation, and
captions are the canonical wording that evaluation prompts use. Same (n, seed) -> same list.
"""
from __future__ import annotations

import numpy as np

from edgevid.data.captions import canonical_caption
from edgevid.data.splits import sample_spec
from edgevid.data.world import SceneSpec


def benchmark_specs(n: int = 200, seed: int = 0) -> list[tuple[SceneSpec, str]]:
    """n hold-out scenes and their canonical captions, deterministic in (n, seed); the first k of
    a longer list equal the list of length k."""
    if n < 1:
        raise ValueError(f"benchmark_specs needs n >= 1, got {n}")
    rng = np.random.default_rng(seed)
    specs = [sample_spec(rng, split="holdout", camera_prob=0.0) for _ in range(n)]
    return [(spec, canonical_caption(spec)) for spec in specs]
