"""Privacy: per-camera masks and face blur on every picture that leaves the device.

One call for every outgoing picture: ``protect(camera, image)`` (``camera``: a camera
config, its ``privacy`` section, or a filter). Thumbnails, snapshot replies, previews, the
``snapshot`` CLI and recorded clips all go through it; docs/privacy.md says what is kept.
"""

from __future__ import annotations

from typing import Protocol

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.faces import BlazeFace, Face, FaceModelError, blur_faces, load_face_model
from edge_agent.privacy.filter import (
    NO_PRIVACY,
    CameraPrivacy,
    PrivacyFilter,
    find_faces_whole,
    privacy_filter,
)
from edge_agent.privacy.masks import Masks
from edge_agent.types import Box, ImageBGR

__all__ = [
    "NO_PRIVACY",
    "BlazeFace",
    "CameraPrivacy",
    "Face",
    "FaceModelError",
    "Masks",
    "PrivacyConfig",
    "PrivacyFilter",
    "blur_faces",
    "filter_of",
    "find_faces_whole",
    "load_face_model",
    "privacy_filter",
    "protect",
]


class HasPrivacy(Protocol):
    """A camera config (``CameraConfig``): anything with a ``privacy`` section."""

    @property
    def privacy(self) -> PrivacyConfig: ...


def filter_of(source: HasPrivacy | PrivacyConfig | PrivacyFilter) -> PrivacyFilter:
    """The filter for a camera config, a privacy config, or a filter itself."""
    if isinstance(source, PrivacyConfig):
        return privacy_filter(source)
    if isinstance(source, CameraPrivacy):
        return source
    privacy = getattr(source, "privacy", None)
    if isinstance(privacy, PrivacyConfig):
        return privacy_filter(privacy)
    if callable(getattr(source, "protect", None)):
        return source  # type: ignore[return-value]  # a PrivacyFilter of another kind
    raise TypeError(f"no privacy settings in {type(source).__name__}: give a camera config")


def protect(
    source: HasPrivacy | PrivacyConfig | PrivacyFilter, image: ImageBGR, focus: Box | None = None
) -> ImageBGR:
    """``image`` as it may leave the device: masks filled, faces blurred if the camera says
    so. Never changes ``image``; returns it unchanged when the camera hides nothing."""
    return filter_of(source).protect(image, focus)
