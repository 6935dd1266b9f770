"""ShapesBench's paraphrase split: hold-out scenes worded the way no training caption is.

    >>> pairs = paraphrase_specs(60)   # [(SceneSpec, "Picture a ruby orb that ascends ..."), ...]

The scenes are the benchmark's own hold-out specs (`benchmark_specs`, same order); only the
wording changes. The words and sentence forms live here, outside `edgevid.data.captions`, so
training never sees them: colour, shape and motion synonyms disjoint from captions.py's lists
(tests check it) and sentence forms that put the background first, use relative clauses,
imperatives or "there is". A model that follows canonical captions but not these has learnt
the templates, not the words' meaning (issue 16: within 0.05 of the canonical split).
"""
from __future__ import annotations

import numpy as np

from edgevid.data.world import SceneSpec

COLOUR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("ruby", "cherry-red", "tomato-red"),
    "green": ("jade", "lime-green", "kelly-green"),
    "blue": ("azure", "royal blue", "ultramarine"),
    "yellow": ("canary-yellow", "butter-yellow", "daffodil-yellow"),
    "orange": ("pumpkin-orange", "carrot-coloured", "marigold"),
    "purple": ("amethyst", "grape-coloured", "mauve"),
    "white": ("chalk-white", "milky", "pearl-white"),
    "black": ("coal-black", "ebony", "pitch-black"),
    "gray": ("ash-gray", "pewter", "smoky gray"),
}
SHAPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("orb", "round spot", "disk"),
    "square": ("four-sided tile", "square patch", "quadrilateral with equal sides"),
    "triangle": ("three-cornered shape", "arrowhead", "triangular tile"),
    "star": ("starburst", "pointy star", "star-shaped figure"),
    "hexagon": ("honeycomb cell", "hex tile", "six-cornered shape"),
    "diamond": ("rhomb", "kite shape", "diamond-shaped tile"),
    "ring": ("loop", "annulus", "halo"),
}
# Present tense, after "that" / "which" or a noun.
MOTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "left": ("glides toward the left edge", "scoots leftwards", "heads to the left side"),
    "right": ("glides toward the right edge", "scoots rightwards", "heads to the right side"),
    "up": ("ascends", "goes upward", "lifts toward the top"),
    "down": ("descends", "goes downward", "sinks toward the bottom"),
    "up_left": ("goes toward the upper left corner", "ascends to the left"),
    "up_right": ("goes toward the upper right corner", "ascends to the right"),
    "down_left": ("goes toward the lower left corner", "descends to the left"),
    "down_right": ("goes toward the lower right corner", "descends to the right"),
    "bounce": ("jumps up and down", "keeps rebounding off the floor", "springs up and lands again"),
    "grow": ("gets larger", "inflates", "becomes bigger and bigger"),
    "shrink": ("dwindles", "becomes smaller and smaller", "deflates"),
    "rotate": ("twirls", "whirls around its centre", "turns round and round"),
    "still": ("does not move", "remains stationary", "keeps perfectly still"),
    "orbit": ("revolves around a point", "traces a circular path", "goes round and round a centre"),
}
BACKGROUND_SYNONYMS: dict[str, tuple[str, ...]] = {
    "solid": ("plain {c}", "flat {c}", "uniform {c}"),
    "gradient": ("{c} shading softly from light to dark", "graded {c}"),
    "stripes": ("{c} bands", "{c} with diagonal bands"),
    "checker": ("{c} chessboard squares", "a {c} grid of alternating squares"),
    "noise": ("blotchy {c}", "speckled {c}", "cloudy {c}"),
}
# Sentence forms; {objects} is a list of "<colour> <shape> that <motion>" clauses.
FORMS: tuple[str, ...] = (
    "There is {objects}, and the background is {bg}.",
    "Picture {objects}, all set against {bg}.",
    "Show me {objects}; behind it the backdrop is {bg}.",
    "The backdrop is {bg}, and in front of it {objects_bare}.",
    "Animate {objects} over {bg}.",
    "Against {bg}: {objects}.",
)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def paraphrase(spec: SceneSpec, rng: np.random.Generator) -> str:
    """A wording of `spec` in the paraphrase vocabulary and sentence forms; deterministic in rng."""
    def pick(options):
        return options[int(rng.integers(len(options)))]

    clauses, bare = [], []
    for o in spec.objects:
        colour, shape, motion = pick(COLOUR_SYNONYMS[o.colour]), pick(SHAPE_SYNONYMS[o.shape]), pick(MOTION_SYNONYMS[o.motion])
        clauses.append(f"{_article(colour)} {colour} {shape} that {motion}")
        bare.append(f"{_article(colour)} {colour} {shape} {motion}")
    bg = pick(BACKGROUND_SYNONYMS[spec.background]).format(c=pick(COLOUR_SYNONYMS[spec.background_colour]))
    join = lambda parts: parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " together with " + parts[-1]  # noqa: E731
    return pick(FORMS).format(objects=join(clauses), objects_bare=join(bare), bg=bg)


def paraphrase_specs(n: int = 60, seed: int = 0) -> list[tuple[SceneSpec, str]]:
    """The first n benchmark hold-out scenes with paraphrased prompts (deterministic in n, seed)."""
    from edgevid.eval.shapesbench.benchmark import benchmark_specs

    if n < 1:
        raise ValueError(f"paraphrase_specs needs n >= 1, got {n}")
    rng = np.random.default_rng([seed, 7])
    return [(spec, paraphrase(spec, rng)) for spec, _ in benchmark_specs(n, seed=seed)]
