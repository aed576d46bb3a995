"""The OpenCV capture backend on files and on a live HTTP (MJPEG) stream that drops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import wait_until
from hw_sim.mjpeg import MjpegServer

from edge_agent.capture import CaptureError, EndOfStream
from edge_agent.capture.opencv_source import OpenCVSource
from edge_agent.types import Frame


def numbered_clip(path: Path, frames: int, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (160, 120))
    for index in range(frames):
        image = np.zeros((120, 160, 3), np.uint8)
        cv2.putText(image, str(index), (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        writer.write(image)
    writer.release()
    return path


def read_all(source: OpenCVSource, limit: int) -> list[Frame]:
    frames: list[Frame] = []
    while len(frames) < limit:
        try:
            frame = source.read(timeout_s=5.0)
        except EndOfStream:
            break
        if frame is not None:
            frames.append(frame)
    return frames


def test_a_file_is_read_to_its_end_with_media_time(tmp_path: Path) -> None:
    source = OpenCVSource("c", str(numbered_clip(tmp_path / "c.mp4", 12)), realtime=False)
    frames = read_all(source, 100)
    assert [f.index for f in frames] == list(range(12))
    assert frames[5].monotonic_s == pytest.approx(0.5)
    assert not source.live and source.health().ended
    with pytest.raises(EndOfStream):
        source.read(timeout_s=1.0)


def test_a_looping_file_starts_again(tmp_path: Path) -> None:
    source = OpenCVSource("c", str(numbered_clip(tmp_path / "c.mp4", 5)), loop=True, realtime=False)
    frames = read_all(source, 12)
    assert len(frames) == 12
    assert np.array_equal(frames[0].image, frames[5].image)


def test_frames_closer_than_the_analysis_interval_are_skipped_as_the_capture_thread_would(
    tmp_path: Path,
) -> None:
    clip = str(numbered_clip(tmp_path / "c.mp4", 12))  # 10 fps
    every = read_all(OpenCVSource("c", clip, realtime=False), 100)
    source = OpenCVSource("c", clip, realtime=False, min_interval_s=1 / 3)
    frames = read_all(source, 100)
    kept: list[Frame] = []  # worker.capture_loop's rule on every frame
    for frame in every:
        if not kept or frame.monotonic_s - kept[-1].monotonic_s >= 0.9 / 3:
            kept.append(frame)
    assert [f.index for f in frames] == [f.index for f in kept] == [0, 3, 6, 9]
    assert [f.monotonic_s for f in frames] == [f.monotonic_s for f in kept]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, kept, strict=True))
    assert source.frames_skipped == 8 and source.health().frames_read == 12


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="video file not found"):
        OpenCVSource("c", str(tmp_path / "none.mp4"))


def test_a_file_that_is_not_video_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(CaptureError, match="cannot decode"):
        OpenCVSource("c", str(bad))


def test_a_dropped_stream_is_reconnected_and_reported(tmp_path: Path) -> None:
    def picture(index: int) -> np.ndarray:
        return np.full((120, 160, 3), index % 250, np.uint8)

    camera = MjpegServer(picture, fps=20.0)
    camera.start()
    source = OpenCVSource(
        "c", camera.url, reconnect_min_delay_s=0.1, reconnect_max_delay_s=0.5, stream_timeout_s=2.0
    )
    try:
        assert source.live
        wait_until(lambda: source.read(timeout_s=1.0) is not None, 30.0, "a first frame")
        camera.stop()  # the camera loses power
        wait_until(
            lambda: source.read(timeout_s=0.5) is None and not source.health().connected,
            30.0,
            "the source to notice the drop",
        )
        assert source.health().last_error is not None
        camera.start()  # power is back, same address
        wait_until(lambda: source.read(timeout_s=1.0) is not None, 30.0, "frames after reconnect")
        health = source.health()
        assert health.connected and health.reconnects >= 1
    finally:
        source.close()
        camera.stop()
