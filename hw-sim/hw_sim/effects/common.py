"""What the effects share: keyframed values, region masks, noise fields, blending, and
where an actor is drawn (for effects that must stay behind or follow it)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.types import ImageBGR
from hw_sim.street import HORIZON_Y, Actor, perspective_scale

Keyframes = tuple[tuple[float, float], ...]
"""(t_s, value) pairs, times increasing; the value is linear in between, held outside."""

FloatImage = npt.NDArray[np.float32]
Polygon = Sequence[tuple[float, float]]


def interpolate(keyframes: Keyframes, t_s: float) -> float:
    """The keyframed value at ``t_s`` (held before the first and after the last key)."""
    if not keyframes:
        raise ValueError("no keyframes")
    if t_s <= keyframes[0][0]:
        return keyframes[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(keyframes):
        if t_s <= t1:
            share = 0.0 if t1 <= t0 else (t_s - t0) / (t1 - t0)
            return v0 + (v1 - v0) * share
    return keyframes[-1][1]


def polygon_mask(polygon: Polygon, width: int, height: int) -> npt.NDArray[np.bool_]:
    """Pixels inside a normalised polygon, at width x height."""
    mask = np.zeros((height, width), np.uint8)
    points = np.array([[x * width * 16, y * height * 16] for x, y in polygon], np.float32)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1, cv2.LINE_8, 4)
    return mask > 0


def smooth_noise(seed: int, width: int, height: int, cell_px: int) -> FloatImage:
    """Noise varying over ``cell_px`` pixels, the same for the same seed: irregular edges."""
    rng = np.random.default_rng(seed)
    grid = rng.standard_normal((height // cell_px + 2, width // cell_px + 2)).astype(np.float32)
    return np.asarray(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), np.float32)


def scale_channels(image: ImageBGR, gains_bgr: tuple[float, float, float]) -> ImageBGR:
    """Each colour channel times its gain, rounded and clipped to 0..255."""
    scaled = image.astype(np.float32) * np.array(gains_bgr, np.float32)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def blend(image: ImageBGR, colour: FloatImage, alpha: FloatImage) -> ImageBGR:
    """image * (1 - alpha) + colour * alpha, alpha HxWx1 in 0..1."""
    under = image.astype(np.float32)
    out = under + (colour - under) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def seconds_to_keyframes(points: Sequence[tuple[float, float]]) -> Keyframes:
    """Checks times increase; a convenience for scenario scripts."""
    times = [t for t, _ in points]
    if times != sorted(times) or any(math.isnan(t) for t in times):
        raise ValueError(f"keyframe times must increase: {times}")
    return tuple((float(t), float(v)) for t, v in points)


def actor_rect(
    actor: Actor, t_s: float, width: int, height: int, *, horizon_y: float = HORIZON_Y
) -> tuple[int, int, int, int] | None:
    """Where ``actor`` is drawn at ``t_s`` (x0, y0, x1, y1 px), as hw_sim.scenes places it,
    with a typical sprite aspect (cars ~2.4 wide per high, people ~0.5); None when absent."""
    position = actor.position(t_s)
    if position is None:
        return None
    x, y, _ = position
    scale = perspective_scale(y, horizon_y)
    h = actor.height * scale * height
    w = h * (2.4 if actor.sprite.startswith("car") else 0.5)
    return (round(x * width - w / 2), round(y * height - h), round(x * width + w / 2),
            round(y * height))  # fmt: skip
