"""A crowd on a plaza: more people than the default detector returns boxes for.

SSD MobileNet v1 returns at most 10 boxes per invoke, so a crowd of 30 is invisible to it
on the whole frame. ``plaza_crowd`` is such a crowd: 30 people gathered (around a busker, say),
seen by a camera high on a pole looking across the plaza (a nearer horizon than the
street's, so the far rows are small: ~70 px tall in 640x360, the near row ~150 px).
They stand in staggered rows that overlap partly (the near row hides the legs of the row
behind it), each milling slowly about their spot (a few px per second), then disperse.

``crowd_actors(n, seed)`` draws such a crowd of any size for benches (10, 20, 30, 50
people); ``crowd_size_truth`` is the number whose feet are in the zone at a time, the
figure the ``crowd`` rule's ``persons`` is measured against.
"""

from __future__ import annotations

import math
import random

from hw_sim.scenes import Expectations, ExpectedAlert, Script, register
from hw_sim.street import Actor, Waypoint
from hw_sim.truth import Polygon

PLAZA_HORIZON_Y = 0.0
"""People shrink to nothing at the top of the frame: a camera looking across a plaza."""
PLAZA_PERSON_HEIGHT = 0.42
"""A person's height (frame heights) with the feet at the bottom edge."""
PLAZA_TOP_Y = 0.4
PLAZA: Polygon = ((0.0, PLAZA_TOP_Y), (1.0, PLAZA_TOP_Y), (1.0, 1.0), (0.0, 1.0))
CROWD_SIZE = 30
CROWD_MIN_PERSONS = 20
_SPRITES = ("person_tshirt", "person_black", "person_blonde", "person_shirt")
_FAR_ROW_Y, _NEAR_ROW_Y = 0.47, 0.97
_GATHERED_S = 40.0  # the crowd stands until then, then walks off sideways
_LEAVE_S = (4.0, 9.0)  # how long leaving takes, per person
_DURATION_S = _GATHERED_S + _LEAVE_S[1] + 3.0
_MILL_STEP_S = 4.0  # a new spot to drift to this often
_MILL_X, _MILL_Y = 0.025, 0.015  # how far from their own spot people drift


def crowd_rows(n: int) -> list[int]:
    """People per row, far to near, for a crowd of ``n``: wider rows near the camera."""
    rows = max(2, round(math.sqrt(n / 1.8)))
    weights = [0.7 + 0.6 * r / (rows - 1) for r in range(rows)]
    shares = [n * w / sum(weights) for w in weights]
    counts = [math.floor(s) for s in shares]
    for r in sorted(range(rows), key=lambda r: counts[r] - shares[r])[: n - sum(counts)]:
        counts[r] += 1
    return counts


def crowd_actors(n: int, seed: int = 2024) -> tuple[Actor, ...]:
    """``n`` people in staggered rows across the plaza, milling slowly, leaving sideways
    after 40 s; the same crowd for the same ``seed``."""
    rng = random.Random(seed)
    actors: list[Actor] = []
    counts = crowd_rows(n)
    for r, in_row in enumerate(counts):
        y = _FAR_ROW_Y + (_NEAR_ROW_Y - _FAR_ROW_Y) * r / (len(counts) - 1)
        offset = 0.5 if r % 2 else 0.0  # staggered: a row stands in the gaps of the next
        for c in range(in_row):
            x = 0.06 + 0.88 * (c + offset * (0.6 + 0.4 * rng.random())) / max(1, in_row)
            x += rng.uniform(-0.02, 0.02)
            actors.append(_miller(f"crowd-{len(actors) + 1}", rng, x, y))
    return tuple(actors)


def _miller(object_id: str, rng: random.Random, x: float, y: float) -> Actor:
    """Someone drifting about (``x``, ``y``) until ``_GATHERED_S``, then leaving sideways."""
    points = [Waypoint(0.0, x, y)]
    t_s = 0.0
    while t_s + _MILL_STEP_S < _GATHERED_S:
        t_s = min(t_s + _MILL_STEP_S * rng.uniform(0.7, 1.3), _GATHERED_S)
        points.append(
            Waypoint(t_s, x + rng.uniform(-_MILL_X, _MILL_X), y + rng.uniform(-_MILL_Y, _MILL_Y))
        )
    last = points[-1]
    if last.t_s < _GATHERED_S:
        points.append(Waypoint(_GATHERED_S, last.x, last.y))
    exit_x = -0.15 if x < 0.5 else 1.15
    points.append(Waypoint(_GATHERED_S + rng.uniform(*_LEAVE_S), exit_x, last.y))
    return Actor(object_id, rng.choice(_SPRITES), tuple(points), PLAZA_PERSON_HEIGHT)


def crowd_size_truth(actors: tuple[Actor, ...], t_s: float) -> int:
    """People whose feet are in the plaza zone (and in the picture) at ``t_s``."""
    count = 0
    for actor in actors:
        where = actor.position(t_s)
        if where is not None and 0.0 <= where[0] <= 1.0 and where[1] >= PLAZA_TOP_Y:
            count += 1
    return count


def _crowd_span(
    actors: tuple[Actor, ...], min_persons: int, step_s: float = 0.1
) -> tuple[float, float]:
    """From the first to the last time at least ``min_persons`` are in the zone."""
    times = [i * step_s for i in range(round(_DURATION_S / step_s) + 1)]
    held = [t for t in times if crowd_size_truth(actors, t) >= min_persons]
    return round(held[0], 2), round(held[-1], 2)


def plaza_crowd_script(
    n: int = CROWD_SIZE, *, name: str = "plaza_crowd", seed: int = 2024
) -> Script:
    """The plaza crowd of ``n`` people as a scenario (``hw-sim eval``, tests, benches)."""
    actors = crowd_actors(n, seed)
    min_persons = min(CROWD_MIN_PERSONS, max(2, round(0.67 * n)))
    start_s, end_s = _crowd_span(actors, min_persons)
    return Script(
        name,
        f"a crowd of {n} gathers on a plaza, mills slowly for {_GATHERED_S:.0f} s, disperses "
        "(more people than SSD's 10 boxes)",
        _DURATION_S,
        actors,
        drift_amplitude=0.02,
        fps=5.0,
        loops=False,
        seed=seed,
        horizon_y=PLAZA_HORIZON_Y,
        expectations=Expectations(
            alerts=(ExpectedAlert("crowd", start_s, end_s, zone="plaza"),),
            camera={
                "zones": [
                    {"name": "plaza", "polygon": [list(p) for p in PLAZA], "labels": ["person"]}
                ],
                "rules": [
                    {
                        "kind": "crowd",
                        "zone": "plaza",
                        "min_persons": min_persons,
                        "min_duration_s": 5.0,
                        "end_grace_s": 5.0,
                    }
                ],
            },
        ),
    )


CROWD_SCENARIOS: tuple[str, ...] = ("plaza_crowd",)
"""The scenarios this module registers (``hw-sim eval --scenario`` names)."""

register(plaza_crowd_script())
