"""Replay any video file as a camera would deliver it: chosen rate and size, maybe looping.

Rate conversion is by timestamps: output frame k shows the source frame on screen at
k / fps, so a 30 fps file replayed at 10 fps skips frames and a 10 fps file replayed
at 25 fps repeats them, and the scene's pace stays real.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from edge_agent.types import ImageBGR
from hw_sim.media import IMAGE_SUFFIXES


class VideoReplay:
    """Frames of a video (or a still image) at ``fps`` and ``width`` x ``height``.

    ``fps``/``width``/``height`` default to the file's own. Iterating yields BGR uint8
    frames until the file ends, or forever with ``loop=True``.

    >>> with VideoReplay("clip.mp4", fps=5.0, width=640, height=360) as replay:  # doctest: +SKIP
    ...     first = next(iter(replay))
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float | None = None,
        width: int | None = None,
        height: int | None = None,
        loop: bool = False,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such video file: {self.path}")
        if fps is not None and not fps > 0.0:
            raise ValueError(f"fps must be positive, not {fps}")
        self._still: ImageBGR | None = None
        self._capture: cv2.VideoCapture | None = None
        if self.path.suffix.lower() in IMAGE_SUFFIXES:
            image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
            if image is None:
                raise OSError(f"cannot decode image {self.path}")
            self._still = np.ascontiguousarray(image, dtype=np.uint8)
            self.source_fps = fps or 1.0
            self.source_frames = 1
            source_size = (image.shape[1], image.shape[0])
        else:
            capture = cv2.VideoCapture(str(self.path))
            if not capture.isOpened():
                raise OSError(f"cannot open video {self.path}")
            self._capture = capture
            reported_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            self.source_fps = reported_fps if reported_fps > 0.0 else 25.0
            self.source_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            source_size = (
                int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            )
        self.fps = fps or self.source_fps
        self.width = width or source_size[0]
        self.height = height or source_size[1]
        self.loop = loop
        self.frames_delivered = 0
        self._source_index = -1  # index of the source frame held in _current
        self._current: ImageBGR | None = None
        self._lap_start = 0  # output index where the current lap began

    def read(self) -> ImageBGR | None:
        """The next output frame, or None when a non-looping file has ended."""
        if self._still is not None:
            if not self.loop and self.frames_delivered >= 1:
                return None
            self.frames_delivered += 1
            return self._sized(self._still)
        wanted = int((self.frames_delivered - self._lap_start) * self.source_fps / self.fps + 1e-9)
        while self._source_index < wanted:
            frame = self._decode_next()
            if frame is None:
                if not self.loop or self._source_index < 0:
                    return None
                self._restart()
                wanted = 0
                continue
            self._current = frame
        if self._current is None:
            return None
        self.frames_delivered += 1
        return self._sized(self._current)

    def __iter__(self) -> Iterator[ImageBGR]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> VideoReplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _decode_next(self) -> ImageBGR | None:
        if self._capture is None:
            return None
        ok, frame = self._capture.read()
        if not ok or frame is None:
            return None
        self._source_index += 1
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def _restart(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture = cv2.VideoCapture(str(self.path))
        self._source_index = -1
        self._current = None
        self._lap_start = self.frames_delivered

    def _sized(self, frame: ImageBGR) -> ImageBGR:
        if frame.shape[1] == self.width and frame.shape[0] == self.height:
            copied: ImageBGR = frame.copy()
            return copied
        shrinking = self.width < frame.shape[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        resized = cv2.resize(frame, (self.width, self.height), interpolation=interpolation)
        return np.ascontiguousarray(resized, dtype=np.uint8)
