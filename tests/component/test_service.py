"""The agent under a fake systemd: a real datagram socket as ``$NOTIFY_SOCKET`` sees READY,
STATUS and WATCHDOG — and no WATCHDOG while the camera (hw-sim's MJPEG camera, switched
off) is dead; a reload that is refused changes nothing and says why."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fakes.detect import StaticDetector
from fakes.notify import NotifyListener
from helpers import sim_camera, wait_until
from hw_sim.mjpeg import MjpegServer

from edge_agent import app
from edge_agent.broker import LocalBroker
from edge_agent.config import parse_config

TIMEOUT_S = 30.0


def picture(index: int) -> np.ndarray:
    return np.full((120, 160, 3), index % 250, np.uint8)


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    """systemd's side: NOTIFY_SOCKET and a watchdog of 0.4 s (a ping every 0.2 s)."""
    with NotifyListener() as notify:
        monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
        monkeypatch.setenv("WATCHDOG_USEC", "400000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield notify


def config_data(tmp_path: Path, port: int, camera: dict[str, Any]) -> dict[str, Any]:
    return {
        "site_id": "svc-site",
        "device_id": "dev-1",
        "cameras": [camera],
        "mqtt": {"host": "127.0.0.1", "port": port},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "references": {"directory": None},
        "status": {"camera_silent_after_s": 1.0},
    }


def first_index(listener: NotifyListener, predicate: Any) -> int | None:
    return next((i for i, m in enumerate(listener.messages()) if predicate(m)), None)


def test_watchdog_pings_only_while_the_camera_delivers(
    tmp_path: Path,
    broker: LocalBroker,
    listener: NotifyListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app, "build_detector", lambda config: StaticDetector())
    camera = MjpegServer(picture, fps=10.0)
    camera.start()
    source = {"kind": "opencv", "uri": camera.url, "reconnect_min_delay_s": 0.1,
              "reconnect_max_delay_s": 0.5, "read_timeout_s": 1.0}  # fmt: skip
    agent = app.Agent(
        parse_config(config_data(tmp_path, broker.port, {"id": "cam1", "fps": 5, "source": source}))
    )
    agent.start()
    try:
        wait_until(lambda: listener.with_key("READY", "1"), TIMEOUT_S, "READY=1")
        wait_until(lambda: listener.with_key("WATCHDOG", "1"), TIMEOUT_S, "a watchdog ping")
        pinged = listener.with_key("WATCHDOG", "1")[0]
        assert pinged["STATUS"].startswith("1 camera(s) ok")
        assert "outbox 0 queued" in pinged["STATUS"]

        camera.stop()  # the camera loses power
        wait_until(
            lambda: first_index(listener, lambda m: "silent: cam1" in m.get("STATUS", "")),
            TIMEOUT_S,
            "STATUS saying cam1 is silent",
        )
        dead_from = first_index(listener, lambda m: "silent: cam1" in m.get("STATUS", ""))
        assert dead_from is not None
        wait_until(
            lambda: len(listener.messages()) >= dead_from + 4, TIMEOUT_S, "4 updates while dead"
        )
        while_dead = listener.messages()[dead_from : dead_from + 4]
        assert all("silent: cam1" in m["STATUS"] for m in while_dead)
        assert not [m for m in while_dead if "WATCHDOG" in m]

        camera.start()  # power is back: the pings come back with the frames
        wait_until(
            lambda: "WATCHDOG" in listener.messages()[-1], TIMEOUT_S, "pings after the camera"
        )
    finally:
        agent.stop(flush_timeout_s=1.0)
        camera.stop()
    assert listener.messages()[-1] == {"STOPPING": "1", "STATUS": "stopping"}


def test_a_bad_reload_changes_nothing_and_says_why(
    tmp_path: Path,
    broker: LocalBroker,
    listener: NotifyListener,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(app, "build_detector", lambda config: StaticDetector())
    good = config_data(tmp_path, broker.port, sim_camera(scenario="empty_street"))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(good))
    agent = app.Agent(parse_config(good), config_path=path)
    agent.start()
    try:
        wait_until(lambda: listener.with_key("WATCHDOG", "1"), TIMEOUT_S, "a watchdog ping")
        config, outbox, workers = agent.config, agent.outbox, agent.workers
        bad = {**good, "cameras": [{**sim_camera(), "fps": 0}], "mqtt": {"port": 1}}
        path.write_text(yaml.safe_dump(bad))
        with caplog.at_level(logging.ERROR, logger="edge_agent.app"):
            outcome = agent.reload()
        assert not outcome.applied
        assert agent.config is config and agent.outbox is outbox and agent.workers is workers
        assert "cameras[0].fps" in outcome.summary()
        assert f"config {path} refused, the running config is kept" in caplog.text
        assert "cameras[0].fps" in caplog.text
        # The datagrams arrive on the listener's thread: wait for both, not just the call.
        wait_until(
            lambda: (
                (i := first_index(listener, lambda m: "RELOADING" in m)) is not None
                and len(listener.messages()) > i + 1
            ),
            TIMEOUT_S,
            "RELOADING and the READY after it",
        )
        reloading = first_index(listener, lambda m: "RELOADING" in m)
        assert reloading is not None
        ready_again = listener.messages()[reloading + 1]
        assert ready_again["READY"] == "1" and "cameras[0].fps" in ready_again["STATUS"]
        # The cameras ran on: the watchdog is still fed after the refusal.
        wait_until(
            lambda: any("WATCHDOG" in m for m in listener.messages()[reloading + 2 :]),
            TIMEOUT_S,
            "a ping after the refused reload",
        )
        assert all(t.is_alive() for t in agent._threads)
    finally:
        agent.stop(flush_timeout_s=1.0)
