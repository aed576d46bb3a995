"""Each by-eye truth file still describes its clip: same bytes, frames, fps and size.

The clips are not committed; they are found through EDGE_AGENT_MEDIA_PATH like any media.
A truth file pins what it was counted on, so a re-encoded or different clip fails here
instead of silently scoring against frame numbers that no longer mean the same frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from hw_sim.footage import TRUTH_DIR, ClipTruth, load_truth, truth_files
from hw_sim.footage.run import main, replay_clip
from realdata import require_media, require_model

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


def test_the_runner_replays_a_clip_through_the_pipeline_in_the_clips_frames(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_model("ssd_mobilenet_v1")
    truth = load_truth(TRUTH_DIR / "automl_traffic_frames.yaml")
    require_media(truth.clip)
    run = replay_clip(truth, camera_fps=30.0)  # the file's own rate: every frame
    assert (run.step, run.frames_read) == (1, truth.frames)
    assert run.events, "the pipeline emitted no object events on three vehicles"
    for event in run.events:
        assert 0 <= event.first_frame <= event.published_frame <= event.last_frame < truth.frames
    assert run.score().row("vehicle").expected == 3

    assert main(["--clip", truth.clip]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{truth.clip}: 20 frames at 30 fps, model ssd_mobilenet_v1, every 6")
    assert "per-frame count" in out
