"""A synthetic camera for the recorder's tests: frames at ``FPS`` that change every frame,
and events timed by frame index, on one clock (``WALL0`` + index / FPS)."""

from __future__ import annotations

import numpy as np

from edge_agent.types import Box, Frame, Lifecycle, ObjectEvent

FPS = 10
WALL0 = 1_764_000_000.0


def frame(index: int) -> Frame:
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, (index * 3) % 64] = 255  # something changes every frame
    mono = index / FPS
    return Frame("cam1", index, WALL0 + mono, mono, image)


def event(event_id: str, lifecycle: Lifecycle, start_index: int, at_index: int) -> ObjectEvent:
    return person_event(event_id, lifecycle, WALL0 + start_index / FPS, WALL0 + at_index / FPS)


def person_event(event_id: str, lifecycle: Lifecycle, start_s: float, at_s: float) -> ObjectEvent:
    """A person's event of ``cam1`` that started at ``start_s``, as published at ``at_s``."""
    return ObjectEvent(
        event_id=event_id,
        lifecycle=lifecycle,
        camera_id="cam1",
        kind="object",
        label="person",
        score=0.8,
        top_score=0.8,
        box=Box(0.1, 0.1, 0.3, 0.5),
        zones=(),
        start_s=start_s,
        end_s=at_s if lifecycle is Lifecycle.END else None,
        frame_time_s=at_s,
    )
