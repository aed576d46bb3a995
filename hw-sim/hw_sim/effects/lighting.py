"""Light over time: daylight and dusk, cloud shadows, headlights, a street at night.

None of them stands for ground truth: the scene-analyzer scenarios use them to check that
a change of light is not taken for water, litter or tampering, and ``NightLighting`` sets
the object-rule scenario that happens at night.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from edge_agent.types import ImageBGR
from hw_sim.effects.common import Keyframes, interpolate, scale_channels
from hw_sim.street import HORIZON_Y, Actor, perspective_scale


@dataclass(frozen=True)
class Daylight:
    """Global light over time: a gain and a colour tint (B, G, R factors), keyframed.

    Dusk is a gain falling to ~0.3 with a bluish tint; a cloud a dip of the gain.
    """

    gain: Keyframes
    tint_blue: Keyframes = ((0.0, 1.0),)
    tint_red: Keyframes = ((0.0, 1.0),)

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def factors(self, t_s: float) -> tuple[float, float, float]:
        gain = interpolate(self.gain, t_s)
        return (
            gain * interpolate(self.tint_blue, t_s),
            gain,
            gain * interpolate(self.tint_red, t_s),
        )

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        factors = self.factors(t_s)
        if factors == (1.0, 1.0, 1.0):
            return image
        return scale_channels(image, factors)


@dataclass(frozen=True)
class CloudShadows:
    """Shadows of clouds sweeping across the scene: soft-edged bands that darken what they
    cover by ``darkening``, each crossing the frame from left to right between its two
    times (a local change of light, unlike ``Daylight``)."""

    crossings: tuple[tuple[float, float], ...]  # (start_s, end_s) of each cloud
    width: float = 0.6  # of the frame
    darkening: float = 0.35

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        width = image.shape[1]
        xs = np.linspace(0.0, 1.0, width, dtype=np.float32)
        shade = np.zeros(width, np.float32)
        for start_s, end_s in self.crossings:
            if not start_s <= t_s <= end_s:
                continue
            share = (t_s - start_s) / max(1e-6, end_s - start_s)
            centre = -self.width / 2 + share * (1.0 + self.width)
            inside = 1.0 - np.abs(xs - centre) / (self.width / 2)
            shade = np.maximum(shade, np.clip(inside * 4.0, 0.0, 1.0))  # soft edges
        if not shade.any():
            return image
        factor = 1.0 - self.darkening * shade
        out = image.astype(np.float32) * factor[None, :, None]
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Headlights:
    """Headlights of the given cars: a glare at the front and a pool of light on the road
    ahead, strength keyframed (0 by day, 1 at dusk). Geometry follows hw_sim.scenes'
    placement of cars (bottom-centre path, perspective from ``horizon_y``)."""

    cars: tuple[Actor, ...]
    strength: Keyframes
    horizon_y: float = HORIZON_Y
    aspect: float = 2.4  # car sprites are about 2.4 times as wide as high

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        strength = interpolate(self.strength, t_s)
        if strength <= 0.0:
            return image
        height, width = image.shape[:2]
        pool = np.zeros((height, width), np.float32)  # light falling on the road: multiplies
        glare = np.zeros((height, width), np.float32)  # the lamps themselves: adds
        for car in self.cars:
            position = car.position(t_s)
            if position is None:
                continue
            x, y, moving_right = position
            scale = perspective_scale(y, self.horizon_y)
            car_h = car.height * scale * height
            car_w = car_h * self.aspect
            direction = 1.0 if moving_right else -1.0
            front_x = x * width + direction * car_w * 0.45
            lamp_y = y * height - car_h * 0.38
            ground_y = y * height - car_h * 0.05
            centre = (round(front_x + direction * car_w * 0.45), round(ground_y))
            axes = (max(1, round(car_w * 0.5)), max(1, round(car_h * 0.16)))
            cv2.ellipse(pool, centre, axes, 0, 0, 360, 1.0, -1)
            radius = max(1, round(car_h * 0.09))
            cv2.circle(glare, (round(front_x), round(lamp_y)), radius, 1.0, -1)
        if not (pool.any() or glare.any()):
            return image
        sigma = max(1.0, height * 0.012)
        pool = np.asarray(cv2.GaussianBlur(pool, (0, 0), sigma * 2.0), np.float32) * strength
        glare = np.asarray(cv2.GaussianBlur(glare, (0, 0), sigma), np.float32) * strength
        light = np.array([215.0, 240.0, 255.0], np.float32)  # warm white
        out = image.astype(np.float32) * (1.0 + 1.5 * pool[:, :, None])
        out += glare[:, :, None] * light
        return np.clip(out, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class NightLighting:
    """Night: the street lit only by a few lamps, bluish, windows lit here and there.

    A scene-stage effect (sensor noise comes after it, as at night). ``lamps`` are
    (x, y, radius) in normalised coordinates; light falls off smoothly around them.
    """

    ambient: float = 0.22
    lamps: tuple[tuple[float, float, float], ...] = ((0.3, 0.9, 0.35), (0.8, 0.55, 0.3))
    lamp_gain: float = 0.5

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def _light(self, height: int, width: int) -> np.ndarray[Any, np.dtype[np.float32]]:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        light = np.full((height, width), self.ambient, np.float32)
        for lx, ly, radius in self.lamps:
            distance = np.hypot(xs / height - lx * width / height, ys / height - ly)
            light += self.lamp_gain * np.exp(-((distance / radius) ** 2))
        return light

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        height, width = image.shape[:2]
        light = _LIGHT_CACHE.get((self, height, width))
        if light is None:
            light = self._light(height, width)
            _LIGHT_CACHE[(self, height, width)] = light
        tint = np.array([1.15, 1.0, 0.8], np.float32)  # moonlight blue, sodium lamps aside
        lit = image.astype(np.float32) * light[:, :, None] * tint
        return np.asarray(cv2.convertScaleAbs(lit), np.uint8)


_LIGHT_CACHE: dict[tuple[NightLighting, int, int], np.ndarray[Any, np.dtype[np.float32]]] = {}


def car_actors(actors: Sequence[Actor]) -> tuple[Actor, ...]:
    """The actors that are cars (sprite names starting with ``car``), for ``Headlights``."""
    return tuple(actor for actor in actors if actor.sprite.startswith("car"))
