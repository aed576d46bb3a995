"""The live picture as the page shows it: the camera's latest frame scaled down, with its
zones, counting lines and tracked objects drawn by ``edge_agent.overlay`` (the same
drawing as ``edge-agent snapshot``), JPEG-encoded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import cv2

from edge_agent.config import CameraConfig
from edge_agent.overlay import draw_overlay
from edge_agent.types import Detection, ImageBGR, Track

__all__ = ["JPEG_QUALITY", "jpeg_view"]

JPEG_QUALITY = 75
TRACK_CLASS_ID = -1  # a track has a label, not the model's class id; the overlay needs none


def jpeg_view(
    image: ImageBGR,
    camera: CameraConfig | None,
    tracks: Sequence[Track] = (),
    *,
    width_px: int = 640,
) -> bytes:
    """The frame scaled to ``width_px`` (never up); drawn on when ``camera`` is given."""
    height_px, source_width_px = image.shape[:2]
    view = image
    if source_width_px > width_px:
        size = (width_px, max(1, round(height_px * width_px / source_width_px)))
        view = cast(ImageBGR, cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    if camera is not None:
        boxes = [Detection(t.label, TRACK_CLASS_ID, t.score, t.box) for t in tracks]
        view = draw_overlay(view, camera, boxes)  # a copy: the frame itself is shared
    ok, encoded = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the frame could not be encoded as JPEG")
    return encoded.tobytes()
