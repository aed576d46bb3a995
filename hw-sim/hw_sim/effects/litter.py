"""Litter for the garbage analyzer: rubbish bags dumped one by one (with their
``coverage`` of a region, the garbage truth)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from edge_agent.types import ImageBGR
from hw_sim.effects.common import FloatImage, Polygon, blend, polygon_mask, smooth_noise


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
        folds = smooth_noise(index + 101, w, h, max(2, h // 6))
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
            out[cy0:cy1, cx0:cx1] = blend(
                out[cy0:cy1, cx0:cx1], bgr[source].astype(np.float32), alpha[source]
            )
        result: ImageBGR = out
        return result
