"""The running agent's status LED (gpiozero mock pins) against a real broker that goes
away and comes back, and a camera that sends nothing."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin
from helpers import wait_until
from realdata import require_model

from edge_agent.app import Agent
from edge_agent.broker import LocalBroker
from edge_agent.config import parse_config
from edge_agent.indicator import Condition, StatusLed

PIN = 17
MODEL = "ssd_mobilenet_v1"


@pytest.fixture
def mock_pins() -> Iterator[MockFactory]:
    """gpiozero's default pin factory, as the agent uses it, swapped for mock pins."""
    before = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.close()
        Device.pin_factory = before


def config(tmp_path: Path, port: int, source: dict[str, Any]) -> dict[str, Any]:
    return {
        "site_id": "led-site",
        "device_id": "dev-1",
        "cameras": [{"id": "cam1", "fps": 5, "source": source}],
        "detector": {"model": MODEL, "threads": 1},
        "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min_delay_s": 0.2,
                 "reconnect_max_delay_s": 0.5},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "status": {"led": {"pin": PIN}, "camera_silent_after_s": 2.0},
    }  # fmt: skip


def blinks(pin: MockPin) -> bool:
    """Whether the pin went off and on again since its history was cleared."""
    levels = [bool(s.state) for s in pin.states]
    changes = sum(1 for a, b in pairwise(levels) if a != b)
    return changes >= 2


def test_the_led_follows_the_uplink(
    tmp_path: Path, private_broker: LocalBroker, mock_pins: MockFactory
) -> None:
    require_model(MODEL)
    sim = {"kind": "sim", "scenario": "empty_street", "width": 320, "height": 180}
    agent = Agent(parse_config(config(tmp_path, private_broker.port, sim)))
    pin: MockPin = mock_pins.pin(PIN)
    try:
        assert agent.indicator.condition is Condition.STARTING
        agent.start()
        wait_until(lambda: agent.indicator.condition is Condition.OK, 20.0, "the LED showing ok")
        assert pin.state
        assert agent.status_report()["condition"] == "ok"
        assert agent.status_report()["status_led"] == f"pin {PIN}"

        private_broker.stop()
        wait_until(lambda: agent.indicator.condition is Condition.UPLINK_DOWN, 20.0, "uplink_down")
        pin.clear_states()
        wait_until(lambda: blinks(pin), 10.0, "the LED blinking for the lost uplink")

        private_broker.start()
        wait_until(lambda: agent.indicator.condition is Condition.OK, 20.0, "ok again")
    finally:
        agent.stop(flush_timeout_s=1.0)
    assert agent.indicator.condition is Condition.STOPPED
    assert not pin.state


def test_a_camera_that_sends_nothing_is_a_camera_fault(
    tmp_path: Path, private_broker: LocalBroker, mock_pins: MockFactory
) -> None:
    require_model(MODEL)
    # Nothing listens on the discard port: the stream never opens, the backend retries.
    dead = {"kind": "opencv", "uri": "rtsp://127.0.0.1:9/stream", "reconnect_max_delay_s": 1.0}
    agent = Agent(parse_config(config(tmp_path, private_broker.port, dead)))
    try:
        agent.start()
        wait_until(
            lambda: agent.indicator.condition is Condition.CAMERA_FAULT, 20.0, "camera_fault"
        )
        assert agent.publisher.connected  # the uplink is fine: the camera is what is wrong
        assert agent.status_report()["condition"] == "camera_fault"
    finally:
        agent.stop(flush_timeout_s=1.0)


def test_a_pin_a_selftest_held_at_start_is_taken_once_it_is_free(
    tmp_path: Path, private_broker: LocalBroker, mock_pins: MockFactory
) -> None:
    """The agent started while ``edge-agent selftest`` lit the LED: it ran dark for its
    whole life. Now its housekeeping tries the pin again and the LED shows the condition."""
    require_model(MODEL)
    selftest = StatusLed(PIN, pin_factory=mock_pins)  # the self-test's led line
    selftest.show(Condition.OK)
    sim = {"kind": "sim", "scenario": "empty_street", "width": 320, "height": 180}
    agent = Agent(parse_config(config(tmp_path, private_broker.port, sim)))
    pin: MockPin = mock_pins.pin(PIN)
    try:
        agent.start()
        report = agent.status_report()
        assert "in use" in str(report["status_led_unavailable"])
        assert str(report["status_led"]).startswith("error: ")
        selftest.close()  # the technician's self-test ends
        wait_until(
            lambda: "status_led_unavailable" not in agent.status_report(), 30.0, "the pin taken"
        )
        assert agent.status_report()["status_led"] == f"pin {PIN}"
        wait_until(lambda: agent.indicator.condition is Condition.OK, 20.0, "the LED showing ok")
        wait_until(lambda: bool(pin.state), 5.0, "the LED lit")
    finally:
        agent.stop(flush_timeout_s=1.0)
    assert not pin.state
