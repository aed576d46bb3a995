"""VideoReplay: any file at the rate and size a camera would deliver, optionally looping."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hw_sim.replay import VideoReplay


def _numbered_clip(path: Path, n_frames: int, fps: float) -> None:
    """Frame i is a flat grey of level 10 * i (survives mp4v compression well)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(n_frames):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()


def _levels(frames: list[np.ndarray]) -> list[int]:
    return [round(float(frame.mean()) / 10.0) for frame in frames]


def test_native_rate_yields_every_frame_once(tmp_path: Path) -> None:
    clip = tmp_path / "n.mp4"
    _numbered_clip(clip, 20, 10.0)
    with VideoReplay(clip) as replay:
        assert replay.fps == pytest.approx(10.0)
        assert _levels(list(replay)) == list(range(20))


def test_lower_rate_skips_and_higher_rate_repeats(tmp_path: Path) -> None:
    clip = tmp_path / "n.mp4"
    _numbered_clip(clip, 20, 10.0)
    with VideoReplay(clip, fps=5.0) as replay:
        assert _levels(list(replay)) == list(range(0, 20, 2))
    with VideoReplay(clip, fps=20.0) as replay:
        assert _levels(list(replay)) == [i // 2 for i in range(40)]


def test_resize_and_loop(tmp_path: Path) -> None:
    clip = tmp_path / "n.mp4"
    _numbered_clip(clip, 6, 10.0)
    with VideoReplay(clip, width=32, height=20, loop=True) as replay:
        frames = [frame for _, frame in zip(range(15), replay, strict=False)]
    assert all(frame.shape == (20, 32, 3) and frame.dtype == np.uint8 for frame in frames)
    assert _levels(frames) == [i % 6 for i in range(15)]


def test_still_image_once_or_forever(tmp_path: Path) -> None:
    image = tmp_path / "still.png"
    cv2.imwrite(str(image), np.full((10, 12, 3), 50, np.uint8))
    assert len(list(VideoReplay(image))) == 1
    looping = VideoReplay(image, loop=True)
    assert len([f for _, f in zip(range(5), looping, strict=False)]) == 5


def test_missing_file_and_bad_rate_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        VideoReplay(tmp_path / "nope.mp4")
    clip = tmp_path / "n.mp4"
    _numbered_clip(clip, 2, 10.0)
    with pytest.raises(ValueError, match="fps"):
        VideoReplay(clip, fps=0.0)
