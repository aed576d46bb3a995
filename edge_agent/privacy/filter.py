"""One camera's privacy filter: what every outgoing picture goes through.

``protect`` never changes the picture it is given (the pipeline's frame is shared with
the analysis, which must see the unmasked scene); it returns a protected copy, or the
picture itself when the camera has nothing to hide.
"""

from __future__ import annotations

import math
import threading
from typing import Protocol

import numpy as np

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.faces import BlazeFace, Face, blur_faces, load_face_model, weighted_nms
from edge_agent.privacy.masks import Masks
from edge_agent.types import Box, ImageBGR


class PrivacyFilter(Protocol):
    """The seam: what callers (thumbnails, snapshots, previews, clips) need."""

    @property
    def active(self) -> bool: ...

    def protect(self, image: ImageBGR, focus: Box | None = None) -> ImageBGR:
        """``image`` with its masks filled and (if enabled) its faces blurred, as a copy.
        ``focus``: the part of the picture that will be shown (a thumbnail's crop); faces are
        looked for only there (one model run instead of several); masks cover everything."""
        ...


class CameraPrivacy:
    """Masks and an optional face model, for one camera."""

    def __init__(self, masks: Masks | None = None, faces: BlazeFace | None = None) -> None:
        self.masks = masks or Masks()
        self.faces = faces

    @property
    def active(self) -> bool:
        return bool(self.masks) or self.faces is not None

    def protect(self, image: ImageBGR, focus: Box | None = None) -> ImageBGR:
        if not self.active:
            return image
        protected: ImageBGR = image.copy()
        self.masks.apply(protected)  # on the full frame, before any crop
        if self.faces is not None:
            if focus is None:
                found = find_faces_whole(self.faces, protected)
                blur_faces(protected, found)
            else:
                height_px, width_px = protected.shape[:2]
                x0, y0, x1, y1 = focus.clipped().to_pixels(width_px, height_px)
                region = protected[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
                blur_faces(protected, self.faces.detect(region), offset_px=(x0, y0))
        return protected


NO_PRIVACY = CameraPrivacy()


def tiles(width_px: int, height_px: int) -> list[tuple[int, int, int, int]]:
    """Square windows (x0, y0, x1, y1) of the picture's short side covering it, overlapping
    evenly: a 16:9 frame is two windows, not one letterboxed picture that wastes 44 % of the
    model's input (faces in it half as many pixels)."""
    side = min(width_px, height_px)
    across = math.ceil(width_px / side - 0.05)  # a frame a hair wider than square: one window
    down = math.ceil(height_px / side - 0.05)
    windows = []
    for row in range(down):
        y0 = 0 if down == 1 else round(row * (height_px - side) / (down - 1))
        for col in range(across):
            x0 = 0 if across == 1 else round(col * (width_px - side) / (across - 1))
            windows.append((x0, y0, min(width_px, x0 + side), min(height_px, y0 + side)))
    return windows


def find_faces_whole(model: BlazeFace, image: ImageBGR) -> list[Face]:
    """The faces anywhere in ``image``: the model on each square window, merged."""
    height_px, width_px = image.shape[:2]
    found: list[Face] = []
    for x0, y0, x1, y1 in tiles(width_px, height_px):
        for face in model.detect(image[y0:y1, x0:x1]):
            found.append(
                Face(face.x_min + x0, face.y_min + y0, face.x_max + x0, face.y_max + y0, face.score)
            )
    if len(found) < 2:
        return found
    boxes = np.array([[f.x_min, f.y_min, f.x_max, f.y_max] for f in found], dtype=np.float32)
    scores = np.array([f.score for f in found], dtype=np.float32)
    return [
        Face(float(box[0]), float(box[1]), float(box[2]), float(box[3]), score)
        for box, score in weighted_nms(boxes, scores)
    ]


_cache: dict[str, CameraPrivacy] = {}
_cache_lock = threading.Lock()


def privacy_filter(config: PrivacyConfig) -> CameraPrivacy:
    """The filter for a camera's ``privacy`` config, built once per distinct config (the face
    model is shared). Raises DataFileError / RuntimeUnavailable / FaceModelError when face
    blur is on and its model cannot be loaded: the agent must not start sending faces."""
    if not config.active:
        return NO_PRIVACY
    key = config.model_dump_json()
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None:
            faces = (
                load_face_model(config.face_model, score_threshold=config.face_score_threshold)
                if config.blur_faces
                else None
            )
            cached = _cache[key] = CameraPrivacy(Masks.of(config.masks), faces)
        return cached
