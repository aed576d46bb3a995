"""Per-camera detection filters: score, area and aspect bounds per label, and their config."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.config import CameraConfig, DetectorConfig
from edge_agent.detect.filters import LabelFilterConfig, filter_detections
from edge_agent.detect.frame import FrameDetector
from edge_agent.detect.regions import RegionSettings
from edge_agent.sinks import CollectingSink
from edge_agent.types import Box, Detection, DetectionResult, ImageBGR, Track


def _det(label: str, box: tuple[float, float, float, float], score: float = 0.9) -> Detection:
    return Detection(label=label, class_id=0, score=score, box=Box(*box))


CAR_SIZED_PHONE = _det("cell phone", (0.2, 0.2, 0.6, 0.5))  # 12 % of the frame
PHONE = _det("cell phone", (0.5, 0.5, 0.52, 0.53))
PERSON = _det("person", (0.1, 0.1, 0.15, 0.4))  # tall and thin
CAR = _det("car", (0.3, 0.6, 0.5, 0.7), score=0.6)


def test_no_filters_keep_everything() -> None:
    detections = (CAR_SIZED_PHONE, PHONE, PERSON, CAR)
    assert filter_detections(detections, {}, 16 / 9) == detections


def test_overhead_camera_refuses_a_phone_the_size_of_a_car() -> None:
    filters = {"cell phone": LabelFilterConfig(max_area=0.01)}
    kept = filter_detections((CAR_SIZED_PHONE, PHONE, PERSON, CAR), filters, 16 / 9)
    assert kept == (PHONE, PERSON, CAR)


def test_min_score_per_label() -> None:
    filters = {"car": LabelFilterConfig(min_score=0.7)}
    assert filter_detections((CAR, PERSON), filters, 1.0) == (PERSON,)


def test_min_area() -> None:
    filters = {"cell phone": LabelFilterConfig(min_area=0.001)}
    assert filter_detections((PHONE,), filters, 1.0) == ()  # 0.02 x 0.03 = 0.0006


def test_aspect_is_in_pixels_of_the_frame() -> None:
    """A box 0.05 wide and 0.3 tall is 1:6 in a square frame, but 0.3 in a 16:9 one."""
    upright = {"person": LabelFilterConfig(max_aspect=0.25)}
    assert filter_detections((PERSON,), upright, 1.0) == (PERSON,)
    assert filter_detections((PERSON,), upright, 16 / 9) == ()
    wide = {"person": LabelFilterConfig(min_aspect=0.2)}
    assert filter_detections((PERSON,), wide, 1.0) == ()


def test_star_applies_to_labels_without_their_own_bounds() -> None:
    filters = {
        "*": LabelFilterConfig(min_score=0.8),
        "car": LabelFilterConfig(min_score=0.5),
    }
    weak_person = _det("person", (0.1, 0.1, 0.2, 0.4), score=0.7)
    assert filter_detections((weak_person, CAR, PERSON), filters, 1.0) == (CAR, PERSON)


class _Static:
    """A detector returning the same detections for every image."""

    def __init__(self, detections: Sequence[Detection]) -> None:
        self.detections = tuple(detections)
        self.calls = 0

    @property
    def model_name(self) -> str:
        return "static"

    @property
    def labels(self) -> Sequence[str]:
        return ("person", "car", "cell phone")

    @property
    def input_size_px(self) -> tuple[int, int]:
        return (300, 300)

    def detect(self, image: ImageBGR) -> DetectionResult:
        self.calls += 1
        return DetectionResult(self.detections, preprocess_s=0.1, invoke_s=0.2)


def test_frame_detector_filters_with_the_frame_aspect_and_keeps_timings() -> None:
    inner = _Static((PERSON, CAR_SIZED_PHONE))
    detector = FrameDetector(
        inner,
        filters={"person": LabelFilterConfig(max_aspect=0.25), "cell phone": LabelFilterConfig()},
    )
    square = detector.detect(np.zeros((100, 100, 3), np.uint8), now_s=0.0).result
    assert square.detections == (PERSON, CAR_SIZED_PHONE)
    wide = detector.detect(np.zeros((90, 160, 3), np.uint8), now_s=1.0).result
    assert wide.detections == (CAR_SIZED_PHONE,)
    assert (wide.preprocess_s, wide.invoke_s) == (0.1, 0.2)
    assert detector.detector is inner


def test_filters_apply_to_the_frame_not_to_the_crop_a_region_showed() -> None:
    """A phone box filling most of a small crop is a small box in the frame: kept."""
    phone_in_crop = _det("cell phone", (0.1, 0.1, 0.9, 0.9))
    inner = _Static((phone_in_crop,))
    detector = FrameDetector(
        inner,
        regions=RegionSettings(full_frame_every_s=100.0),
        filters={"cell phone": LabelFilterConfig(max_area=0.05)},
    )
    image = np.zeros((540, 960, 3), np.uint8)
    track = Track(1, "cell phone", 0.9, Box(0.5, 0.5, 0.52, 0.53), 0.0, 0.0, hits=3)
    detector.detect(image, now_s=0.0, tracks=(track,))  # the first run: full frame too
    found = detector.detect(image, now_s=1.0, tracks=(track,))
    assert found.figures.full_frame is False and found.figures.invokes >= 1
    assert [d.label for d in found.result.detections] == ["cell phone"]
    assert all(d.box.area < 0.05 for d in found.result.detections)


def test_filters_naming_unknown_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="cellphone"):
        FrameDetector(_Static(()), filters={"cellphone": LabelFilterConfig(max_area=0.01)})


# -- config


def _camera(**extra: Any) -> CameraConfig:
    return CameraConfig.model_validate(
        {"id": "lot", "source": {"kind": "opencv", "uri": "lot.mp4"}, **extra}
    )


def test_camera_detection_filters_from_config() -> None:
    assert _camera().detection_filters == {}
    camera = _camera(
        detection_filters={
            "cell phone": {"max_area": 0.01},
            "car": {"min_area": 0.002, "min_aspect": 0.4, "max_aspect": 3.0, "min_score": 0.6},
        }
    )
    assert camera.detection_filters["cell phone"].max_area == 0.01
    assert camera.detection_filters["car"].max_aspect == 3.0


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"max_area": 0.1, "min_area": 0.2}, "min_area must not be above max_area"),
        ({"min_aspect": 2.0, "max_aspect": 1.0}, "min_aspect must not be above max_aspect"),
        ({"max_area": 1.5}, "less than or equal to 1"),
        ({"max_size": 0.1}, "Extra inputs are not permitted"),
    ],
)
def test_filter_config_errors(bounds: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _camera(detection_filters={"car": bounds})


def test_detector_config_for_a_users_model() -> None:
    config = DetectorConfig.model_validate(
        {
            "model": "/opt/models/piles.tflite",
            "layout": "ultralytics",
            "labels_file": "/opt/models/piles.txt",
            "labels": ["garbage_pile"],
        }
    )
    assert config.layout == "ultralytics" and config.labels == ["garbage_pile"]
    with pytest.raises(ValidationError, match="needs its layout"):
        DetectorConfig.model_validate({"model": "/opt/models/piles.tflite"})
    with pytest.raises(ValidationError, match="list the labels of interest"):
        DetectorConfig.model_validate(
            {"model": "/opt/m.tflite", "layout": "yolox", "labels_file": "/opt/m.txt"}
        )


# -- wiring: the camera's filters sit between the shared detector and its pipeline


def _events_seen(filters: dict[str, Any]) -> Counter[str]:
    from edge_agent.assemble import build_pipeline
    from edge_agent.config import parse_config
    from edge_agent.types import Frame

    camera = {"id": "lot", "source": {"kind": "opencv", "uri": "lot.mp4"}}
    config = parse_config(
        {
            "site_id": "s",
            "device_id": "d",
            "cameras": [{**camera, "detection_filters": filters}],
            "detector": {"labels": ["person", "car"]},
        }
    )
    big_person = _det("person", (0.1, 0.1, 0.6, 0.9))  # 40 % of the frame: not from a mast
    pipeline = build_pipeline(
        config,
        config.cameras[0],
        detector=_Static((big_person, CAR)),
        sink=CollectingSink(),
    )
    labels: list[str] = []
    image = np.zeros((90, 160, 3), np.uint8)
    for index in range(6):
        frame = Frame("lot", index, 1000.0 + index, float(index), image)
        labels += [e.label for e in pipeline.process(frame, always_detect=True).events]
    return Counter(labels)


def test_build_pipeline_applies_the_cameras_filters() -> None:
    unfiltered = _events_seen({})
    filtered = _events_seen({"person": {"max_area": 0.05}})
    assert unfiltered["person"] > 0 and unfiltered["car"] > 0
    assert filtered["person"] == 0 and filtered["car"] == unfiltered["car"]


# -- relabel: the installer's knowledge of an overhead view

OVERHEAD = {
    "cell phone": LabelFilterConfig(relabel="car", min_area=0.01, max_area=0.35),
    "suitcase": LabelFilterConfig(relabel="car", min_area=0.01),
}


def test_a_car_sized_phone_becomes_a_car_and_a_phone_sized_one_is_dropped() -> None:
    kept = filter_detections((CAR_SIZED_PHONE, PHONE, PERSON), OVERHEAD, 16 / 9, {"car": 2})
    assert [(d.label, d.class_id, d.box) for d in kept] == [
        ("car", 2, CAR_SIZED_PHONE.box),
        ("person", 0, PERSON.box),
    ]
    assert kept[0].score == CAR_SIZED_PHONE.score


def test_relabel_applies_only_within_the_entry_s_aspect_bounds() -> None:
    thin = {"cell phone": LabelFilterConfig(relabel="car", max_aspect=0.5)}
    assert filter_detections((CAR_SIZED_PHONE,), thin, 1.0) == ()  # 0.4 x 0.3: aspect 1.33


def test_a_renamed_box_on_a_car_already_found_is_one_car() -> None:
    """The same car seen as "car" by one pass and "suitcase" by another: one car, the
    better box; a renamed box elsewhere stays."""
    car = _det("car", (0.2, 0.2, 0.6, 0.5), score=0.8)
    suitcase = _det("suitcase", (0.21, 0.2, 0.6, 0.52), score=0.6)
    kept = filter_detections((car, suitcase, CAR_SIZED_PHONE), OVERHEAD, 1.0)
    assert [(d.label, d.score) for d in kept] == [("car", 0.9)]  # the phone box is best
    apart = _det("suitcase", (0.7, 0.7, 0.9, 0.9), score=0.6)
    kept = filter_detections((car, apart), OVERHEAD, 1.0)
    assert [(d.label, d.box) for d in kept] == [("car", car.box), ("car", apart.box)]


def test_boxes_not_renamed_are_not_merged_by_the_relabel() -> None:
    """Two overlapping cars the detector kept stay two: only renamed boxes are checked."""
    a = _det("car", (0.2, 0.2, 0.6, 0.5), score=0.8)
    b = _det("car", (0.25, 0.2, 0.62, 0.5), score=0.7)
    assert filter_detections((a, b), OVERHEAD, 1.0) == (a, b)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"*": {"relabel": "car"}}, "cannot relabel"),
        ({"car": {"relabel": "car"}}, "relabels to itself"),
        (
            {"cell phone": {"relabel": "suitcase"}, "suitcase": {"relabel": "car"}},
            "which relabels again",
        ),
        ({"cell phone": {"relabel": ""}}, "at least 1 character"),
        ({"cell phone": {"rename": "car"}}, "Extra inputs are not permitted"),
    ],
)
def test_relabel_config_errors(filters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _camera(detection_filters=filters)


def _site(filters: dict[str, Any], labels: list[str] | None = None) -> Any:
    from edge_agent.config import parse_config

    data: dict[str, Any] = {
        "site_id": "s",
        "device_id": "d",
        "cameras": [
            {"id": "lot", "source": {"kind": "opencv", "uri": "lot.mp4"}},
            {
                "id": "overhead",
                "source": {"kind": "opencv", "uri": "o.mp4"},
                "detection_filters": filters,
            },
        ],
    }
    if labels is not None:
        data["detector"] = {"labels": labels}
    return parse_config(data)


def test_relabel_to_a_label_not_of_interest_is_a_config_error() -> None:
    from edge_agent.config import ConfigError

    with pytest.raises(ConfigError, match=r"cameras\[1\].detection_filters relabel to 'car'"):
        _site({"cell phone": {"relabel": "car"}}, labels=["person"])


def test_the_shared_detector_reports_what_any_camera_relabels() -> None:
    from edge_agent.assemble import detector_labels

    config = _site({"cell phone": {"relabel": "car"}, "suitcase": {"relabel": "truck"}})
    assert detector_labels(config) == [*config.detector.labels, "cell phone", "suitcase"]
    assert detector_labels(_site({})) == config.detector.labels


def test_frame_detector_refuses_a_relabel_to_a_label_the_model_lacks() -> None:
    with pytest.raises(ValueError, match="van"):
        FrameDetector(_Static(()), filters={"cell phone": LabelFilterConfig(relabel="van")})


def test_frame_detector_keeps_only_its_labels_of_interest_after_relabel() -> None:
    """The shared model reports phones for the overhead camera; a camera without the
    relabel never sees them, as before."""
    inner = _Static((CAR_SIZED_PHONE, PHONE, PERSON))
    image = np.zeros((90, 160, 3), np.uint8)
    plain = FrameDetector(inner, labels_of_interest=("person", "car"))
    assert plain.detect(image, now_s=0.0).result.detections == (PERSON,)
    phones = {"cell phone": OVERHEAD["cell phone"]}  # _Static has no suitcase
    overhead = FrameDetector(inner, filters=phones, labels_of_interest=("person", "car"))
    found = overhead.detect(image, now_s=0.0).result.detections
    assert [(d.label, d.class_id) for d in found] == [("car", 1), ("person", 0)]


def test_build_pipeline_turns_car_sized_phones_into_car_events_on_that_camera_only() -> None:
    from edge_agent.assemble import build_pipeline
    from edge_agent.types import Frame

    config = _site({"cell phone": {"relabel": "car", "min_area": 0.01}})
    image = np.zeros((90, 160, 3), np.uint8)
    seen: dict[str, Counter[str]] = {}
    for camera in config.cameras:
        pipeline = build_pipeline(
            config,
            camera,
            detector=_Static((CAR_SIZED_PHONE, PHONE)),
            sink=CollectingSink(),
        )
        labels: list[str] = []
        for index in range(6):
            frame = Frame(camera.id, index, 1000.0 + index, float(index), image)
            labels += [e.label for e in pipeline.process(frame, always_detect=True).events]
        seen[camera.id] = Counter(labels)
    assert seen["lot"] == Counter()
    assert set(seen["overhead"]) == {"car"}
