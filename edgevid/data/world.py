"""The procedural world: coloured shapes moving over simple backgrounds, in continuous time.

A `SceneSpec` is a small JSON-serialisable description of a clip. `render_video` turns it
into frames at any size, length and frame rate:

    >>> spec = SceneSpec(objects=(ObjectSpec("red", "circle", "right", x=0.3, y=0.5, size=0.12, speed=0.2),))
    >>> render_video(spec, num_frames=17, height=64, width=64, fps=8).shape
    (17, 64, 64, 3)

Coordinates. Positions are fractions of the frame (x: 0 = left edge, 1 = right edge; y: 0 = top,
1 = bottom), so a scene keeps its layout at any aspect ratio. Sizes are fractions of the frame's
shorter side, so shapes are never stretched. Motion is a function of time in seconds: frame k
shows time k / fps, so the same spec at 8 or 24 fps shows the same motion, sampled differently.
The scene plays for `spec.duration` seconds; frames past the end hold the final state (the
sampler builds every motion to stay in frame for exactly that long).

Edges are anti-aliased analytically: each shape is a signed distance field in pixels and a
pixel's coverage is clip(0.5 - distance, 0, 1).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Object colours. Far apart in RGB (pairwise distance >= ~105) so that a classical evaluator can
# segment objects by nearest palette colour. Order matters: the hold-out split indexes it, so
# only ever append.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 25, 35),
    "green": (30, 165, 60),
    "blue": (30, 80, 230),
    "yellow": (245, 230, 40),
    "orange": (255, 130, 0),
    "purple": (140, 50, 200),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
# Backgrounds may also be gray, which no object uses (a neutral stage for every colour).
BACKGROUND_COLOURS: dict[str, tuple[int, int, int]] = {**COLOURS, "gray": (128, 128, 128)}

# Order matters for the hold-out split (append only).
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "diamond", "ring")
MOTIONS: tuple[str, ...] = (
    "left", "right", "up", "down", "up_left", "up_right", "down_left", "down_right",
    "bounce", "grow", "shrink", "rotate", "still", "orbit",
)
BACKGROUNDS: tuple[str, ...] = ("solid", "gradient", "stripes", "checker", "noise")
CAMERAS: tuple[str, ...] = ("none", "pan_left", "pan_right", "zoom_in", "zoom_out")

# Shapes that look the same at every rotation: "a spinning circle" would be invisible motion.
ROTATION_INVARIANT_SHAPES: frozenset[str] = frozenset({"circle", "ring"})

# Unit direction (dx, dy) of the translating motions; y points down, so "up" is -y.
_S = 1 / math.sqrt(2)
DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0),
    "up_left": (-_S, -_S), "up_right": (_S, -_S), "down_left": (-_S, _S), "down_right": (_S, _S),
}
BOUNCE_HEIGHT = 0.25  # bounce apex above the floor, fraction of frame height: clearly visible
ORBIT_RADIUS = 0.18  # orbit radius, fraction of the frame: a visible loop that fits a 64 px frame
TEXTURE_MIX = 0.3  # how far texture/gradient shades move from the background colour (keeps contrast)
# Bounds of a spec's numbers (the sampler stays far inside them): past these a scene is a typo or
# junk JSON, and some overflow the pixel maths (a size or zoom of exp(speed * duration) = inf).
MAX_POSITION = 10.0  # |x|, |y| in frame fractions: ten frames off screen
MAX_SPEED = 100.0  # |speed|, |camera_speed| per second: 100 frame widths, 100 bounces or 16 turns a second
MAX_ANGLE = 1000.0  # |angle| in radians
MAX_DURATION = 3600.0  # seconds: an hour
MAX_GROWTH = 20.0  # |rate| * duration of grow/shrink/zoom: a size change of e^20 = 5e8 times


def valid_combination(colour: str, shape: str, motion: str) -> bool:
    """False only for motions that a shape cannot show (rotating a circle or ring)."""
    return not (motion == "rotate" and shape in ROTATION_INVARIANT_SHAPES)


@dataclass(frozen=True)
class ObjectSpec:
    """One shape and its motion. `speed` is per-motion (all rates are per second):

    - left/right/up/down/diagonals: distance travelled, frame fractions per second
    - bounce: bounces per second (floor at `y`, apex BOUNCE_HEIGHT above it)
    - grow/shrink: exponential rate, size(t) = size * exp(+-speed * t)
    - rotate: radians per second (sign = direction)
    - orbit: radians per second around the centre (x, y); `angle` is also the start phase
    - still: ignored
    """
    colour: str
    shape: str
    motion: str
    x: float  # start centre (orbit: orbit centre), fraction of the width
    y: float  # fraction of the height, 0 = top
    size: float  # bounding radius, fraction of the frame's shorter side
    speed: float = 0.0
    angle: float = 0.0  # initial rotation in radians

    def __post_init__(self):
        _check_name("colour", self.colour, COLOURS)
        _check_name("shape", self.shape, SHAPES)
        _check_name("motion", self.motion, MOTIONS)
        if not 0 < self.size <= 1:
            raise ValueError(f"ObjectSpec.size must be in (0, 1] (fraction of the shorter side), got {self.size}")
        _check_bound("ObjectSpec.x", self.x, MAX_POSITION, "frame fractions")
        _check_bound("ObjectSpec.y", self.y, MAX_POSITION, "frame fractions")
        _check_bound("ObjectSpec.speed", self.speed, MAX_SPEED, "per second")
        _check_bound("ObjectSpec.angle", self.angle, MAX_ANGLE, "radians")


@dataclass(frozen=True)
class SceneSpec:
    """A clip: objects drawn in order (later ones on top) over a background, optional camera."""
    objects: tuple[ObjectSpec, ...]
    background: str = "solid"
    background_colour: str = "white"
    camera: str = "none"
    camera_speed: float = 0.0  # pan: frame fractions per second; zoom: exponential rate per second
    duration: float = 2.5  # seconds the motion is built for; later frames hold the last state
    seed: int = 0  # pattern of the "noise" background

    def __post_init__(self):
        if isinstance(self.objects, list):  # accept lists, store a tuple (hashable, frozen)
            object.__setattr__(self, "objects", tuple(self.objects))
        if not self.objects:
            raise ValueError("SceneSpec needs at least one object")
        _check_name("background", self.background, BACKGROUNDS)
        _check_name("background_colour", self.background_colour, BACKGROUND_COLOURS)
        _check_name("camera", self.camera, CAMERAS)
        if not 0 < self.duration <= MAX_DURATION:
            raise ValueError(f"SceneSpec.duration must be in (0, {MAX_DURATION:g}] seconds, got {self.duration}")
        _check_bound("SceneSpec.camera_speed", self.camera_speed, MAX_SPEED, "per second")
        if not 0 <= self.seed < 2**64:
            raise ValueError(f"SceneSpec.seed must be in [0, 2**64) (numpy's seeds), got {self.seed}")
        rates = [(f"object {i} ({o.motion}) speed", o.speed) for i, o in enumerate(self.objects)
                 if o.motion in ("grow", "shrink")]
        if self.camera.startswith("zoom"):
            rates.append(("camera_speed", self.camera_speed))
        for what, rate in rates:  # exponential in time: size * exp(rate * t)
            if abs(rate) * self.duration > MAX_GROWTH:
                raise ValueError(f"SceneSpec {what} x duration must be at most {MAX_GROWTH:g} (a size change of "
                                 f"e^{MAX_GROWTH:g}), got {rate:g} x {self.duration:g} s")

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict; `SceneSpec.from_dict(spec.to_dict()) == spec`."""
        d = asdict(self)
        d["objects"] = [dict(o) for o in d["objects"]]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> SceneSpec:
        """The inverse of to_dict, for JSON from anywhere: built by config_from_dict, which
        type-checks every field (names are strings, numbers finite) and names unknown and missing
        keys, so junk is a ValueError that names the field."""
        from edgevid.config import config_from_dict

        if not isinstance(data, dict) or not isinstance(data.get("objects"), (list, tuple)):
            raise ValueError("not a SceneSpec dict: expected an object with a list of 'objects', background, ...")
        objects = tuple(config_from_dict(ObjectSpec, o, f"SceneSpec object {i}") for i, o in enumerate(data["objects"]))
        return config_from_dict(cls, {**data, "objects": objects}, "SceneSpec")


def _check_name(what: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose from {sorted(allowed)}")


def _check_bound(what: str, value: float, bound: float, unit: str) -> None:
    if not (math.isfinite(value) and abs(value) <= bound):
        raise ValueError(f"{what} must be a finite number in [-{bound:g}, {bound:g}] {unit}, got {value}")


# --------------------------------------------------------------------------------------
# Motion in continuous time
# --------------------------------------------------------------------------------------
def object_state(obj: ObjectSpec, t):
    """World state (x, y, size, angle) at time t seconds (a float or an array of times, already
    clamped to the duration); each entry has t's shape."""
    t = np.asarray(t, dtype=np.float64)
    zero = np.zeros_like(t)
    x, y, size, angle = obj.x + zero, obj.y + zero, obj.size + zero, obj.angle + zero
    m = obj.motion
    if m in DIRECTIONS:
        dx, dy = DIRECTIONS[m]
        x, y = x + dx * obj.speed * t, y + dy * obj.speed * t
    elif m == "bounce":
        y = y - BOUNCE_HEIGHT * np.abs(np.sin(np.pi * obj.speed * t))
    elif m == "grow":
        size = size * np.exp(obj.speed * t)
    elif m == "shrink":
        size = size * np.exp(-obj.speed * t)
    elif m == "rotate":
        angle = angle + obj.speed * t
    elif m == "orbit":
        phase = obj.angle + obj.speed * t
        x, y = x + ORBIT_RADIUS * np.cos(phase), y + ORBIT_RADIUS * np.sin(phase)
    return x, y, size, angle


def camera_state(spec: SceneSpec, t):
    """(centre_x, zoom) of the camera at time(s) t: a world point p shows at 0.5 + (p - c) * zoom."""
    t = np.asarray(t, dtype=np.float64)
    one = np.ones_like(t)
    if spec.camera == "pan_left":
        return 0.5 - spec.camera_speed * t, one
    if spec.camera == "pan_right":
        return 0.5 + spec.camera_speed * t, one
    if spec.camera == "zoom_in":
        return 0.5 * one, np.exp(spec.camera_speed * t)
    if spec.camera == "zoom_out":
        return 0.5 * one, np.exp(-spec.camera_speed * t)
    return 0.5 * one, one


def screen_states(spec: SceneSpec, t) -> list[tuple]:
    """Per object (x, y, size, angle) on screen at time(s) t, camera applied, in frame fractions.
    Times past `spec.duration` hold the final state."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, spec.duration)
    cx, zoom = camera_state(spec, t)
    out = []
    for obj in spec.objects:
        x, y, size, angle = object_state(obj, t)
        out.append((0.5 + (x - cx) * zoom, 0.5 + (y - 0.5) * zoom, size * zoom, angle))
    return out


def scene_fits(spec: SceneSpec, pad: float = 0.02, gap: float = 0.02, num_checks: int = 49) -> bool:
    """True if every object stays inside the frame (with `pad`) and apart from the others (by
    `gap`) at `num_checks` times over the whole duration, at any aspect ratio.

    Conservative for any aspect: an object's radius in frame fractions is at most `size`.
    """
    states = screen_states(spec, np.linspace(0.0, spec.duration, num_checks))
    x, y, r = (np.stack([s[i] for s in states]) for i in range(3))  # each (num_objects, num_checks)
    if (np.minimum(x, y) - r < pad).any() or (np.maximum(x, y) + r > 1 - pad).any():
        return False
    if len(states) > 1:
        i, j = np.triu_indices(len(states), k=1)  # every pair of objects
        if (np.hypot(x[i] - x[j], y[i] - y[j]) < r[i] + r[j] + gap).any():
            return False
    return True


# --------------------------------------------------------------------------------------
# Shapes as signed distance fields (pixels; negative inside)
# --------------------------------------------------------------------------------------
def shape_sdf(shape: str, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance in pixels to `shape` of bounding radius `radius`, centred at the origin.

    x, y are local pixel offsets (already rotated); y points down and the shapes' "up" vertex
    (triangle, star, hexagon, diamond) is at -y. Every shape fits inside the bounding circle.
    """
    if shape == "circle":
        return np.hypot(x, y) - 0.9 * radius
    if shape == "ring":
        return np.abs(np.hypot(x, y) - 0.7 * radius) - 0.22 * radius
    if shape == "square":
        return np.maximum(np.abs(x), np.abs(y)) - radius / math.sqrt(2)
    if shape == "diamond":
        w, h = 0.62 * radius, radius
        return (np.abs(x) * h + np.abs(y) * w - w * h) / math.hypot(w, h)
    if shape in ("triangle", "hexagon"):
        return _regular_polygon_sdf(x, y, 3 if shape == "triangle" else 6, radius)
    if shape == "star":
        return _star_sdf(x, y, 5, radius, 0.45 * radius)
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def _regular_polygon_sdf(x, y, n: int, radius: float) -> np.ndarray:
    """Distance to the nearest edge line, found by folding the angle into one sector
    (exact inside, within half a pixel of exact near the corners outside)."""
    sector = 2 * math.pi / n
    a = np.arctan2(x, -y)  # angle from "up"; a vertex points up
    phi = np.mod(a, sector) - sector / 2  # angle from the nearest edge normal
    return np.hypot(x, y) * np.cos(phi) - radius * math.cos(math.pi / n)


def _star_sdf(x, y, n: int, outer: float, inner: float) -> np.ndarray:
    """Fold into the half-sector between an outer tip A and the next inner corner B; the star
    there is triangle (origin, A, B), so the distance is the one to segment AB, signed by side."""
    half = math.pi / n
    a = np.arctan2(x, -y)
    phi = np.abs(np.mod(a + half, 2 * half) - half)  # 0 at a tip, `half` at an inner corner
    r = np.hypot(x, y)
    qx, qy = r * np.cos(phi), r * np.sin(phi)
    ax, ay = outer, 0.0
    bx, by = inner * math.cos(half), inner * math.sin(half)
    ex, ey = bx - ax, by - ay
    h = np.clip(((qx - ax) * ex + (qy - ay) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
    dist = np.hypot(qx - ax - h * ex, qy - ay - h * ey)
    side = ex * (qy - ay) - ey * (qx - ax)  # > 0 on the origin's side of AB (inside)
    return np.where(side > 0, -dist, dist)


# --------------------------------------------------------------------------------------
# Backgrounds (in world coordinates so camera pans/zooms move the texture)
# --------------------------------------------------------------------------------------
def shade_of(name: str) -> np.ndarray:
    """The second tone of textured/gradient backgrounds: the colour moved TEXTURE_MIX of the way
    to white (dark colours) or black (light ones)."""
    c = np.asarray(BACKGROUND_COLOURS[name], np.float32)
    target = 0.0 if c @ np.array([0.299, 0.587, 0.114], np.float32) > 128 else 255.0
    return c + TEXTURE_MIX * (target - c)


def _soft_wave(s: np.ndarray, period_px: float) -> np.ndarray:
    """Square wave of period 1 in s, values in [-1, 1], with a ~1 pixel anti-aliased edge."""
    d_px = (0.25 - np.abs(np.mod(s, 1.0) - 0.5)) * period_px  # signed distance to an edge
    return np.clip(2 * d_px, -1.0, 1.0)


def _value_noise(seed: int, u: np.ndarray, v: np.ndarray, cells: int = 6) -> np.ndarray:
    """Smooth periodic value noise in [0, 1]; u (W,), v (H,) in shorter-side units -> (H, W)."""
    grid = np.random.default_rng(seed).random((cells, cells)).astype(np.float32)
    fu, fv = u * cells, v * cells
    iu, iv = np.floor(fu).astype(np.int64), np.floor(fv).astype(np.int64)
    su, sv = fu - iu, fv - iv
    su, sv = su * su * (3 - 2 * su), sv * sv * (3 - 2 * sv)  # smoothstep: no grid creases
    iu0, iu1, iv0, iv1 = iu % cells, (iu + 1) % cells, iv % cells, (iv + 1) % cells
    top = grid[iv0][:, iu0] * (1 - su) + grid[iv0][:, iu1] * su  # (H, W)
    bot = grid[iv1][:, iu0] * (1 - su) + grid[iv1][:, iu1] * su
    return top * (1 - sv[:, None]) + bot * sv[:, None]


def _background(spec: SceneSpec, xw: np.ndarray, yw: np.ndarray, px_per_unit: float) -> np.ndarray:
    """Background (H, W, 3) uint8 from world coordinates xw (W,), yw (H,) in frame fractions.

    px_per_unit: pixels per shorter-side unit (the shorter side times the camera zoom).
    """
    h, w = yw.shape[0], xw.shape[0]
    base = np.asarray(BACKGROUND_COLOURS[spec.background_colour], np.float32)
    shade = shade_of(spec.background_colour)
    kind = spec.background
    if kind == "solid":
        return np.broadcast_to(np.rint(base).astype(np.uint8), (h, w, 3)).copy()
    # Texture coordinates in shorter-side units: square cells at any aspect ratio.
    u, v = xw * (w / min(h, w)), yw * (h / min(h, w))  # (W,), (H,)
    short = px_per_unit  # pixels per shorter-side unit (for the ~1 px anti-aliased edges)
    if kind == "gradient":
        m = np.broadcast_to(np.clip(yw, 0.0, 1.0)[:, None], (h, w))  # top: colour, bottom: shade
    elif kind == "stripes":
        period = 0.2  # 5 stripe pairs per shorter side: ~9 px even at 64 px
        s = (u[None, :] + v[:, None]) / period
        m = 0.5 + 0.5 * _soft_wave(s, period * short / math.sqrt(2))
    elif kind == "checker":
        cell = 0.125  # 4 checker periods per shorter side
        m = 0.5 + 0.5 * _soft_wave(u / cell / 2, 2 * cell * short)[None, :] * _soft_wave(v / cell / 2, 2 * cell * short)[:, None]
    else:  # noise
        m = _value_noise(spec.seed, u, v)
    # Mix weight m (H, W) in [0, 1] -> colour through a 256-entry table: one gather per frame.
    lut = np.rint(base + np.linspace(0, 1, 256, dtype=np.float32)[:, None] * (shade - base)).astype(np.uint8)
    return lut[np.rint(m * 255).astype(np.uint8)]  # (H, W, 3)


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------
def render_video(spec: SceneSpec, num_frames: int, height: int, width: int, fps: float = 8.0) -> np.ndarray:
    """Render `spec` to uint8 frames (T, H, W, 3); frame k shows time k / fps seconds.

    A still image is `num_frames=1`.

    >>> spec = SceneSpec(objects=(ObjectSpec("blue", "star", "rotate", 0.5, 0.5, 0.2, speed=2.0),), background="stripes")
    >>> render_video(spec, 1, 32, 48).shape
    (1, 32, 48, 3)
    """
    if num_frames < 1 or height < 1 or width < 1:
        raise ValueError(f"render_video needs num_frames, height, width >= 1, got {num_frames}, {height}, {width}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    short = min(height, width)
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width  # pixel centres, frame fractions
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height
    colours = [np.asarray(COLOURS[o.colour], np.float32) for o in spec.objects]
    video = np.empty((num_frames, height, width, 3), np.uint8)  # (T, H, W, 3)
    static_bg = _background(spec, xs, ys, short) if spec.camera == "none" else None
    for k in range(num_frames):
        t = min(k / fps, spec.duration)  # past the duration the scene holds its final state
        if static_bg is not None:
            video[k] = static_bg
        else:
            cx, zoom = (float(v) for v in camera_state(spec, t))
            xw = cx + (xs - 0.5) / zoom  # world coordinates seen by each pixel column
            yw = 0.5 + (ys - 0.5) / zoom
            video[k] = _background(spec, xw, yw, short * zoom)
        for obj, colour, state in zip(spec.objects, colours, screen_states(spec, t)):
            x, y, size, angle = (float(v) for v in state)
            _draw_shape(video[k], obj.shape, colour, x * width, y * height, size * short, angle)
    return video


def render_object_mask(spec: SceneSpec, num_frames: int, height: int, width: int, fps: float = 8.0) -> np.ndarray:
    """Object coverage (T, H, W) in [0, 1] of `render_video(spec, ...)`'s frames: 1 where any
    object covers a pixel, 0 on the background (anti-aliased edges in between). Used to weight
    the training loss towards objects (`TrainConfig.foreground_weight`).

    >>> spec = SceneSpec(objects=(ObjectSpec("red", "square", "still", 0.5, 0.5, 0.2),))
    >>> m = render_object_mask(spec, 1, 32, 32)
    >>> m.shape, float(m[0, 16, 16]), float(m[0, 0, 0])
    ((1, 32, 32), 1.0, 0.0)
    """
    if num_frames < 1 or height < 1 or width < 1:
        raise ValueError(f"render_object_mask needs num_frames, height, width >= 1, got {num_frames}, {height}, {width}")
    short = min(height, width)
    white = np.full(1, 255, np.float32)
    masks = np.zeros((num_frames, height, width, 1), np.uint8)  # (T, H, W, 1)
    for k in range(num_frames):
        t = min(k / fps, spec.duration)
        for obj, state in zip(spec.objects, screen_states(spec, t)):
            x, y, size, angle = (float(v) for v in state)
            _draw_shape(masks[k], obj.shape, white, x * width, y * height, size * short, angle)
    return masks[..., 0].astype(np.float32) / 255.0


def _draw_shape(frame: np.ndarray, shape: str, colour: np.ndarray, cx: float, cy: float,
                radius: float, angle: float) -> None:
    """Alpha-composite one shape into `frame` (H, W, 3) uint8, in place, inside its bounding box."""
    h, w = frame.shape[:2]
    x0, x1 = max(int(math.floor(cx - radius - 1)), 0), min(int(math.ceil(cx + radius + 1)), w)
    y0, y1 = max(int(math.floor(cy - radius - 1)), 0), min(int(math.ceil(cy + radius + 1)), h)
    if x0 >= x1 or y0 >= y1:
        return
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]  # (1, w_box)
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]  # (h_box, 1)
    c, s = math.cos(angle), math.sin(angle)
    lx, ly = c * dx + s * dy, -s * dx + c * dy  # rotate the pixel grid by -angle: (h_box, w_box)
    alpha = np.clip(0.5 - shape_sdf(shape, lx, ly, radius), 0.0, 1.0)[..., None]  # coverage
    region = frame[y0:y1, x0:x1].astype(np.float32)  # (h_box, w_box, 3)
    frame[y0:y1, x0:x1] = np.rint(region + alpha * (colour - region))
