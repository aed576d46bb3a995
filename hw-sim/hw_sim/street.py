"""The actors of a scene and where they walk and drive on the default street.

An ``Actor`` follows piecewise-linear ``Waypoint`` s (x of its centre, y of its bottom, in
fractions of the frame). The constants are the ground lines of the default
``hw_sim.background.StreetLayout``: pavements and lane centres, with the sizes at which
the real SSD MobileNet scores the sprites well (0.33-0.45 of the frame height for people,
0.27-0.31 for cars) under the perspective ``perspective_scale`` gives. ``person``,
``car``, ``walk`` and ``drive`` make the actors every scenario library uses.
"""

from __future__ import annotations

from dataclasses import dataclass

FAR_PAVEMENT_Y = 0.355
NEAR_PAVEMENT_Y = 0.94
FAR_LANE_Y = 0.57
NEAR_LANE_Y = 0.80
PERSON_HEIGHT = 0.47
"""A person's height as a fraction of the frame height, with the feet at the bottom edge."""
CAR_HEIGHT = 0.34
HORIZON_Y = -1.1
"""Where objects would shrink to nothing (above the frame: a camera looking down)."""


def perspective_scale(y: float, horizon_y: float = HORIZON_Y) -> float:
    """An object's size with its ground point at ``y``, relative to its size at y = 1."""
    return max(0.05, (y - horizon_y) / (1.0 - horizon_y))


@dataclass(frozen=True)
class Waypoint:
    """Where an object touches the ground at a time: x of its centre, y of its bottom."""

    t_s: float
    x: float
    y: float


@dataclass(frozen=True)
class Actor:
    """An object following waypoints; it exists only between the first and last time."""

    object_id: str
    sprite: str
    path: tuple[Waypoint, ...]
    height: float
    """Object height as a fraction of the frame height, at the bottom of the frame (y = 1)."""

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError(f"actor {self.object_id}: empty path")
        times = [w.t_s for w in self.path]
        if times != sorted(times):
            raise ValueError(f"actor {self.object_id}: waypoint times must not decrease")

    def position(self, t_s: float) -> tuple[float, float, bool] | None:
        """(x, y, moving_right) at ``t_s``, or None outside the path's time span."""
        path = self.path
        if t_s < path[0].t_s or t_s > path[-1].t_s:
            return None
        segment = 0
        while segment < len(path) - 2 and t_s > path[segment + 1].t_s:
            segment += 1
        start = path[segment]
        end = path[min(segment + 1, len(path) - 1)]
        span_s = end.t_s - start.t_s
        share = 0.0 if span_s <= 0.0 else (t_s - start.t_s) / span_s
        x = start.x + (end.x - start.x) * share
        y = start.y + (end.y - start.y) * share
        return x, y, self._heading_right(segment)

    def _heading_right(self, segment: int) -> bool:
        """Direction of the nearest segment that moves sideways; standing keeps the last one."""
        order = list(range(segment, -1, -1)) + list(range(segment + 1, len(self.path) - 1))
        for i in order:
            dx = self.path[i + 1].x - self.path[i].x
            if dx != 0.0:
                return dx > 0.0
        return False


def person(object_id: str, sprite: str, *points: tuple[float, float, float]) -> Actor:
    """A person along (t_s, x, y) points."""
    return Actor(object_id, sprite, tuple(Waypoint(t, x, y) for t, x, y in points), PERSON_HEIGHT)


def car(object_id: str, sprite: str, *points: tuple[float, float, float]) -> Actor:
    """A car along (t_s, x, y) points."""
    return Actor(object_id, sprite, tuple(Waypoint(t, x, y) for t, x, y in points), CAR_HEIGHT)


def walk(object_id: str, sprite: str, y: float, x_from: float, x_to: float, t0: float,
         t1: float) -> Actor:  # fmt: skip
    """A person walking along ground line ``y`` from ``x_from`` at ``t0`` to ``x_to`` at ``t1``."""
    return person(object_id, sprite, (t0, x_from, y), (t1, x_to, y))


def drive(object_id: str, sprite: str, y: float, rightwards: bool, t0: float,
          t1: float) -> Actor:  # fmt: skip
    """A car driving through the whole picture along lane ``y`` between ``t0`` and ``t1``."""
    x_from, x_to = (-0.25, 1.25) if rightwards else (1.25, -0.25)
    return car(object_id, sprite, (t0, x_from, y), (t1, x_to, y))
