"""Letterbox maths, YOLOX and Ultralytics decoding, NMS with vehicle merging: no model."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.detect.labels import COCO80, COCO90, VEHICLE_LABELS, parse_labelmap
from edge_agent.detect.postprocess import (
    MATRIX_NMS_MAX,
    Letterbox,
    RawDetections,
    decode_yolox,
    letterbox,
    nms,
    nms_grouped,
    to_detections,
)

CAR, TRUCK, PERSON, BUS = COCO80.index("car"), COCO80.index("truck"), 0, COCO80.index("bus")


def test_coco_ids_the_project_relies_on() -> None:
    for labels in (COCO80, COCO90):
        assert [labels[i] for i in (0, 1, 2, 3, 5, 7)] == [
            "person", "bicycle", "car", "motorcycle", "bus", "truck"
        ]  # fmt: skip
    assert len(COCO80) == 80 and len(COCO90) == 90


def test_parse_labelmap_drops_background() -> None:
    assert parse_labelmap("???\nperson\nbicycle\n\n") == ("person", "bicycle")
    assert parse_labelmap("person\nbicycle") == ("person", "bicycle")


# -- letterbox


def test_letterbox_wide_image_pads_bottom() -> None:
    image = np.full((100, 200, 3), 7, np.uint8)
    padded, fit = letterbox(image, 416, 416)
    assert padded.shape == (416, 416, 3)
    assert fit == Letterbox(scale=416 / 200, image_width_px=200, image_height_px=100)
    assert (padded[:208] == 7).all()
    assert (padded[208:] == 114).all()


def test_letterbox_tall_image_pads_right() -> None:
    image = np.full((600, 512, 3), 9, np.uint8)
    padded, fit = letterbox(image, 416, 416)
    content_w = int(512 * 416 / 600)
    assert fit.scale == pytest.approx(416 / 600)
    assert (padded[:, :content_w] == 9).all()
    assert (padded[:, content_w:] == 114).all()


# -- YOLOX decode


def _yolox_row(cx: float, cy: float, w: float, h: float, obj: float, cls: int, p: float) -> Any:
    row = np.zeros(85, np.float32)
    row[:5] = (cx, cy, w, h, obj)
    row[5 + cls] = p
    return row


def test_decode_yolox_maps_boxes_back_through_the_letterbox() -> None:
    fit = Letterbox(scale=0.5, image_width_px=832, image_height_px=416)  # 832x416 -> 416x208
    output = np.stack([_yolox_row(208, 104, 100, 50, 0.9, CAR, 0.8)])[np.newaxis]
    raw = decode_yolox(output, fit, score_threshold=0.5)
    assert raw.class_ids.tolist() == [CAR]
    assert raw.scores.tolist() == pytest.approx([0.72])
    # input px (158..258, 79..129) / 0.5 -> original px (316..516, 158..258)
    assert raw.boxes[0].tolist() == pytest.approx([316 / 832, 158 / 416, 516 / 832, 258 / 416])


def test_decode_yolox_score_is_objectness_times_class() -> None:
    fit = Letterbox(1.0, 416, 416)
    output = np.stack(
        [
            _yolox_row(100, 100, 20, 20, 0.6, PERSON, 0.9),  # 0.54: kept
            _yolox_row(200, 200, 20, 20, 0.9, PERSON, 0.5),  # 0.45: below threshold
            _yolox_row(300, 300, 20, 20, 0.4, PERSON, 1.0),  # objectness alone too low
        ]
    )
    raw = decode_yolox(output, fit, score_threshold=0.5)
    assert raw.scores.tolist() == pytest.approx([0.54])


def test_decode_yolox_filters_classes_of_interest_and_clips() -> None:
    fit = Letterbox(1.0, 416, 416)
    output = np.stack(
        [
            _yolox_row(5, 5, 40, 40, 0.9, PERSON, 0.9),
            _yolox_row(200, 200, 40, 40, 0.9, BUS, 0.9),
        ]
    )
    raw = decode_yolox(output, fit, 0.5, allowed_class_ids=frozenset({PERSON}))
    assert raw.class_ids.tolist() == [PERSON]
    assert raw.boxes[0].tolist() == pytest.approx([0.0, 0.0, 25 / 416, 25 / 416])


def test_decode_yolox_with_nothing_above_threshold() -> None:
    raw = decode_yolox(np.zeros((1, 3549, 85), np.float32), Letterbox(1.0, 10, 10), 0.3)
    assert raw.scores.shape == (0,) and raw.boxes.shape == (0, 4)


# -- NMS


def _raw(rows: list[tuple[float, float, float, float, float, int]]) -> RawDetections:
    array: npt.NDArray[np.float32] = np.array(rows, np.float32)
    return RawDetections(array[:, :4], array[:, 4], array[:, 5].astype(np.int64))


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.6, 0.9, 0.5], np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [1, 2]


def test_vehicle_classes_are_suppressed_together_best_label_wins() -> None:
    raw = _raw(
        [
            (0.10, 0.10, 0.40, 0.40, 0.60, TRUCK),
            (0.11, 0.10, 0.41, 0.40, 0.85, CAR),  # same vehicle, more sure it is a car
            (0.60, 0.60, 0.90, 0.90, 0.70, CAR),  # another car
        ]
    )
    kept = nms_grouped(raw, COCO80, iou_threshold=0.45, max_detections=10)
    assert kept.class_ids.tolist() == [CAR, CAR]
    assert kept.scores.tolist() == pytest.approx([0.85, 0.70])


def test_person_on_a_vehicle_is_not_suppressed() -> None:
    raw = _raw([(0.1, 0.1, 0.4, 0.4, 0.9, CAR), (0.1, 0.1, 0.4, 0.4, 0.8, PERSON)])
    kept = nms_grouped(raw, COCO80, iou_threshold=0.45, max_detections=10)
    assert sorted(kept.class_ids.tolist()) == [PERSON, CAR]


def test_non_vehicle_classes_are_suppressed_per_class() -> None:
    raw = _raw([(0.1, 0.1, 0.4, 0.4, 0.9, PERSON), (0.1, 0.1, 0.41, 0.4, 0.7, PERSON)])
    kept = nms_grouped(raw, COCO80, iou_threshold=0.45, max_detections=10)
    assert kept.scores.tolist() == pytest.approx([0.9])


def nms_group_by_group(raw: RawDetections, iou_threshold: float, limit: int) -> RawDetections:
    """``nms`` on each group (the vehicles one group, other labels their own), best first,
    equal scores in group order: what ``nms_grouped`` was before it measured all pairs."""
    groups = np.array([-1 if COCO80[c] in VEHICLE_LABELS else c for c in raw.class_ids.tolist()])
    parts = []
    for group in sorted(set(groups.tolist())):
        members = np.flatnonzero(groups == group)
        parts.append(members[nms(raw.boxes[members], raw.scores[members], iou_threshold)])
    kept = np.concatenate(parts)
    return raw.take(kept[np.argsort(-raw.scores[kept], kind="stable")][:limit])


@pytest.mark.parametrize("count", [1, 2, 5, 12, 40, MATRIX_NMS_MAX + 30])
def test_nms_grouped_keeps_what_nms_keeps_group_by_group(count: int) -> None:
    rng = np.random.default_rng(count)
    for _ in range(60):
        corners = rng.random((count, 2)) * 0.8
        boxes = np.concatenate([corners, corners + rng.random((count, 2)) * 0.3], axis=1)
        boxes = np.round(boxes * rng.choice([20, 1000]), 0) / 1000  # some boxes coincide
        scores = np.round(rng.random(count) * 8) / 8  # ties
        class_ids = rng.choice([PERSON, 1, CAR, 3, BUS, TRUCK, 15], count)
        raw = RawDetections(boxes.astype(np.float32), scores.astype(np.float32), class_ids)
        limit = int(rng.integers(1, 12))
        kept = nms_grouped(raw, COCO80, iou_threshold=0.45, max_detections=limit)
        expected = nms_group_by_group(raw, 0.45, limit)
        assert kept.boxes.tolist() == expected.boxes.tolist()
        assert kept.scores.tolist() == expected.scores.tolist()
        assert kept.class_ids.tolist() == expected.class_ids.tolist()


def test_an_iou_on_the_threshold_is_decided_in_float32_as_nms_decides() -> None:
    # IoU 0.04 / 0.08 = 0.5 in exact arithmetic; float32's rounding decides, as in ``nms``
    raw = _raw([(0.0, 0.3, 0.3, 0.5, 0.07, CAR), (0.1, 0.3, 0.3, 0.6, 0.98, CAR)])
    kept = nms_grouped(raw, COCO80, iou_threshold=0.5, max_detections=10)
    assert kept.scores.tolist() == nms_group_by_group(raw, 0.5, 10).scores.tolist()


def test_to_detections_names_and_clips() -> None:
    raw = _raw([(-0.1, 0.2, 0.5, 1.2, 0.75, CAR)])
    (detection,) = to_detections(raw, COCO80)
    assert (detection.label, detection.class_id, detection.score) == ("car", CAR, 0.75)
    assert type(detection.class_id) is int and type(detection.score) is float
    assert detection.box.as_list() == [0.0, 0.2, 0.5, 1.0]


def test_max_detections_keeps_the_best() -> None:
    rows = [(i / 10, 0.0, i / 10 + 0.05, 0.05, 0.5 + i / 100, PERSON) for i in range(8)]
    kept = nms_grouped(_raw(rows), COCO80, iou_threshold=0.45, max_detections=3)
    assert kept.scores.tolist() == pytest.approx([0.57, 0.56, 0.55])
