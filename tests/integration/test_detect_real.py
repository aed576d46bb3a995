"""The real models on real pictures, checked against what a person sees in them.

Ground truth was read off the frames by eye: automl_traffic_frames.mp4 shows three vehicles
(dark sedan, black pickup, white sedan) in frames 0-11, the sedan has driven out from frame 12
on, leaving two. In intel_one-by-one-person-detection.mp4 one person stands in the room in the
frames listed in PERSON_FRAMES and the room is empty in EMPTY_FRAMES.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest
from realdata import require_media, require_model

from edge_agent.datafiles import load_manifest
from edge_agent.detect.labels import COCO80, VEHICLE_LABELS
from edge_agent.detect.tflite import ModelLoadError, TFLiteDetector, create_detector
from edge_agent.types import Box, ImageBGR

MODELS = ["ssd_mobilenet_v1", "yolox_nano", "yolo11n_int8_416"]
TRAFFIC_VEHICLES = [3] * 12 + [2] * 8
PERSON_FRAMES = (150, 300, 600, 800, 1100, 1300)
EMPTY_FRAMES = (20, 480, 900)


def _read_frames(path: Path, wanted: Iterable[int] | None = None) -> dict[int, ImageBGR]:
    wanted_set = None if wanted is None else set(wanted)
    capture = cv2.VideoCapture(str(path))
    frames: dict[int, ImageBGR] = {}
    index = 0
    try:
        while wanted_set is None or len(frames) < len(wanted_set):
            ok, frame = capture.read()
            if not ok:
                break
            if wanted_set is None or index in wanted_set:
                frames[index] = np.asarray(frame, dtype=np.uint8)
            index += 1
    finally:
        capture.release()
    return frames


@pytest.fixture(scope="module")
def traffic_frames() -> dict[int, ImageBGR]:
    frames = _read_frames(require_media("automl_traffic_frames.mp4"))
    assert len(frames) == 20
    return frames


@pytest.fixture(scope="module")
def room_frames() -> dict[int, ImageBGR]:
    path = require_media("intel_one-by-one-person-detection.mp4")
    frames = _read_frames(path, PERSON_FRAMES + EMPTY_FRAMES)
    assert sorted(frames) == sorted(PERSON_FRAMES + EMPTY_FRAMES)
    return frames


@pytest.fixture(scope="module", params=MODELS)
def model_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    require_model(name)
    return name


def test_grace_hopper_is_a_person(model_name: str) -> None:
    image = np.asarray(cv2.imread(str(require_media("coral_grace_hopper.bmp"))), dtype=np.uint8)
    detector = create_detector(model_name, score_threshold=0.5)
    result = detector.detect(image)
    people = [d for d in result.detections if d.label == "person"]
    assert people, result.detections
    best = max(people, key=lambda d: d.score)
    # She fills the portrait (512x600): head at the top, uniform down to the bottom edge.
    assert best.box.iou(Box(0.0, 0.05, 1.0, 1.0)) > 0.8, best.box
    assert result.invoke_s > 0.0


def test_traffic_vehicle_counts_match_what_a_person_sees(
    model_name: str, traffic_frames: dict[int, ImageBGR]
) -> None:
    detector = create_detector(model_name, score_threshold=0.35, labels_of_interest=VEHICLE_LABELS)
    counts = [len(detector.detect(traffic_frames[i]).detections) for i in range(20)]
    errors = [count - truth for count, truth in zip(counts, TRAFFIC_VEHICLES, strict=True)]
    assert all(abs(e) <= 1 for e in errors), counts
    assert sum(abs(e) for e in errors) <= 3, counts


def test_traffic_boxes_land_on_the_vehicles(
    model_name: str, traffic_frames: dict[int, ImageBGR]
) -> None:
    detector = create_detector(model_name, score_threshold=0.35, labels_of_interest=VEHICLE_LABELS)
    frame = traffic_frames[19]
    height_px, width_px = frame.shape[:2]
    pickup = Box(195 / width_px, 292 / height_px, 495 / width_px, 405 / height_px)
    white_car = Box(3 / width_px, 365 / height_px, 315 / width_px, 495 / height_px)
    boxes = [d.box for d in detector.detect(frame).detections]
    for truth in (pickup, white_car):
        assert max(box.iou(truth) for box in boxes) > 0.6, (truth, boxes)


def test_room_person_present_or_absent(model_name: str, room_frames: dict[int, ImageBGR]) -> None:
    detector = create_detector(model_name, score_threshold=0.5, labels_of_interest=["person"])
    for index in PERSON_FRAMES:
        people = detector.detect(room_frames[index]).detections
        assert len(people) == 1, (index, people)
    for index in EMPTY_FRAMES:
        assert detector.detect(room_frames[index]).detections == (), index


# coral_traffic_0001.bmp (256x256), read off the picture: a dark sedan mid-left, a pickup cut
# by the right edge and a white car in front of it, also cut by the edge.
CORAL_VEHICLES = (
    Box(0.205, 0.586, 0.48, 0.766),
    Box(0.826, 0.566, 1.0, 0.746),
    Box(0.918, 0.707, 1.0, 0.855),
)


@pytest.mark.parametrize("name", ["yolox_nano", "yolo11n_int8_416"])
def test_coral_traffic_frame_three_vehicles(name: str) -> None:
    require_model(name)
    image = np.asarray(cv2.imread(str(require_media("coral_traffic_0001.bmp"))), dtype=np.uint8)
    detector = create_detector(name, score_threshold=0.35, labels_of_interest=VEHICLE_LABELS)
    detections = detector.detect(image).detections
    assert len(detections) == 3, detections
    for truth in CORAL_VEHICLES:
        assert max(d.box.iou(truth) for d in detections) > 0.6, (truth, detections)
    sedan = max(detections, key=lambda d: d.box.iou(CORAL_VEHICLES[0]))
    assert sedan.label == "car"


def test_yolo11n_as_a_users_model_with_its_label_file(tmp_path: Path) -> None:
    """The documented path for a model a city trained: file, layout and label file."""
    model = require_model("yolo11n_int8_416")
    labels_file = tmp_path / "coco80.txt"
    labels_file.write_text("\n".join(COCO80) + "\n")
    image = np.asarray(cv2.imread(str(require_media("coral_grace_hopper.bmp"))), dtype=np.uint8)
    own = create_detector(
        str(model), layout="ultralytics", labels_file=labels_file, score_threshold=0.5
    )
    listed = create_detector("yolo11n_int8_416", score_threshold=0.5)
    assert own.labels == COCO80 and own.model_name == model.name
    assert own.detect(image).detections == listed.detect(image).detections
    assert [d.label for d in own.detect(image).detections] == ["person"]


def test_ultralytics_export_brings_its_labels_in_its_metadata() -> None:
    model = require_model("yolo11n_int8_416")
    detector = create_detector(str(model), layout="ultralytics")
    assert detector.labels == COCO80


def test_users_model_with_the_wrong_label_file_is_refused(tmp_path: Path) -> None:
    model = require_model("yolo11n_int8_416")
    labels_file = tmp_path / "piles.yaml"
    labels_file.write_text("- garbage_pile\n- water\n")
    with pytest.raises(ModelLoadError, match=r"2 labels.*80 classes"):
        create_detector(str(model), layout="ultralytics", labels_file=labels_file)
    with pytest.raises(ModelLoadError, match="not the YOLOX layout"):
        create_detector(str(model), layout="yolox", labels_file=labels_file)


def test_two_threads_give_the_same_answer(traffic_frames: dict[int, ImageBGR]) -> None:
    require_model("yolox_nano")
    one = create_detector("yolox_nano", num_threads=1).detect(traffic_frames[5]).detections
    two = create_detector("yolox_nano", num_threads=2).detect(traffic_frames[5]).detections
    assert [d.label for d in one] == [d.label for d in two]
    assert np.allclose([d.box.as_list() for d in one], [d.box.as_list() for d in two], atol=1e-3)


def test_truncated_model_is_a_model_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = require_model("ssd_mobilenet_v1")
    broken = tmp_path / real.name
    broken.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    monkeypatch.setenv("EDGE_AGENT_MODEL_PATH", str(tmp_path))
    with pytest.raises(ModelLoadError) as caught:
        create_detector("ssd_mobilenet_v1")
    assert str(broken) in str(caught.value) and "bytes" in str(caught.value)


def test_text_file_posing_as_model_is_a_model_load_error(tmp_path: Path) -> None:
    require_model("ssd_mobilenet_v1")
    fake = tmp_path / "fake.tflite"
    fake.write_text("this is not a flatbuffer\n" * 100)
    manifest = load_manifest()
    entry = manifest.model("ssd_mobilenet_v1").model_copy(
        update={"bytes": fake.stat().st_size, "sha256": _sha256(fake)}
    )
    manifest = manifest.model_copy(update={"entries": (entry,)})
    with pytest.raises(ModelLoadError, match="not a loadable TFLite model") as caught:
        TFLiteDetector("ssd_mobilenet_v1", manifest=manifest, model_path=fake)
    assert str(fake) in str(caught.value)


def test_model_of_the_wrong_layout_is_a_model_load_error(tmp_path: Path) -> None:
    real = require_model("yolox_nano")
    manifest = load_manifest()
    ssd_entry = manifest.model("ssd_mobilenet_v1")
    yolox_entry = manifest.model("yolox_nano")
    # A manifest entry claiming the YOLOX file is an SSD model.
    lying = ssd_entry.model_copy(
        update={"file": real.name, "sha256": yolox_entry.sha256, "bytes": yolox_entry.bytes}
    )
    copy = tmp_path / real.name
    shutil.copyfile(real, copy)
    manifest = manifest.model_copy(update={"entries": (lying,)})
    with pytest.raises(ModelLoadError, match="416"):
        TFLiteDetector("ssd_mobilenet_v1", manifest=manifest, model_path=copy)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (lambda real: b"", "the file is empty (0 bytes)"),
        (lambda real: bytes(range(256)) * 400, "does not begin as a TFLite file does"),
        (lambda real: real[:100_000], "not a valid Flatbuffer"),  # the labels are lost too
    ],
    ids=["empty", "random", "truncated"],
)
def test_a_broken_model_file_is_said_as_such_not_as_missing_labels(
    tmp_path: Path, content: Callable[[bytes], bytes], said: str
) -> None:
    """A user's model file, empty, of another kind, or cut short (so its embedded labels
    are gone): the error was "carries no labels: give its label file", sending the
    technician after the wrong file. With a label file given, the same reason."""
    real = require_model("ssd_mobilenet_v1").read_bytes()
    model = tmp_path / "mine.tflite"
    model.write_bytes(content(real))
    labels = tmp_path / "labels.txt"
    labels.write_text("person\n")
    for labels_file in (None, labels):
        with pytest.raises(ModelLoadError, match="not a loadable TFLite model") as caught:
            TFLiteDetector(str(model), layout="ssd_postprocess", labels_file=labels_file)
        assert said in str(caught.value) and str(model) in str(caught.value)
