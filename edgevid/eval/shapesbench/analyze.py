"""Classical vision for ShapesBench: from pixels to per-colour object tracks, shapes and motions.

    video (T, H, W, 3) uint8
      -> estimate_background: nearest named background palette (base tone + texture shade)
      -> segment: per pixel the nearest object colour, if close to it and closer than the background
      -> track_colours: largest connected component per colour per frame -> Track
      -> classify_shape (contour features of a supersampled coverage mask), classify_motion

Everything is in frame fractions and seconds, so the same scene analyses alike at 64 or 256 px,
8 or 24 fps. Only NumPy/OpenCV; no learned components.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgevid.data.world import BACKGROUND_COLOURS, COLOURS, DIRECTIONS, shade_of

COLOUR_NAMES = tuple(COLOURS)
_PALETTE = np.asarray([COLOURS[c] for c in COLOUR_NAMES], np.float32)  # (K, 3)
COLOUR_THRESHOLD = 50.0  # < half the smallest pairwise palette distance (~105): labels never collide
MIN_AREA_FRACTION = 0.0012  # blobs smaller than this fraction of the frame are noise (~5 px at 64x64)
MIN_PRESENCE = 0.5  # a colour counts as an object if it is found in at least half the frames


# --------------------------------------------------------------------------------------
# Background
# --------------------------------------------------------------------------------------
def _segment_distance(pixels: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RGB distance of pixels (..., 3) to the segment a-b: every tone a two-tone texture mixes."""
    ab = b - a
    denom = float(ab @ ab)
    t = np.zeros(pixels.shape[:-1], np.float32) if denom == 0 else np.clip((pixels - a) @ ab / denom, 0.0, 1.0)
    return np.linalg.norm(pixels - (a + t[..., None] * ab), axis=-1)


def background_tones(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(base, shade) RGB of a named background; a solid background only shows the base."""
    return np.asarray(BACKGROUND_COLOURS[name], np.float32), shade_of(name).astype(np.float32)


def estimate_background(video: np.ndarray) -> str:
    """Name of the background palette that best explains the border pixels of all frames.

    Objects are placed away from the edges, so the 1-pixel border is background; a robust mean
    (distances clipped at 60) tolerates the odd object pixel that reaches it.
    """
    border = np.concatenate([video[:, 0], video[:, -1], video[:, :, 0], video[:, :, -1]], axis=1)  # (T, 2H+2W, 3)
    border = border.reshape(-1, 3)[::3].astype(np.float32)
    costs = {}
    for name in BACKGROUND_COLOURS:
        base, shade = background_tones(name)
        # A solid background explains itself with the base alone; a textured one needs both tones.
        costs[name] = float(np.minimum(_segment_distance(border, base, shade), 60.0).mean())
    return min(costs, key=costs.get)


# --------------------------------------------------------------------------------------
# Segmentation and tracking
# --------------------------------------------------------------------------------------
def segment(video: np.ndarray, background: str) -> np.ndarray:
    """Colour label per pixel (T, H, W) int8: index into COLOUR_NAMES, or -1 for background/other."""
    pixels = video.astype(np.float32)  # (T, H, W, 3)
    dist = np.linalg.norm(pixels[..., None, :] - _PALETTE, axis=-1)  # (T, H, W, K)
    label = dist.argmin(-1)
    best = np.take_along_axis(dist, label[..., None], -1)[..., 0]  # (T, H, W)
    bg = _segment_distance(pixels, *background_tones(background))
    keep = (best < COLOUR_THRESHOLD) & (best < bg)
    return np.where(keep, label, -1).astype(np.int8)


@dataclass
class Track:
    """One colour's object over time; frames where it was not found hold NaN / empty masks.

    centroid: (T, 2) x, y in frame fractions; area: (T,) fraction of the frame; masks: per frame a
    boolean (H, W) mask of the largest blob or None.
    """
    colour: str
    centroid: np.ndarray
    area: np.ndarray
    bbox: np.ndarray  # (T, 4) x0, y0, x1, y1 in pixels (exclusive end); -1 where absent
    masks: list
    mean_rgb: np.ndarray  # (T, 3)
    # (T,) the largest blob's share of all this colour's (non-seam) pixels in the frame; NaN where
    # absent. One object gives ~1; speckle and colour noise spread a colour over many blobs.
    share: np.ndarray | None = None

    @property
    def present(self) -> np.ndarray:
        return ~np.isnan(self.area)


def track_colours(video: np.ndarray, labels: np.ndarray) -> dict[str, Track]:
    """Per colour: the largest connected blob per frame (objects in a scene have distinct colours).

    A blob must cover MIN_AREA_FRACTION of the frame and must not lie mostly along another
    colour's blob: anti-aliased seams (red over yellow edges look orange) are not objects.
    """
    t_len, h, w = labels.shape
    min_area = max(3, MIN_AREA_FRACTION * h * w)
    kernel = np.ones((3, 3), np.uint8)
    tracks = {}
    labelled = labels >= 0  # (T, H, W)
    for k, name in enumerate(COLOUR_NAMES):
        hits = labels == k  # (T, H, W)
        if hits.sum() < min_area:
            continue
        centroid = np.full((t_len, 2), np.nan)
        area = np.full(t_len, np.nan)
        bbox = np.full((t_len, 4), -1, np.int64)
        rgb = np.full((t_len, 3), np.nan)
        share = np.full(t_len, np.nan)
        masks = [None] * t_len
        for t in range(t_len):
            near_other = cv2.dilate((labelled[t] & ~hits[t]).astype(np.uint8), kernel).astype(bool)
            n, comp, stats, cents = cv2.connectedComponentsWithStats(hits[t].astype(np.uint8), connectivity=8)
            best, best_area, total = 0, 0, 0
            for i in range(1, n):
                a = stats[i, cv2.CC_STAT_AREA]
                if a < 2:  # single pixels: quantisation, not structure
                    continue
                if near_other[comp == i].mean() < 0.5:  # seams between two other colours are not this colour's
                    total += a
                    if a >= min_area and a > best_area:
                        best, best_area = i, a
            if best == 0:
                continue
            share[t] = best_area / total
            m = comp == best
            x, y, bw, bh = stats[best, :4]
            masks[t] = m
            centroid[t] = ((cents[best, 0] + 0.5) / w, (cents[best, 1] + 0.5) / h)
            area[t] = best_area / (h * w)
            bbox[t] = (x, y, x + bw, y + bh)
            rgb[t] = video[t][m].mean(0)
        if np.isnan(area).mean() <= 1 - MIN_PRESENCE:
            tracks[name] = Track(name, centroid, area, bbox, masks, rgb, share)
    return tracks


# --------------------------------------------------------------------------------------
# Coherence: is a colour's track one object of the right size, or colour noise?
# --------------------------------------------------------------------------------------
# Issue 16: a colour that shows up anywhere is not an object. Smooth random colour fields
# scored 0.96 on "colour" under presence alone. A track is a coherent object only if, in most
# frames, it is one connected region (COHERENT_SHARE of the colour's pixels) of plausible area,
# and it is stable from frame to frame.
COHERENT_SHARE = 0.8  # largest blob / all the colour's blobs in a frame; ground truth ~1
AREA_RATIO = (0.3, 3.0)  # measured / expected area; labelled pixels miss the anti-aliased rim
COHERENT_PRESENCE = 0.75  # coherent in at least this share of the frames
AREA_JUMP = 1.6  # largest area ratio between consecutive coherent frames that counts as stable
MAX_SPEED = 1.5  # frame fractions per second; the world's fastest motion (bounce) is ~1
STABLE_SHARE = 0.8  # share of consecutive frame pairs that must be stable
# Area (fraction of the frame) of any object the world can draw, for colours the prompt does
# not name (they count towards "count" only if they look like objects too).
GENERIC_AREA = (0.002, 0.25)


def coherent_frames(track: Track, expected_area: np.ndarray | None) -> np.ndarray:
    """(T,) bool: frames where the track is one region of plausible area. `expected_area` (T,)
    is the spec object's area in frame fractions (None: any object size of the world)."""
    area = track.area
    ok = track.present & (np.nan_to_num(track.share) >= COHERENT_SHARE)
    if expected_area is None:
        lo, hi = GENERIC_AREA
        ok &= (np.nan_to_num(area) >= lo) & (np.nan_to_num(area) <= hi)
    else:
        ratio = np.nan_to_num(area) / np.maximum(expected_area, 1e-6)
        ok &= (ratio >= AREA_RATIO[0]) & (ratio <= AREA_RATIO[1])
    return ok


def is_coherent_object(track: Track, fps: float, expected_area: np.ndarray | None = None) -> bool:
    """One object: coherent in COHERENT_PRESENCE of the frames, and between consecutive coherent
    frames its area changes by < AREA_JUMP x and its centroid moves less than MAX_SPEED allows
    (plus 0.05 of slack) in STABLE_SHARE of the pairs."""
    ok = coherent_frames(track, expected_area)
    if ok.mean() < COHERENT_PRESENCE:
        return False
    pairs = ok[:-1] & ok[1:]
    if not pairs.any():
        return len(ok) == 1
    idx = np.nonzero(pairs)[0]
    a0, a1 = track.area[idx], track.area[idx + 1]
    jump = np.linalg.norm(track.centroid[idx + 1] - track.centroid[idx], axis=1)
    stable = (np.maximum(a0, a1) / np.minimum(a0, a1) < AREA_JUMP) & (jump <= MAX_SPEED / fps + 0.05)
    return bool(stable.mean() >= STABLE_SHARE)


# --------------------------------------------------------------------------------------
# Shape
# --------------------------------------------------------------------------------------
def coverage_mask(frame: np.ndarray, mask: np.ndarray, colour: str, supersample_to: int = 96) -> np.ndarray:
    """Supersampled binary mask of one blob (S, S') from its anti-aliased coverage.

    Coverage alpha = projection of each pixel onto the line from the local background (mean of
    nearby non-object pixels) to the object colour; bilinear upsampling and a 0.5 threshold then
    recover sub-pixel edges, so shapes of ~4 px radius keep their corners.
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = max(ys.min() - 3, 0), min(ys.max() + 4, h), max(xs.min() - 3, 0), min(xs.max() + 4, w)
    crop = frame[y0:y1, x0:x1].astype(np.float32)  # (h_c, w_c, 3)
    inner = cv2.dilate(mask[y0:y1, x0:x1].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    ring = crop[~inner]
    c = np.asarray(COLOURS[colour], np.float32)
    b = ring.mean(0) if len(ring) else crop[~mask[y0:y1, x0:x1]].mean(0)
    cb = c - b
    alpha = np.clip((crop - b) @ cb / max(float(cb @ cb), 1.0), 0.0, 1.0)  # (h_c, w_c)
    alpha[~inner] = 0.0  # other objects or texture beyond the blob's neighbourhood
    f = max(1, int(math.ceil(supersample_to / max(alpha.shape))))
    big = cv2.resize(alpha, (alpha.shape[1] * f, alpha.shape[0] * f), interpolation=cv2.INTER_LINEAR)
    return big > 0.5


def shape_features(mask: np.ndarray) -> dict[str, float]:
    """Contour features of the largest region of a binary mask (scale-free)."""
    m = mask.astype(np.uint8)
    contours, hierarchy = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return {}
    i = max(range(len(contours)), key=lambda j: cv2.contourArea(contours[j]))
    outer = contours[i]
    outer_area = cv2.contourArea(outer)
    holes = sum(cv2.contourArea(contours[j]) for j in range(len(contours)) if hierarchy[0][j][3] == i)
    hull_area = cv2.contourArea(cv2.convexHull(outer))
    (_, _), radius = cv2.minEnclosingCircle(outer)
    (_, _), (rw, rh), _ = cv2.minAreaRect(outer)
    perimeter = cv2.arcLength(outer, True)
    approx = cv2.approxPolyDP(outer, 0.04 * perimeter, True)
    return {
        "hole": holes / max(outer_area, 1e-6),  # ring: (0.48 / 0.92)^2 ~ 0.27
        "solidity": outer_area / max(hull_area, 1e-6),  # star ~ 0.56, convex shapes ~ 1
        "circle_fill": outer_area / (math.pi * radius * radius),  # circle 1, hexagon .83, square .64, triangle .41
        "rect_fill": outer_area / max(rw * rh, 1e-6),  # square 1, triangle and diamond 0.5
        "rect_aspect": min(rw, rh) / max(rw, rh, 1e-6),  # diamond 0.62, triangle 0.87
        "circularity": 4 * math.pi * outer_area / max(perimeter * perimeter, 1e-6),
        "vertices": float(len(approx)),
    }


def classify_shape(features: dict[str, float]) -> str | None:
    """A small decision tree over `shape_features` (thresholds halfway between the ideal shapes)."""
    if not features:
        return None
    if features["hole"] > 0.08:
        return "ring"
    if features["solidity"] < 0.8:
        return "star"
    fill = features["circle_fill"]
    if fill > 0.91:
        return "circle"
    if fill > 0.73:
        return "hexagon"
    if fill > 0.52:
        return "square"
    return "diamond" if features["rect_aspect"] < 0.75 else "triangle"


def track_shape(video: np.ndarray, track: Track) -> str | None:
    """Shape of a track, classified at the frame where the object is largest (most pixels)."""
    if not track.present.any():
        return None
    t = int(np.nanargmax(track.area))
    return classify_shape(shape_features(coverage_mask(video[t], track.masks[t], track.colour)))


# --------------------------------------------------------------------------------------
# Motion
# --------------------------------------------------------------------------------------
GROW_RATE = 0.2  # |d log(area) / dt| per second; the world's grow/shrink give >= 0.4
MOVE_SPEED = 0.04  # path length per second (frame fractions) below which a centroid is at rest
STRAIGHTNESS = 0.8  # net displacement / path length above which a path is a straight line
ROTATE_CHANGE = 0.06  # coverage change (fraction of the area) above which a resting object turns


def to_world(centroid: np.ndarray, area: np.ndarray, cam_x: np.ndarray, zoom: np.ndarray):
    """Undo the camera (as world.screen_states defines it): screen p = 0.5 + (world - c) * zoom."""
    x = cam_x + (centroid[:, 0] - 0.5) / zoom
    y = 0.5 + (centroid[:, 1] - 0.5) / zoom
    return np.stack([x, y], 1), area / zoom**2


def classify_motion(video: np.ndarray, track: Track, times: np.ndarray, cam_x: np.ndarray | None = None,
                    zoom: np.ndarray | None = None) -> str:
    """Name from world.MOTIONS for a track sampled at `times` seconds (already clamped to the
    scene's duration). Camera pan/zoom per frame, if given, is undone first.

    Order: size trend (grow/shrink) -> centroid path (straight: one of 8 directions; curved with
    little sideways travel: bounce; otherwise orbit) -> coverage change at rest (rotate) -> still.
    """
    ok = track.present
    if ok.sum() < 2:
        return "still"
    t = times[ok]
    p, area = track.centroid[ok], track.area[ok]
    if cam_x is not None:
        p, area = to_world(p, area, cam_x[ok], zoom[ok])
    span = max(float(t[-1] - t[0]), 1e-6)
    log_rate = float(np.polyfit(t, np.log(area), 1)[0]) if span > 0 else 0.0
    steps = np.linalg.norm(np.diff(p, axis=0), axis=1)
    path = float(steps.sum())
    net = p[-1] - p[0]
    if abs(log_rate) > GROW_RATE and path / span < 2 * MOVE_SPEED:
        return "grow" if log_rate > 0 else "shrink"
    if path / span > MOVE_SPEED:
        if np.linalg.norm(net) > STRAIGHTNESS * path:
            d = net / np.linalg.norm(net)
            return max(DIRECTIONS, key=lambda m: d @ np.asarray(DIRECTIONS[m]))
        x_range, y_range = np.ptp(p[:, 0]), np.ptp(p[:, 1])
        return "bounce" if x_range < 0.3 * y_range else "orbit"
    return "rotate" if _coverage_change(video, track) > ROTATE_CHANGE else "still"


def _alpha(frame: np.ndarray, mask: np.ndarray, colour: str) -> np.ndarray:
    """Coverage (H, W) float32 of one blob: each pixel projected on the line from the blob's local
    background (mean of the surrounding ring) to the object colour; 0 away from the blob."""
    near = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    ring = cv2.dilate(near.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~near
    pixels = frame.astype(np.float32)
    b = pixels[ring].mean(0) if ring.any() else pixels[~mask].mean(0)
    cb = np.asarray(COLOURS[colour], np.float32) - b
    alpha = np.clip((pixels - b) @ cb / max(float(cb @ cb), 1.0), 0.0, 1.0)
    return np.where(near, alpha, 0.0).astype(np.float32)


def _coverage_change(video: np.ndarray, track: Track) -> float:
    """Largest change of the object's coverage from the first frame, as a fraction of its area.
    Each frame's coverage is cropped around its own sub-pixel centroid (bilinear), so a resting
    object under a camera pan does not count as a change; only a change of outline does."""
    idx = [t for t, m in enumerate(track.masks) if m is not None]
    side = int(2 * np.nanmax(track.bbox[:, 2:] - track.bbox[:, :2])) + 4
    crops = []
    for t in idx:
        alpha = _alpha(video[t], track.masks[t], track.colour)  # (H, W)
        m = cv2.moments(alpha)  # coverage-weighted centroid: sub-pixel exact for anti-aliased edges
        centre = (m["m10"] / max(m["m00"], 1e-6), m["m01"] / max(m["m00"], 1e-6))
        crops.append(cv2.getRectSubPix(alpha, (side, side), centre))
    first = crops[0]
    return max(float(np.abs(c - first).sum()) / max(float(first.sum()), 1.0) for c in crops)
