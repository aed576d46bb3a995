"""The seam between cameras and the pipeline.

A ``FrameSource`` is a blocking reader: ``read`` waits at most ``timeout_s`` for
the next picture. The capture thread in ``app`` pumps it into a
``LatestFrameMailbox`` so that a slow detector never makes the camera wait: the
newest frame replaces an unread one, and the drop is counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from edge_agent.types import Frame, SourceHealth, VideoPacket

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


def is_stream(uri: str) -> bool:
    """A network stream (reconnected when it drops), not a file or a device."""
    return uri.lower().startswith(STREAM_SCHEMES)


class Backoff:
    """When to reopen a stream that dropped: ``min_delay_s`` after the drop, doubling per
    failed attempt up to ``max_delay_s`` (a dead camera costs almost nothing while it is
    down), back to ``min_delay_s`` once it opens (the backends' reading thread only)."""

    def __init__(self, min_delay_s: float, max_delay_s: float) -> None:
        self.min_delay_s = min_delay_s
        self.max_delay_s = max_delay_s
        self.delay_s = min_delay_s
        self.next_attempt_s = 0.0  # monotonic time of the next attempt

    def due(self, stop: threading.Event, timeout_s: float) -> bool:
        """Wait for the next attempt, at most ``timeout_s`` (or until ``stop``): whether
        it is due now."""
        wait_s = self.next_attempt_s - time.monotonic()
        return not (wait_s > 0 and (stop.wait(min(wait_s, timeout_s)) or wait_s > timeout_s))

    def opened(self) -> None:
        self.delay_s = self.min_delay_s
        self.next_attempt_s = 0.0

    def dropped(self) -> None:
        """The stream stopped: the first attempt after the current delay."""
        self.next_attempt_s = time.monotonic() + self.delay_s

    def failed(self) -> None:
        """An attempt failed: the next one later, and the one after later still."""
        self.dropped()
        self.delay_s = min(self.max_delay_s, 2 * self.delay_s)


class StreamStatus:
    """A stream backend's bookkeeping (OpenCV, PyAV): what ``health()`` reports and when to
    reopen. Written by the backend's reading thread only; ``health`` reads each field on
    its own from any thread (stats), as the backends did before it."""

    def __init__(
        self,
        camera_id: str,
        shown_uri: str,
        log: logging.Logger,
        *,
        reconnect_min_delay_s: float,
        reconnect_max_delay_s: float,
    ) -> None:
        """``shown_uri``: the redacted URI (camera URIs carry passwords); ``log``: the
        backend's own logger, so its lines keep their name."""
        self.camera_id = camera_id
        self.shown_uri = shown_uri
        self.log = log
        self.backoff = Backoff(reconnect_min_delay_s, reconnect_max_delay_s)
        self.frames_read = 0
        self.reconnects = 0
        self.connected = False
        self.ended = False
        self.last_error: str | None = None

    def opened(self) -> None:
        self.connected = True
        self.backoff.opened()

    def open_failed(self, error: str) -> None:
        self.connected = False
        self.last_error = error
        self.log.warning("camera %s: %s", self.camera_id, error)

    def dropped(self, error: str) -> None:
        """A live stream stopped: reopened after the backoff's delay."""
        self.last_error = error
        self.log.warning("camera %s: %s; reconnecting", self.camera_id, error)
        self.connected = False
        self.backoff.dropped()

    def reconnect(
        self, stop: threading.Event, timeout_s: float, open_stream: Callable[[], None]
    ) -> None:
        """Call ``open_stream`` (which calls ``opened`` or ``open_failed``) once the backoff
        has passed; waits at most ``timeout_s`` for it."""
        if not self.backoff.due(stop, timeout_s):
            return
        open_stream()
        if self.connected:
            self.reconnects += 1
            self.log.info("camera %s: reconnected to %s", self.camera_id, self.shown_uri)
            return
        self.backoff.failed()

    def health(self) -> SourceHealth:
        return SourceHealth(
            connected=self.connected,
            frames_read=self.frames_read,
            reconnects=self.reconnects,
            ended=self.ended,
            last_error=self.last_error,
        )


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


class PacketFeed:
    """A camera's own compressed packets, from its capture thread to its recorder (on the
    analysis thread), every one of them: unlike frames, packets are never skipped — a
    clip missing one would not decode to its next keyframe.

    Bounded by ``max_bytes`` for when the analysis thread stalls: past it the oldest
    packets go up to the next keyframe (whole GOPs; the recorder sees a gap, never a
    broken GOP), counted in ``dropped``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._packets: deque[VideoPacket] = deque()
        self._bytes = 0
        self.dropped = 0
        self.remuxing = False  # the current stream can be remuxed (set by the source)

    def put(self, packet: VideoPacket) -> None:
        with self._lock:
            self._packets.append(packet)
            self._bytes += len(packet.data)
            while self._bytes > self.max_bytes and len(self._packets) > 1:
                self._drop_gop_locked()

    def _drop_gop_locked(self) -> None:
        first = True
        while self._packets and (first or not self._packets[0].keyframe):
            packet = self._packets.popleft()
            self._bytes -= len(packet.data)
            self.dropped += 1
            first = False

    def drain(self) -> list[VideoPacket]:
        """Every packet put since the last call, oldest first."""
        with self._lock:
            packets = list(self._packets)
            self._packets.clear()
            self._bytes = 0
            return packets


@runtime_checkable
class PacketSource(Protocol):
    """A ``FrameSource`` that can also hand over its stream's compressed packets (the
    PyAV backend), so a recorder remuxes them instead of encoding frames."""

    def packet_feed(self, max_bytes: int) -> PacketFeed:
        """The feed its packets go to from now on (one per source)."""
        ...
