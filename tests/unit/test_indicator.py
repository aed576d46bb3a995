"""The device's condition from its health, and the status config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge_agent.config import StatusConfig
from edge_agent.indicator import PATTERNS, Condition, Health, NoIndicator, condition_of


@pytest.mark.parametrize(
    ("cameras", "delivering", "uplink", "expected"),
    [
        (1, 1, True, Condition.OK),
        (2, 2, True, Condition.OK),
        (1, 1, False, Condition.UPLINK_DOWN),
        (2, 1, True, Condition.CAMERA_FAULT),
        (1, 0, False, Condition.CAMERA_FAULT),  # no pictures is worse than no uplink
    ],
)
def test_the_worst_thing_wrong_wins(
    cameras: int, delivering: int, uplink: bool, expected: Condition
) -> None:
    assert condition_of(Health(cameras, delivering, uplink)) is expected


def test_every_condition_has_a_pattern_of_its_own() -> None:
    assert set(PATTERNS) == set(Condition)
    assert len(set(PATTERNS.values())) == len(Condition)


def test_no_led_still_remembers_the_condition_for_the_status_reply() -> None:
    indicator = NoIndicator()
    assert indicator.description == "none"
    indicator.show(Condition.UPLINK_DOWN)
    assert indicator.condition is Condition.UPLINK_DOWN
    indicator.close()
    assert indicator.condition is Condition.STOPPED
    assert NoIndicator(problem="pin 99 taken").description == "error: pin 99 taken"


@pytest.mark.parametrize(
    ("led", "message"),
    [
        ({"pin": 60}, "BCM numbers are 0-53"),
        ({"pin": " "}, "pin name"),
        ({"pin": 17, "colour": "red"}, "Extra inputs are not permitted"),
        ({}, "Field required"),
    ],
)
def test_a_bad_led_config_is_named(led: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StatusConfig.model_validate({"led": led})


def test_the_led_is_optional_and_takes_names_or_numbers() -> None:
    assert StatusConfig().led is None
    assert StatusConfig.model_validate({"led": {"pin": "GPIO17"}}).led is not None
    assert StatusConfig.model_validate({"led": {"pin": 17, "active_high": False}}).led is not None
