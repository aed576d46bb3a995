"""Region detection: planning, the budget, regrowth, mapping back and de-duplication.

The fake detector sees painted rectangles (red channel 255; blue: object id; green: label)
and reports one only when it is at least ``MIN_INPUT_PX`` tall or wide in its input, as a
real model misses people that are a few pixels tall: a small object is found only by a
region around it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge_agent.detect.regions import (
    Region,
    RegionDetector,
    RegionPlan,
    RegionSettings,
    detect_regions,
    min_side_px,
    plan_regions,
)
from edge_agent.track import IouTracker
from edge_agent.types import Box, Detection, DetectionResult, ImageBGR, Track

FRAME = (960, 540)
INPUT = (416, 416)
MIN_INPUT_PX = 20
LABELS = {1: "person", 2: "car"}
SETTINGS = RegionSettings()
MIN_SIDE = min_side_px(INPUT, SETTINGS)  # 139 px: a third of the input


class FakeDetector:
    """Finds painted objects that are large enough once the crop is fitted to the input."""

    model_name = "fake"
    labels = ("person", "car")

    def __init__(self) -> None:
        self.crops: list[tuple[int, int]] = []

    def detect(self, image: ImageBGR) -> DetectionResult:
        height, width = image.shape[:2]
        self.crops.append((width, height))
        scale = min(INPUT[0] / width, INPUT[1] / height)
        painted = image[:, :, 2] == 255
        found = []
        for object_id in np.unique(image[:, :, 0][painted]):
            ys, xs = np.nonzero(painted & (image[:, :, 0] == object_id))
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            if max(x1 - x0, y1 - y0) * scale < MIN_INPUT_PX:
                continue
            label = LABELS[int(image[ys[0], xs[0], 1])]
            box = Box(x0 / width, y0 / height, x1 / width, y1 / height)
            found.append(Detection(label, 0, 0.8, box))
        return DetectionResult(tuple(found))


def scene(*objects: tuple[int, str, tuple[int, int, int, int]]) -> ImageBGR:
    """A dark 960x540 frame with (id, label, (x0, y0, x1, y1)) rectangles painted in."""
    image = np.zeros((FRAME[1], FRAME[0], 3), np.uint8)
    codes = {label: code for code, label in LABELS.items()}
    for object_id, label, (x0, y0, x1, y1) in objects:
        image[y0:y1, x0:x1] = (object_id, codes[label], 255)
    return image


def norm(x0: float, y0: float, x1: float, y1: float) -> Box:
    return Box(x0 / FRAME[0], y0 / FRAME[1], x1 / FRAME[0], y1 / FRAME[1])


def pixels(box: Box) -> tuple[int, int, int, int]:
    return box.to_pixels(*FRAME)


def track(track_id: int, box: Box, last_seen_s: float = 9.0) -> Track:
    return Track(track_id, "person", 0.8, box, 0.0, last_seen_s, hits=3)


SMALL_PERSON = (1, "person", (600, 300, 610, 325))  # 25 px tall: 11 px in the whole frame


# -- planning


def test_a_region_is_a_square_of_the_smallest_side_centred_on_a_small_box() -> None:
    plan = plan_regions(FRAME, INPUT, motion=[norm(600, 300, 610, 325)])
    (region,) = plan.regions
    x0, y0, x1, y1 = pixels(region.box)
    assert (x1 - x0, y1 - y0) == (round(MIN_SIDE), round(MIN_SIDE))
    assert abs((x0 + x1) / 2 - 605) <= 1 and abs((y0 + y1) / 2 - 312.5) <= 1
    assert region.kind == "motion" and not plan.full_frame


def test_a_region_near_a_corner_is_shifted_inside_the_picture_not_cut() -> None:
    plan = plan_regions(FRAME, INPUT, tracks=[norm(950, 520, 960, 540)])
    x0, y0, x1, y1 = pixels(plan.regions[0].box)
    assert (x1, y1) == FRAME
    assert (x1 - x0, y1 - y0) == (round(MIN_SIDE), round(MIN_SIDE))


def test_a_region_larger_than_the_model_input_is_allowed_for_a_larger_object() -> None:
    """On a 1920x1080 main stream, a person 280 px tall is ~60 px in the full-frame input:
    still small enough for a region of their own, larger than the input."""
    main = (1920, 1080)
    plan = plan_regions(main, INPUT, tracks=[Box(0.5, 0.3, 0.52, 0.3 + 280 / 1080)])
    (region,) = plan.regions
    x0, y0, x1, y1 = region.box.to_pixels(*main)
    side = 280 * (1 + 2 * SETTINGS.track_padding)  # 420 px: the detector shrinks it
    assert (x1 - x0, y1 - y0) == (round(side), round(side)) and side > INPUT[0]
    assert region.kind == "track"


def test_a_large_object_is_left_to_the_full_frame_pass() -> None:
    """A person 300 px tall in 960x540 is 130 px in the full-frame input: a region of
    their own would cost an invoke and show them little larger."""
    large, small = norm(500, 100, 580, 400), norm(800, 300, 810, 325)
    plan = plan_regions(FRAME, INPUT, tracks=[large, small])
    assert [r.kind for r in plan.regions] == ["full", "track"]
    assert plan.planned == 2
    assert plan_regions(FRAME, INPUT, motion=[large]).full_frame


def test_a_region_larger_than_the_picture_is_cut_to_it() -> None:
    settings = replace(SETTINGS, min_region_px=600)
    plan = plan_regions(FRAME, INPUT, motion=[norm(400, 200, 410, 225)], settings=settings)
    x0, y0, x1, y1 = pixels(plan.regions[0].box)
    assert (y0, y1) == (0, FRAME[1]) and x1 - x0 == 600


def test_overlapping_seeds_merge_into_one_region_and_distant_ones_do_not() -> None:
    near = plan_regions(FRAME, INPUT, motion=[norm(300, 300, 310, 325), norm(330, 310, 340, 335)])
    assert len(near.regions) == 1
    x0, y0, x1, y1 = pixels(near.regions[0].box)
    assert x0 <= 300 and x1 >= 340 and y0 <= 300 and y1 >= 335
    far = plan_regions(FRAME, INPUT, motion=[norm(100, 300, 110, 325), norm(800, 100, 810, 125)])
    assert len(far.regions) == 2


def test_motion_inside_a_tracks_box_adds_no_region_and_motion_beside_it_does() -> None:
    """An arm swinging is the tracked person moving; a small region for it would be an
    invoke for nothing. Beside the person, the same motion is someone else."""
    person = norm(500, 200, 530, 320)
    arm = norm(520, 240, 536, 260)
    plan = plan_regions(FRAME, INPUT, tracks=[person], motion=[arm])
    assert [r.kind for r in plan.regions] == ["track"]
    beside = norm(720, 240, 736, 260)
    plan = plan_regions(FRAME, INPUT, tracks=[person], motion=[beside])
    assert [r.kind for r in plan.regions] == ["track", "motion"]


def test_the_budget_goes_to_tracks_first_then_to_the_largest_motion() -> None:
    settings = replace(SETTINGS, max_invokes_per_frame=3)
    tracks = [norm(50, 50, 60, 75), norm(850, 450, 860, 475)]
    motion = [norm(400, 50, 410, 75), norm(400, 400, 460, 500), norm(700, 200, 730, 260)]
    plan = plan_regions(FRAME, INPUT, tracks=tracks, motion=motion, settings=settings)
    assert plan.planned == 5
    assert [r.kind for r in plan.regions] == ["track", "track", "motion"]
    assert (
        plan.regions[0].box.iou(plan_regions(FRAME, INPUT, tracks=tracks[:1]).regions[0].box) > 0.99
    )
    x0, y0, x1, y1 = pixels(plan.regions[2].box)
    assert x0 <= 400 and x1 >= 460 and y0 <= 400 and y1 >= 500  # the largest motion box


def test_the_full_frame_pass_comes_first_and_skips_regions_that_show_nothing_larger() -> None:
    settings = replace(SETTINGS, min_region_px=700)  # 700x540: 1.37x the full frame's scale
    motion = [norm(400, 200, 410, 225)]
    plan = plan_regions(FRAME, INPUT, motion=motion, full_frame=True, settings=settings)
    assert [r.kind for r in plan.regions] == ["full"]
    plan = plan_regions(FRAME, INPUT, motion=motion, settings=settings)
    assert [r.kind for r in plan.regions] == ["motion"]  # without it, the region runs
    plan = plan_regions(FRAME, INPUT, motion=motion, full_frame=True)
    assert [r.kind for r in plan.regions] == ["full", "motion"]  # 139 px: 6.9x


def test_boxes_outside_the_picture_seed_nothing() -> None:
    plan = plan_regions(FRAME, INPUT, tracks=[Box(1.1, 0.2, 1.3, 0.4)], motion=[Box(0, 0, 0, 0)])
    assert plan.regions == () and plan.planned == 0


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        RegionSettings(max_invokes_per_frame=0)
    with pytest.raises(ValueError):
        RegionSettings(merge_max_growth=0.9)
    with pytest.raises(ValueError):
        RegionSettings(full_frame_every_s=0.0)


# -- detection over regions


def test_a_small_person_is_missed_whole_frame_and_found_by_a_region_mapped_back() -> None:
    image = scene(SMALL_PERSON)
    detector = FakeDetector()
    assert detector.detect(image).detections == ()
    plan = plan_regions(FRAME, INPUT, motion=[norm(598, 296, 612, 330)])
    out = detect_regions(detector, image, plan)
    (det,) = out.result.detections
    assert det.label == "person"
    assert pixels(det.box) == (600, 300, 610, 325)
    assert out.figures.invokes == 1 and not out.figures.full_frame


def test_regions_crop_from_a_larger_image_than_planned_for() -> None:
    """Planned for the 960x540 analysis frame, cropped from a 1920x1080 main stream."""
    plan = plan_regions(FRAME, INPUT, motion=[norm(598, 296, 612, 330)])
    large = np.repeat(np.repeat(scene(SMALL_PERSON), 2, axis=0), 2, axis=1)
    detector = FakeDetector()
    (det,) = detect_regions(detector, large, plan).result.detections
    assert pixels(det.box) == (600, 300, 610, 325)
    assert detector.crops == [(2 * round(MIN_SIDE), 2 * round(MIN_SIDE))]


def test_invokes_never_exceed_the_budget_on_a_busy_scene() -> None:
    settings = replace(SETTINGS, max_invokes_per_frame=3)
    people = [(i + 1, "person", (60 + 100 * i, 100 + 30 * i, 70 + 100 * i, 300)) for i in range(8)]
    image = scene(*people)
    tracks = [norm(x0, y0, x1, y0 + 40) for _, _, (x0, y0, x1, _) in people]  # cut: regrowth
    detector = FakeDetector()
    for full_frame in (False, True):
        plan = plan_regions(FRAME, INPUT, tracks=tracks, full_frame=full_frame, settings=settings)
        out = detect_regions(detector, image, plan, settings)
        assert out.figures.invokes == len(out.regions) <= 3
        assert out.figures.planned > 3
    assert len(detector.crops) <= 6


def test_a_box_cut_by_a_region_edge_is_looked_at_again_larger() -> None:
    tall = (1, "person", (400, 100, 440, 300))
    image = scene(tall)
    plan = plan_regions(FRAME, INPUT, motion=[norm(400, 100, 440, 140)])  # the head moved
    assert pixels(plan.regions[0].box)[3] < 300  # the region cuts the person
    out = detect_regions(FakeDetector(), image, plan)
    assert out.figures.regrown == 1 and out.figures.invokes == 2
    assert out.regions[1].kind == "regrown"
    (det,) = out.result.detections  # the cut box is dropped: the regrown region saw it whole
    assert pixels(det.box) == (400, 100, 440, 300)


def test_no_regrowth_without_budget_or_when_disabled() -> None:
    image = scene((1, "person", (400, 100, 440, 300)))
    plan = plan_regions(FRAME, INPUT, motion=[norm(400, 100, 440, 140)])
    for settings in (replace(SETTINGS, max_invokes_per_frame=1), replace(SETTINGS, regrow=False)):
        out = detect_regions(FakeDetector(), image, plan, settings)
        assert out.figures.invokes == 1 and out.figures.regrown == 0
        (det,) = out.result.detections
        assert pixels(det.box)[3] < 300  # only the cut view was seen


def test_a_box_on_the_pictures_own_edge_is_not_regrown() -> None:
    image = scene((1, "person", (900, 480, 930, 540)))
    plan = plan_regions(FRAME, INPUT, motion=[norm(900, 480, 930, 540)])
    out = detect_regions(FakeDetector(), image, plan)
    assert out.figures.regrown == 0 and len(out.result.detections) == 1


def test_overlapping_regions_report_an_object_once() -> None:
    image = scene((1, "person", (450, 200, 470, 260)))
    plan = RegionPlan(
        FRAME,
        INPUT,
        (Region(norm(380, 150, 520, 290), "track"), Region(norm(420, 170, 560, 310), "motion")),
        2,
    )
    out = detect_regions(FakeDetector(), image, plan)
    assert len(out.result.detections) == 1 and out.figures.duplicates == 1


def test_a_cut_view_is_dropped_when_another_region_sees_the_object_whole() -> None:
    image = scene((1, "person", (450, 200, 470, 260)))
    plan = RegionPlan(
        FRAME,
        INPUT,
        (Region(norm(330, 130, 460, 290), "track"), Region(norm(400, 150, 540, 290), "motion")),
        2,
    )
    out = detect_regions(FakeDetector(), image, plan, replace(SETTINGS, regrow=False))
    (det,) = out.result.detections
    assert pixels(det.box) == (450, 200, 470, 260)


def test_a_small_person_inside_a_large_cars_box_is_kept() -> None:
    """De-duplication is per label family: the car seen by the full-frame pass does not
    swallow the person in front of it that only the region saw."""
    car, person = (2, "car", (300, 150, 700, 400)), (1, "person", (500, 300, 510, 325))
    plan = plan_regions(FRAME, INPUT, tracks=[norm(500, 300, 510, 325)], full_frame=True)
    out = detect_regions(FakeDetector(), scene(car, person), plan)
    assert sorted(d.label for d in out.result.detections) == ["car", "person"]
    assert out.figures.regrown == 0  # the car cut by the region was seen whole


def test_looked_at_says_which_tracks_a_region_covered() -> None:
    plan = plan_regions(FRAME, INPUT, tracks=[norm(100, 100, 110, 125)])
    out = detect_regions(FakeDetector(), scene(), plan)
    assert out.looked_at(norm(100, 100, 110, 125))
    assert not out.looked_at(norm(800, 400, 810, 425))
    full = detect_regions(FakeDetector(), scene(), plan_regions(FRAME, INPUT, full_frame=True))
    assert full.looked_at(norm(800, 400, 810, 425))


# -- one camera over time


def test_a_full_frame_pass_whenever_nothing_is_tracked_and_on_a_cadence_otherwise() -> None:
    regions = RegionDetector(INPUT)
    image = scene(SMALL_PERSON)
    motion = [norm(598, 296, 612, 330)]
    tracked = [track(1, norm(600, 300, 610, 325))]
    every_s = SETTINGS.full_frame_every_s
    first = regions.detect(FakeDetector(), image, now_s=10.0, motion=motion)
    assert first.figures.full_frame and first.figures.invokes == 2
    assert len(first.result.detections) == 1
    assert regions.detect(FakeDetector(), image, now_s=10.0, motion=motion).figures.full_frame
    soon = regions.detect(FakeDetector(), image, now_s=10.0 + every_s / 2, tracks=tracked)
    assert not soon.figures.full_frame and soon.figures.invokes == 1
    due = regions.detect(FakeDetector(), image, now_s=10.0 + every_s, tracks=tracked)
    assert due.figures.full_frame and due.figures.invokes == 2
    assert len(due.result.detections) == 1


def test_over_budget_tracks_take_turns_least_recently_seen_first() -> None:
    settings = replace(SETTINGS, max_invokes_per_frame=1)
    regions = RegionDetector(INPUT, settings)
    regions.detect(FakeDetector(), scene(), now_s=0.0)  # the full-frame pass is not due next
    a, b = norm(100, 100, 110, 125), norm(800, 400, 810, 425)
    out = regions.detect(
        FakeDetector(), scene(), now_s=0.5, tracks=[track(1, a, 0.4), track(2, b, 0.2)]
    )
    assert out.looked_at(b) and not out.looked_at(a)


def test_disabled_is_one_full_frame_pass() -> None:
    regions = RegionDetector(INPUT, replace(SETTINGS, enabled=False))
    detector = FakeDetector()
    out = regions.detect(
        detector, scene(SMALL_PERSON), now_s=0.0, motion=[norm(598, 296, 612, 330)]
    )
    assert detector.crops == [FRAME] and out.result.detections == ()


def test_the_tracker_gives_a_coasting_track_where_it_is_expected() -> None:
    tracker = IouTracker()
    for step in range(3):
        box = Box(0.1 + 0.05 * step, 0.4, 0.2 + 0.05 * step, 0.6)
        tracker.update((Detection("person", 0, 0.9, box),), now_s=0.2 * step)
    tracker.update((), now_s=0.6)  # missed once: now coasting
    (expected,) = tracker.expected_tracks(now_s=0.8)
    assert expected.box.x_min == pytest.approx(0.1 + 0.05 * 4)
    assert tracker.live_tracks()[0].box.x_min == pytest.approx(0.2)


def test_the_config_defaults_are_the_settings_defaults() -> None:
    import dataclasses

    from edge_agent.config import RegionConfig

    assert RegionConfig().model_dump() == dataclasses.asdict(RegionSettings())
    tuned = RegionConfig(max_invokes_per_frame=2, enabled=False)
    assert RegionSettings.from_config(tuned) == RegionSettings(
        max_invokes_per_frame=2, enabled=False
    )


def test_beside_a_full_frame_pass_a_broad_vehicle_gets_no_region() -> None:
    """A car 120x80 px is ~35 px high in the full-frame input, seen there: beside a
    full-frame pass its region would be an invoke for little. A small car (40x30 px, 13 px
    high there) and a person of the broad car's size (people keep theirs: a shopper's
    box from the full frame alone split their track) keep their regions; without a
    full-frame pass, or without labels, the broad car gets one too."""
    car, small_car, person = (
        norm(100, 100, 220, 180),
        norm(700, 300, 740, 330),
        norm(400, 400, 520, 480),
    )
    tracks = [car, small_car, person]
    labels = ["car", "truck", "person"]
    plan = plan_regions(FRAME, INPUT, tracks=tracks, full_frame=True, track_labels=labels)
    assert [r.kind for r in plan.regions] == ["full", "track", "track"]
    assert not any(r.box.intersection(car) > 0.0 for r in plan.regions[1:])
    assert plan.regions[1].box.intersection(small_car) == pytest.approx(small_car.area)
    assert plan.regions[2].box.intersection(person) == pytest.approx(person.area)
    plan = plan_regions(FRAME, INPUT, tracks=tracks, track_labels=labels)
    assert [r.kind for r in plan.regions] == ["track"] * 3
    plan = plan_regions(FRAME, INPUT, tracks=tracks, full_frame=True)
    assert [r.kind for r in plan.regions] == ["full"] + ["track"] * 3


def test_the_region_detector_spares_a_broad_vehicle_a_region_beside_its_full_pass() -> None:
    image = scene((1, "car", (100, 100, 220, 180)), (2, "person", (800, 400, 810, 425)))
    car = replace(track(1, norm(100, 100, 220, 180)), label="car")
    person = track(2, norm(800, 400, 810, 425))
    detector = FakeDetector()
    out = RegionDetector(INPUT).detect(detector, image, now_s=10.0, tracks=[car, person])
    assert [r.kind for r in out.regions] == ["full", "track"]  # the first run: a full pass
    assert sorted(d.label for d in out.result.detections) == ["car", "person"]
