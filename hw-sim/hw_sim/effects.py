"""Changes to the picture over time, for the scene analyzers' scenarios.

Every effect is a pure function of (image, t_s) (``hw_sim.scenes.Effect``): the same
inputs give the same bytes, whatever order frames are rendered in. Geometry is given in
fractions of the frame, so an effect looks the same at any resolution; per-size work
(noise fields, sprites) is cached.

Stages: "scene" effects change the world before the sensor (a puddle, dusk, bags, a
hand in front of the lens, a knocked or defocused camera: the sensor's noise still
applies, as it would); "lens" effects replace what the sensor delivered (a frozen feed).

Each effect that stands for ground truth can say how much of a region it covers
(``coverage``), so scenarios derive their expected states from the same geometry that
draws the picture.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.types import ImageBGR
from hw_sim.background import StreetLayout
from hw_sim.scenes import Actor

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


def _smooth_noise(seed: int, width: int, height: int, cell_px: int) -> FloatImage:
    rng = np.random.default_rng(seed)
    grid = rng.standard_normal((height // cell_px + 2, width // cell_px + 2)).astype(np.float32)
    return np.asarray(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), np.float32)


def _scale(image: ImageBGR, gains_bgr: tuple[float, float, float]) -> ImageBGR:
    scaled = image.astype(np.float32) * np.array(gains_bgr, np.float32)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _blend(image: ImageBGR, colour: FloatImage, alpha: FloatImage) -> ImageBGR:
    """image * (1 - alpha) + colour * alpha, alpha HxWx1 in 0..1."""
    under = image.astype(np.float32)
    out = under + (colour - under) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# --- light ---------------------------------------------------------------------------


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
        return _scale(image, factors)


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
    horizon_y: float = -1.1
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
            scale = max(0.05, (y - self.horizon_y) / (1.0 - self.horizon_y))
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


# --- water ---------------------------------------------------------------------------


def actor_rect(
    actor: Actor, t_s: float, width: int, height: int, *, horizon_y: float = -1.1
) -> tuple[int, int, int, int] | None:
    """Where ``actor`` is drawn at ``t_s`` (x0, y0, x1, y1 px), as hw_sim.scenes places it,
    with a typical sprite aspect (cars ~2.4 wide per high, people ~0.5); None when absent."""
    position = actor.position(t_s)
    if position is None:
        return None
    x, y, _ = position
    scale = max(0.05, (y - horizon_y) / (1.0 - horizon_y))
    h = actor.height * scale * height
    w = h * (2.4 if actor.sprite.startswith("car") else 0.5)
    return (round(x * width - w / 2), round(y * height - h), round(x * width + w / 2),
            round(y * height))  # fmt: skip


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
        noise = _smooth_noise(self.seed, width, height, max(4, width // 12))
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
        return _blend(image, colour, alpha[:, :, None])


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


# --- litter --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bag:
    """A rubbish bag that appears at ``at_s``: bottom-centre (x, y), height as a fraction
    of the frame height, colour BGR."""

    at_s: float
    x: float
    y: float
    height: float
    colour: tuple[float, float, float] = (28.0, 30.0, 32.0)


@dataclass(frozen=True)
class GarbageBags:
    """Bags dumped one by one (drawn over whatever is there: the pile is in front)."""

    bags: tuple[Bag, ...]
    _sprites: dict[tuple[int, int], tuple[ImageBGR, FloatImage]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def _sprite(self, index: int, height_px: int) -> tuple[ImageBGR, FloatImage]:
        """A bag: a dark rounded body, a knot on top, a soft sheen and a contact shadow."""
        key = (index, height_px)
        cached = self._sprites.get(key)
        if cached is not None:
            return cached
        bag = self.bags[index]
        h = max(6, height_px)
        w = max(6, round(h * 1.15))
        alpha = np.zeros((h, w), np.float32)
        body_h = round(h * 0.78)
        cv2.ellipse(alpha, (w // 2, h - body_h // 2 - 1), (w // 2 - 1, body_h // 2), 0, 0, 360,
                    1.0, -1)  # fmt: skip
        cv2.ellipse(alpha, (w // 2, round(h * 0.16)), (max(1, w // 9), round(h * 0.14)), 0, 0,
                    360, 1.0, -1)  # fmt: skip
        alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), max(0.6, h * 0.02)), np.float32)
        colour = np.empty((h, w, 3), np.float32)
        colour[:] = bag.colour
        sheen = np.zeros((h, w), np.float32)
        cv2.ellipse(sheen, (round(w * 0.35), round(h * 0.45)), (max(1, w // 8), max(1, h // 5)),
                    -30, 0, 360, 1.0, -1)  # fmt: skip
        sheen = np.asarray(cv2.GaussianBlur(sheen, (0, 0), max(1.0, h * 0.06)), np.float32)
        colour += 70.0 * sheen[:, :, None]
        folds = _smooth_noise(index + 101, w, h, max(2, h // 6))
        colour += 10.0 * folds[:, :, None]
        sprite = (np.clip(colour, 0, 255).astype(np.uint8), alpha[:, :, None])
        self._sprites[key] = sprite
        return sprite

    def rects(self, width: int, height: int, t_s: float) -> list[tuple[int, int, int, int, int]]:
        """(index, x0, y0, x1, y1) of the bags present at ``t_s``, in pixels."""
        rects = []
        for index, bag in enumerate(self.bags):
            if t_s < bag.at_s:
                continue
            h = max(6, round(bag.height * height))
            w = max(6, round(h * 1.15))
            x0 = round(bag.x * width - w / 2)
            y1 = round(bag.y * height)
            rects.append((index, x0, y1 - h, x0 + w, y1))
        return rects

    def coverage(self, region: Polygon, t_s: float, width: int = 320, height: int = 180) -> float:
        """Share of ``region`` covered by bags at ``t_s`` (ground truth)."""
        mask = polygon_mask(region, width, height)
        covered = self._alpha_map(width, height, t_s) >= 0.5
        return float((covered & mask).sum()) / max(1, int(mask.sum()))

    def _alpha_map(self, width: int, height: int, t_s: float) -> FloatImage:
        alpha_map = np.zeros((height, width), np.float32)
        for index, x0, y0, x1, y1 in self.rects(width, height, t_s):
            _, alpha = self._sprite(index, y1 - y0)
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            part = alpha[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0, 0]
            np.maximum(alpha_map[cy0:cy1, cx0:cx1], part, out=alpha_map[cy0:cy1, cx0:cx1])
        return alpha_map

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        rects = self.rects(image.shape[1], image.shape[0], t_s)
        if not rects:
            return image
        out = image.copy()
        height, width = out.shape[:2]
        for index, x0, y0, x1, y1 in rects:
            bgr, alpha = self._sprite(index, y1 - y0)
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            # A contact shadow under the bag first, then the bag.
            shadow_y0 = max(0, y1 - max(2, (y1 - y0) // 8))
            shadow_y1 = min(height, y1 + max(1, (y1 - y0) // 12))
            out[shadow_y0:shadow_y1, cx0:cx1] = (out[shadow_y0:shadow_y1, cx0:cx1] * 0.6).astype(
                np.uint8
            )
            source = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
            out[cy0:cy1, cx0:cx1] = _blend(
                out[cy0:cy1, cx0:cx1], bgr[source].astype(np.float32), alpha[source]
            )
        result: ImageBGR = out
        return result


# --- the camera ----------------------------------------------------------------------


@dataclass(frozen=True)
class LensCover:
    """Something dark right in front of the lens (a hand, a bag, a sticker), completely out
    of focus: it slides in from the right, covers the picture, then slides away.

    ``cover`` is keyframed: 0 clear, 1 fully covered (the share of the width it hides).
    """

    cover: Keyframes
    colour: tuple[float, float, float] = (38.0, 46.0, 62.0)  # dark skin in shadow

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        share = interpolate(self.cover, t_s)
        if share <= 0.0:
            return image
        height, width = image.shape[:2]
        xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
        ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        edge = 1.0 - share * 1.25  # the soft edge moves in from the right
        alpha = np.broadcast_to(np.clip((xs - edge) / 0.25, 0.0, 1.0), (height, width))
        # Light leaking round the edge of the hand: a faint glow at the top left.
        leak = 10.0 * np.clip(1.0 - (xs + ys), 0.0, 1.0)
        colour = np.empty((height, width, 3), np.float32)
        for channel, value in enumerate(self.colour):
            colour[:, :, channel] = value + leak
        return _blend(image, colour, alpha[:, :, None])


@dataclass(frozen=True)
class Knock:
    """The camera knocked askew: from ``at_s`` over ``duration_s`` the view shifts by
    (dx, dy) (fractions of the frame) and turns by ``angle_deg``, and stays so."""

    at_s: float
    shift: tuple[float, float] = (0.08, 0.05)
    angle_deg: float = 4.0
    duration_s: float = 1.0

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        if t_s < self.at_s:
            return image
        share = 1.0 if self.duration_s <= 0 else min(1.0, (t_s - self.at_s) / self.duration_s)
        height, width = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), self.angle_deg * share, 1.0)
        matrix[0, 2] += self.shift[0] * width * share
        matrix[1, 2] += self.shift[1] * height * share
        warped = cv2.warpAffine(
            image, matrix, (width, height), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )  # fmt: skip
        return np.asarray(warped, np.uint8)


@dataclass(frozen=True)
class Defocus:
    """The lens losing focus (knocked focus ring, condensation, spray): a blur whose
    strength (sigma, as a fraction of the width) is keyframed."""

    sigma: Keyframes

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        sigma_px = interpolate(self.sigma, t_s) * image.shape[1]
        if sigma_px < 0.3:
            return image
        return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma_px), np.uint8)


@dataclass(frozen=True)
class FrozenFeed:
    """The feed stops changing between two times: an encoder or recorder repeating one
    picture, bit for bit. ``still(width, height)`` gives the picture it repeats (the
    scene as it was when the feed froze); it is cached per size."""

    start_s: float
    end_s: float
    still: Callable[[int, int], ImageBGR]
    _cache: dict[tuple[int, int], ImageBGR] = field(default_factory=dict, compare=False, repr=False)

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "lens"

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        if not self.start_s <= t_s < self.end_s:
            return image
        height, width = image.shape[:2]
        held = self._cache.get((width, height))
        if held is None:
            held = np.ascontiguousarray(self.still(width, height), np.uint8)
            self._cache[(width, height)] = held
        copied: ImageBGR = held.copy()
        return copied


def car_actors(actors: Sequence[Actor]) -> tuple[Actor, ...]:
    """The actors that are cars (sprite names starting with ``car``), for ``Headlights``."""
    return tuple(actor for actor in actors if actor.sprite.startswith("car"))


def seconds_to_keyframes(points: Sequence[tuple[float, float]]) -> Keyframes:
    """Checks times increase; a convenience for scenario scripts."""
    times = [t for t, _ in points]
    if times != sorted(times) or any(math.isnan(t) for t in times):
        raise ValueError(f"keyframe times must increase: {times}")
    return tuple((float(t), float(v)) for t, v in points)
