"""Config of object rules and zone schedules (placeholder: filled in by the rules work)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge_agent.config_base import Identifier, StrictModel


class ZoneScheduleConfig(StrictModel):
    """When a zone is active, in the site's timezone (e.g. intrusion only at night)."""

    start: str = Field("00:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field("24:00", pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None


class IntrusionRuleConfig(StrictModel):
    kind: Literal["intrusion"] = "intrusion"
    name: Identifier
    zone: Identifier


RuleConfig = IntrusionRuleConfig
