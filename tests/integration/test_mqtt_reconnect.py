"""Reconnects against a real mosquitto go through the full-jitter back-off."""

from __future__ import annotations

import threading
import uuid

from helpers import wait_until

from edge_agent.broker import LocalBroker
from edge_agent.encode import Topics
from edge_agent.mqtt import DrainSettings, MqttSettings, Publisher
from edge_agent.mqtt.client import Client, new_client
from edge_agent.outbox import Outbox

TIMEOUT_S = 30.0


class Recorder:
    """The random source: records each window and returns a quarter of it."""

    def __init__(self) -> None:
        self.windows: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, low: float, high: float) -> float:
        with self._lock:
            self.windows.append(high)
        return low + (high - low) / 4

    def seen(self) -> list[float]:
        with self._lock:
            return list(self.windows)


def test_publisher_reconnects_after_a_broker_restart_with_jittered_delays(
    private_broker: LocalBroker, outbox: Outbox
) -> None:
    recorder = Recorder()

    def factory(settings: MqttSettings, *, clean_session: bool) -> Client:
        return new_client(settings, clean_session=clean_session, uniform=recorder)

    settings = MqttSettings(
        host=private_broker.host,
        port=private_broker.port,
        client_id=f"jitter-{uuid.uuid4().hex[:8]}",
        reconnect_min_delay_s=0.2,
        reconnect_max_delay_s=0.8,
    )
    publisher = Publisher(
        settings,
        outbox,
        Topics(f"city/site{uuid.uuid4().hex[:8]}/dev1"),
        birth_payload={"version": "test", "boot": "b1"},
        drain=DrainSettings.unlimited(),
        client_factory=factory,
    )
    publisher.start()
    try:
        wait_until(lambda: publisher.connected, TIMEOUT_S, "the first connection")
        assert recorder.seen() == []  # no wait before a connection that worked

        private_broker.stop()
        wait_until(lambda: not publisher.connected, TIMEOUT_S, "the publisher to notice")
        wait_until(lambda: len(recorder.seen()) >= 4, TIMEOUT_S, "several attempts")
        private_broker.start()
        wait_until(lambda: publisher.connected, TIMEOUT_S, "the reconnection")
        assert publisher.stats().reconnects == 1
        windows = recorder.seen()
        # While the broker was down each attempt's window doubled, up to the cap.
        assert windows[:4] == [0.2, 0.4, 0.8, 0.8]
        assert set(windows[4:]) <= {0.8}

        # A connection that worked starts the back-off again at the base.
        before = len(windows)
        private_broker.restart()
        wait_until(lambda: publisher.stats().reconnects == 2, TIMEOUT_S, "the second reconnect")
        assert recorder.seen()[before] == 0.2
    finally:
        publisher.stop(5)
