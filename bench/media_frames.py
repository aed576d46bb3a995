"""Frames and people cut from the clips in the media folder, shared by the benches.

The people were cut by eye from frames of intel_one-by-one-person-detection.mp4, whole from
hair to shoes, seen from behind: a man in black, and a man in a light grey shirt against the
white wall (lower contrast; the crown of his head is cut by the frame).
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

from edge_agent import datafiles
from edge_agent.types import ImageBGR

PERSON_CLIP = "intel_one-by-one-person-detection.mp4"
EMPTY_ROOM_FRAME = 0  # a frame of PERSON_CLIP with nobody in view
# (frame, (x_min, y_min, x_max, y_max) in its 768x432 pixels, chosen by eye)
PEOPLE = ((348, (380, 3, 545, 384)), (1276, (345, 0, 528, 396)))


def frame(clip: str, index: int) -> ImageBGR:
    """Frame ``index`` of ``clip`` (found on the media search path), decoded."""
    capture = cv2.VideoCapture(str(datafiles.resolve_media(clip)))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = capture.read()
    capture.release()
    if not ok:
        sys.exit(f"cannot decode frame {index} of {clip}")
    return np.asarray(image, np.uint8)


def people() -> list[ImageBGR]:
    """The PEOPLE crops, each a rectangle with the room's wall around the person."""
    return [frame(PERSON_CLIP, index)[y0:y1, x0:x1] for index, (x0, y0, x1, y1) in PEOPLE]


def person_masks(min_diff: int = 40) -> list[np.ndarray]:
    """A silhouette per PEOPLE crop (255 inside the person): where its frame differs from
    the empty room, the largest blob, holes filled. Rough at the edges, good enough to
    paste the person alone instead of a rectangle of wall."""
    empty = cv2.cvtColor(frame(PERSON_CLIP, EMPTY_ROOM_FRAME), cv2.COLOR_BGR2GRAY)
    masks = []
    for index, (x0, y0, x1, y1) in PEOPLE:
        grey = cv2.cvtColor(frame(PERSON_CLIP, index), cv2.COLOR_BGR2GRAY)
        diff = cv2.absdiff(grey, empty)[y0:y1, x0:x1]
        diff = cv2.GaussianBlur(diff, (5, 5), 0)
        mask = (diff > min_diff).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if count > 1 else 0
        blob = np.asarray(labels == largest, np.uint8) * 255
        contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        filled = np.zeros_like(blob)
        cv2.drawContours(filled, contours, -1, 255, thickness=cv2.FILLED)
        masks.append(filled)
    return masks
