"""Random scene specs and the hold-out split by attribute combination.

The hold-out split tests compositional generalisation: every colour, shape and motion (and every
*pair* of them) is seen in training, but some (colour, shape, motion) *triples* never are.

    >>> rng = np.random.default_rng(0)
    >>> spec = sample_spec(rng, split="holdout")
    >>> o = spec.objects[0]
    >>> is_holdout(o.colour, o.shape, o.motion)
    True

Rule: with i, j, k the indices of colour, shape and motion in COLOURS, SHAPES, MOTIONS, a triple
is held out iff (i + 3 j + 5 k) % 8 == 0 (and the triple is drawable). For a fixed (colour, shape)
that holds out 1-2 of the 14 motions; for a fixed (shape, motion) exactly one of the 8 colours;
for a fixed (colour, motion) at most one shape. So every pair keeps most of its triples in
training and ~12.5% of all triples are held out. Appending a colour, shape or motion to the
world's tuples leaves every existing triple's membership unchanged.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from edgevid.data.world import (
    BACKGROUND_COLOURS, BACKGROUNDS, BOUNCE_HEIGHT, CAMERAS, COLOURS, DIRECTIONS, MOTIONS,
    ORBIT_RADIUS, SHAPES, ObjectSpec, SceneSpec, scene_fits, shade_of, valid_combination,
)

SPLITS = ("train", "holdout")
_COLOUR_INDEX = {c: i for i, c in enumerate(COLOURS)}
_SHAPE_INDEX = {s: i for i, s in enumerate(SHAPES)}
_MOTION_INDEX = {m: i for i, m in enumerate(MOTIONS)}
_HOLDOUT_MODULUS = 8  # 1/8 of triples held out: enough to measure, small enough to keep training diverse


def is_holdout(colour: str, shape: str, motion: str) -> bool:
    """Whether the (colour, shape, motion) triple is reserved for the hold-out split."""
    i, j, k = _COLOUR_INDEX[colour], _SHAPE_INDEX[shape], _MOTION_INDEX[motion]
    return valid_combination(colour, shape, motion) and (i + 3 * j + 5 * k) % _HOLDOUT_MODULUS == 0


VALID_COMBINATIONS: tuple[tuple[str, str, str], ...] = tuple(
    (c, s, m) for c in COLOURS for s in SHAPES for m in MOTIONS if valid_combination(c, s, m)
)
HOLDOUT_COMBINATIONS: frozenset[tuple[str, str, str]] = frozenset(t for t in VALID_COMBINATIONS if is_holdout(*t))
_HOLDOUT_SORTED = sorted(HOLDOUT_COMBINATIONS)  # a fixed order, so sampling is deterministic

MIN_CONTRAST = 100.0  # RGB distance between an object and every background tone: segmentable


@functools.cache
def contrasts(colour: str, background_colour: str, background: str) -> bool:
    """Whether an object colour stands out from a background (its base and, if textured, shade)."""
    c = np.asarray(COLOURS[colour], np.float32)
    tones = [np.asarray(BACKGROUND_COLOURS[background_colour], np.float32)]
    if background != "solid":
        tones.append(shade_of(background_colour))
    return all(float(np.linalg.norm(c - tone)) >= MIN_CONTRAST for tone in tones)


def sample_spec(rng: np.random.Generator, split: str = "train", duration: float = 2.5,
                camera_prob: float = 0.3, max_objects: int = 3,
                backgrounds: tuple[str, ...] = BACKGROUNDS) -> SceneSpec:
    """A random scene whose objects stay in frame and apart for `duration` seconds.

    split="train": no object uses a held-out triple. split="holdout": the first (main) object
    uses a held-out triple; the others use training triples. Objects in one scene have
    distinct colours, all contrasting with the background. `max_objects` and `backgrounds`
    narrow the world (the learnability ladder's easy rungs: one object on solid backgrounds);
    with the defaults the stream is the full world, draw for draw.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    if not duration > 0 or max_objects < 1:
        raise ValueError(f"need duration > 0 and max_objects >= 1, got {duration}, {max_objects}")
    if not backgrounds or any(b not in BACKGROUNDS for b in backgrounds):
        raise ValueError(f"backgrounds must be a non-empty subset of {BACKGROUNDS}, got {backgrounds}")
    while True:  # each pass succeeds with high probability; the loop only retries a bad draw
        background = backgrounds[int(rng.integers(len(backgrounds)))]
        bg_colour = list(BACKGROUND_COLOURS)[int(rng.integers(len(BACKGROUND_COLOURS)))]
        allowed = [c for c in COLOURS if contrasts(c, bg_colour, background)]
        camera, camera_speed = "none", 0.0
        if rng.random() < camera_prob:
            camera = CAMERAS[1 + int(rng.integers(len(CAMERAS) - 1))]
            # Gentle: pans travel <= 0.12 of the frame, zooms scale by <= 1.25 over the clip.
            camera_speed = min(0.05, 0.12 / duration) if camera.startswith("pan") else math.log(1.25) / duration
        num_objects = min(max_objects, 1 + int(rng.choice(3, p=[0.5, 0.3, 0.2])))
        if split == "holdout":
            options = [t for t in _HOLDOUT_SORTED if t[0] in allowed]
            if not options:
                continue
            main = options[int(rng.integers(len(options)))]
        else:
            main = _train_triple(rng, allowed)
        objects: list[ObjectSpec] = []
        for _ in range(20):
            obj = _sample_object(rng, *main, duration=duration, multi=num_objects > 1)
            if _fits(objects + [obj], background, bg_colour, camera, camera_speed, duration):
                objects.append(obj)
                break
        if not objects:
            continue
        for _ in range(num_objects - 1):
            free = [c for c in allowed if c not in {o.colour for o in objects}]
            if not free:
                break
            for _ in range(20):  # a crowded frame may have no room: then keep fewer objects
                obj = _sample_object(rng, *_train_triple(rng, free), duration=duration, multi=True)
                if _fits(objects + [obj], background, bg_colour, camera, camera_speed, duration):
                    objects.append(obj)
                    break
        return SceneSpec(objects=tuple(objects), background=background, background_colour=bg_colour,
                         camera=camera, camera_speed=camera_speed, duration=duration,
                         seed=int(rng.integers(2**31)))


def _fits(objects, background, bg_colour, camera, camera_speed, duration) -> bool:
    return scene_fits(SceneSpec(objects=tuple(objects), background=background, background_colour=bg_colour,
                                camera=camera, camera_speed=camera_speed, duration=duration))


def _train_triple(rng: np.random.Generator, colours: list[str]) -> tuple[str, str, str]:
    while True:
        t = (colours[int(rng.integers(len(colours)))], SHAPES[int(rng.integers(len(SHAPES)))],
             MOTIONS[int(rng.integers(len(MOTIONS)))])
        if valid_combination(*t) and not is_holdout(*t):
            return t


def _sample_object(rng: np.random.Generator, colour: str, shape: str, motion: str,
                   duration: float, multi: bool) -> ObjectSpec:
    """Place one object so that its own motion stays inside the frame for `duration` seconds."""
    pad = 0.03  # margin to the frame edge, frame fractions
    # Bounding radius: >= ~4 px at 64 px frames (the smallest training bucket) after any shrink.
    size = rng.uniform(0.08, 0.12) if multi else rng.uniform(0.09, 0.16)
    angle = rng.uniform(0.0, 2 * math.pi)
    speed = 0.0
    if motion == "grow":
        speed = min(rng.uniform(0.2, 0.5), math.log(1.8) / duration)  # at most 1.8x over the clip
        size *= 0.8
    elif motion == "shrink":
        speed = min(rng.uniform(0.2, 0.5), math.log(1.8) / duration)
        size *= 1.25
    reach = size * math.exp(speed * duration) if motion == "grow" else size  # largest radius
    lo, hi = reach + pad, 1.0 - reach - pad  # allowed centre range on both axes

    if motion in DIRECTIONS:
        dx, dy = DIRECTIONS[motion]
        # 0.1-0.25 frame/s reads as motion at 8 fps; slower if the clip is long (must fit).
        speed = min(rng.uniform(0.1, 0.25), 0.8 * (hi - lo) / (duration * max(abs(dx), abs(dy))))
        travel_x, travel_y = dx * speed * duration, dy * speed * duration
        x = rng.uniform(lo - min(0.0, travel_x), hi - max(0.0, travel_x))
        y = rng.uniform(lo - min(0.0, travel_y), hi - max(0.0, travel_y))
    elif motion == "bounce":
        speed = rng.uniform(0.6, 1.2)  # bounces per second
        x, y = rng.uniform(lo, hi), rng.uniform(lo + BOUNCE_HEIGHT, hi)  # y is the floor
    elif motion == "orbit":
        speed = rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 3.0)  # radians per second
        x, y = rng.uniform(lo + ORBIT_RADIUS, hi - ORBIT_RADIUS), rng.uniform(lo + ORBIT_RADIUS, hi - ORBIT_RADIUS)
    else:
        if motion == "rotate":
            speed = rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 3.5)  # radians per second
        x, y = rng.uniform(lo, hi), rng.uniform(lo, hi)
    return ObjectSpec(colour=colour, shape=shape, motion=motion, x=float(x), y=float(y),
                      size=float(size), speed=float(speed), angle=float(angle))
