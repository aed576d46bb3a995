"""The Raspberry Pi camera through picamera2 (the only module that imports it).

picamera2 comes from Raspberry Pi OS's apt (``python3-picamera2``) and cannot
run off a Pi, so it is imported when a camera of kind ``picamera2`` is opened,
never at import time. Two streams: ``main`` (full size, for thumbnails and
previews) and ``lores`` (small, for motion and detection), so the Pi's ISP does
the resizing instead of the CPU. This backend is kept thin on purpose: it cannot
be exercised in CI, so it holds no logic worth testing.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from edge_agent.capture.base import CaptureError
from edge_agent.types import Frame, SourceHealth


class Picamera2Source:
    def __init__(
        self,
        camera_id: str,
        *,
        camera_num: int,
        main_size: tuple[int, int],
        lores_size: tuple[int, int],
        fps: float,
    ) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as error:
            raise CaptureError(
                "camera kind 'picamera2' needs Raspberry Pi OS's python3-picamera2 "
                "(apt install python3-picamera2; venv with --system-site-packages): "
                f"{error}"
            ) from None
        self.camera_id = camera_id
        self._fps = fps
        self._frames_read = 0
        self._last_error: str | None = None
        self._pending: Any = None  # the capture job in progress
        self._timeouts = 0  # consecutive reads without a frame
        try:
            self._camera: Any = Picamera2(camera_num)
            config = self._camera.create_video_configuration(
                main={"size": main_size, "format": "RGB888"},
                lores={"size": lores_size, "format": "YUV420"},
                controls={"FrameRate": fps},
            )
            self._camera.configure(config)
            self._camera.start()
        except Exception as error:  # picamera2 raises plain RuntimeError/IndexError
            raise CaptureError(f"camera {camera_id}: cannot start Pi camera: {error}") from None

    @property
    def nominal_fps(self) -> float:
        return self._fps

    @property
    def live(self) -> bool:
        return True

    def read(self, timeout_s: float) -> Frame | None:
        # One capture job at a time, kept across calls: a job abandoned on timeout would
        # later take a camera buffer that nobody releases, and a few of those starve it.
        try:
            if self._pending is None:
                self._pending = self._camera.capture_request(wait=False)
            request = self._camera.wait(self._pending, timeout=timeout_s)
        except TimeoutError:
            self._timeouts += 1
            self._last_error = f"no frame within {timeout_s:.1f} s ({self._timeouts} times)"
            return None
        except Exception as error:
            self._pending = None
            self._last_error = f"capture failed: {error}"
            return None
        self._pending = None
        self._timeouts = 0
        if request is None:
            return None
        try:
            # picamera2's "RGB888" is BGR in memory order, which is what OpenCV wants.
            main = np.ascontiguousarray(request.make_array("main"))
            lores_yuv = request.make_array("lores")
        finally:
            request.release()
        lores = cv2.cvtColor(lores_yuv, cv2.COLOR_YUV420p2BGR)
        self._frames_read += 1
        return Frame(
            camera_id=self.camera_id,
            index=self._frames_read - 1,
            captured_at_s=time.time(),
            monotonic_s=time.monotonic(),
            image=main,
            analysis=lores,
        )

    def health(self) -> SourceHealth:
        return SourceHealth(
            connected=self._timeouts < 3,
            frames_read=self._frames_read,
            reconnects=0,
            last_error=self._last_error,
        )

    def close(self) -> None:
        self._camera.stop()
        self._camera.close()
