"""The seam between cameras and the pipeline.

A ``FrameSource`` is a blocking reader: ``read`` waits at most ``timeout_s`` for
the next picture. The capture thread in ``app`` pumps it into a
``LatestFrameMailbox`` so that a slow detector never makes the camera wait: the
newest frame replaces an unread one, and the drop is counted.
"""

from __future__ import annotations

import threading
from typing import Protocol

from edge_agent.types import Frame, SourceHealth


class EndOfStream(Exception):
    """A finite source (a file that does not loop) has no more frames."""


class CaptureError(Exception):
    """A source that cannot be opened at all (bad config, missing backend)."""


class FrameSource(Protocol):
    camera_id: str

    @property
    def nominal_fps(self) -> float:
        """The rate the source produces frames at (file fps, camera fps)."""
        ...

    @property
    def live(self) -> bool:
        """True when frames come at the source's own pace (a camera, real-time playback).

        A live source's frames are dropped when analysis falls behind; a non-live one
        (a file read as fast as possible) waits for analysis instead, so nothing is skipped.
        """
        ...

    def read(self, timeout_s: float) -> Frame | None:
        """The next frame, or None if none came within ``timeout_s``.

        Raises ``EndOfStream`` when a finite source is exhausted. Transient
        failures (a dropped RTSP stream) are handled inside, reported through
        ``health`` and never raised.
        """
        ...

    def health(self) -> SourceHealth: ...

    def close(self) -> None: ...


class LatestFrameMailbox:
    """A one-slot mailbox: the writer never blocks, the reader gets the newest frame."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self.dropped = 0
        self.delivered = 0

    def put(self, frame: Frame, *, wait_for_reader: bool = False) -> None:
        """Offer a frame; replaces an unread one, or with ``wait_for_reader`` waits for it."""
        with self._condition:
            if wait_for_reader:
                self._condition.wait_for(lambda: self._frame is None or self._closed)
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._condition.notify_all()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        with self._condition:
            return self._closed

    def get(self, timeout_s: float) -> Frame | None:
        """The newest unread frame, or None on timeout or once closed and empty."""
        with self._condition:
            self._condition.wait_for(lambda: self._frame is not None or self._closed, timeout_s)
            frame, self._frame = self._frame, None
            if frame is not None:
                self.delivered += 1
                self._condition.notify_all()
            return frame
