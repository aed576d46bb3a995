"""Checks that an outgoing picture hides what a privacy mask covers, written apart from
edge_agent.privacy (their own point-in-polygon) so a shared bug cannot pass both."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge_agent.types import ImageBGR

Polygon = Sequence[tuple[float, float]]

# A trapezoid over the bottom fifth of the picture: the simulator's walker stands in it
# (its feet at y 0.94), so every thumbnail of them shows part masked, part not.
BAND: list[tuple[float, float]] = [(0.0, 0.78), (1.0, 0.72), (1.0, 1.0), (0.0, 1.0)]
JPEG_MARGIN_PX = 8  # one JPEG block: ringing at the mask's edge reaches no further
BLACK_P99 = 16  # grey levels: JPEG leaves a black block at 0-2, its neighbours' bleed less
SEEN_MEAN = 30  # the unmasked part of a real scene is brighter than this


def decode(jpeg: bytes) -> ImageBGR:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return np.asarray(image, np.uint8)


def inside(polygon: Polygon, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Even-odd ray casting on normalised points."""
    result = np.zeros(xs.shape, dtype=bool)
    points = list(polygon)
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        crosses = (y0 > ys) != (y1 > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
        result ^= crosses & (xs < x_at)
    return result


def covered(
    polygons: Sequence[Polygon],
    frame_size_px: tuple[int, int],
    crop_px: tuple[int, int, int, int],
    shape: tuple[int, int],
) -> np.ndarray:
    """Which pixels of a picture of ``shape`` (h, w) — the crop ``crop_px`` (x0, y0, x1, y1)
    of a ``frame_size_px`` (w, h) frame, scaled — lie in a mask."""
    frame_w, frame_h = frame_size_px
    x0, y0, x1, y1 = crop_px
    height, width = shape
    # A pixel's centre, in frame pixels whose centres are whole numbers (OpenCV's grid).
    cols = x0 + (np.arange(width) + 0.5) * (x1 - x0) / width - 0.5
    rows = y0 + (np.arange(height) + 0.5) * (y1 - y0) / height - 0.5
    xs, ys = np.meshgrid(cols / (frame_w - 1), rows / (frame_h - 1))
    result = np.zeros(shape, dtype=bool)
    for polygon in polygons:
        result |= inside(polygon, xs, ys)
    return result


def assert_masked(image: ImageBGR, mask: np.ndarray, *, what: str) -> int:
    """Every pixel well inside ``mask`` is black, and the rest of the picture is not all
    black (so the check looked at a real scene); returns how many pixels were checked."""
    deep = cv2.erode(
        mask.astype(np.uint8), np.ones((2 * JPEG_MARGIN_PX + 1,) * 2, np.uint8)
    ).astype(bool)
    outside = ~cv2.dilate(
        mask.astype(np.uint8), np.ones((2 * JPEG_MARGIN_PX + 1,) * 2, np.uint8)
    ).astype(bool)
    grey = image.max(axis=2)
    assert deep.any(), f"{what}: the mask does not reach into the picture"
    assert np.percentile(grey[deep], 99) <= BLACK_P99, (
        f"{what}: masked region visible (99th percentile {np.percentile(grey[deep], 99)})"
    )
    if outside.any():
        assert grey[outside].mean() > SEEN_MEAN, f"{what}: the unmasked part is black too"
    return int(deep.sum())
