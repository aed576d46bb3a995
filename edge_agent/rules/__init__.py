"""Object rules: alerts, zone states and counts from tracked objects.

``build_rules`` turns a camera's rule configs into ``ObjectRule`` objects; the
pipeline calls each on every analysed frame (see edge_agent/analytics.py).
docs/analytics.md describes every rule, its messages and its knobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from edge_agent.analytics import ObjectRule
from edge_agent.rules.config import (
    CongestionRuleConfig,
    CrowdRuleConfig,
    IntrusionRuleConfig,
    LineCrossingRuleConfig,
    LoiteringRuleConfig,
    RuleConfig,
    StoppedVehicleRuleConfig,
    rule_problems,
)
from edge_agent.rules.congestion import CongestionRule
from edge_agent.rules.crowd import CrowdRule
from edge_agent.rules.intrusion import IntrusionRule
from edge_agent.rules.line_crossing import LineCrossingRule
from edge_agent.rules.loitering import LoiteringRule
from edge_agent.rules.stopped_vehicle import StoppedVehicleRule
from edge_agent.zones import Zone

__all__ = ["build_rules", "rule_problems"]


def build_rules(
    configs: Sequence[RuleConfig], *, zones: Sequence[Zone], timezone: str
) -> list[ObjectRule]:
    """The configured rules of one camera.

    Raises ``ValueError`` for a rule on an unknown zone or two rules with one name
    (config validation normally catches both first).
    """
    by_name = {zone.name: zone for zone in zones}
    problems = rule_problems(list(configs), list(by_name))
    if problems:
        raise ValueError("; ".join(problems))
    tz = ZoneInfo(timezone)
    rules: list[ObjectRule] = []
    for config in configs:
        if isinstance(config, LineCrossingRuleConfig):
            rules.append(LineCrossingRule(config))
        elif isinstance(config, CongestionRuleConfig):
            rules.append(CongestionRule(config, by_name[config.zone]))
        elif isinstance(config, IntrusionRuleConfig):
            rules.append(IntrusionRule(config, by_name[config.zone], tz))
        elif isinstance(config, LoiteringRuleConfig):
            rules.append(LoiteringRule(config, by_name[config.zone], tz))
        elif isinstance(config, CrowdRuleConfig):
            rules.append(CrowdRule(config, by_name[config.zone], tz))
        elif isinstance(config, StoppedVehicleRuleConfig):
            rules.append(StoppedVehicleRule(config, by_name[config.zone], tz))
    return rules
