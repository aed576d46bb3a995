"""Per-camera detection filters: score, area and aspect bounds per label, and their config."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.config import CameraConfig, DetectorConfig
from edge_agent.detect.filters import (
    FilteredDetector,
    LabelFilterConfig,
    filter_detections,
    with_filters,
)
from edge_agent.sinks import CollectingSink
from edge_agent.types import Box, Detection, DetectionResult, ImageBGR


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

    def detect(self, image: ImageBGR) -> DetectionResult:
        self.calls += 1
        return DetectionResult(self.detections, preprocess_s=0.1, invoke_s=0.2)


def test_filtered_detector_uses_the_image_aspect_and_keeps_timings() -> None:
    inner = _Static((PERSON, CAR_SIZED_PHONE))
    detector = FilteredDetector(
        inner,
        {"person": LabelFilterConfig(max_aspect=0.25), "cell phone": LabelFilterConfig()},
    )
    square = detector.detect(np.zeros((100, 100, 3), np.uint8))
    assert square.detections == (PERSON, CAR_SIZED_PHONE)
    wide = detector.detect(np.zeros((90, 160, 3), np.uint8))
    assert wide.detections == (CAR_SIZED_PHONE,)
    assert (wide.preprocess_s, wide.invoke_s) == (0.1, 0.2)
    assert detector.labels == inner.labels and detector.model_name == "static"


def test_filters_naming_unknown_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="cellphone"):
        FilteredDetector(_Static(()), {"cellphone": LabelFilterConfig(max_area=0.01)})


def test_with_filters_wraps_only_when_there_are_filters() -> None:
    inner = _Static(())
    assert with_filters(inner, {}) is inner
    assert isinstance(with_filters(inner, {"*": LabelFilterConfig()}), FilteredDetector)


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
