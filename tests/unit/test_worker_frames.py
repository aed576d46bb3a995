"""Odd pictures from a source (greyscale, BGRA, 16-bit, floats) and a camera whose every
frame fails: the camera's threads convert what they can, say what they cannot, count it,
and do not write a traceback on every frame."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import edge_agent.worker as worker_module
from edge_agent.capture import EndOfStream
from edge_agent.capture.pixels import UnusablePixels, as_bgr8
from edge_agent.types import Frame
from edge_agent.worker import CameraWorker


def _frame(image: np.ndarray[Any, Any], index: int = 0) -> Frame:
    return Frame("cam1", index, 1_780_000_000.0 + index, float(index), image)


@pytest.mark.parametrize(
    ("image", "said"),
    [
        (np.full((4, 6), 200, np.uint8), "4x6 uint8"),
        (np.full((4, 6, 1), 200, np.uint8), "4x6x1 uint8"),
        (np.full((4, 6, 4), 200, np.uint8), "4x6x4 uint8"),
        (np.full((4, 6, 3), 200 * 256 + 17, np.uint16), "4x6x3 uint16"),
        (np.full((4, 6), 200 * 256, np.uint16), "4x6 uint16"),
    ],
)
def test_unambiguous_pictures_become_8_bit_bgr(image: np.ndarray[Any, Any], said: str) -> None:
    converted, what = as_bgr8(_frame(image))
    assert what == said
    assert converted.image.shape == (4, 6, 3) and converted.image.dtype == np.uint8
    assert converted.image.flags.c_contiguous
    assert (converted.image == 200).all()


def test_a_bgr8_picture_is_passed_as_it_is() -> None:
    frame = _frame(np.zeros((4, 6, 3), np.uint8))
    assert as_bgr8(frame) == (frame, None)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((4, 6, 3), np.float32), "a 4x6x3 float32 picture: expected 8- or 16-bit"),
        (np.zeros((4, 6, 2), np.uint8), "a 4x6x2 uint8 picture: expected 1, 3 or 4 channels"),
        (np.zeros((4,), np.uint8), "a 4 uint8 picture: expected 1, 3 or 4 channels"),
    ],
)
def test_other_pictures_are_refused_saying_what_came(
    image: np.ndarray[Any, Any], message: str
) -> None:
    with pytest.raises(UnusablePixels, match=message):
        as_bgr8(_frame(image))


class _Source:
    live = True

    def __init__(self, frames: list[Frame]) -> None:
        self._frames: Iterator[Frame] = iter(frames)

    def read(self, timeout_s: float) -> Frame:
        try:
            return next(self._frames)
        except StopIteration:
            raise EndOfStream("cam1") from None


class _Mailbox:
    def __init__(self, frames: list[Frame] | None = None) -> None:
        self.put_frames: list[Frame] = []
        self._waiting = list(frames or [])
        self.closed = False

    def put(self, frame: Frame, *, wait_for_reader: bool) -> None:
        self.put_frames.append(frame)

    def get(self, timeout_s: float) -> Frame | None:
        if self._waiting:
            return self._waiting.pop(0)
        self.closed = True
        return None

    def close(self) -> None:
        self.closed = True


def _worker(source: object, mailbox: _Mailbox, pipeline: object = None) -> CameraWorker:
    return CameraWorker(
        config=SimpleNamespace(id="cam1", fps=5.0),  # type: ignore[arg-type]
        source=source,  # type: ignore[arg-type]
        mailbox=mailbox,  # type: ignore[arg-type]
        pipeline=pipeline,  # type: ignore[arg-type]
    )


def test_the_capture_thread_converts_what_it_can_and_counts_what_it_cannot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    images = [np.full((4, 6), 9, np.uint8)] * 3 + [np.zeros((4, 6, 3), np.float64)] * 12
    images.append(np.zeros((4, 6, 3), np.uint8))
    frames = [_frame(image, i) for i, image in enumerate(images)]
    mailbox = _Mailbox()
    worker = _worker(_Source(frames), mailbox)
    with caplog.at_level(logging.WARNING, "edge_agent.app"):
        worker.capture_loop(threading.Event())
    assert [f.index for f in mailbox.put_frames] == [0, 1, 2, 15]
    assert all(f.image.shape == (4, 6, 3) for f in mailbox.put_frames)
    assert worker.capture_failures.count == 12
    assert worker.last_error == (
        "unusable frame: a 4x6x3 float64 picture: expected 8- or 16-bit pixels"
    )
    said = [r.getMessage() for r in caplog.records]
    assert said.count("camera cam1 delivers 4x6 uint8 pictures; converted to 8-bit BGR") == 1
    dropped = [m for m in said if "frame dropped" in m]
    assert [m.split("(")[1].split(")")[0] for m in dropped] == ["1 so far", "10 so far"]
    assert mailbox.closed


def test_a_camera_whose_every_frame_fails_logs_a_traceback_rarely(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def process(self, frame: Frame) -> None:
            raise RuntimeError("a stage that cannot take this picture")

        def finish(self, last_frame: Frame | None) -> None:
            pass

    frames = [_frame(np.zeros((4, 6, 3), np.uint8), i) for i in range(25)]
    worker = _worker(_Source([]), _Mailbox(frames), Broken())
    with caplog.at_level(logging.ERROR, "edge_agent.app"):
        worker.analysis_loop(threading.Event())
    assert worker.analysis_failures.count == 25
    assert worker.last_error == "analysis failed: a stage that cannot take this picture"
    logged = [r for r in caplog.records if "analysis failed" in r.getMessage()]
    assert [r.getMessage() for r in logged] == [
        "camera cam1: analysis failed on frame 0 (1 failures so far)",
        "camera cam1: analysis failed on frame 9 (10 failures so far)",
    ]
    assert all(r.exc_info for r in logged)


def test_a_backend_that_keeps_raising_is_retried_and_said_rarely(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "CAPTURE_RETRY_S", 0.0)

    class Raising(_Source):
        calls = 0

        def read(self, timeout_s: float) -> Frame:
            Raising.calls += 1
            if Raising.calls > 12:
                raise EndOfStream("cam1")
            raise OSError("v4l2: device busy")

    worker = _worker(Raising([]), _Mailbox())
    with caplog.at_level(logging.ERROR, "edge_agent.app"):
        worker.capture_loop(threading.Event())
    assert worker.capture_failures.count == 12
    assert worker.last_error == "capture failed: v4l2: device busy"
    assert [r.getMessage() for r in caplog.records] == [
        "camera cam1: capture failed (1 times); retrying every 0 s",
        "camera cam1: capture failed (10 times); retrying every 0 s",
    ]


def test_a_new_run_of_failures_after_frames_went_through_is_said_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The 1/10/100/1000 rule counts a run of failures, not the camera's lifetime: 12
    failures last month must not keep today's first failure (the 13th) quiet."""

    class Sometimes:
        def process(self, frame: Frame) -> None:
            if frame.index != 12:
                raise RuntimeError(f"bad frame {frame.index}")

        def finish(self, last_frame: Frame | None) -> None:
            pass

    frames = [_frame(np.zeros((4, 6, 3), np.uint8), i) for i in range(14)]
    worker = _worker(_Source([]), _Mailbox(frames), Sometimes())
    with caplog.at_level(logging.ERROR, "edge_agent.app"):
        worker.analysis_loop(threading.Event())
    assert worker.analysis_failures.count == 13
    assert [r.getMessage() for r in caplog.records if "analysis failed" in r.getMessage()] == [
        "camera cam1: analysis failed on frame 0 (1 failures so far)",
        "camera cam1: analysis failed on frame 9 (10 failures so far)",
        "camera cam1: analysis failed on frame 13 (13 failures so far)",
    ]


def test_a_capture_failure_after_frames_went_through_is_said_at_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "CAPTURE_RETRY_S", 0.0)

    class Flaky(_Source):
        calls = 0

        def read(self, timeout_s: float) -> Frame:
            Flaky.calls += 1
            if Flaky.calls == 13:
                return _frame(np.zeros((4, 6, 3), np.uint8), 0)
            if Flaky.calls > 14:
                raise EndOfStream("cam1")
            raise OSError("v4l2: device busy")

    worker = _worker(Flaky([]), _Mailbox())
    with caplog.at_level(logging.ERROR, "edge_agent.app"):
        worker.capture_loop(threading.Event())
    assert worker.capture_failures.count == 13
    assert [r.getMessage() for r in caplog.records] == [
        "camera cam1: capture failed (1 times); retrying every 0 s",
        "camera cam1: capture failed (10 times); retrying every 0 s",
        "camera cam1: capture failed (13 times); retrying every 0 s",
    ]
