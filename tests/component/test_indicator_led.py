"""The status LED on gpiozero's mock pins: the patterns it drives, and bad pins."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import pairwise

import pytest
from gpiozero.pins.mock import MockFactory, MockPin
from helpers import wait_until

from edge_agent.config import StatusLedConfig
from edge_agent.indicator import (
    LED_RETRY_FIRST_S,
    LED_RETRY_MAX_S,
    PATTERNS,
    Condition,
    NoIndicator,
    RetryingLed,
    StatusError,
    StatusLed,
    open_indicator,
)

PIN = 17


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory()
    yield pins
    pins.close()


def pin(factory: MockFactory) -> MockPin:
    found: MockPin = factory.pin(PIN)
    return found


def transitions(mock_pin: MockPin) -> list[bool]:
    """The pin's levels, one per change (repeated writes of one level dropped)."""
    levels: list[bool] = []
    for state in mock_pin.states:
        if not levels or levels[-1] != bool(state.state):
            levels.append(bool(state.state))
    return levels


def test_ok_is_steady_on_and_stopped_is_off(factory: MockFactory) -> None:
    led = StatusLed(PIN, pin_factory=factory)
    led.show(Condition.OK)
    assert pin(factory).state
    led.show(Condition.STOPPED)
    assert not pin(factory).state
    led.close()


@pytest.mark.parametrize(
    "condition", [Condition.STARTING, Condition.UPLINK_DOWN, Condition.CAMERA_FAULT]
)
def test_trouble_blinks(factory: MockFactory, condition: Condition) -> None:
    led = StatusLed(PIN, pin_factory=factory)
    mock_pin = pin(factory)
    mock_pin.clear_states()
    led.show(condition)
    # Off, on, off, on, off: it blinks by itself (gpiozero's thread), nobody calls show()
    # again, in the condition's own rhythm (gpiozero's tolerance: 50 ms or 5 %).
    wait_until(lambda: len(transitions(mock_pin)) >= 5, 10.0, f"{condition.value} blinking")
    led.close()
    on_s, off_s = PATTERNS[condition].on_s, PATTERNS[condition].off_s
    expected = [(0.0, False), (0.0, True), (on_s, False), (off_s, True), (on_s, False)]
    assert len(mock_pin.states) >= len(expected)
    mock_pin.assert_states_and_times(expected)


def test_showing_the_same_condition_again_keeps_the_rhythm(factory: MockFactory) -> None:
    led = StatusLed(PIN, pin_factory=factory)
    led.show(Condition.OK)
    before = len(pin(factory).states)
    led.show(Condition.OK)  # the agent re-evaluates every second
    assert len(pin(factory).states) == before
    led.close()


def test_an_active_low_led_is_lit_by_a_low_pin(factory: MockFactory) -> None:
    led = StatusLed(PIN, active_high=False, pin_factory=factory)
    led.show(Condition.OK)
    assert not pin(factory).state
    led.close()
    assert pin(factory).state  # released dark: high


def test_closing_turns_it_off_and_frees_the_pin(factory: MockFactory) -> None:
    led = StatusLed(PIN, pin_factory=factory)
    led.show(Condition.UPLINK_DOWN)
    led.close()
    assert led.condition is Condition.STOPPED
    again = StatusLed(PIN, pin_factory=factory)  # would raise if the pin were still taken
    again.close()


def test_a_pin_in_use_is_a_clear_error(factory: MockFactory) -> None:
    first = StatusLed(PIN, pin_factory=factory)
    with pytest.raises(StatusError, match=f"pin {PIN}.*in use"):
        StatusLed(PIN, pin_factory=factory)
    first.close()


def test_an_unknown_pin_name_is_a_clear_error(factory: MockFactory) -> None:
    with pytest.raises(StatusError, match="'GPIO99'"):
        StatusLed("GPIO99", pin_factory=factory)


def test_the_agent_runs_on_without_a_led_that_cannot_be_set_up(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    taken = StatusLed(PIN, pin_factory=factory)
    with caplog.at_level(logging.ERROR):
        indicator = open_indicator(StatusLedConfig(pin=PIN), pin_factory=factory)
    assert isinstance(indicator, RetryingLed)
    assert indicator.description.startswith(f"error: status LED on pin {PIN}")
    assert indicator.unavailable is not None and "in use" in indicator.unavailable
    assert "running without a status LED" in caplog.text
    indicator.close()
    taken.close()
    assert isinstance(open_indicator(None), NoIndicator)
    assert NoIndicator().unavailable is None


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_a_pin_held_by_a_selftest_is_retried_with_backoff_until_it_opens(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    selftest = StatusLed(PIN, pin_factory=factory)  # ``edge-agent selftest``'s led line
    selftest.show(Condition.OK)
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="edge_agent.indicator"):
        indicator = RetryingLed(StatusLedConfig(pin=PIN), "taken", pin_factory=factory, clock=clock)
        # Shown every second by the housekeeping: tried after 1 s, 2 s, 4 s ... capped.
        tried_at: list[float] = []
        for _ in range(400):
            before = indicator.attempts
            indicator.show(Condition.UPLINK_DOWN)
            if indicator.attempts > before:
                tried_at.append(clock.now_s)
            clock.now_s += 1.0
        gaps = [b - a for a, b in pairwise(tried_at)]
        assert tried_at[0] - 1000.0 == LED_RETRY_FIRST_S
        assert gaps[:5] == [2.0, 4.0, 8.0, 16.0, 32.0]
        assert set(gaps[6:]) == {LED_RETRY_MAX_S}
        assert indicator.unavailable is not None and "in use" in indicator.unavailable
        assert indicator.condition is Condition.UPLINK_DOWN
        assert "works now" not in caplog.text  # failed retries are not logged

        selftest.close()  # the technician's self-test ends
        indicator.show(Condition.OK)
        assert indicator.unavailable is not None  # not due yet
        clock.now_s += LED_RETRY_MAX_S
        indicator.show(Condition.OK)
    assert indicator.unavailable is None
    assert indicator.description == f"pin {PIN}"
    assert pin(factory).state  # lit: ok is steady on
    assert f"status LED on pin {PIN} works now" in caplog.text
    indicator.close()
    assert not pin(factory).state
    assert indicator.condition is Condition.STOPPED


def test_a_closed_retrying_led_never_takes_the_pin(factory: MockFactory) -> None:
    """A housekeeping pass after the agent's stop must not open (and leak) the pin."""
    selftest = StatusLed(PIN, pin_factory=factory)
    clock = FakeClock()
    indicator = RetryingLed(StatusLedConfig(pin=PIN), "taken", pin_factory=factory, clock=clock)
    indicator.close()
    selftest.close()
    clock.now_s += LED_RETRY_MAX_S
    indicator.show(Condition.OK)
    assert indicator.attempts == 1 and indicator.unavailable == "taken"
    StatusLed(PIN, pin_factory=factory).close()  # free: would raise if the pin were taken
