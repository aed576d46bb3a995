"""What happens to the camera itself, for the tamper analyzer: a hand over the lens, a
knock, a pole swaying in the wind, defocus, a frozen feed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from edge_agent.types import ImageBGR
from hw_sim.effects.common import Keyframes, blend, interpolate


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
        return blend(image, colour, alpha[:, :, None])


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
class Sway:
    """The pole swaying in the wind: the view shifts back and forth by up to ``amplitude``
    (dx, dy; fractions of the frame), sideways with a period of ``period_s`` and up and down
    1.7 times as often (out of step), and comes back every time. Not a knock: nothing is
    wrong."""

    amplitude: tuple[float, float] = (0.005, 0.005)
    period_s: float = 2.7

    @property
    def stage(self) -> Literal["scene", "lens"]:
        return "scene"

    def apply(self, image: ImageBGR, t_s: float) -> ImageBGR:
        height, width = image.shape[:2]
        phase = 2.0 * np.pi * t_s / self.period_s
        dx = self.amplitude[0] * width * float(np.sin(phase))
        dy = self.amplitude[1] * height * float(np.sin(1.7 * phase + 1.0))
        matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], np.float32)
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
