"""The real-footage scorer and truth files, with hand-built events (no pipeline, no clips)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hw_sim.footage import (
    ClipTruth,
    ObservedEvent,
    all_truths,
    format_clip,
    load_truth,
    score_clip,
    truth_files,
)
from hw_sim.footage.run import observed_events
from pydantic import ValidationError

from edge_agent.types import Box, Lifecycle, ObjectEvent

FPS = 10.0  # slack 1 s = 10 frames


def truth(objects: list[dict[str, Any]], **extra: Any) -> ClipTruth:
    return ClipTruth.model_validate(
        {
            "clip": "clip.mp4",
            "sha256": "0" * 64,
            "fps": FPS,
            "frames": 1000,
            "width_px": 640,
            "height_px": 360,
            "provenance": {"counted_by": "test", "date": "2026-12-06", "method": "by hand"},
            "objects": objects,
            **extra,
        }
    )


def obj(id_: str, first: int, last: int, label: str = "person") -> dict[str, Any]:
    return {"id": id_, "label": label, "first_frame": first, "last_frame": last}


def event(
    id_: str, first: int, last: int, label: str = "person", published: int | None = None
) -> ObservedEvent:
    return ObservedEvent(id_, label, first, last, first + 2 if published is None else published)


TWO_VISITS = truth([obj("a", 100, 200), obj("b", 300, 400)])


def test_one_event_per_visit_matches_everything() -> None:
    row = score_clip(TWO_VISITS, [event("1", 105, 195), event("2", 310, 405)]).row("person")
    assert (row.expected, row.observed, row.matched) == (2, 2, 2)
    assert (row.misses, row.fragments, row.id_switches, row.false_events) == (0, 0, 0, 0)


def test_a_visit_without_an_event_is_a_miss() -> None:
    row = score_clip(TWO_VISITS, [event("1", 105, 195)]).row("person")
    assert (row.matched, row.misses, row.missed) == (1, 1, ("b",))


def test_two_events_for_one_visit_are_a_fragment() -> None:
    row = score_clip(TWO_VISITS, [event("1", 105, 150), event("2", 160, 200)]).row("person")
    assert (row.matched, row.fragments, row.misses, row.false_events) == (1, 1, 1, 0)


def test_an_event_when_nobody_is_there_is_false() -> None:
    row = score_clip(TWO_VISITS, [event("1", 105, 195), event("2", 240, 260)]).row("person")
    assert (row.matched, row.false_events, row.fragments) == (1, 1, 0)


def test_slack_lets_an_early_sighting_match_but_not_a_late_one() -> None:
    # 5 frames before the counted entry is within 1 s; 20 frames after the exit is not.
    row = score_clip(TWO_VISITS, [event("1", 95, 99), event("2", 420, 430)]).row("person")
    assert (row.matched, row.false_events) == (1, 1)
    assert score_clip(TWO_VISITS, [event("1", 95, 99)], slack_s=0.0).row("person").matched == 0


def test_one_event_spanning_two_visits_is_an_id_switch() -> None:
    row = score_clip(TWO_VISITS, [event("1", 105, 395)]).row("person")
    assert (row.matched, row.misses, row.id_switches) == (1, 1, 1)


def test_an_event_running_on_within_the_slack_is_no_id_switch() -> None:
    close = truth([obj("a", 100, 200), obj("b", 205, 300)])
    row = score_clip(close, [event("1", 100, 208), event("2", 206, 300)]).row("person")
    assert (row.matched, row.id_switches) == (2, 0)


def test_two_objects_at_once_each_with_their_own_event() -> None:
    together = truth([obj("a", 100, 200), obj("b", 150, 260)])
    row = score_clip(together, [event("1", 100, 200), event("2", 150, 260)]).row("person")
    assert (row.matched, row.fragments, row.id_switches) == (2, 0, 0)


def test_a_label_of_another_family_never_matches() -> None:
    cars = truth([obj("c", 100, 200, "car")])
    score = score_clip(cars, [event("1", 100, 200, "cell phone")])
    assert (score.row("vehicle").misses, score.row("vehicle").observed) == (1, 0)
    assert (score.row("cell phone").expected, score.row("cell phone").false_events) == (0, 1)


def test_vehicles_match_within_their_family_and_count_a_wrong_label() -> None:
    cars = truth([obj("c", 100, 200, "car"), obj("t", 300, 400, "truck")])
    row = score_clip(cars, [event("1", 100, 200, "truck"), event("2", 300, 400, "truck")]).row(
        "vehicle"
    )
    assert (row.matched, row.wrong_labels, row.seen_as) == (2, 1, (("truck", 2),))


def test_between_equal_overlaps_the_event_matches_the_object_of_its_label() -> None:
    side_by_side = truth([obj("t", 0, 19, "truck"), obj("c", 0, 19, "car")])
    row = score_clip(side_by_side, [event("1", 0, 18, "car")]).row("vehicle")
    assert (row.missed, row.wrong_labels) == (("t",), 0)


def test_cover_counts_the_object_frames_its_events_span() -> None:
    # a: 101 frames, 51 covered by two fragments (one reaching before it); b: none.
    events = [event("1", 95, 130), event("2", 160, 179)]
    row = score_clip(TWO_VISITS, events).row("person")
    assert (row.covered_frames, row.truth_frames) == (51, 202)
    assert score_clip(truth([]), [event("1", 1, 2)]).row("person").cover is None


def test_time_to_first_event_is_from_entry_to_publication() -> None:
    row = score_clip(
        TWO_VISITS, [event("1", 100, 200, published=115), event("2", 300, 400, published=305)]
    ).row("person")
    assert row.first_event_s == (1.5, 0.5)


def test_time_to_first_event_takes_the_earliest_fragment() -> None:
    row = score_clip(
        TWO_VISITS, [event("1", 150, 200, published=152), event("2", 100, 140, published=104)]
    ).row("person")
    assert row.first_event_s[0] == 0.4


COUNTED = {
    "frames": 6,
    "objects": [obj("s", 0, 2, "car"), obj("w", 0, 5, "car"), obj("p", 0, 5, "truck")],
    "frame_counts": [
        {"first_frame": 0, "last_frame": 2, "counts": {"car": 2, "truck": 1}},
        {"first_frame": 3, "last_frame": 5, "counts": {"car": 1, "truck": 1}},
    ],
}


def test_per_frame_counts_are_observed_minus_truth() -> None:
    counted = truth(**COUNTED)  # type: ignore[arg-type]
    events = [event("1", 0, 5, "car"), event("2", 1, 3, "car"), event("3", 0, 4, "car")]
    score = score_clip(counted, events)
    assert score.count("car").errors == (0, 1, 1, 2, 1, 0)
    assert score.count("truck").errors == (-1,) * 6
    assert score.count("vehicle (all)").errors == (-1, 0, 0, 1, 0, -1)
    assert score.count("car").exact_frames == 2
    assert score.count("car").max_abs_error == 2


def test_counts_that_contradict_the_objects_are_refused() -> None:
    bad = dict(
        COUNTED,
        frame_counts=[{"first_frame": 0, "last_frame": 5, "counts": {"car": 2, "truck": 1}}],
    )
    with pytest.raises(ValidationError, match="frame 3"):
        truth(**bad)  # type: ignore[arg-type]


def test_counts_must_cover_every_frame() -> None:
    bad = dict(COUNTED, frame_counts=COUNTED["frame_counts"][:1])  # type: ignore[index]
    with pytest.raises(ValidationError, match="every frame"):
        truth(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"colour": "red"},  # unknown key
        {"first_frame": 300},  # after last_frame
        {"spans": [{"kind": "occluded", "first_frame": 50, "last_frame": 60}]},  # outside
        {"spans": [{"kind": "blurred", "first_frame": 120, "last_frame": 130}]},  # unknown kind
    ],
)
def test_a_malformed_object_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        truth([{**obj("a", 100, 200), **change}])


def test_the_table_names_every_row() -> None:
    text = format_clip(score_clip(TWO_VISITS, [event("1", 105, 195)]), "clip.mp4")
    assert text.splitlines()[0] == "clip.mp4"
    assert "person" in text and "missed b" in text


def test_events_become_frames_of_the_clip() -> None:
    box = Box(0.1, 0.1, 0.2, 0.2)

    def msg(
        lifecycle: Lifecycle, label: str, at_s: float, end_s: float | None = None
    ) -> ObjectEvent:
        return ObjectEvent(
            "e1", lifecycle, "cam", "object", label, 0.9, 0.9, box, (), 1000.5, end_s, at_s
        )

    events = [
        msg(Lifecycle.NEW, "bus", 1000.7),
        msg(Lifecycle.UPDATE, "car", 1001.0),
        msg(Lifecycle.END, "car", 1003.2, end_s=1003.2),
    ]
    (observed,) = observed_events(events, t0_s=1000.0, fps=10.0)
    assert observed == ObservedEvent("e1", "car", 5, 32, 7)


def test_the_shipped_truth_files_load() -> None:
    files = truth_files()
    assert len(files) >= 5
    for path in files:
        loaded = load_truth(path)
        assert Path(loaded.clip).stem == path.stem
        assert loaded.objects
    assert {t.clip for t in all_truths()} >= {
        "intel_one-by-one-person-detection.mp4",
        "automl_traffic_frames.mp4",
        "intel_store-aisle-detection.gif",
        "intel_car-detection.mp4",
        "intel_face-demographics-walking-and-pause.gif",
    }


def test_cut_by_edge_counts_the_family_s_objects_cut_in_that_frame() -> None:
    cut = {"kind": "cut_by_edge", "first_frame": 10, "last_frame": 20}
    clip = truth(
        [
            {**obj("car", 10, 50, "car"), "spans": [cut]},
            {**obj("pickup", 0, 50, "truck"), "spans": [{**cut, "first_frame": 15}]},
            {**obj("walker", 10, 50), "spans": [cut]},
            {**obj("hidden", 10, 50, "bus"), "spans": [{**cut, "kind": "occluded"}]},
        ]
    )
    assert [clip.cut_by_edge_at(f, "vehicle") for f in (9, 10, 15, 20, 21)] == [0, 1, 2, 2, 0]
    assert clip.cut_by_edge_at(15, "person") == 1


def test_a_site_config_s_first_camera_applies_to_the_clip(tmp_path: Path) -> None:
    from hw_sim.footage.run import footage_config

    from edge_agent.config import parse_config

    site = parse_config(
        {
            "site_id": "s",
            "device_id": "d",
            "cameras": [
                {
                    "id": "lot",
                    "source": {"kind": "opencv", "uri": "rtsp://10.0.0.1/s"},
                    "fps": 30,
                    "detection_filters": {"cell phone": {"relabel": "car"}},
                }
            ],
            "motion": {"enabled": False},
        }
    )
    video = tmp_path / "clip.mp4"
    config = footage_config(video, site=site, regions=False, model="yolox_nano")
    camera = config.cameras[0]
    assert camera.source.kind == "opencv" and camera.source.uri == str(video)
    assert (camera.source.realtime, camera.source.loop) == (False, False)
    assert camera.fps == 30 and camera.detection_filters["cell phone"].relabel == "car"
    assert camera.regions.enabled is False and site.cameras[0].regions.enabled is True
    assert config.motion.enabled is False and config.detector.model == "yolox_nano"
    assert footage_config(video).cameras[0].fps == 5.0  # no site: the defaults
