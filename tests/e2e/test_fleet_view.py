"""``edge-agent watch --fleet`` as an operator runs it: three real agents (simulated empty
streets) on a real mosquitto, one of them SIGKILLed; ``announce`` over the wire."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import yaml
from api_contract import validator
from helpers import sim_camera, wait_until
from realdata import require_model

from edge_agent.broker import LocalBroker
from edge_agent.mqtt import MqttSettings, ReceivedMessage, Subscriber

EDGE_AGENT = [sys.executable, "-m", "edge_agent.cli"]
SITE = "fleet-site"
DEVICES = ("dev-a", "dev-b", "dev-c")
TIMEOUT_S = 60.0


class Heard:
    """Everything the test's own consumer received, by topic (paho's thread appends)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[ReceivedMessage] = []

    def __call__(self, message: ReceivedMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def on(self, device: str, kind: str, *, retained: bool | None = None) -> list[ReceivedMessage]:
        topic = f"city/{SITE}/{device}/{kind}"
        with self._lock:
            return [
                m
                for m in self.messages
                if m.topic.startswith(topic) and (retained is None or m.retain == retained)
            ]

    def state(self, device: str) -> str | None:
        statuses = self.on(device, "status")
        return json.loads(statuses[-1].payload)["state"] if statuses else None


def start_agent(tmp_path: Path, port: int, device: str) -> subprocess.Popen[str]:
    config = {
        "site_id": SITE,
        "device_id": device,
        "cameras": [sim_camera(scenario="empty_street", width=320, height=180)],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "mqtt": {"host": "127.0.0.1", "port": port},
        "outbox": {"path": str(tmp_path / f"{device}.db")},
        "references": {"directory": None},
    }  # stats every 60 s (the default): only `announce` brings them within the test
    path = tmp_path / f"{device}.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp_path / f"{device}.log").open("w")
    return subprocess.Popen(
        [*EDGE_AGENT, "run", "--config", str(path)], stdout=log, stderr=log, text=True
    )


def test_the_fleet_view_lists_every_device_the_killed_one_first_and_announce_rebirths(
    tmp_path: Path, broker: LocalBroker, child_processes: list[subprocess.Popen[str]]
) -> None:
    require_model("ssd_mobilenet_v1")
    heard = Heard()
    with Subscriber(
        MqttSettings.consumer("127.0.0.1", broker.port, "fleet-test-observer"),
        [f"city/{SITE}/#"],
        heard,
    ) as observer:
        observer.start(timeout_s=10.0)
        agents = {d: start_agent(tmp_path, broker.port, d) for d in DEVICES}
        child_processes.extend(agents.values())
        wait_until(
            lambda: all(heard.state(d) == "online" for d in DEVICES), TIMEOUT_S, "three births"
        )

        def listening(device: str) -> bool:
            """Whether it answered a ping (sent again on each poll: one sent before the
            device subscribed to its commands is lost)."""
            if heard.on(device, "reply/test"):
                return True
            root = f"city/{SITE}/{device}"
            observer.publish(f"{root}/cmd/ping", b"{}", response_topic=f"{root}/reply/test")
            return False

        wait_until(lambda: all(listening(d) for d in DEVICES), TIMEOUT_S, "agents listening")
        agents["dev-c"].send_signal(signal.SIGKILL)
        wait_until(lambda: heard.state("dev-c") == "offline", TIMEOUT_S, "dev-c's Last Will")
        births_before = len(heard.on("dev-a", "status", retained=False))

        result = subprocess.run(
            [*EDGE_AGENT, "watch", "--fleet", "--once", "--json", "--announce",
             "--port", str(broker.port), "--site", SITE, "--wait-s", "30"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        snapshot = json.loads(result.stdout)
        rows = snapshot["rows"]
        assert [(r["device"], r["state"]) for r in rows] == [
            ("dev-c", "offline"),
            ("dev-a", "online"),
            ("dev-b", "online"),
        ], rows
        assert rows[0]["trouble"] == "offline" and snapshot["summary"]["offline"] == 1
        for row in rows[1:]:
            assert row["announced"] is True and row["version"] and row["boot"]
            assert row["model"] == "ssd_mobilenet_v1" and row["cameras"] == {"cam1": "ok"}
            assert isinstance(row["outbox_rows"], int) and row["condition"] in ("starting", "ok")
        assert "announce sent to 2 device(s)" in result.stderr

        # announce made dev-a publish its birth again (same bytes as at connect) and stats.
        wait_until(
            lambda: len(heard.on("dev-a", "status", retained=False)) > births_before,
            TIMEOUT_S,
            "dev-a's birth again",
        )
        first, again = heard.on("dev-a", "status")[0], heard.on("dev-a", "status")[-1]
        assert again.payload == first.payload and again.retain is False  # live delivery
        stats = heard.on("dev-a", "stats")
        assert stats, "announce sent no stats"
        validator("stats").validate(json.loads(stats[-1].payload))
        assert not heard.on("dev-c", "stats")  # the dead one was not asked


def test_the_fleet_view_refuses_one_device_and_an_unreachable_broker() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    for extra, reason in (
        (["--device", "dev-a"], "drop --device"),
        ([], "cannot connect to MQTT broker"),
    ):
        result = subprocess.run(
            [*EDGE_AGENT, "watch", "--fleet", "--once", "--port", port, *extra],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert reason in result.stderr
