"""Each by-eye truth file still describes its clip: same bytes, frames, fps and size.

The clips are not committed; they are found through EDGE_AGENT_MEDIA_PATH like any media.
A truth file pins what it was counted on, so a re-encoded or different clip fails here
instead of silently scoring against frame numbers that no longer mean the same frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from hw_sim.footage import ClipTruth, load_truth, truth_files
from realdata import require_media

from edge_agent import datafiles

TRUTHS = truth_files()


@pytest.mark.parametrize("path", TRUTHS, ids=lambda p: p.stem)
def test_truth_matches_its_clip(path: Path) -> None:
    truth: ClipTruth = load_truth(path)
    video = require_media(truth.clip)
    assert datafiles.sha256_of(video) == truth.sha256
    assert datafiles.load_manifest().media(truth.clip).sha256 == truth.sha256
    capture = cv2.VideoCapture(str(video))
    try:
        assert capture.isOpened(), f"OpenCV cannot open {video}"
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        frames = 0
        size = None
        while True:
            ok, image = capture.read()
            if not ok:
                break
            frames += 1
            size = image.shape[1], image.shape[0]
    finally:
        capture.release()
    assert frames == truth.frames
    assert fps == pytest.approx(truth.fps, rel=1e-6)
    assert size == (truth.width_px, truth.height_px)


def test_every_clip_in_the_task_has_truth() -> None:
    assert len(TRUTHS) >= 5
