"""Finding and decoding the real footage the simulator cuts its sprites from.

The footage is never part of the repository: it is found through the same search
path the agent uses (``EDGE_AGENT_MEDIA_PATH``), so the scenes carry real people and
cars that the real detector recognises without any video being committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from edge_agent import datafiles
from edge_agent.types import ImageBGR

MEDIA_ENV_VAR = datafiles.MEDIA_PATH_ENV
IMAGE_SUFFIXES = frozenset({".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})


class MediaNotFound(FileNotFoundError):
    """A media file the simulator needs is not on the search path.

    A ``FileNotFoundError`` (hence ``OSError``) so callers that open cameras can
    treat it like any other missing file.
    """


def resolve_media(file_name: str) -> Path:
    """The verified path of media file ``file_name`` (a manifest entry), found exactly as the
    agent finds it; ``MediaNotFound`` with the agent's message on how to fix it otherwise."""
    try:
        return datafiles.resolve_media(file_name)
    except datafiles.DataFileError as error:
        raise MediaNotFound(str(error)) from None


def read_frames(path: Path, indices: Iterable[int]) -> dict[int, ImageBGR]:
    """Frames ``indices`` of a video (or the one frame 0 of a still image), decoded in order.

    Decodes sequentially instead of seeking: seeking in compressed video is not
    frame-exact on every OpenCV build, and sprites must be the same everywhere.
    """
    wanted = sorted(set(indices))
    if path.suffix.lower() in IMAGE_SUFFIXES:
        if wanted != [0]:
            raise ValueError(f"{path.name} is a still image: only frame 0 exists, not {wanted}")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"cannot decode image {path}")
        return {0: np.ascontiguousarray(image, dtype=np.uint8)}
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise OSError(f"cannot open video {path}")
    frames: dict[int, ImageBGR] = {}
    try:
        index = 0
        for target in wanted:
            while index < target:
                if not capture.grab():
                    raise ValueError(f"{path.name} has only {index} frames, frame {target} wanted")
                index += 1
            ok, frame = capture.read()
            if not ok or frame is None:
                raise ValueError(f"{path.name} has only {index} frames, frame {target} wanted")
            frames[target] = np.ascontiguousarray(frame, dtype=np.uint8)
            index += 1
    finally:
        capture.release()
    return frames
