"""The object-rule scenarios: intrusion at night, buskers, a jammed bridge, a busy market,
counting at a crossing and a car stopped where it must not.

Each scenario carries its ground truth (``Expectations``) and the camera config to
evaluate it with (zones and rules, time-compressed: loitering after 20 s instead of
two minutes). Where a truth interval depends on geometry (when does a person's feet
enter the zone?) it is computed from the actors' paths and the zone polygon, not
typed in, so moving an actor keeps the truth right.

Sizes follow hw_sim.street: people 0.47 of the frame height at the bottom edge,
cars 0.34, on the default street (far pavement y 0.355, far lane 0.57, near lane
0.80, near pavement 0.94). ``hw-sim eval`` runs them through the real pipeline.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from hw_sim.effects import NightLighting
from hw_sim.scenes import Expectations, ExpectedAlert, ExpectedCount, Script, register
from hw_sim.street import (
    FAR_LANE_Y,
    FAR_PAVEMENT_Y,
    NEAR_LANE_Y,
    NEAR_PAVEMENT_Y,
    Actor,
    car,
    drive,
    person,
    walk,
)
from hw_sim.truth import Polygon, congestion_truth, in_zone_spans

EVAL_FPS = 5.0


def _band(y_top: float, y_bottom: float, x0: float = 0.0, x1: float = 1.0) -> Polygon:
    return ((x0, y_top), (x1, y_top), (x1, y_bottom), (x0, y_bottom))


def _zone(name: str, polygon: Polygon, **extra: Any) -> dict[str, Any]:
    return {"name": name, "polygon": [list(p) for p in polygon], **extra}


# --- intruder at night -----------------------------------------------------------------

_YARD = _band(0.84, 1.0)


def _intruder_at_night() -> Script:
    """Before 22:00 a worker crosses the yard (allowed); after it two intruders, one after
    the other, come in, stand a while and leave."""
    actors = (
        walk("worker", "person_tshirt", NEAR_PAVEMENT_Y, -0.1, 1.1, 3.0, 17.0),
        walk("passer-by", "person_black", FAR_PAVEMENT_Y, 1.08, -0.08, 24.0, 38.0),
        person(
            "intruder", "person_black",
            (44.0, -0.1, NEAR_PAVEMENT_Y), (50.0, 0.4, NEAR_PAVEMENT_Y),
            (62.0, 0.4, NEAR_PAVEMENT_Y), (70.0, 1.1, NEAR_PAVEMENT_Y),
        ),
        person(
            "intruder-2", "person_blonde",
            (74.0, 1.1, NEAR_PAVEMENT_Y), (80.0, 0.65, NEAR_PAVEMENT_Y),
            (88.0, 0.65, NEAR_PAVEMENT_Y), (96.0, -0.1, NEAR_PAVEMENT_Y),
        ),
    )  # fmt: skip
    spans = [span for intruder in actors[2:] for span in in_zone_spans(intruder, _YARD)]
    return Script(
        "intruder_at_night",
        "night, yard closed 22:00-05:00: a worker crosses at 21:59 (fine), two intruders after",
        100.0,
        actors,
        effects=(NightLighting(),),
        fps=EVAL_FPS,
        loops=False,
        expectations=Expectations(
            alerts=tuple(ExpectedAlert("intrusion", s, e, zone="yard") for s, e in spans),
            camera={
                "zones": [_zone("yard", _YARD, schedule={"start": "22:00", "end": "05:00"})],
                "rules": [{"kind": "intrusion", "zone": "yard", "min_duration_s": 1.0}],
            },
            clock_start="21:59:40",
            timezone="Asia/Jakarta",
        ),
    )


# --- buskers gathering and dispersing ----------------------------------------------------

_PLAZA = _band(0.84, 1.0)
_BUSKER_SPRITES = ("person_tshirt", "person_black", "person_blonde", "person_shirt")
_LOITER_S = 20.0
_CROWD_MIN = 3


def _buskers() -> Script:
    """Four buskers cross to the plaza one by one, play, and leave one by one."""
    spots = (0.2, 0.8, 0.4, 0.6)
    arrive = (4.0, 8.0, 12.0, 16.0)
    leave = (66.0, 62.0, 58.0, 54.0)
    buskers = tuple(
        person(
            f"busker-{i + 1}", sprite,
            (t_in, x, FAR_PAVEMENT_Y), (t_in + 6.0, x, NEAR_PAVEMENT_Y),
            (t_out, x, NEAR_PAVEMENT_Y), (t_out + 6.0, x, FAR_PAVEMENT_Y),
        )
        for i, (sprite, x, t_in, t_out) in enumerate(
            zip(_BUSKER_SPRITES, spots, arrive, leave, strict=True)
        )
    )  # fmt: skip
    passers = (
        walk("passer-1", "person_shirt", FAR_PAVEMENT_Y, -0.08, 1.08, 20.0, 34.0),
        walk("passer-2", "person_blonde", FAR_PAVEMENT_Y, 1.08, -0.08, 34.0, 48.0),
    )
    spans = [in_zone_spans(b, _PLAZA)[0] for b in buskers]
    loitering = tuple(
        ExpectedAlert("loitering", start + _LOITER_S, end, zone="plaza") for start, end in spans
    )
    # A crowd while at least _CROWD_MIN buskers are in the plaza.
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    crowd: list[tuple[float, float]] = []
    present, since = 0, 0.0
    for t_s, change in edges:
        before = present
        present += change
        if before < _CROWD_MIN <= present:
            since = t_s
        elif present < _CROWD_MIN <= before:
            crowd.append((since, t_s))
    return Script(
        "plaza_buskers",
        "four buskers gather on the plaza, play for ~45 s and disperse (crowd + loitering)",
        76.0,
        buskers + passers,
        fps=EVAL_FPS,
        loops=False,
        expectations=Expectations(
            alerts=loitering + tuple(ExpectedAlert("crowd", s, e, zone="plaza") for s, e in crowd),
            camera={
                "zones": [_zone("plaza", _PLAZA, labels=["person"])],
                "rules": [
                    {"kind": "loitering", "zone": "plaza", "min_dwell_s": _LOITER_S},
                    {
                        "kind": "crowd",
                        "zone": "plaza",
                        "min_persons": _CROWD_MIN,
                        "min_duration_s": 6.0,
                        "end_grace_s": 5.0,
                    },
                ],
            },
        ),
    )


# --- congestion on a bridge --------------------------------------------------------------

_BRIDGE = _band(0.42, 0.88)
_CONGESTION = {
    "kind": "congestion",
    "zone": "bridge",
    "slow_min_vehicles": 2,
    "jammed_min_vehicles": 3,
    "slow_speed_heights_per_s": 1.5,
    "jammed_stationary_fraction": 0.5,
    "stationary_min_s": 3.0,
    "min_duration_s": 5.0,
}


def _bridge() -> Script:
    """Free flow, then a queue crawls in and stops, stands, moves off; free flow again."""
    free_before = (
        drive("free-1", "car_dark", NEAR_LANE_Y, True, 1.0, 4.0),
        drive("free-2", "car_white", FAR_LANE_Y, True, 6.0, 9.5),
        drive("free-3", "car_red", NEAR_LANE_Y, True, 12.0, 15.0),
    )
    # The queue: two cars per lane crawl in (about 0.5 heights/s), stop, then drive off.
    queue = (
        car("queue-1", "car_dark", (18.0, -0.25, NEAR_LANE_Y), (26.0, 0.55, NEAR_LANE_Y),
             (32.0, 0.72, NEAR_LANE_Y), (62.0, 0.72, NEAR_LANE_Y), (66.0, 1.3, NEAR_LANE_Y)),
        car("queue-2", "car_white", (19.0, -0.25, FAR_LANE_Y), (27.0, 0.55, FAR_LANE_Y),
             (33.0, 0.7, FAR_LANE_Y), (63.0, 0.7, FAR_LANE_Y), (67.0, 1.3, FAR_LANE_Y)),
        car("queue-3", "car_red", (23.0, -0.25, NEAR_LANE_Y), (29.0, 0.15, NEAR_LANE_Y),
             (34.0, 0.3, NEAR_LANE_Y), (63.0, 0.3, NEAR_LANE_Y), (68.0, 1.3, NEAR_LANE_Y)),
        car("queue-4", "car_dark", (24.0, -0.25, FAR_LANE_Y), (30.0, 0.1, FAR_LANE_Y),
             (35.0, 0.27, FAR_LANE_Y), (64.0, 0.27, FAR_LANE_Y), (69.0, 1.3, FAR_LANE_Y)),
    )  # fmt: skip
    free_after = (
        drive("free-4", "car_white", NEAR_LANE_Y, True, 74.0, 77.0),
        drive("free-5", "car_dark", FAR_LANE_Y, True, 79.0, 82.5),
    )
    actors = free_before + queue + free_after
    duration_s = 88.0
    truth = congestion_truth(
        actors, _BRIDGE, analyzer="congestion-bridge", duration_s=duration_s, rule=_CONGESTION
    )
    return Script(
        "bridge_congestion",
        "bridge: free flow, a queue crawls in and stops for 30 s, moves off, free flow (90 s)",
        duration_s,
        actors,
        fps=EVAL_FPS,
        loops=False,
        expectations=Expectations(
            states=truth,
            camera={"zones": [_zone("bridge", _BRIDGE)], "rules": [_CONGESTION]},
        ),
    )


# --- a busy but normal market (false-alarm check) ----------------------------------------

_MARKET_TOP_Y = 0.45
_MARKET = _band(_MARKET_TOP_Y, 1.0)
_MARKET_DURATION_S = 120.0


# A normal market: nobody stays in view this long, and this many people are not in the
# zone together this long (well under the market rules' 25 s dwell and 6 people for 15 s,
# so a crowd drawn by a seed is never a real loiterer or crowd).
_MARKET_MAX_STAY_S = 20.0
_MARKET_BUSY_PERSONS = 6
_MARKET_MAX_BUSY_S = 8.0


def _market_crowd(seed: int) -> tuple[Actor, ...]:
    """The shoppers for ``seed``: the same statistics for every seed (26 shoppers ~4 s
    apart, every fifth pausing 6-8 s at a stall, a family of three together), drawn
    afresh (times, lanes, directions, paces, clothes), so a soak over many seeds meets
    many different crowds, not one crowd on many backgrounds. A draw that would make a
    real loiterer or crowd is drawn again."""
    rng = random.Random(seed)
    while True:
        crowd = _draw_market_crowd(rng)
        if _is_normal_market(crowd):
            return crowd


def _draw_market_crowd(rng: random.Random) -> tuple[Actor, ...]:
    sprites = ("person_tshirt", "person_black", "person_blonde", "person_shirt")
    lanes = (NEAR_PAVEMENT_Y, 0.7, FAR_PAVEMENT_Y, 0.82)
    actors: list[Actor] = []
    for k in range(26):
        t0 = max(0.0, 1.5 + 4.0 * k + rng.uniform(-1.5, 1.5))
        y = rng.choice(lanes)
        rightwards = rng.random() < 0.5
        x0, x1 = (-0.1, 1.1) if rightwards else (1.1, -0.1)
        sprite = rng.choice(sprites)
        if k % 5 == 3:  # stops at a stall for 6-8 s on the way
            stall_x = rng.uniform(0.3, 0.7)
            walk_in_s = 5.0 * abs(stall_x - x0) / 0.75
            walk_out_s = 5.0 * abs(x1 - stall_x) / 0.75
            pause_s = rng.uniform(6.0, 8.0)
            actors.append(
                person(f"shopper-{k + 1}", sprite, (t0, x0, y), (t0 + walk_in_s, stall_x, y),
                        (t0 + walk_in_s + pause_s, stall_x, y),
                        (t0 + walk_in_s + pause_s + walk_out_s, x1, y))
            )  # fmt: skip
        else:
            crossing_s = rng.uniform(12.0, 16.0)
            actors.append(walk(f"shopper-{k + 1}", sprite, y, x0, x1, t0, t0 + crossing_s))
    family_t0 = rng.uniform(50.0, 70.0)
    leftwards = rng.random() < 0.5
    family = (
        ("person_shirt", 0.7, 0.0),
        ("person_blonde", 0.82, 0.12),
        ("person_tshirt", 0.94, 0.24),
    )
    for i, (sprite, y, lag) in enumerate(family):
        x0, x1 = (1.1 + lag, -0.1 + lag) if leftwards else (-0.1 - lag, 1.1 - lag)
        actors.append(walk(f"family-{i + 1}", sprite, y, x0, x1, family_t0, family_t0 + 14.0))
    return tuple(actors)


def _is_normal_market(crowd: Sequence[Actor], step_s: float = 0.2) -> bool:
    """Nobody in the market zone longer than ``_MARKET_MAX_STAY_S``, and never
    ``_MARKET_BUSY_PERSONS`` or more in it for ``_MARKET_MAX_BUSY_S`` (feet in the zone,
    centre in the picture)."""
    in_zone_s: dict[str, float] = {}
    busy_s = 0.0
    for i in range(round(_MARKET_DURATION_S / step_s) + 1):
        t_s = i * step_s
        present = 0
        for actor in crowd:
            where = actor.position(t_s)
            if where is None or not (0.0 <= where[0] <= 1.0 and where[1] >= _MARKET_TOP_Y):
                continue
            present += 1
            in_zone_s[actor.object_id] = in_zone_s.get(actor.object_id, 0.0) + step_s
        busy_s = busy_s + step_s if present >= _MARKET_BUSY_PERSONS else 0.0
        if busy_s >= _MARKET_MAX_BUSY_S:
            return False
    return max(in_zone_s.values(), default=0.0) < _MARKET_MAX_STAY_S


def _market() -> Script:
    """Shoppers walk through all the time at different paces, every fifth pauses at a stall,
    a family of three walks through together; nobody loiters or crowds for long. Each seed
    draws a different crowd (``_market_crowd``)."""
    seed = 2024
    return Script(
        "busy_market",
        "a busy market by day: 29 shoppers walk through, some pause at a stall (no alarm: 2 min)",
        _MARKET_DURATION_S,
        _market_crowd(seed),
        drift_amplitude=0.02,
        fps=EVAL_FPS,
        loops=False,
        expectations=Expectations(
            camera={
                "zones": [
                    _zone("market", _MARKET, labels=["person"]),
                    _zone("market-night", _MARKET, schedule={"start": "22:00", "end": "05:00"}),
                ],
                "rules": [
                    {"kind": "loitering", "zone": "market", "min_dwell_s": 25.0},
                    {"kind": "crowd", "zone": "market", "min_persons": 6, "min_duration_s": 15.0},
                    {"kind": "intrusion", "zone": "market-night"},
                ],
            },
            clock_start="10:30",
            timezone="Asia/Jakarta",
            false_alarm_check=True,
        ),
        seed=seed,
        recast=_market_crowd,
    )


# --- counting at a crossing ----------------------------------------------------------------


def _crossing_counts() -> Script:
    """Cars both ways through a counting line; people over the zebra both ways; walkers
    along the pavements, which cross neither line."""
    crossing_x = 0.69
    actors = (
        drive("east-1", "car_dark", NEAR_LANE_Y, True, 1.0, 5.0),
        drive("west-1", "car_white", FAR_LANE_Y, False, 5.0, 9.5),
        drive("east-2", "car_red", NEAR_LANE_Y, True, 10.0, 14.0),
        person("zebra-1", "person_tshirt", (14.0, crossing_x, FAR_PAVEMENT_Y),
                (22.0, crossing_x, NEAR_PAVEMENT_Y)),
        walk("pavement-1", "person_black", FAR_PAVEMENT_Y, -0.08, 0.45, 14.0, 22.0),
        drive("west-2", "car_dark_small", FAR_LANE_Y, False, 23.0, 27.5),
        person("zebra-2", "person_shirt", (28.0, crossing_x, NEAR_PAVEMENT_Y),
                (36.0, crossing_x, FAR_PAVEMENT_Y)),
        walk("pavement-2", "person_blonde", NEAR_PAVEMENT_Y, 0.4, -0.1, 29.0, 35.0),
        drive("east-3", "car_white", NEAR_LANE_Y, True, 37.0, 41.0),
        person("zebra-3", "person_black", (42.0, crossing_x, FAR_PAVEMENT_Y),
                (50.0, crossing_x, NEAR_PAVEMENT_Y)),
    )  # fmt: skip
    return Script(
        "crossing_counts",
        "3 cars eastbound, 2 westbound over a counting line; 3 people over the zebra (55 s)",
        54.0,
        actors,
        fps=EVAL_FPS,
        loops=False,
        expectations=Expectations(
            counts=(
                ExpectedCount("road", "eastbound", "car", 3),
                ExpectedCount("road", "westbound", "car", 2),
                ExpectedCount("zebra", "towards_camera", "person", 2),
                ExpectedCount("zebra", "away_from_camera", "person", 1),
            ),
            camera={
                "rules": [
                    {
                        "kind": "line_crossing",
                        "name": "road",
                        "a": [0.5, 0.86],
                        "b": [0.5, 0.42],
                        "direction_names": ["eastbound", "westbound"],
                        "labels": ["car", "motorcycle", "bus", "truck"],
                        "period_s": 20.0,
                    },
                    {
                        "kind": "line_crossing",
                        "name": "zebra",
                        "a": [0.58, 0.62],
                        "b": [0.8, 0.62],
                        "direction_names": ["towards_camera", "away_from_camera"],
                        "labels": ["person"],
                        "period_s": 20.0,
                    },
                ]
            },
        ),
    )


# --- a car stopped where stopping is not allowed ------------------------------------------

_NO_STOPPING = _band(0.45, 0.66, 0.2, 1.0)
_STOPPED_S = 15.0


def _no_stopping() -> Script:
    """Two cars park at the far kerb, 30 s and 25 s (alerts); another pauses 5 s (no alert)."""
    parked = car(
        "parked", "car_white",
        (4.0, 1.25, FAR_LANE_Y), (9.0, 0.6, FAR_LANE_Y), (39.0, 0.6, FAR_LANE_Y),
        (43.0, -0.25, FAR_LANE_Y),
    )  # fmt: skip
    actors = (
        parked,
        drive("through-1", "car_dark", NEAR_LANE_Y, True, 12.0, 16.0),
        drive("through-2", "car_red", NEAR_LANE_Y, True, 24.0, 28.0),
        car("drop-off", "car_dark", (45.0, 1.25, FAR_LANE_Y), (48.0, 0.55, FAR_LANE_Y),
             (53.0, 0.55, FAR_LANE_Y), (56.0, -0.25, FAR_LANE_Y)),
        car("parked-2", "car_red", (57.0, 1.25, FAR_LANE_Y), (61.0, 0.45, FAR_LANE_Y),
             (86.0, 0.45, FAR_LANE_Y), (90.0, -0.25, FAR_LANE_Y)),
        drive("through-3", "car_white", NEAR_LANE_Y, True, 70.0, 74.0),
    )  # fmt: skip
    return Script(
        "no_stopping",
        "two cars stop 30 s and 25 s in a no-stopping zone (alerts), one pauses 5 s (no alert)",
        92.0,
        actors,
        fps=EVAL_FPS,
        loops=False,
        expectations=Expectations(
            alerts=(
                ExpectedAlert("stopped_vehicle", 9.0 + _STOPPED_S, 39.0, zone="kerb"),
                ExpectedAlert("stopped_vehicle", 61.0 + _STOPPED_S, 86.0, zone="kerb"),
            ),
            camera={
                "zones": [_zone("kerb", _NO_STOPPING)],
                "rules": [{"kind": "stopped_vehicle", "zone": "kerb", "min_stopped_s": _STOPPED_S}],
            },
        ),
    )


OBJECT_SCRIPTS: tuple[Script, ...] = (
    _intruder_at_night(),
    _buskers(),
    _bridge(),
    _market(),
    _crossing_counts(),
    _no_stopping(),
)
OBJECT_SCENARIOS: tuple[str, ...] = tuple(s.name for s in OBJECT_SCRIPTS)
"""The scenarios this module registers (``hw-sim eval --scenario`` names)."""


def _register(scripts: Sequence[Script]) -> None:
    register(*scripts)


_register(OBJECT_SCRIPTS)
