"""The real SSD detector sees hw-sim's people and cars where the ground truth says they are.

This is what makes the simulator worth having: a scene whose truth the real model agrees
with can score the tracker and event engine end to end. Objects mostly hidden (behind a
nearer one, or out of frame) are not counted as misses; detections that overlap no truth
object at all are false positives.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hw_sim.scenes import SCENARIO_NAMES, Scenario, load_scenario, required_media
from realdata import require_media, require_model

from edge_agent.detect.labels import VEHICLE_LABELS
from edge_agent.detect.tflite import TFLiteDetector
from edge_agent.types import Box

MODEL = "ssd_mobilenet_v1"
MIN_VISIBLE = 0.7
MIN_IOU = 0.3


@dataclass
class Score:
    found: int = 0
    missed: int = 0
    false_positives: int = 0
    frames: int = 0

    @property
    def recall(self) -> float:
        return self.found / max(1, self.found + self.missed)


@pytest.fixture(scope="module")
def detector() -> TFLiteDetector:
    for media in sorted({m for name in SCENARIO_NAMES for m in required_media(name)}):
        require_media(media)
    require_model(MODEL)
    return TFLiteDetector(
        MODEL, score_threshold=0.5, labels_of_interest=["person", *VEHICLE_LABELS], num_threads=2
    )


def _matches(truth_label: str, detected_label: str) -> bool:
    if truth_label == "car":
        return detected_label in VEHICLE_LABELS  # the detector merges vehicle classes
    return detected_label == truth_label


def _score(scene: Scenario, detector: TFLiteDetector, step: int) -> Score:
    score = Score()
    for index in range(0, scene.n_frames, step):
        detections = detector.detect(scene.render(index)).detections
        truth = scene.truth(index)
        used: set[int] = set()
        for obj in truth:
            if obj.visible_fraction < MIN_VISIBLE:
                continue
            box = Box(*obj.box)
            candidates = [
                (box.iou(d.box), k)
                for k, d in enumerate(detections)
                if k not in used and _matches(obj.label, d.label)
            ]
            best_iou, best = max(candidates, default=(0.0, -1))
            if best_iou >= MIN_IOU:
                score.found += 1
                used.add(best)
            else:
                score.missed += 1
        for k, detection in enumerate(detections):
            if k not in used and all(Box(*o.box).iou(detection.box) < 0.1 for o in truth):
                score.false_positives += 1
        score.frames += 1
    return score


def test_detector_finds_the_street_people_and_cars(detector: TFLiteDetector) -> None:
    score = _score(load_scenario("street"), detector, step=3)
    assert score.found + score.missed >= 150, "the busy clip should be busy"
    assert score.recall >= 0.8, score
    assert score.false_positives <= 0.05 * score.frames, score


def test_detector_recall_holds_at_a_smaller_resolution(detector: TFLiteDetector) -> None:
    score = _score(load_scenario("street", width=640, height=360), detector, step=6)
    assert score.recall >= 0.8, score
    assert score.false_positives <= 0.05 * score.frames, score


def test_detector_follows_the_person_walking_in(detector: TFLiteDetector) -> None:
    score = _score(load_scenario("person_walks_in"), detector, step=4)
    assert score.found + score.missed >= 30
    assert score.recall >= 0.8, score
    assert score.false_positives == 0, score


def test_detector_sees_nothing_on_the_empty_street(detector: TFLiteDetector) -> None:
    score = _score(load_scenario("empty_street"), detector, step=5)
    assert score.found + score.missed == 0
    assert score.false_positives == 0, score
