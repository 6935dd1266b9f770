"""The fixed ShapesBench prompt set: hold-out specs (unseen colour/shape/motion triples) + captions.

    >>> specs = benchmark_specs(200, seed=0)   # [(SceneSpec, "a red star spinning on ..."), ...]
    >>> seen = benchmark_specs(50, split="train")   # scenes of the training stream itself
    >>> reworded = benchmark_specs(60, split="paraphrase")   # hold-out scenes, unseen wordings

Cameras are off (camera_prob=0) so that motion is scored without camera compensation, and
captions are the canonical wording that evaluation prompts use. Same (n, seed) -> same list.

split="train" is a diagnostic, not the benchmark: the scenes of the procedural training stream
(`ProceduralClips(split="train", seed=seed)`, clips 0, 1, 2, ... in order, skipping those with
camera motion), i.e. scenes that a model trained on that stream with enough clips has seen. A
model that scores as low on them as on the hold-out set is underfitting, not failing to
generalise.

split="paraphrase": the hold-out scenes, in the same order, worded outside the training
captions' vocabulary and templates (`paraphrase.py`).
"""
from __future__ import annotations

import numpy as np

from edgevid.data.captions import canonical_caption
from edgevid.data.sources import ProceduralClips
from edgevid.data.splits import sample_spec
from edgevid.data.world import SceneSpec


BENCHMARK_SPLITS = ("holdout", "train", "paraphrase")


def benchmark_specs(n: int = 200, seed: int = 0, split: str = "holdout") -> list[tuple[SceneSpec, str]]:
    """n scenes and their canonical captions, deterministic in (n, seed, split); the first k of a
    longer list equal the list of length k. split="holdout": the benchmark; "train": the training
    stream's own camera-free scenes (see the module docstring)."""
    if n < 1:
        raise ValueError(f"benchmark_specs needs n >= 1, got {n}")
    if split not in BENCHMARK_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {BENCHMARK_SPLITS}")
    if split == "paraphrase":
        from edgevid.eval.shapesbench.paraphrase import paraphrase_specs

        return paraphrase_specs(n, seed)
    if split == "holdout":
        rng = np.random.default_rng(seed)
        specs = [sample_spec(rng, split="holdout", camera_prob=0.0) for _ in range(n)]
    else:
        stream, specs, index = ProceduralClips(split="train", seed=seed), [], 0
        while len(specs) < n:  # ~70 % of training scenes have no camera motion
            spec = stream.scene(index)
            if spec.camera == "none":
                specs.append(spec)
            index += 1
    return [(spec, canonical_caption(spec)) for spec in specs]
