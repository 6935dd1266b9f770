"""Captions for scene specs: many random wordings for training, one plain wording for evaluation.

    >>> from edgevid.data.world import ObjectSpec, SceneSpec
    >>> spec = SceneSpec(objects=(ObjectSpec("red", "circle", "left", 0.7, 0.5, 0.1, speed=0.2),))
    >>> canonical_caption(spec)
    'a red circle moving left on a white background'
    >>> caption(spec, np.random.default_rng(0))
    'a bright red ball slides leftward over a snow-white backdrop'

Varied wordings teach the text encoder's neighbourhood (crimson ~ red, disc ~ circle) without
changing what is drawn; the canonical wording is what evaluation prompts use.
"""
from __future__ import annotations

import numpy as np

from edgevid.data.world import SceneSpec

COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet", "bright red"),
    "green": ("green", "emerald", "grass-green", "leaf-green"),
    "blue": ("blue", "cobalt", "sapphire", "deep blue"),
    "yellow": ("yellow", "golden", "lemon-yellow", "sunny yellow"),
    "orange": ("orange", "tangerine", "amber", "bright orange"),
    "purple": ("purple", "violet", "plum", "deep purple"),
    "white": ("white", "snow-white", "pale", "ivory"),
    "black": ("black", "jet-black", "dark", "inky black"),
    "gray": ("gray", "grey", "silver", "slate-gray"),
}
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "dot", "ball", "round shape"),
    "square": ("square", "box", "block", "square tile"),
    "triangle": ("triangle", "three-sided shape", "triangular shape", "wedge"),
    "star": ("star", "five-pointed star", "star shape"),
    "hexagon": ("hexagon", "six-sided shape", "hexagonal tile"),
    "diamond": ("diamond", "rhombus", "lozenge", "diamond shape"),
    "ring": ("ring", "hoop", "donut", "circular ring"),
}
# (third person present, present participle) pairs, so templates can say "moves" or "moving".
MOTION_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "left": (("moves left", "moving left"), ("drifts to the left", "drifting to the left"),
             ("slides leftward", "sliding leftward"), ("travels left", "travelling left")),
    "right": (("moves right", "moving right"), ("drifts to the right", "drifting to the right"),
              ("slides rightward", "sliding rightward"), ("travels right", "travelling right")),
    "up": (("moves up", "moving up"), ("rises", "rising"), ("floats upward", "floating upward"),
           ("climbs", "climbing")),
    "down": (("moves down", "moving down"), ("falls", "falling"), ("sinks", "sinking"),
             ("drops downward", "dropping downward")),
    "up_left": (("moves up and to the left", "moving up and to the left"),
                ("drifts diagonally up-left", "drifting diagonally up-left"),
                ("heads toward the top left", "heading toward the top left")),
    "up_right": (("moves up and to the right", "moving up and to the right"),
                 ("drifts diagonally up-right", "drifting diagonally up-right"),
                 ("heads toward the top right", "heading toward the top right")),
    "down_left": (("moves down and to the left", "moving down and to the left"),
                  ("drifts diagonally down-left", "drifting diagonally down-left"),
                  ("heads toward the bottom left", "heading toward the bottom left")),
    "down_right": (("moves down and to the right", "moving down and to the right"),
                   ("drifts diagonally down-right", "drifting diagonally down-right"),
                   ("heads toward the bottom right", "heading toward the bottom right")),
    "bounce": (("bounces", "bouncing"), ("bounces up and down", "bouncing up and down"),
               ("hops", "hopping")),
    "grow": (("grows", "growing"), ("gets bigger", "getting bigger"), ("expands", "expanding"),
             ("swells", "swelling")),
    "shrink": (("shrinks", "shrinking"), ("gets smaller", "getting smaller"),
               ("contracts", "contracting")),
    "rotate": (("spins", "spinning"), ("rotates", "rotating"), ("turns in place", "turning in place")),
    "still": (("stays still", "staying still"), ("sits motionless", "sitting motionless"),
              ("rests in place", "resting in place")),
    "orbit": (("moves in a circle", "moving in a circle"), ("circles around", "circling around"),
              ("travels in a loop", "travelling in a loop")),
}
# Background phrases; "{c}" is the colour word. Each starts with a preposition.
BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "solid": ("on {a} {c} background", "over {a} {c} backdrop", "against a plain {c} background",
              "in front of {a} {c} wall"),
    "gradient": ("on {a} {c} gradient background", "over a softly shaded {c} backdrop",
                 "against {a} {c} gradient"),
    "stripes": ("on {a} {c} striped background", "against {c} diagonal stripes",
                "over {a} {c} backdrop with stripes"),
    "checker": ("on {a} {c} checkered background", "over {a} {c} checkerboard",
                "against {a} {c} chequered pattern"),
    "noise": ("on a mottled {c} background", "over {a} {c} textured backdrop",
              "against a blotchy {c} pattern"),
}
CAMERA_WORDS: dict[str, tuple[str, ...]] = {
    "none": ("",),
    "pan_left": ("as the camera pans left", "while the camera pans to the left"),
    "pan_right": ("as the camera pans right", "while the camera pans to the right"),
    "zoom_in": ("as the camera zooms in", "while the camera slowly zooms in"),
    "zoom_out": ("as the camera zooms out", "while the camera slowly zooms out"),
}
PREFIXES = ("", "", "", "a video of ", "an animation of ", "footage of ", "a clip showing ")

# The plain wording used by `canonical_caption` (and by evaluation prompts).
CANONICAL_MOTION: dict[str, str] = {
    "left": "moving left", "right": "moving right", "up": "moving up", "down": "moving down",
    "up_left": "moving up and left", "up_right": "moving up and right",
    "down_left": "moving down and left", "down_right": "moving down and right",
    "bounce": "bouncing", "grow": "growing", "shrink": "shrinking", "rotate": "spinning",
    "still": "standing still", "orbit": "moving in a circle",
}
CANONICAL_BACKGROUND: dict[str, str] = {
    "solid": "on {a} {c} background", "gradient": "on {a} {c} gradient background",
    "stripes": "on {a} {c} striped background", "checker": "on {a} {c} checkered background",
    "noise": "on {a} {c} mottled background",
}
CANONICAL_CAMERA: dict[str, str] = {k: v[0] for k, v in CAMERA_WORDS.items()}


def article(word: str) -> str:
    """'an' before a vowel sound (good enough for this vocabulary), else 'a'."""
    return "an" if word[0] in "aeiou" else "a"


def canonical_caption(spec: SceneSpec) -> str:
    """One fixed plain wording, e.g. 'a red circle moving left and a blue star spinning on a
    white background as the camera zooms in'."""
    parts = [f"{article(o.colour)} {o.colour} {o.shape} {CANONICAL_MOTION[o.motion]}" for o in spec.objects]
    text = _join(parts) + " " + CANONICAL_BACKGROUND[spec.background].format(
        a=article(spec.background_colour), c=spec.background_colour)
    camera = CANONICAL_CAMERA[spec.camera]
    return f"{text} {camera}" if camera else text


def caption(spec: SceneSpec, rng: np.random.Generator) -> str:
    """A random wording of `spec`: synonyms, verb forms, sentence templates; deterministic in rng."""
    def pick(options):
        return options[int(rng.integers(len(options)))]

    nouns, verbs = [], []
    for o in spec.objects:
        colour, shape = pick(COLOUR_WORDS[o.colour]), pick(SHAPE_WORDS[o.shape])
        nouns.append(f"{article(colour)} {colour} {shape}")
        verbs.append(pick(MOTION_WORDS[o.motion]))
    bg_colour = pick(COLOUR_WORDS[spec.background_colour])
    background = pick(BACKGROUND_WORDS[spec.background]).format(a=article(bg_colour), c=bg_colour)
    camera = pick(CAMERA_WORDS[spec.camera])

    template = int(rng.integers(3))
    if template == 0:  # "a crimson disc drifts left and a blue box spins on a white background"
        text = _join([f"{n} {v[0]}" for n, v in zip(nouns, verbs)]) + f" {background}"
    elif template == 1:  # "a crimson disc drifting left on a white background"
        text = pick(PREFIXES) + _join([f"{n} {v[1]}" for n, v in zip(nouns, verbs)]) + f" {background}"
    else:  # "on a white background, a crimson disc drifts left"
        text = f"{background}, " + _join([f"{n} {v[0]}" for n, v in zip(nouns, verbs)])
    if camera:
        text = f"{text}, {camera}" if rng.random() < 0.5 else f"{text} {camera}"
    return text


def _join(parts: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
