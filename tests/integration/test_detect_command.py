"""`edge-agent detect` as a user runs it, through the handler the CLI dispatches to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from realdata import require_media, require_model

from edge_agent.cli import build_parser
from edge_agent.detect.labels import COCO80


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(["detect", *argv])
    result: int = args.handler(args)
    return result


def test_detect_prints_person_box_in_pixels(capsys: pytest.CaptureFixture[str]) -> None:
    require_model("ssd_mobilenet_v1")
    image = require_media("coral_grace_hopper.bmp")
    assert _run([str(image), "--score", "0.6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    person = [line.split("\t") for line in lines if "\tperson\t" in line]
    assert person, lines
    file_name, frame, _label, score, box = person[0]
    assert file_name == str(image) and frame == "frame 0" and float(score) >= 0.6
    x_min, y_min, x_max, y_max = (int(v) for v in box.split())
    # 512x600 portrait: the box spans most of it, in pixels (not 0..1).
    assert x_min < 60 and y_min < 80 and x_max > 450 and y_max > 540


def test_detect_json_lines_on_video_every_nth_frame(capsys: pytest.CaptureFixture[str]) -> None:
    require_model("yolox_nano")
    video = require_media("automl_traffic_frames.mp4")
    code = _run(
        [str(video), "--model", "yolox_nano", "--every", "10", "--json", "--labels", "car,truck"]
    )
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["frame"] for r in records} == {0, 10}
    assert {r["label"] for r in records} <= {"car", "truck"}
    for record in records:
        x_min, y_min, x_max, y_max = record["box_px"]
        assert 0 <= x_min < x_max <= 960 and 0 <= y_min < y_max <= 540


def test_bare_manifest_media_name_is_found_on_the_media_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_model("ssd_mobilenet_v1")
    require_media("coral_grace_hopper.bmp")
    assert _run(["coral_grace_hopper.bmp"]) == 0
    assert "person" in capsys.readouterr().out


def test_detect_with_the_yolo11n_model(capsys: pytest.CaptureFixture[str]) -> None:
    require_model("yolo11n_int8_416")
    image = require_media("coral_grace_hopper.bmp")
    assert _run([str(image), "--model", "yolo11n_int8_416", "--threads", "2"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [row[2] for row in rows] == ["person"], rows
    x_min, y_min, x_max, y_max = (int(v) for v in rows[0][4].split())
    assert x_min < 60 and y_min < 80 and x_max > 450 and y_max > 540


def test_detect_with_a_users_model_and_label_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model file in the Ultralytics layout with its own label file, as a city brings one."""
    model = require_model("yolo11n_int8_416")
    image = require_media("coral_traffic_0001.bmp")
    labels = tmp_path / "labels.yaml"
    labels.write_text("".join(f"- {label}\n" for label in COCO80))
    argv = [str(image), "--model", str(model), "--layout", "ultralytics"]
    code = _run([*argv, "--labels-file", str(labels), "--score", "0.35", "--json"])
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in records].count("car") >= 2, records
    for record in records:
        x_min, y_min, x_max, y_max = record["box_px"]
        assert 0 <= x_min < x_max <= 256 and 0 <= y_min < y_max <= 256


def test_users_model_with_a_wrong_label_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = require_model("yolo11n_int8_416")
    labels = tmp_path / "labels.txt"
    labels.write_text("garbage_pile\nwater\n")
    image = require_media("coral_traffic_0001.bmp")
    argv = [str(image), "--model", str(model), "--layout", "ultralytics"]
    assert _run([*argv, "--labels-file", str(labels)]) == 2  # README: a bad model is input
    err = capsys.readouterr().err
    assert "2 labels" in err and "80 classes" in err


def test_missing_file_exits_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["/nonexistent/picture.jpg"]) == 2
    assert "/nonexistent/picture.jpg: no such file" in capsys.readouterr().err


def test_unreadable_image_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_model("ssd_mobilenet_v1")
    bad = tmp_path / "bad.png"
    bad.write_text("not a png")
    assert _run([str(bad)]) == 2
    assert f"{bad}: not a readable image" in capsys.readouterr().err
