"""Files, USB cameras and RTSP/HTTP streams through OpenCV's VideoCapture.

A live stream that drops is reopened with exponential backoff; the failure is
visible in ``health()`` rather than raised, because a camera that comes back
after a power cut must be picked up without anybody touching the device.

Decoding costs what it must: a file is decoded on one FFmpeg thread (frame threading on a
2-core device competes with the detector's threads, costs 12-14 % more CPU per frame here
and holds a decoder context per thread; a stream keeps FFmpeg's threads until a Pi has
shown that one keeps up with a 1080p camera), and given ``min_interval_s`` (the camera's
analysis rate) a frame the capture thread would drop anyway is only grabbed, never
converted to BGR (bench/README.md, "The agent against a naive loop").
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edge_agent.capture.base import CaptureError, EndOfStream, StreamStatus, is_stream
from edge_agent.security import redact_url
from edge_agent.types import Frame, ImageBGR, SourceHealth

log = logging.getLogger(__name__)


def quiet_opencv() -> None:
    """OpenCV's own warnings (``[ WARN:0@0.5] global cap_v4l.cpp …``) and its FFmpeg's
    (``[tcp @ 0x…] Connection to tcp://… failed``) off: for the technician's commands,
    whose own line says why a camera gave nothing. FFmpeg's is read at each open."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


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
        min_interval_s: float | None = None,
    ) -> None:
        """``min_interval_s``: return no frame closer than 0.9 x this (in frame time) to the
        last one returned, the capture thread's own decimation rule (``worker.py``); the
        frames between are grabbed but not converted. None: every frame."""
        self.camera_id = camera_id
        self._uri = uri
        self._shown_uri = redact_url(uri)  # camera URIs carry passwords: never log them
        self._device = _device_index(uri)
        self._is_file = self._device is None and not is_stream(uri)
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
        self._stream_timeout_ms = int(stream_timeout_s * 1000)
        self._min_gap_s = None if min_interval_s is None else 0.9 * min_interval_s
        self._last_returned_s: float | None = None
        self.frames_skipped = 0  # grabbed, not converted: closer than min_interval_s
        self._capture: cv2.VideoCapture | None = None
        self._fps = 0.0
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
            capture = cv2.VideoCapture(self._uri, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
            if not capture.isOpened():  # a backend that takes no thread count
                capture.release()
                capture = cv2.VideoCapture(self._uri)
        else:
            # Without the timeouts a dead RTSP server blocks read() for ever.
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
            self._status.open_failed(f"cannot open {self._shown_uri}")
            self._capture = None
            return
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self._fps = fps if 0 < fps < 240 else 25.0
        self._capture = capture
        self._status.opened()

    def read(self, timeout_s: float) -> Frame | None:
        if self._status.ended:
            raise EndOfStream(self.camera_id)
        deadline_s = time.monotonic() + timeout_s
        while True:
            if self._capture is None:
                self._status.reconnect(self._stop, timeout_s, self._open)
                if self._capture is None:
                    return None
            if self._realtime and self._is_file:
                pause_s = self._next_due_s - time.monotonic()
                wait_s = min(pause_s, max(0.0, deadline_s - time.monotonic()))
                if pause_s > 0 and self._stop.wait(wait_s):
                    return None
            if not self._capture.grab():
                return self._on_read_failure()
            now_mono = time.monotonic()
            captured_at_s, monotonic_s = self._times(now_mono)
            if not self._skipped(monotonic_s):
                break
            self._next_due_s = max(self._next_due_s + 1.0 / self.nominal_fps, now_mono)
            self._status.frames_read += 1
            self.frames_skipped += 1
            if time.monotonic() >= deadline_s:
                return None
        ok, image = self._capture.retrieve()
        if not ok or image is None:
            return self._on_read_failure()
        self._next_due_s = max(self._next_due_s + 1.0 / self.nominal_fps, now_mono)
        self._status.frames_read += 1
        self._last_returned_s = monotonic_s
        frame_image: ImageBGR = np.asarray(image, np.uint8)
        return Frame(
            camera_id=self.camera_id,
            index=self._status.frames_read - 1,
            captured_at_s=captured_at_s,
            monotonic_s=monotonic_s,
            image=frame_image,
        )

    def skip_closer_than(self, min_interval_s: float) -> None:
        """From now on, as ``min_interval_s`` given at construction (its reader's thread only)."""
        self._min_gap_s = 0.9 * min_interval_s

    def _times(self, now_mono: float) -> tuple[float, float]:
        """(captured_at_s, monotonic_s) of the frame just grabbed (the next index)."""
        if self._is_file and not self._realtime:
            # Offline replay: time is the video's own, so durations mean what they say.
            media_s = self._status.frames_read / self.nominal_fps
            return self._started_at_s + media_s, media_s
        return time.time(), now_mono

    def _skipped(self, monotonic_s: float) -> bool:
        last_s, gap_s = self._last_returned_s, self._min_gap_s
        return gap_s is not None and last_s is not None and monotonic_s - last_s < gap_s

    def _on_read_failure(self) -> Frame | None:
        assert self._capture is not None
        if self._is_file:
            if self._loop and self._status.frames_read > self._frames_at_rewind:
                # Rewind once per pass; a file that yields nothing after a rewind has ended.
                self._frames_at_rewind = self._status.frames_read
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                return None
            self._status.ended = True
            raise EndOfStream(self.camera_id)
        self._status.dropped(f"stream {self._shown_uri} stopped delivering frames")
        self._capture.release()
        self._capture = None
        return None

    def health(self) -> SourceHealth:
        return self._status.health()

    def close(self) -> None:
        self._stop.set()
        if self._capture is not None:
            self._capture.release()
            self._capture = None
