"""Water for the flood analyzer: a puddle that grows and shrinks on the road (with its
``coverage`` of a region, the flood truth) and falling rain."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from edge_agent.types import ImageBGR
from hw_sim.background import StreetLayout
from hw_sim.effects.common import (
    FloatImage,
    Keyframes,
    Polygon,
    actor_rect,
    blend,
    interpolate,
    polygon_mask,
    smooth_noise,
)
from hw_sim.street import Actor


@dataclass(frozen=True)
class Puddle:
    """Standing water on the road that grows and shrinks: where a fixed "lowness" field
    (distance from ``centre`` plus irregularity) is below a keyframed water level.

    The water mirrors an overcast sky (light, bluish, smooth) with a faint ripple and
    shows a little of the road through it; it stays between the kerbs.
    """

    level: Keyframes
    centre: tuple[float, float] = (0.4, 0.68)
    spread: tuple[float, float] = (0.30, 0.10)  # field units per frame fraction (x, y)
    layout: StreetLayout = field(default_factory=StreetLayout)
    seed: int = 7
    occluders: tuple[Actor, ...] = ()  # cars and people drawn in front of the water
    _fields: dict[tuple[int, int], FloatImage] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def lowness(self, width: int, height: int) -> FloatImage:
        """The field water fills from its lowest point; infinite off the road."""
        key = (width, height)
        cached = self._fields.get(key)
        if cached is not None:
            return cached
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        dx = (xs / width - self.centre[0]) / self.spread[0]
        dy = (ys / height - self.centre[1]) / self.spread[1]
        noise = smooth_noise(self.seed, width, height, max(4, width // 12))
        lowness = np.sqrt(dx * dx + dy * dy) + 0.3 * noise
        road = (ys >= self.layout.far_kerb * height + 0.03 * height) & (
            ys < self.layout.road_bottom * height - 0.015 * height
        )
        field_: FloatImage = np.where(road, lowness, np.float32(1e6)).astype(np.float32)
        self._fields[key] = field_
        return field_

    def alpha(self, width: int, height: int, t_s: float) -> FloatImage:
        level = interpolate(self.level, t_s)
        feather = 0.06
        alpha: FloatImage = np.clip((level - self.lowness(width, height)) / feather, 0.0, 1.0)
        return alpha

    def coverage(self, region: Polygon, t_s: float, width: int = 320, height: int = 180) -> float:
        """Share of ``region`` under water at ``t_s`` (ground truth)."""
        mask = polygon_mask(region, width, height)
        water = self.alpha(width, height, t_s) >= 0.5
        return float((water & mask).sum()) / max(1, int(mask.sum()))

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        height, width = image.shape[:2]
        alpha = self.alpha(width, height, t_s)
        if not alpha.any():
            return image
        for actor in self.occluders:  # the scene pasted them already: keep them dry
            rect = actor_rect(actor, t_s, width, height)
            if rect is not None:  # the wheels stand in the water, the body above it
                x0, y0, x1, y1 = rect
                y1 -= round(0.06 * (y1 - y0))
                alpha[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 0.0
        ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
        sky = np.empty((height, width, 3), np.float32)
        ripple = 2.0 * np.sin(2.0 * np.pi * 12.0 * ys + 3.0 * xs + 0.7 * t_s)  # gentle swell
        brightness = 212.0 - 40.0 * ys + ripple  # the sky is lighter near the horizon
        sky[:, :, 0] = brightness
        sky[:, :, 1] = brightness - 8.0
        sky[:, :, 2] = brightness - 20.0
        colour = 0.8 * sky + 0.2 * image.astype(np.float32)
        return blend(image, colour, alpha[:, :, None])


@dataclass(frozen=True)
class Rain:
    """Falling rain as short pale streaks, different in every frame, between two times."""

    start_s: float
    end_s: float
    streaks_per_megapixel: float = 600.0
    seed: int = 11

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        if not self.start_s <= t_s < self.end_s:
            return image
        height, width = image.shape[:2]
        count = max(1, round(self.streaks_per_megapixel * width * height / 1e6))
        rng = np.random.default_rng((self.seed, round(t_s * 1000)))
        layer = np.zeros((height, width), np.uint8)
        length = max(3, round(height * 0.03))
        for x, y in zip(rng.integers(0, width, count), rng.integers(0, height, count), strict=True):
            cv2.line(layer, (int(x), int(y)), (int(x) + length // 4, int(y) + length), 40, 1)
        return np.asarray(cv2.add(image, cv2.merge([layer, layer, layer])), np.uint8)
