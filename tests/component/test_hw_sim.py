"""hw-sim scenes: deterministic pictures whose ground truth agrees with their pixels.

Scenes with objects need the real footage sprites are cut from (EDGE_AGENT_MEDIA_PATH);
without it those tests skip, or fail where CI is set (tests/realdata.py). "empty_street"
needs no media.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hw_sim import sprites
from hw_sim.cli import main
from hw_sim.scenes import (
    SCENARIO_NAMES,
    Scenario,
    TruthObject,
    load_scenario,
    required_media,
)
from realdata import require_media

from edge_agent.types import ImageBGR

WIDTH, HEIGHT, FPS = 320, 180, 5.0


def _small(name: str) -> Scenario:
    return load_scenario(name, width=WIDTH, height=HEIGHT, fps=FPS)


def _scenario(name: str) -> Scenario:
    """The scenario, small; skips (fails under CI) when its footage is missing."""
    for media in required_media(name):
        require_media(media)
    return _small(name)


def _pixels(box: tuple[float, float, float, float], scene: Scenario) -> tuple[slice, slice]:
    x0, y0, x1, y1 = box
    return (
        slice(round(y0 * scene.height), round(y1 * scene.height)),
        slice(round(x0 * scene.width), round(x1 * scene.width)),
    )


def _diff(a: ImageBGR, b: ImageBGR) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_scenario_names_are_the_v1_set() -> None:
    assert set(SCENARIO_NAMES) == {"empty_street", "street", "person_walks_in"}
    with pytest.raises(KeyError, match="unknown scenario"):
        load_scenario("no_such_scene")


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_same_index_gives_identical_bytes_across_instances(name: str) -> None:
    first = _scenario(name)
    second = _scenario(name)
    for index in (0, 7, first.n_frames // 2, first.n_frames - 1):
        image = first.render(index)
        assert image.dtype == np.uint8
        assert image.shape == (180, 320, 3)
        assert image.tobytes() == second.render(index).tobytes()
        assert first.truth(index) == second.truth(index)
    assert first.render(3).tobytes() != first.render(4).tobytes()


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_scenes_loop_seamlessly(name: str) -> None:
    scene = _scenario(name)
    for index in (0, 1, 13):
        assert scene.render(scene.n_frames + index).tobytes() == scene.render(index).tobytes()
        assert scene.truth(scene.n_frames + index) == scene.truth(index)
    with pytest.raises(ValueError, match="negative"):
        scene.render(-1)


def test_empty_street_has_no_objects_but_sensor_noise_and_drift() -> None:
    scene = _small("empty_street")
    assert scene.n_frames == 150
    assert all(scene.truth(i) == [] for i in range(scene.n_frames))
    background = scene.background()
    frames = [scene.render(i) for i in range(scene.n_frames)]
    # Noise: consecutive frames differ a little everywhere, never a lot.
    for a, b in itertools.pairwise(frames):
        assert 0.5 < _diff(a, b) < 6.0
    # Drift: the brightness wanders slowly over the loop, then comes back.
    means = [float(frame.mean()) for frame in frames]
    assert max(means) - min(means) > 0.02 * float(background.mean())
    assert abs(means[0] - means[-1]) < 0.01 * float(background.mean())


def test_truth_boxes_lie_inside_the_frame_and_cover_both_labels() -> None:
    scene = _scenario("street")
    labels: set[str] = set()
    ids: set[str] = set()
    busiest = 0
    for index in range(scene.n_frames):
        objects = scene.truth(index)
        busiest = max(busiest, len(objects))
        for obj in objects:
            assert isinstance(obj, TruthObject)
            x0, y0, x1, y1 = obj.box
            assert 0.0 <= x0 < x1 <= 1.0
            assert 0.0 <= y0 < y1 <= 1.0
            assert 0.0 <= obj.visible_fraction <= 1.0
            labels.add(obj.label)
            ids.add(obj.object_id)
    assert labels == {"person", "car"}
    assert len(ids) >= 6
    assert busiest >= 3, "the busy clip should have objects overlapping in time"


def test_truth_boxes_are_where_the_pixels_changed() -> None:
    scene = _scenario("street")
    background = scene.background()
    checked = 0
    for index in range(0, scene.n_frames, 10):
        image = scene.render(index)
        changed = np.zeros(image.shape[:2], bool)
        for obj in scene.truth(index):
            rows, cols = _pixels(obj.box, scene)
            changed[rows, cols] = True
            if obj.visible_fraction > 0.9:
                assert _diff(image[rows, cols], background[rows, cols]) > 12.0, obj
                checked += 1
        if (~changed).any():
            assert _diff(image[~changed], background[~changed]) < 6.0
    assert checked >= 10


def test_person_walks_in_stands_still_then_leaves() -> None:
    scene = _scenario("person_walks_in")
    counts = [len(scene.truth(i)) for i in range(scene.n_frames)]
    assert counts[0] == 0 and counts[-1] == 0
    assert set(counts) == {0, 1}
    # One visit: empty, present, empty.
    present = [i for i, n in enumerate(counts) if n]
    assert present == list(range(present[0], present[-1] + 1))
    standing = [scene.truth(i)[0].box for i in present]
    longest_still = max(len(run) for run in _runs(standing))  # consecutive identical boxes
    assert longest_still >= 5.0 * scene.fps
    middle = present[len(present) // 2]
    assert scene.truth(middle)[0].label == "person"


def _runs(values: list[tuple[float, float, float, float]]) -> list[list[int]]:
    runs: list[list[int]] = [[0]]
    for i in range(1, len(values)):
        if values[i] == values[i - 1]:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def test_cli_list_names_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in SCENARIO_NAMES:
        assert name in out


def test_cli_render_writes_clip_and_one_truth_line_per_frame(tmp_path: Path) -> None:
    _scenario("street")  # skip early when media is missing
    clip, truth = tmp_path / "clip.mp4", tmp_path / "truth.jsonl"
    argv = ["render", "--scenario", "street", "--out", str(clip), "--truth", str(truth)]
    argv += ["--seconds", "3", "--width", "320", "--height", "180", "--fps", "5"]
    assert main(argv) == 0
    capture = cv2.VideoCapture(str(clip))
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (180, 320, 3)
        frames += 1
    capture.release()
    assert frames == 15
    lines = [json.loads(line) for line in truth.read_text(encoding="utf-8").splitlines()]
    assert [line["frame"] for line in lines] == list(range(15))
    assert lines[5]["t_s"] == pytest.approx(1.0)
    scene = _small("street")
    for line in lines:
        expected = scene.truth(line["frame"])
        assert [o["id"] for o in line["objects"]] == [o.object_id for o in expected]
        for written, obj in zip(line["objects"], expected, strict=True):
            assert written["label"] == obj.label
            assert written["box"] == pytest.approx(list(obj.box), abs=1e-4)
    assert any(line["objects"] for line in lines)


def test_cli_snapshot_writes_the_rendered_frame(tmp_path: Path) -> None:
    out = tmp_path / "snap.png"
    argv = ["snapshot", "--scenario", "empty_street", "--frame", "4", "--out", str(out)]
    assert main([*argv, "--width", "320", "--height", "180", "--fps", "5"]) == 0
    written = cv2.imread(str(out))
    expected = _small("empty_street").render(4)
    assert written is not None and written.tobytes() == expected.tobytes()


def test_cli_missing_media_exits_2_and_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sprites, "_cache", {})  # as in a fresh process
    monkeypatch.setenv("EDGE_AGENT_MEDIA_PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("EDGE_AGENT_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["snapshot", "--scenario", "street", "--out", str(tmp_path / "x.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "EDGE_AGENT_MEDIA_PATH" in err
    assert not (tmp_path / "x.png").exists()
