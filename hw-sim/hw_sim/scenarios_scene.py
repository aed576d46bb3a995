"""Scenarios for the scene-state analyzers (flood, garbage, tamper), with ground truth.

Imported by ``hw_sim.scenes`` when the scenario list is first needed; each scenario
registers a ``Script`` whose ``Expectations`` carry the expected states and the camera
config fragment (analyzers with time-compressed settings) to evaluate them with.

Everything is time-compressed: a puddle that takes an hour to form forms here in a
minute, at 1 frame per second, so the analyzers are configured with learning and
persistence times of seconds rather than minutes. Expected states for water and litter
come from the same geometry that draws them (``Puddle.coverage``, ``GarbageBags.coverage``)
and the analyzers' own thresholds, so truth and picture cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from edge_agent.types import ImageBGR
from hw_sim.effects import (
    Bag,
    CloudShadows,
    Daylight,
    Defocus,
    FrozenFeed,
    GarbageBags,
    Headlights,
    Knock,
    LensCover,
    Puddle,
    Rain,
    Sway,
    car_actors,
)
from hw_sim.scenes import Effect, Expectations, ExpectedState, Scenario, Script, register
from hw_sim.street import (
    FAR_LANE_Y,
    FAR_PAVEMENT_Y,
    NEAR_LANE_Y,
    NEAR_PAVEMENT_Y,
    Actor,
    drive,
    person,
    walk,
)

EVAL_FPS = 1.0
EVAL_WIDTH, EVAL_HEIGHT = 640, 360

ROAD = (0.02, 0.42, 0.98, 0.80)  # the carriageway between the kerbs, clear of the far pavement
NO_DUMPING = (0.06, 0.84, 0.52, 0.995)  # the near pavement's left half

_PEOPLE = ("person_tshirt", "person_black", "person_blonde", "person_shirt")
_CARS = ("car_dark", "car_white", "car_red")

# Time-compressed analyzer settings (the defaults are for real time: minutes, not seconds).
TAMPER: dict[str, Any] = {
    "kind": "tamper", "learn_s": 10.0, "min_duration_s": 5.0, "frozen_after_s": 10.0,
}  # fmt: skip
FLOOD: dict[str, Any] = {
    "kind": "flood", "region": {"box": list(ROAD)}, "learn_s": 20.0, "min_duration_s": 10.0,
    "water_memory_s": 8.0,
}  # fmt: skip
GARBAGE: dict[str, Any] = {
    "kind": "garbage", "region": {"box": list(NO_DUMPING)}, "learn_s": 20.0,
    "min_duration_s": 5.0, "persistence_s": 30.0,
}  # fmt: skip


def _camera(*analyzers: Mapping[str, Any]) -> dict[str, Any]:
    return {"fps": EVAL_FPS, "analyzers": [dict(a) for a in analyzers]}


def _eval_script(
    name: str, description: str, duration_s: float, actors: tuple[Actor, ...], *,
    effects: tuple[Effect, ...], expectations: Expectations,
) -> Script:  # fmt: skip
    """A scene scenario as evaluated: at EVAL_FPS, once from beginning to end."""
    return Script(
        name,
        description,
        duration_s,
        actors,
        effects=effects,
        expectations=expectations,
        fps=EVAL_FPS,
        loops=False,
    )


# --- people and traffic --------------------------------------------------------------


def _walker(object_id: str, sprite: str, y: float, rightwards: bool, t0: float,
            crossing_s: float = 14.0) -> Actor:  # fmt: skip
    x_from, x_to = (-0.1, 1.1) if rightwards else (1.1, -0.1)
    return walk(object_id, sprite, y, x_from, x_to, t0, t0 + crossing_s)


def _car(object_id: str, sprite: str, near_lane: bool, t0: float,
         crossing_s: float = 5.0) -> Actor:  # fmt: skip
    """A car through the picture: rightwards on the near lane, leftwards on the far one."""
    y = NEAR_LANE_Y if near_lane else FAR_LANE_Y
    return drive(object_id, sprite, y, near_lane, t0, t0 + crossing_s)


def traffic(
    duration_s: float,
    *,
    seed: int,
    car_every_s: float = 14.0,
    person_every_s: float = 20.0,
    near_pavement: bool = True,
) -> tuple[Actor, ...]:
    """Cars on both lanes and people on the pavements, at irregular but fixed times."""
    rng = np.random.default_rng(seed)
    actors: list[Actor] = []
    t_s = float(rng.uniform(0.0, car_every_s))
    n = 0
    while t_s < duration_s - 5.0:
        actors.append(_car(f"car-{n}", _CARS[n % len(_CARS)], n % 2 == 0, t_s))
        n += 1
        t_s += car_every_s * float(rng.uniform(0.6, 1.4))
    t_s = float(rng.uniform(0.0, person_every_s))
    n = 0
    while t_s < duration_s - 14.0:
        on_near = near_pavement and n % 2 == 1
        y = NEAR_PAVEMENT_Y if on_near else FAR_PAVEMENT_Y
        actors.append(_walker(f"person-{n}", _PEOPLE[n % len(_PEOPLE)], y, n % 3 != 0, t_s))
        n += 1
        t_s += person_every_s * float(rng.uniform(0.6, 1.4))
    return tuple(actors)


# --- ground truth from coverage ------------------------------------------------------


def states_from_measure(
    analyzer: str,
    measure: Callable[[float], float],
    levels: tuple[tuple[str, float], ...],
    resting: str,
    duration_s: float,
    step_s: float = 1.0,
) -> tuple[ExpectedState, ...]:
    """Expected states of ``analyzer``: the highest level whose threshold ``measure(t)``
    reaches (``levels`` lowest first), as intervals over the scenario."""
    intervals: list[ExpectedState] = []
    times = np.arange(0.0, duration_s + 1e-9, step_s)
    current: str | None = None
    start_s = 0.0
    for t_s in times:
        value = measure(float(t_s))
        state = resting
        for name, threshold in levels:
            if value >= threshold:
                state = name
        if state != current:
            if current is not None:
                intervals.append(ExpectedState(analyzer, current, start_s, float(t_s)))
            current, start_s = state, float(t_s)
    if current is not None:
        intervals.append(ExpectedState(analyzer, current, start_s, duration_s))
    return tuple(intervals)


def _always(analyzer: str, state: str, duration_s: float) -> ExpectedState:
    return ExpectedState(analyzer, state, 0.0, duration_s)


def _region_truth(
    analyzer: Mapping[str, Any], states: tuple[ExpectedState, ...], duration_s: float
) -> Expectations:
    """A region analyzer's expected ``states``, with tamper watching too and ok throughout."""
    return Expectations(
        states=(*states, _always("tamper", "ok", duration_s)), camera=_camera(analyzer, TAMPER)
    )


def _box_polygon(box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


# --- the scenarios -------------------------------------------------------------------


def _rain_puddle() -> Script:
    duration_s = 300.0
    actors = traffic(duration_s, seed=41, car_every_s=16.0)
    puddle = Puddle(
        level=(
            (0.0, -0.4), (60.0, -0.4), (75.0, 0.7), (120.0, 0.8), (135.0, 1.7),
            (190.0, 1.7), (205.0, 0.8), (235.0, 0.7), (250.0, -0.4),
        ),
        occluders=actors,
    )  # fmt: skip
    region = _box_polygon(ROAD)
    flood_truth = states_from_measure(
        "flood",
        lambda t: puddle.coverage(region, t),
        (("puddle", 0.05), ("flooded", 0.35)),
        "none",
        duration_s,
    )
    effects: tuple[Effect, ...] = (
        puddle,
        Rain(40.0, 200.0),
        Daylight(gain=((0.0, 1.0), (30.0, 1.0), (60.0, 0.8), (200.0, 0.8), (260.0, 0.95))),
    )
    return _eval_script(
        "rain_puddle",
        "rain under an overcast sky: a puddle forms on the road, floods it, then dries (300 s)",
        duration_s,
        actors,
        effects=effects,
        expectations=_region_truth(FLOOD, flood_truth, duration_s),
    )


def _garbage_bags() -> Script:
    duration_s = 300.0
    bags = GarbageBags(
        (
            Bag(50.0, 0.17, 0.93, 0.085),
            Bag(90.0, 0.25, 0.95, 0.09, (40.0, 60.0, 35.0)),
            Bag(130.0, 0.21, 0.90, 0.08),
            Bag(170.0, 0.33, 0.94, 0.09, (95.0, 55.0, 25.0)),
            Bag(210.0, 0.29, 0.91, 0.08),
        )
    )
    actors = (
        *traffic(duration_s, seed=43, car_every_s=18.0, person_every_s=22.0),
        # Someone waits on the spot for 15 s (not garbage), twice.
        person("waiting-1", "person_shirt",
            (10.0, -0.1, NEAR_PAVEMENT_Y), (16.0, 0.3, NEAR_PAVEMENT_Y),
            (31.0, 0.3, NEAR_PAVEMENT_Y), (40.0, 1.1, NEAR_PAVEMENT_Y),
        ),
        person("waiting-2", "person_blonde",
            (225.0, 1.1, 0.97), (234.0, 0.4, 0.97),
            (249.0, 0.4, 0.97), (255.0, -0.1, 0.97),
        ),
    )  # fmt: skip
    region = _box_polygon(NO_DUMPING)
    garbage_truth = states_from_measure(
        "garbage", lambda t: bags.coverage(region, t), (("present", 0.02),), "none", duration_s
    )
    effects: tuple[Effect, ...] = (
        bags,
        Daylight(
            gain=((0.0, 1.0), (100.0, 0.8), (200.0, 0.85), (300.0, 1.05)),
            tint_blue=((0.0, 1.0), (150.0, 1.05), (300.0, 0.97)),
        ),
    )
    return _eval_script(
        "garbage_bags",
        "bags of rubbish dumped one by one on the pavement, people passing and waiting, "
        "the light changing (300 s)",
        duration_s,
        actors,
        effects=effects,
        expectations=_region_truth(GARBAGE, garbage_truth, duration_s),
    )


def _tamper_script(
    name: str, description: str, effect: Effect, states: tuple[tuple[str, float, float], ...],
    seed: int, duration_s: float = 180.0, regions_too: bool = False,
) -> Script:  # fmt: skip
    """A tamper scenario; with ``regions_too`` flood and garbage watch as well and must stay
    quiet (they pause while the camera is not ok: a covered lens is not a pile of rubbish),
    and say ``unknown`` once it moved (their regions show something else now)."""
    truth = tuple(ExpectedState("tamper", s, t0, t1) for s, t0, t1 in states)
    camera = _camera(TAMPER)
    if regions_too:
        moved_s = next((t0 for s, t0, _ in states if s == "moved"), duration_s)
        for region in ("flood", "garbage"):
            truth += (ExpectedState(region, "none", 0.0, moved_s),)
            if moved_s < duration_s:
                truth += (ExpectedState(region, "unknown", moved_s, duration_s),)
        camera = _camera(TAMPER, FLOOD, GARBAGE)
    return _eval_script(
        name,
        description,
        duration_s,
        traffic(duration_s, seed=seed),
        effects=(effect,),
        expectations=Expectations(states=truth, camera=camera),
    )


def _frozen_feed() -> Script:
    duration_s, freeze_s, thaw_s = 180.0, 60.0, 130.0
    actors = traffic(duration_s, seed=47)

    def still(width: int, height: int) -> ImageBGR:
        """The street as it was when the feed froze (its own frame, noise and all)."""
        scenario = Scenario(
            "frozen_feed-held", width=width, height=height, fps=EVAL_FPS,
            duration_s=duration_s, actors=actors, loops=False,
        )  # fmt: skip
        return scenario.render(round(freeze_s * EVAL_FPS))

    return _eval_script(
        "frozen_feed",
        "the feed freezes on one picture for 70 s while the street goes on, then recovers (180 s)",
        duration_s,
        actors,
        effects=(FrozenFeed(freeze_s, thaw_s, still),),
        expectations=Expectations(
            states=(
                ExpectedState("tamper", "ok", 0.0, freeze_s),
                ExpectedState("tamper", "frozen", freeze_s, thaw_s),
                ExpectedState("tamper", "ok", thaw_s, duration_s),
            ),
            camera=_camera(TAMPER),
        ),
    )


def _nothing_wrong(duration_s: float) -> Expectations:
    """A false-alarm check: every analyzer stays at rest for the whole scenario."""
    return Expectations(
        states=(
            _always("flood", "none", duration_s),
            _always("garbage", "none", duration_s),
            _always("tamper", "ok", duration_s),
        ),
        camera=_camera(FLOOD, GARBAGE, TAMPER),
        false_alarm_check=True,
    )


def _dusk_headlights() -> Script:
    duration_s = 300.0
    actors = traffic(duration_s, seed=53, car_every_s=8.0, person_every_s=16.0)
    effects: tuple[Effect, ...] = (
        Daylight(
            gain=((0.0, 1.0), (60.0, 1.0), (270.0, 0.3)),
            tint_blue=((60.0, 1.0), (270.0, 1.15)),
            tint_red=((60.0, 1.0), (270.0, 0.85)),
        ),
        Headlights(car_actors(actors), strength=((0.0, 0.0), (120.0, 0.0), (220.0, 1.0))),
    )
    return _eval_script(
        "dusk_headlights",
        "day turns to dusk, busy traffic switches its headlights on: nothing is wrong (300 s)",
        duration_s,
        actors,
        effects=effects,
        expectations=_nothing_wrong(duration_s),
    )


def _clouds_and_crowds() -> Script:
    duration_s = 240.0
    actors = (
        *traffic(duration_s, seed=59, car_every_s=7.0, person_every_s=6.0),
        # Two people stop for a chat on the no-dumping pavement (20 s), one leaves a
        # minute later after waiting by the kerb.
        person("chat-1", "person_black",
            (40.0, -0.1, 0.93), (46.0, 0.2, 0.93),
            (66.0, 0.2, 0.93), (72.0, 1.1, 0.93),
        ),
        person("chat-2", "person_blonde",
            (41.0, 1.1, 0.96), (49.0, 0.3, 0.96),
            (67.0, 0.3, 0.96), (75.0, -0.1, 0.96),
        ),
        person("waiting", "person_tshirt",
            (130.0, 1.1, 0.90), (137.0, 0.45, 0.90),
            (157.0, 0.45, 0.90), (162.0, 1.1, 0.90),
        ),
    )  # fmt: skip
    effects: tuple[Effect, ...] = (
        CloudShadows(((30.0, 38.0), (90.0, 97.0), (150.0, 160.0), (200.0, 206.0))),
        Daylight(gain=((0.0, 1.0), (60.0, 1.1), (120.0, 0.85), (180.0, 1.05), (240.0, 0.9))),
    )
    return _eval_script(
        "clouds_and_crowds",
        "a busy street under passing clouds: shadows sweep across, people walk, chat and "
        "wait on the pavement, cars pass: nothing is wrong (240 s)",
        duration_s,
        actors,
        effects=effects,
        expectations=_nothing_wrong(duration_s),
    )


def _windy_pole() -> Script:
    duration_s = 180.0
    actors = traffic(duration_s, seed=61, car_every_s=9.0, person_every_s=9.0)
    return _eval_script(
        "windy_pole",
        "the pole sways in the wind (about 5 px either way at 960x540, every 2.7 s) while "
        "cars and people pass: nothing is wrong (180 s)",
        duration_s,
        actors,
        effects=(Sway(),),
        expectations=_nothing_wrong(duration_s),
    )


SCENE_SCRIPTS: tuple[Script, ...] = (
    _rain_puddle(),
    _garbage_bags(),
    _tamper_script(
        "lens_covered",
        "a hand covers the lens for a minute, then lets go (180 s)",
        LensCover(((0.0, 0.0), (60.0, 0.0), (64.0, 1.0), (120.0, 1.0), (124.0, 0.0))),
        (("ok", 0.0, 60.0), ("covered", 62.0, 122.0), ("ok", 124.0, 180.0)),
        seed=44,
        regions_too=True,
    ),
    _tamper_script(
        "camera_knocked",
        "the camera is knocked askew at 60 s and stays so (180 s)",
        Knock(60.0),
        (("ok", 0.0, 60.0), ("moved", 60.0, 180.0)),
        seed=45,
        regions_too=True,
    ),
    _tamper_script(
        "camera_defocus",
        "the lens drifts out of focus at 60 s and is refocused at 130 s (180 s)",
        Defocus(((0.0, 0.0), (60.0, 0.0), (66.0, 0.003), (130.0, 0.003), (131.0, 0.0))),
        (("ok", 0.0, 62.0), ("blurred", 62.0, 130.0), ("ok", 130.0, 180.0)),
        seed=46,
    ),
    _frozen_feed(),
    _dusk_headlights(),
    _clouds_and_crowds(),
    _windy_pole(),
)

register(*SCENE_SCRIPTS)

SCENE_SCENARIO_NAMES: tuple[str, ...] = tuple(script.name for script in SCENE_SCRIPTS)
