"""Privacy masks: polygons filled black on a picture before it leaves the device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.types import ImageBGR


@dataclass(frozen=True)
class Masks:
    """Polygons in normalised (0..1) coordinates, filled black (0) where they lie."""

    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()

    @classmethod
    def of(cls, polygons: Sequence[Sequence[tuple[float, float]]]) -> Masks:
        return cls(tuple(tuple((float(x), float(y)) for x, y in p) for p in polygons))

    def __bool__(self) -> bool:
        return bool(self.polygons)

    def pixel_polygons(self, width_px: int, height_px: int) -> list[np.ndarray]:
        """Each polygon in pixel coordinates of a ``width_px`` × ``height_px`` picture.

        A vertex at 1.0 lands on the last pixel (not one past it), so a mask drawn to the
        picture's edge covers the edge."""
        scale = np.array([width_px - 1, height_px - 1], dtype=np.float64)
        return [
            np.round(np.array(p, dtype=np.float64) * scale).astype(np.int32) for p in self.polygons
        ]

    def apply(self, image: ImageBGR) -> None:
        """Fill the masks on ``image`` in place (callers pass a copy of a shared frame)."""
        if not self.polygons:
            return
        height_px, width_px = image.shape[:2]
        polygons = self.pixel_polygons(width_px, height_px)
        cv2.fillPoly(image, polygons, (0, 0, 0))
        # fillPoly leaves out nothing inside, but draw the outline too: a sliver of a thin
        # polygon between two rows must not show.
        cv2.polylines(image, polygons, isClosed=True, color=(0, 0, 0), thickness=1)

    def covered(self, width_px: int, height_px: int) -> np.ndarray:
        """A boolean picture, True where a mask lies (tests, and the docs' figures)."""
        canvas = np.zeros((height_px, width_px), dtype=np.uint8)
        polygons = self.pixel_polygons(width_px, height_px)
        if polygons:
            cv2.fillPoly(canvas, polygons, 255)
        return canvas > 0
