"""``edge-provision release rollout`` over a real broker: four devices with the real
command handler and updater (only the agent behind them is fake: its health is set by the
test); the rollout goes wave by wave and stops when a device fails its health check."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import paho.mqtt.client as paho
from fakes.releases import PUBLIC_HEX, archive_of, make_release
from helpers import wait_until
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.broker import LocalBroker
from edge_agent.mqtt.settings import MqttSettings
from edge_agent.remote import CommandHandler
from edge_agent.update.config import UpdatesConfig
from edge_agent.update.manager import Updater
from provisioning.release import Fleet, rollout, wave_sizes


class FakeDevice:
    """MQTT in, the real CommandHandler and Updater, a fake agent (health by flag)."""

    def __init__(self, port: int, root: str, folder: Path, *, healthy: bool) -> None:
        self.root, self.healthy = root, healthy
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=root.replace("/", "-"), protocol=paho.MQTTv5
        )
        settings = UpdatesConfig(dir=folder, trusted_keys=[PUBLIC_HEX], health_deadline_s=1)
        self.updater = Updater(settings, self)
        self.handler = CommandHandler(self, updates=self.updater)  # type: ignore[arg-type]
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(f"{root}/cmd/+", qos=1)
        wait_until(subscribed.is_set, 10.0, "the device's subscription")

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        # Commands run off the network thread, as the agent's command queue does.
        threading.Thread(target=self._answer, args=(message,), daemon=True).start()

    def _answer(self, message: paho.MQTTMessage) -> None:
        reply = self.handler.handle(message.topic.rsplit("/", 1)[1], message.payload)
        assert reply is not None
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = message.properties.CorrelationData  # type: ignore[union-attr]
        topic = message.properties.ResponseTopic  # type: ignore[union-attr]
        self.client.publish(topic, reply.payload, qos=1, properties=properties)

    # the agent's side (edge_agent.update.manager.UpdateHost)
    def open_event_cameras(self) -> list[str]:
        return []

    def apply_release(self, kind: str) -> str | None:
        return None

    def health_problems(self, since_mono_s: float) -> list[str]:
        return [] if self.healthy else ["camera cam1: no frame since the switch"]

    def publish_update(self, body: dict[str, object]) -> None:
        self.client.publish(f"{self.root}/update", json.dumps(body), qos=1, retain=True)

    def restart_for_update(self) -> None:
        raise AssertionError("config releases do not restart")

    def close(self) -> None:
        self.updater.stop()
        self.client.publish(f"{self.root}/update", b"", qos=1, retain=True).wait_for_publish(5)
        self.client.loop_stop()
        self.client.disconnect()


def test_wave_sizes_are_cumulative_targets() -> None:
    assert wave_sizes("1,10,50%", 40) == [1, 9, 10, 20]
    assert wave_sizes("1,2,50%", 4) == [1, 1, 2]
    assert wave_sizes("100%", 3) == [3]
    assert wave_sizes("5", 3) == [3]


def test_a_rollout_stops_when_failures_pass_the_threshold(
    tmp_path: Path, broker: LocalBroker
) -> None:
    roots = [f"city/roll/dev-{n}" for n in range(4)]
    devices = [
        FakeDevice(broker.port, root, tmp_path / root.replace("/", "_"), healthy=(n != 1))
        for n, root in enumerate(roots)
    ]
    archive = tmp_path / "release.tar"
    config = {"config.yaml": b"site_id: roll\n"}
    archive.write_bytes(archive_of(make_release(tmp_path / "r", config, version="3")))
    fleet = Fleet(MqttSettings.consumer("127.0.0.1", broker.port, "rollout"), timeout_s=30.0)
    out = io.StringIO()
    try:
        code = rollout(
            fleet, archive, roots, waves="1,2,50%", max_failures=0, outcome_timeout_s=30.0, out=out
        )
    finally:
        fleet.close()
        for device in devices:
            device.close()
    lines = out.getvalue().splitlines()
    assert code == 1, lines
    assert lines[0].split("\t")[:3] == ["wave 1", roots[0], "kept"]
    assert lines[1].split("\t")[:3] == ["wave 2", roots[1], "rolled_back"]
    assert "stopped after wave 2" in lines[2] and "2 device(s) not sent" in lines[2]
    current = [d.updater.store.current("config") for d in devices]
    assert current == ["3", None, None, None]
