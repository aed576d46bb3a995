"""One event's lifecycle step as the pipeline emits it, for tests of what the sink and
the outbox do with it: ``from fakes.lifecycle import event_step``."""

from __future__ import annotations

from edge_agent.pipeline import FrameOutput
from edge_agent.types import Box, Lifecycle, ObjectEvent


def event_step(event_id: str, lifecycle: Lifecycle, camera_id: str = "cam1") -> FrameOutput:
    """A frame's output holding step ``lifecycle`` of a person event ``event_id``."""
    ended = lifecycle is Lifecycle.END
    event = ObjectEvent(
        event_id,
        lifecycle,
        camera_id,
        "object",
        "person",
        0.9,
        0.9,
        Box(0.1, 0.1, 0.3, 0.6),
        (),
        1000.0,
        1002.0 if ended else None,
        1002.0 if ended else 1000.0,
    )
    return FrameOutput(events=(event,))
