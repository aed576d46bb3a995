"""Files, USB cameras and RTSP/HTTP streams through OpenCV's VideoCapture.

A live stream that drops is reopened with exponential backoff; the failure is
visible in ``health()`` rather than raised, because a camera that comes back
after a power cut must be picked up without anybody touching the device.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edge_agent.capture.base import Backoff, CaptureError, EndOfStream, is_stream
from edge_agent.security import redact_url
from edge_agent.types import Frame, ImageBGR, SourceHealth

log = logging.getLogger(__name__)


def _device_index(uri: str) -> int | None:
    if uri.isdigit():
        return int(uri)
    if uri.startswith("/dev/video") and uri[len("/dev/video") :].isdigit():
        return int(uri[len("/dev/video") :])
    return None


class OpenCVSource:
    """A FrameSource over cv2.VideoCapture."""

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
    ) -> None:
        self.camera_id = camera_id
        self._uri = uri
        self._shown_uri = redact_url(uri)  # camera URIs carry passwords: never log them
        self._device = _device_index(uri)
        self._is_file = self._device is None and not is_stream(uri)
        if self._is_file and not Path(uri).is_file():
            raise CaptureError(f"camera {camera_id}: video file not found: {uri}")
        self._loop = loop
        self._realtime = realtime
        self._backoff = Backoff(reconnect_min_delay_s, reconnect_max_delay_s)
        self._stream_timeout_ms = int(stream_timeout_s * 1000)
        self._capture: cv2.VideoCapture | None = None
        self._fps = 0.0
        self._frames_read = 0
        self._reconnects = 0
        self._connected = False
        self._ended = False
        self._last_error: str | None = None
        self._next_due_s = 0.0
        self._frames_at_rewind = 0
        self._started_at_s = time.time()
        self._stop = threading.Event()
        self._open()
        if self._is_file and self._capture is None:
            raise CaptureError(f"camera {camera_id}: cannot decode video file {uri}")

    @property
    def nominal_fps(self) -> float:
        return self._fps if self._fps > 0 else 25.0

    @property
    def live(self) -> bool:
        return self._realtime or not self._is_file

    def _open(self) -> None:
        if self._device is not None:
            capture = cv2.VideoCapture(self._device)
        elif self._is_file:
            capture = cv2.VideoCapture(self._uri)
        else:
            # Without these a dead RTSP server blocks read() for ever.
            capture = cv2.VideoCapture(
                self._uri,
                cv2.CAP_FFMPEG,
                [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    self._stream_timeout_ms,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    self._stream_timeout_ms,
                ],
            )
        if not capture.isOpened():
            capture.release()
            self._connected = False
            self._last_error = f"cannot open {self._shown_uri}"
            log.warning("camera %s: %s", self.camera_id, self._last_error)
            self._capture = None
            return
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self._fps = fps if 0 < fps < 240 else 25.0
        self._capture = capture
        self._connected = True
        self._backoff.opened()

    def _reconnect(self, timeout_s: float) -> None:
        """Try to reopen once the backoff has passed; waits at most ``timeout_s`` for it."""
        if not self._backoff.due(self._stop, timeout_s):
            return
        self._open()
        if self._connected:
            self._reconnects += 1
            log.info("camera %s: reconnected to %s", self.camera_id, self._shown_uri)
            return
        self._backoff.failed()

    def read(self, timeout_s: float) -> Frame | None:
        if self._ended:
            raise EndOfStream(self.camera_id)
        if self._capture is None:
            self._reconnect(timeout_s)
            if self._capture is None:
                return None
        if self._realtime and self._is_file:
            pause_s = self._next_due_s - time.monotonic()
            if pause_s > 0 and self._stop.wait(min(pause_s, timeout_s)):
                return None
        ok, image = self._capture.read()
        if not ok or image is None:
            return self._on_read_failure()
        now_mono = time.monotonic()
        self._next_due_s = max(self._next_due_s + 1.0 / self.nominal_fps, now_mono)
        self._frames_read += 1
        frame_image: ImageBGR = np.asarray(image, np.uint8)
        if self._is_file and not self._realtime:
            # Offline replay: time is the video's own, so durations mean what they say.
            media_s = (self._frames_read - 1) / self.nominal_fps
            captured_at_s, monotonic_s = self._started_at_s + media_s, media_s
        else:
            captured_at_s, monotonic_s = time.time(), now_mono
        return Frame(
            camera_id=self.camera_id,
            index=self._frames_read - 1,
            captured_at_s=captured_at_s,
            monotonic_s=monotonic_s,
            image=frame_image,
        )

    def _on_read_failure(self) -> Frame | None:
        assert self._capture is not None
        if self._is_file:
            if self._loop and self._frames_read > self._frames_at_rewind:
                # Rewind once per pass; a file that yields nothing after a rewind has ended.
                self._frames_at_rewind = self._frames_read
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                return None
            self._ended = True
            raise EndOfStream(self.camera_id)
        self._last_error = f"stream {self._shown_uri} stopped delivering frames"
        log.warning("camera %s: %s; reconnecting", self.camera_id, self._last_error)
        self._capture.release()
        self._capture = None
        self._connected = False
        self._backoff.dropped()
        return None

    def health(self) -> SourceHealth:
        return SourceHealth(
            connected=self._connected,
            frames_read=self._frames_read,
            reconnects=self._reconnects,
            ended=self._ended,
            last_error=self._last_error,
        )

    def close(self) -> None:
        self._stop.set()
        if self._capture is not None:
            self._capture.release()
            self._capture = None
