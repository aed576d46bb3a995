"""Object rules: alerts, zone states and counts from tracked objects."""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.analytics import ObjectRule
from edge_agent.rules.config import RuleConfig
from edge_agent.zones import Zone


def build_rules(
    configs: Sequence[RuleConfig], *, zones: Sequence[Zone], timezone: str
) -> list[ObjectRule]:
    """The configured rules of one camera (placeholder until the rules land)."""
    return []
