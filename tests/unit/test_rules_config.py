"""Rule configs: a discriminated union on ``kind`` with complete defaults and clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from edge_agent.config import ConfigError, load_config, parse_config
from edge_agent.rules import build_rules
from edge_agent.rules.config import (
    CongestionRuleConfig,
    CrowdRuleConfig,
    IntrusionRuleConfig,
    LineCrossingRuleConfig,
    LoiteringRuleConfig,
    RuleConfig,
    StoppedVehicleRuleConfig,
    ZoneScheduleConfig,
    rule_problems,
)
from edge_agent.zones import Zone, zones_from_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RULES: TypeAdapter[RuleConfig] = TypeAdapter(RuleConfig)
YARD = Zone("yard", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)))


def agent(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "site_id": "s",
        "device_id": "d",
        "cameras": [
            {
                "id": "c",
                "source": {"kind": "sim"},
                "zones": [{"name": "yard", "polygon": [[0, 0.5], [1, 0.5], [1, 1]]}],
                "rules": rules,
            }
        ],
    }


def test_every_kind_parses_with_its_defaults() -> None:
    config = parse_config(
        agent(
            [
                {"kind": "intrusion", "zone": "yard"},
                {"kind": "loitering", "zone": "yard"},
                {"kind": "crowd", "zone": "yard"},
                {"kind": "stopped_vehicle", "zone": "yard"},
                {"kind": "congestion", "zone": "yard"},
                {"kind": "line_crossing", "name": "gate", "a": [0, 0.6], "b": [1, 0.6]},
            ]
        )
    )
    rules = config.cameras[0].rules
    assert [type(r).__name__ for r in rules] == [
        "IntrusionRuleConfig",
        "LoiteringRuleConfig",
        "CrowdRuleConfig",
        "StoppedVehicleRuleConfig",
        "CongestionRuleConfig",
        "LineCrossingRuleConfig",
    ]
    assert [r.rule_name for r in rules] == [
        "intrusion-yard",
        "loitering-yard",
        "crowd-yard",
        "stopped_vehicle-yard",
        "congestion-yard",
        "gate",
    ]


def test_misspelt_key_and_unknown_kind_are_errors() -> None:
    with pytest.raises(ConfigError, match="min_persns: unknown key"):
        parse_config(agent([{"kind": "crowd", "zone": "yard", "min_persns": 3}]))
    with pytest.raises(ConfigError, match="rules"):
        parse_config(agent([{"kind": "graffiti", "zone": "yard"}]))


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "crowd", "zone": "yard", "min_persons": 1},
        {"kind": "loitering", "zone": "yard", "min_dwell_s": 0},
        {"kind": "intrusion", "zone": "yard", "end_grace_s": -1},
        {"kind": "intrusion", "zone": "a/b"},
        {"kind": "congestion", "zone": "yard", "slow_min_vehicles": 4, "jammed_min_vehicles": 3},
        {"kind": "congestion", "zone": "yard", "hysteresis": 1.0},
        {"kind": "line_crossing", "name": "x", "a": [0.5, 0.5], "b": [0.5, 0.5]},
        {"kind": "line_crossing", "name": "x", "a": [0, 0], "b": [1, 2]},
        {"kind": "line_crossing", "name": "x", "a": [0, 0], "b": [1, 1],
         "direction_names": ["a", "a"]},
        {"kind": "line_crossing", "name": "x", "a": [0, 0], "b": [1, 1], "period_s": 0.5},
        {"kind": "line_crossing", "a": [0, 0], "b": [1, 1]},
    ],
)  # fmt: skip
def test_bad_rules_are_rejected(rule: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RULES.validate_python(rule)


def test_rule_problems_names_unknown_zones_and_duplicate_names() -> None:
    rules: list[RuleConfig] = [
        IntrusionRuleConfig(zone="yard"),
        IntrusionRuleConfig(zone="gate"),
        CongestionRuleConfig(zone="yard", name="intrusion-yard"),
        LineCrossingRuleConfig(name="count", a=(0, 0), b=(1, 1)),
    ]
    problems = rule_problems(rules, ["yard"])
    assert problems == [
        "rules[1]: unknown zone 'gate' (zones: yard)",
        "rules[2]: name 'intrusion-yard' already used by rules[0]",
    ]
    with pytest.raises(ValueError, match="unknown zone 'gate'"):
        build_rules(rules, zones=[YARD], timezone="UTC")


def test_build_rules_returns_one_rule_per_config_in_order() -> None:
    rules = build_rules(
        [
            CongestionRuleConfig(zone="yard"),
            LineCrossingRuleConfig(name="count", a=(0, 0), b=(1, 1)),
        ],
        zones=[YARD],
        timezone="Europe/Berlin",
    )
    assert [r.name for r in rules] == ["congestion-yard", "count"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_rules_are_consistent(path: Path) -> None:
    config = load_config(path)
    for camera in config.cameras:
        assert rule_problems(camera.rules, [z.name for z in camera.zones]) == []
        zones = zones_from_config(camera.zones)
        rules = build_rules(camera.rules, zones=zones, timezone=config.timezone)
        assert len(rules) == len(camera.rules)


RULE_MODELS = [
    IntrusionRuleConfig,
    LoiteringRuleConfig,
    CrowdRuleConfig,
    StoppedVehicleRuleConfig,
    CongestionRuleConfig,
    LineCrossingRuleConfig,
    ZoneScheduleConfig,
]


@pytest.mark.parametrize("model", RULE_MODELS, ids=lambda m: m.__name__)
def test_every_rule_key_is_documented(model: type[BaseModel]) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "analytics.md").read_text()
    missing = [name for name in model.model_fields if f"`{name}" not in text]
    assert not missing, f"{model.__name__}: keys {missing} are not in docs/analytics.md"
