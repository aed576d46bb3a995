"""RTSP/HTTP streams and video files through PyAV, keeping the camera's own packets.

Each packet of the video stream is decoded for analysis (the same BGR ``Frame`` the
OpenCV backend gives) and, once a recorder asked for them (``packet_feed``), handed over
as it came: H.264/H.265 from an IP camera goes into clips by remux, never re-encoded
(docs/recording.md). A stream that drops is reopened with exponential backoff, like the
OpenCV backend; every connection is a new ``StreamFormat``, so a clip never mixes two.

Clock: with ``realtime`` (the default) a frame and a packet are timed when they arrive
(``time.monotonic()``), and a file is paced at its own rate; without it, by the stream's
own timestamps from the first connection on (replay: as fast as it comes, nothing
skipped), so a clip's pre-roll is exact to the frame.

PyAV is the ``recording`` extra; it is imported when a camera of kind ``pyav`` is opened
(through ``edge_agent.video``, its one owner), and a missing PyAV is a ``CaptureError``.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections import deque
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from edge_agent.capture.base import (
    CaptureError,
    EndOfStream,
    PacketFeed,
    StreamStatus,
    is_stream,
)
from edge_agent.security import redact_url
from edge_agent.types import Frame, SourceHealth, VideoPacket

if TYPE_CHECKING:  # imported when a source is opened (PyAV is optional)
    from edge_agent.video import Demuxed, Picture, StreamReader

log = logging.getLogger(__name__)

PYAV_MISSING = (
    "kind 'pyav' needs PyAV, the 'recording' extra: pip install 'edge-agent[recording]' "
    "(or use kind 'opencv', which re-encodes clips)"
)


def _video_module(camera_id: str) -> ModuleType:
    try:
        return importlib.import_module("edge_agent.video")
    except ImportError as error:
        raise CaptureError(f"camera {camera_id}: {PYAV_MISSING} ({error})") from None


class PyAVSource:
    """A FrameSource (and ``PacketSource``) over ``edge_agent.video.StreamReader``."""

    def __init__(
        self,
        camera_id: str,
        uri: str,
        *,
        loop: bool = False,
        realtime: bool = True,
        reconnect_min_delay_s: float = 0.5,
        reconnect_max_delay_s: float = 30.0,
        stream_timeout_s: float = 10.0,
        rtsp_transport: str = "tcp",
    ) -> None:
        self._video = _video_module(camera_id)
        self.camera_id = camera_id
        self._uri = uri
        self._shown_uri = redact_url(uri)  # camera URIs carry passwords: never log them
        self._is_file = not is_stream(uri)
        if self._is_file and not Path(uri).is_file():
            raise CaptureError(f"camera {camera_id}: video file not found: {uri}")
        self._loop = loop
        self._realtime = realtime
        self._status = StreamStatus(
            camera_id,
            self._shown_uri,
            log,
            reconnect_min_delay_s=reconnect_min_delay_s,
            reconnect_max_delay_s=reconnect_max_delay_s,
        )
        self._timeout_s = stream_timeout_s
        self._rtsp_transport = rtsp_transport
        self._reader: StreamReader | None = None
        self._feed: PacketFeed | None = None
        self._pictures: deque[Picture] = deque()  # decoded, not yet returned
        self._fps = 25.0
        self._next_due_s = 0.0
        self._origin: int | None = None  # this connection's first timestamp
        self._segment_s = 0.0  # stream time where this connection starts (not realtime)
        self._last_media_s: float | None = None  # the last frame's stream time
        self._started_at_s = time.time()
        self._stop = threading.Event()
        self._open()
        if self._is_file and self._reader is None:
            raise CaptureError(f"camera {camera_id}: cannot decode video file {uri}")

    @property
    def nominal_fps(self) -> float:
        return self._fps

    @property
    def live(self) -> bool:
        return self._realtime

    def packet_feed(self, max_bytes: int) -> PacketFeed:
        """From now on every video packet also goes to this feed (one per source)."""
        if self._feed is None:
            self._feed = PacketFeed(max_bytes)
            self._feed.remuxing = bool(getattr(self._reader, "remuxable", False))
        return self._feed

    def _open(self) -> None:
        try:
            reader: StreamReader = self._video.StreamReader(
                self._uri, timeout_s=self._timeout_s, rtsp_transport=self._rtsp_transport
            )
        except self._video.StreamError as error:
            self._status.open_failed(f"cannot open {self._shown_uri}: {error}")
            return
        self._reader = reader
        self._fps = reader.fps
        self._status.opened()
        self._origin = None
        if self._last_media_s is not None:  # time runs on across connections
            self._segment_s = self._last_media_s + 1.0 / self._fps
        if self._feed is not None:
            self._feed.remuxing = reader.remuxable
            if not reader.remuxable:
                log.warning(
                    "camera %s: %s stream cannot be remuxed; recording encodes its frames",
                    self.camera_id,
                    reader.format.codec,
                )

    def _media_s(self, timestamp: int | None) -> float:
        """Stream time in seconds, running on across connections (not realtime)."""
        reader = self._reader
        if timestamp is None or reader is None:
            return (self._last_media_s or 0.0) + 1.0 / self._fps
        if self._origin is None:
            self._origin = timestamp
        time_base = reader.format.time_base
        return self._segment_s + float((timestamp - self._origin) * time_base)

    def read(self, timeout_s: float) -> Frame | None:
        if self._status.ended:
            raise EndOfStream(self.camera_id)
        if self._pictures:
            return self._frame(self._pictures.popleft())
        if self._reader is None:
            self._status.reconnect(self._stop, timeout_s, self._open)
            if self._reader is None:
                return None
        reader = self._reader
        deadline_s = time.monotonic() + timeout_s
        while not self._stop.is_set():
            try:
                demuxed = reader.read()
            except self._video.StreamError as error:
                return self._on_failure(f"stream {self._shown_uri} failed: {error}")
            if demuxed is None:
                return self._on_end()
            if demuxed.data:
                self._hand_over(demuxed)
            if demuxed.pictures:
                self._pictures.extend(demuxed.pictures)
                return self._frame(self._pictures.popleft())
            if time.monotonic() > deadline_s:
                return None
        return None

    def _hand_over(self, demuxed: Demuxed) -> None:
        feed, reader = self._feed, self._reader
        if feed is None or reader is None or not reader.remuxable:
            return
        pts, dts = demuxed.pts, demuxed.dts
        if self._realtime:
            time_ms = round(1000 * time.monotonic())
        else:  # a keyframe is placed where it shows, as the frames are
            time_ms = round(1000 * self._media_s(pts if pts is not None else dts))
        feed.put(
            VideoPacket(
                time_ms,
                demuxed.keyframe,
                demuxed.data,
                pts,
                dts,
                reader.format,
            )
        )

    def _frame(self, picture: Picture) -> Frame | None:
        media_s = self._media_s(picture.pts)
        self._last_media_s = max(self._last_media_s or media_s, media_s)
        if self._realtime and self._is_file:
            pause_s = self._next_due_s - time.monotonic()
            if pause_s > 0 and self._stop.wait(pause_s):
                return None
        now_mono = time.monotonic()
        self._next_due_s = max(self._next_due_s + 1.0 / self._fps, now_mono)
        self._status.frames_read += 1
        if self._realtime:
            captured_at_s, monotonic_s = time.time(), now_mono
        else:
            captured_at_s, monotonic_s = self._started_at_s + media_s, media_s
        return Frame(
            camera_id=self.camera_id,
            index=self._status.frames_read - 1,
            captured_at_s=captured_at_s,
            monotonic_s=monotonic_s,
            image=picture.image,
        )

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        self._pictures.clear()
        if reader is not None:
            reader.close()

    def _on_end(self) -> Frame | None:
        self._close_reader()
        if self._is_file:
            if self._loop and self._status.frames_read > 0:
                self._open()  # a new segment: a clip does not run over the rewind
                return None
            self._status.ended = True
            raise EndOfStream(self.camera_id)
        return self._on_failure(f"stream {self._shown_uri} ended")

    def _on_failure(self, error: str) -> Frame | None:
        self._close_reader()
        if self._is_file:
            self._status.last_error = error
            log.warning("camera %s: %s", self.camera_id, error)
            self._status.ended = True
            raise EndOfStream(self.camera_id)
        self._status.dropped(error)
        return None

    def health(self) -> SourceHealth:
        return self._status.health()

    def close(self) -> None:
        self._stop.set()
        self._close_reader()
