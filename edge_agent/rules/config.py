"""Config of object rules and zone schedules.

Every rule is one entry in a camera's ``rules`` list, chosen by ``kind``. Defaults
are for a real street at real speed; the hw-sim scenarios shorten the times
(``min_dwell_s: 20`` instead of two minutes) because their scenes are compressed.
docs/analytics.md explains each knob and why its default is what it is.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.config_base import DAY_S, HOUR_S, Identifier, StrictModel, UnitFloat

PERSON_LABELS = ["person"]
VEHICLE_LABELS = ["car", "motorcycle", "bus", "truck"]
_CLOCK = r"^([01]\d|2[0-3]):[0-5]\d$"


class ZoneScheduleConfig(StrictModel):
    """When a zone is active, in the site's timezone (e.g. intrusion only at night).

    ``start`` after ``end`` crosses midnight (22:00-05:00); ``days`` name the day a
    period *starts* on, so a Friday-night period runs into Saturday morning.
    """

    start: str = Field("00:00", pattern=_CLOCK)
    end: str = Field("24:00", pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = Field(
        None, min_length=1
    )

    @model_validator(mode="after")
    def _not_empty(self) -> ZoneScheduleConfig:
        if self.start == self.end:
            raise ValueError("start and end must differ (00:00 to 24:00 is the whole day)")
        return self


class _AlertRule(StrictModel):
    """What every alert rule shares: a zone, labels, and how alerts start, change and end."""

    kind: str
    name: Identifier | None = None  # default "{kind}-{zone}"; goes into the alert as "rule"
    zone: Identifier
    end_grace_s: float = Field(5.0, ge=0, le=HOUR_S)  # absent this long before an alert ends
    update_min_interval_s: float = Field(5.0, ge=0, le=DAY_S)  # at most one update this often

    @property
    def rule_name(self) -> str:
        return self.name or f"{self.kind}-{self.zone}"


class IntrusionRuleConfig(_AlertRule):
    """A person or vehicle in the zone while its schedule is active: one alert per object."""

    kind: Literal["intrusion"] = "intrusion"
    labels: list[str] = Field(default_factory=lambda: PERSON_LABELS + VEHICLE_LABELS)
    min_duration_s: float = Field(1.0, ge=0, le=DAY_S)  # in the zone this long before the alert


class LoiteringRuleConfig(_AlertRule):
    """A person staying in the zone longer than ``min_dwell_s``: one alert per person."""

    kind: Literal["loitering"] = "loitering"
    labels: list[str] = Field(default_factory=lambda: list(PERSON_LABELS))
    min_dwell_s: float = Field(120.0, gt=0, le=DAY_S)
    end_grace_s: float = Field(10.0, ge=0, le=HOUR_S)


class CrowdRuleConfig(_AlertRule):
    """At least ``min_persons`` in the zone for at least ``min_duration_s``: one alert per zone."""

    kind: Literal["crowd"] = "crowd"
    labels: list[str] = Field(default_factory=lambda: list(PERSON_LABELS))
    min_persons: int = Field(5, ge=2)
    min_duration_s: float = Field(30.0, ge=0, le=DAY_S)
    end_grace_s: float = Field(10.0, ge=0, le=HOUR_S)


class StoppedVehicleRuleConfig(_AlertRule):
    """A vehicle standing still in a no-stopping zone longer than ``min_stopped_s``."""

    kind: Literal["stopped_vehicle"] = "stopped_vehicle"
    labels: list[str] = Field(default_factory=lambda: list(VEHICLE_LABELS))
    min_stopped_s: float = Field(60.0, gt=0, le=DAY_S)
    still_tolerance_heights: float = Field(0.3, gt=0)  # drift that still counts as standing


class CongestionRuleConfig(StrictModel):
    """Traffic level in a zone, free / slow / jammed, published as retained state on change.

    Speeds are in vehicle *heights* per second (a car is ~1.5 m tall whatever the
    camera's angle, so 2 heights/s is ~11 km/h); "stationary" means the vehicle's
    ground point stayed within ``still_tolerance_heights`` for ``stationary_min_s``.
    """

    kind: Literal["congestion"] = "congestion"
    name: Identifier | None = None  # default "congestion-{zone}": the state topic level
    zone: Identifier
    labels: list[str] = Field(default_factory=lambda: list(VEHICLE_LABELS))
    slow_min_vehicles: int = Field(2, ge=1)
    jammed_min_vehicles: int = Field(3, ge=1)
    slow_speed_heights_per_s: float = Field(2.0, gt=0)  # mean speed below this: slow
    jammed_stationary_fraction: UnitFloat = 0.5  # share of vehicles standing: jammed
    stationary_min_s: float = Field(3.0, gt=0, le=HOUR_S)
    still_tolerance_heights: float = Field(0.3, gt=0)
    speed_window_s: float = Field(2.0, gt=0, le=HOUR_S)
    hysteresis: float = Field(0.2, ge=0, lt=1)  # thresholds move this much toward the level held
    min_duration_s: float = Field(10.0, ge=0, le=DAY_S)  # a new level must hold this long

    @property
    def rule_name(self) -> str:
        return self.name or f"congestion-{self.zone}"

    @model_validator(mode="after")
    def _levels_ordered(self) -> CongestionRuleConfig:
        if self.jammed_min_vehicles < self.slow_min_vehicles:
            raise ValueError("jammed_min_vehicles must not be below slow_min_vehicles")
        return self


Point = tuple[UnitFloat, UnitFloat]


class LineCrossingRuleConfig(StrictModel):
    """Counts objects whose ground point crosses the line from a to b, per direction.

    Looking from ``a`` towards ``b``, crossing from the left side to the right side
    counts as ``direction_names[0]``, the other way as ``direction_names[1]``. For a
    line drawn left to right across the picture, walking towards the camera (down
    the picture) is ``direction_names[0]``.
    """

    kind: Literal["line_crossing"] = "line_crossing"
    name: Identifier  # the line's name: the counts topic level
    a: Point
    b: Point
    direction_names: tuple[Identifier, Identifier] = ("in", "out")
    labels: list[str] | None = None  # None: every label the detector reports
    # one count report per period (aligned to the clock)
    period_s: float = Field(60.0, ge=1.0, le=DAY_S)
    dead_band: UnitFloat = 0.02  # distance from the line (frame heights) that has no side

    @property
    def rule_name(self) -> str:
        return self.name

    @model_validator(mode="after")
    def _a_line(self) -> LineCrossingRuleConfig:
        if self.a == self.b:
            raise ValueError("a and b must be two different points")
        if self.direction_names[0] == self.direction_names[1]:
            raise ValueError("the two direction names must differ")
        return self


RuleConfig = Annotated[
    IntrusionRuleConfig
    | LoiteringRuleConfig
    | CrowdRuleConfig
    | StoppedVehicleRuleConfig
    | CongestionRuleConfig
    | LineCrossingRuleConfig,
    Field(discriminator="kind"),
]

ZonedRuleConfig = (
    IntrusionRuleConfig
    | LoiteringRuleConfig
    | CrowdRuleConfig
    | StoppedVehicleRuleConfig
    | CongestionRuleConfig
)


def rule_problems(rules: list[RuleConfig], zone_names: list[str]) -> list[str]:
    """What is wrong with a camera's rules as a whole (for a CameraConfig validator):
    unknown zones, and two rules that would publish under the same name."""
    problems = []
    known = set(zone_names)
    seen: dict[str, int] = {}
    for index, rule in enumerate(rules):
        zone = getattr(rule, "zone", None)
        if zone is not None and zone not in known:
            listing = ", ".join(sorted(known)) or "none defined"
            problems.append(f"rules[{index}]: unknown zone {zone!r} (zones: {listing})")
        name = rule.rule_name
        if name in seen:
            problems.append(f"rules[{index}]: name {name!r} already used by rules[{seen[name]}]")
        seen.setdefault(name, index)
    return problems
