"""Zone schedules in the site's timezone, inertia, labels and occupancy."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from edge_agent.config import ZoneConfig
from edge_agent.rules.config import ZoneScheduleConfig
from edge_agent.track import label_family
from edge_agent.types import Box, Track
from edge_agent.zones import Zone, ZoneOccupancy, ZoneSchedule, parse_clock, zones_from_config

JAKARTA = ZoneInfo("Asia/Jakarta")  # UTC+7, no daylight saving
BERLIN = ZoneInfo("Europe/Berlin")
LOWER_HALF = ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0))


def at(text: str, tz: ZoneInfo = JAKARTA) -> float:
    """Wall clock of a local time like '2025-06-20 23:30' (a Friday)."""
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def test_parse_clock() -> None:
    assert parse_clock("00:00") == 0
    assert parse_clock("22:30") == 22 * 60 + 30
    assert parse_clock("24:00") == 1440
    with pytest.raises(ValueError):
        parse_clock("24:30")


def test_daytime_window() -> None:
    schedule = ZoneSchedule.parse("08:00", "18:00")
    assert schedule.active_at(at("2025-06-20 08:00"), JAKARTA)
    assert schedule.active_at(at("2025-06-20 17:59"), JAKARTA)
    assert not schedule.active_at(at("2025-06-20 18:00"), JAKARTA)
    assert not schedule.active_at(at("2025-06-20 07:59"), JAKARTA)


def test_night_window_crosses_midnight() -> None:
    schedule = ZoneSchedule.parse("22:00", "05:00")
    assert not schedule.active_at(at("2025-06-20 21:59"), JAKARTA)
    assert schedule.active_at(at("2025-06-20 22:00"), JAKARTA)
    assert schedule.active_at(at("2025-06-20 23:59"), JAKARTA)
    assert schedule.active_at(at("2025-06-21 00:00"), JAKARTA)
    assert schedule.active_at(at("2025-06-21 04:59"), JAKARTA)
    assert not schedule.active_at(at("2025-06-21 05:00"), JAKARTA)
    assert not schedule.active_at(at("2025-06-21 12:00"), JAKARTA)


def test_days_name_the_day_a_night_starts_on() -> None:
    friday_nights = ZoneSchedule.parse("22:00", "05:00", ["fri"])
    assert friday_nights.active_at(at("2025-06-20 23:00"), JAKARTA)  # Friday evening
    assert friday_nights.active_at(at("2025-06-21 03:00"), JAKARTA)  # ... into Saturday
    assert not friday_nights.active_at(at("2025-06-20 03:00"), JAKARTA)  # Thursday's night
    assert not friday_nights.active_at(at("2025-06-21 23:00"), JAKARTA)  # Saturday evening


def test_weekdays_only() -> None:
    weekdays = ZoneSchedule.parse("00:00", "24:00", ["mon", "tue", "wed", "thu", "fri"])
    assert weekdays.active_at(at("2025-06-20 23:59"), JAKARTA)  # Friday
    assert not weekdays.active_at(at("2025-06-21 10:00"), JAKARTA)  # Saturday


def test_schedule_uses_the_site_timezone() -> None:
    schedule = ZoneSchedule.parse("22:00", "05:00")
    instant = datetime.fromisoformat("2025-06-20T15:30:00+00:00").timestamp()
    assert schedule.active_at(instant, JAKARTA)  # 22:30 in Jakarta
    assert not schedule.active_at(instant, BERLIN)  # 17:30 in Berlin


def test_schedule_follows_daylight_saving() -> None:
    schedule = ZoneSchedule.parse("22:00", "05:00")
    # 20:30 UTC is 21:30 in Berlin in winter (UTC+1) and 22:30 in summer (UTC+2).
    winter = datetime.fromisoformat("2025-01-15T20:30:00+00:00").timestamp()
    summer = datetime.fromisoformat("2025-07-15T20:30:00+00:00").timestamp()
    assert not schedule.active_at(winter, BERLIN)
    assert schedule.active_at(summer, BERLIN)


def test_schedule_config_validation() -> None:
    with pytest.raises(ValidationError):
        ZoneScheduleConfig(start="22:00", end="22:00")
    with pytest.raises(ValidationError):
        ZoneScheduleConfig(start="25:00", end="05:00")
    with pytest.raises(ValidationError):
        ZoneScheduleConfig(start="22:00", end="05:00", days=[])
    with pytest.raises(ValidationError):
        ZoneScheduleConfig.model_validate({"start": "22:00", "end": "05:00", "days": ["friday"]})


def test_zones_from_config_carry_schedule_labels_and_inertia() -> None:
    (zone,) = zones_from_config(
        [
            ZoneConfig.model_validate(
                {
                    "name": "yard",
                    "polygon": LOWER_HALF,
                    "labels": ["person"],
                    "schedule": {"start": "22:00", "end": "05:00", "days": ["sat", "sun"]},
                    "inertia_frames": 4,
                }
            )
        ]
    )
    assert zone.labels == frozenset({"person"})
    assert zone.inertia_frames == 4
    assert zone.schedule == ZoneSchedule(22 * 60, 5 * 60, frozenset({5, 6}))
    always = Zone("always", LOWER_HALF)
    assert always.active_at(at("2025-06-20 12:00"), JAKARTA)


# --- occupancy -------------------------------------------------------------------------

ASPECT = 16.0 / 9.0


def person(track_id: int, x: float, y: float, now_s: float, *, missed: int = 0,
           label: str = "person", height: float = 0.4) -> Track:  # fmt: skip
    box = Box(x - 0.05, y - height, x + 0.05, y)
    return Track(track_id, label, 0.8, box, 0.0, now_s if missed == 0 else now_s - 1.0, 5, missed)


def feed(occupancy: ZoneOccupancy, frames: list[list[Track]], *, start_s: float = 0.0,
         detection_ran: bool = True, interval_s: float = 0.2) -> list[set[int]]:  # fmt: skip
    """Occupant ids after each frame (``interval_s`` apart: 5 fps)."""
    result = []
    for k, tracks in enumerate(frames):
        now_s = start_s + interval_s * k
        tracks = [replace(t, last_seen_s=now_s) if t.missed == 0 else t for t in tracks]
        occupants = occupancy.update(tracks, now_s, detection_ran=detection_ran, aspect=ASPECT)
        result.append({o.track.track_id for o in occupants})
    return result


def test_inertia_needs_consecutive_sightings_to_enter_and_to_leave() -> None:
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=3))
    inside, outside = 0.7, 0.3
    ys = [inside, inside, inside, inside, outside, outside, outside, outside]
    steps = feed(occupancy, [[person(1, 0.5, y, 0.0)] for y in ys])
    assert [bool(s) for s in steps] == [False, False, True, True, True, True, False, False]


def test_inertia_spans_as_long_at_30_fps_as_at_5_fps() -> None:
    # Three sightings are 0.4 s at 5 fps, 0.07 s at 30 fps: there it takes ten (0.3 s).
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=3))
    steps = feed(occupancy, [[person(1, 0.5, 0.7, 0.0)]] * 12, interval_s=1 / 30)
    assert [bool(s) for s in steps] == [False] * 9 + [True] * 3


def test_a_flicker_on_the_edge_never_enters() -> None:
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=3))
    ys = [0.51, 0.49, 0.51, 0.49, 0.51, 0.51, 0.49, 0.51]
    steps = feed(occupancy, [[person(1, 0.5, y, 0.0)] for y in ys])
    assert not any(steps)


def test_entry_time_is_the_first_sighting_of_the_run() -> None:
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=3))
    for k in range(3):
        now_s = 10.0 + 0.2 * k
        occupants = occupancy.update(
            [person(1, 0.5, 0.8, now_s)], now_s, detection_ran=True, aspect=ASPECT
        )
    (occupant,) = occupants
    assert occupant.entered_s == 10.0


def test_frames_without_detection_do_not_count_towards_inertia() -> None:
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=3))
    steps = feed(occupancy, [[person(1, 0.5, 0.8, 0.0)]] * 5, detection_ran=False)
    assert not any(steps)


def test_zone_labels_and_rule_labels_both_filter() -> None:
    zone = Zone("people", LOWER_HALF, labels=frozenset({"person", "car"}), inertia_frames=1)
    occupancy = ZoneOccupancy(zone, labels=frozenset({"person", "bicycle"}))
    frame = [person(1, 0.3, 0.8, 0.0), person(2, 0.6, 0.8, 0.0, label="car"),
             person(3, 0.8, 0.8, 0.0, label="bicycle")]  # fmt: skip
    assert feed(occupancy, [frame]) == [{1}]


def test_a_person_refound_where_they_stood_keeps_their_occupancy() -> None:
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=2), rejoin_s=5.0)
    for k in range(15):  # standing still for 2.8 s
        now_s = 0.2 * k
        occupants = occupancy.update(
            [person(1, 0.5, 0.8, now_s)], now_s, detection_ran=True, aspect=ASPECT
        )
    (ids_before,) = occupants
    # Track 1 ends; two seconds later track 7 appears at the same spot.
    occupancy.update([], 3.0, detection_ran=True, aspect=ASPECT)
    (after,) = occupancy.update([person(7, 0.51, 0.8, 5.0)], 5.0, detection_ran=True, aspect=ASPECT)
    assert after.occupant_id == ids_before.occupant_id
    assert after.entered_s == ids_before.entered_s


def test_a_new_track_takes_over_a_coasting_one_nearby() -> None:
    """Standing still, then walking: the tracker starts a new track while the old coasts."""
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=2))
    for k in range(14):  # standing still for 2.6 s
        now_s = 0.2 * k
        first = occupancy.update(
            [person(1, 0.5, 0.8, now_s)], now_s, detection_ran=True, aspect=ASPECT
        )
    (after,) = occupancy.update(
        [person(1, 0.5, 0.8, 2.8, missed=1), person(2, 0.58, 0.8, 2.8)],
        2.8,
        detection_ran=True,
        aspect=ASPECT,
    )
    assert after.track.track_id == 2
    assert after.occupant_id == first[0].occupant_id


def test_a_passer_by_never_inherits_a_lost_walkers_time_in_the_zone() -> None:
    """In a crowd the tracker loses walkers; whoever appears near them is someone else."""
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=2), rejoin_s=5.0)
    for k in range(10):  # walking across, never still
        now_s = 0.2 * k
        walking = occupancy.update(
            [person(1, 0.2 + 0.05 * k, 0.8, now_s)], now_s, detection_ran=True, aspect=ASPECT
        )
    occupancy.update([], 2.0, detection_ran=True, aspect=ASPECT)
    occupancy.update([person(2, 0.66, 0.8, 2.2)], 2.2, detection_ran=True, aspect=ASPECT)
    (other,) = occupancy.update([person(2, 0.66, 0.8, 2.4)], 2.4, detection_ran=True, aspect=ASPECT)
    assert other.occupant_id != walking[0].occupant_id
    assert other.entered_s > walking[0].entered_s  # its own time in the zone, not the walker's


def test_someone_else_far_away_is_not_taken_for_the_lost_one() -> None:
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=1), rejoin_s=5.0)
    (first,) = occupancy.update([person(1, 0.2, 0.8, 0.0)], 0.0, detection_ran=True, aspect=ASPECT)
    occupancy.update([], 0.2, detection_ran=True, aspect=ASPECT)
    (other,) = occupancy.update([person(2, 0.7, 0.8, 0.4)], 0.4, detection_ran=True, aspect=ASPECT)
    assert other.occupant_id != first.occupant_id


def test_a_box_cut_by_the_edge_of_the_picture_is_in_no_zone() -> None:
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=1))
    assert feed(occupancy, [[person(1, 0.99, 0.8, 0.0)], [person(1, 0.9, 0.8, 0.0)]]) == [
        set(),
        {1},
    ]


def test_leaving_through_the_edge_of_the_picture_ends_at_once() -> None:
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=3))
    for k in range(3):
        now_s = 0.2 * k
        occupancy.update([person(1, 0.9, 0.8, now_s)], now_s, detection_ran=True, aspect=ASPECT)
    at_edge = person(1, 0.98, 0.8, 0.6)  # one sighting on the edge: not out yet (inertia)
    assert occupancy.update([at_edge], 0.6, detection_ran=True, aspect=ASPECT)
    coasting = replace(at_edge, missed=1)
    assert occupancy.update([coasting], 0.8, detection_ran=True, aspect=ASPECT)
    gone = replace(at_edge, missed=2)  # missed twice on the edge: it left the picture
    assert occupancy.update([gone], 1.0, detection_ran=True, aspect=ASPECT) == ()


def test_speed_in_heights_per_second_and_stillness() -> None:
    occupancy = ZoneOccupancy(Zone("lower", LOWER_HALF, inertia_frames=1), speed_window_s=1.0)
    # 0.4 frame heights tall, moving 0.09 frame widths = 0.16 frame heights per second:
    # 0.4 heights per second.
    occupants = ()
    for k in range(11):
        now_s = 0.2 * k
        x = 0.2 + 0.09 * now_s
        occupants = occupancy.update(
            [person(1, x, 0.8, now_s)], now_s, detection_ran=True, aspect=ASPECT
        )
    (moving,) = occupants
    assert moving.speed_heights_per_s == pytest.approx(0.4, rel=0.02)
    assert moving.still_for_s(2.0) < 1.0
    for k in range(11, 40):
        now_s = 0.2 * k
        occupants = occupancy.update(
            [person(1, 0.4, 0.8, now_s)], now_s, detection_ran=True, aspect=ASPECT
        )
    (still,) = occupants
    assert still.speed_heights_per_s == pytest.approx(0.0, abs=1e-9)
    assert still.still_for_s(0.2 * 39) >= 5.0


def test_label_family_groups_vehicles() -> None:
    assert label_family("truck") == label_family("car") != label_family("person")
