"""``reload`` over a real broker: a good config applies (the camera's new fps) and the
device's ``seq`` runs on with no gap and no repeat at a subscriber across the reload; a
bad one is refused with the reason and the cameras run on."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from fakes.centre import Centre
from helpers import sim_camera, wait_until
from realdata import require_model

from edge_agent.app import Agent
from edge_agent.broker import LocalBroker
from edge_agent.config import parse_config

TIMEOUT_S = 60.0
ROOT = "city/reload-site/dev-1"


def seq_of(message: paho.MQTTMessage) -> int | None:
    """The durable messages' seq (MQTT 5 user property, on JSON and JPEG alike)."""
    for key, value in getattr(message.properties, "UserProperty", None) or []:
        if key == "seq":
            return int(value)
    return None


def seqs(centre: Centre) -> list[int]:
    return [s for s in (seq_of(m) for m in centre.inbox.all()) if s is not None]


def event_steps(centre: Centre) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in centre.inbox.all() if "/events/" in m.topic]


@pytest.fixture
def reloadable(tmp_path: Path, broker: LocalBroker) -> Iterator[tuple[Agent, Centre, Path]]:
    require_model("ssd_mobilenet_v1")
    data = {
        "site_id": "reload-site",
        "device_id": "dev-1",
        "cameras": [sim_camera(loop=True)],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "reconnect_min_delay_s": 0.5},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "references": {"directory": None},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    centre = Centre(broker.port, ROOT)
    agent = Agent(parse_config(data), config_path=path)
    agent.start()
    try:
        wait_until(lambda: agent.publisher.commands_ready, 30.0, "the agent listening")
        yield agent, centre, path
    finally:
        agent.stop()
        centre.close()


def test_a_good_reload_applies_and_seq_has_no_gap_and_no_repeat(
    reloadable: tuple[Agent, Centre, Path],
) -> None:
    agent, centre, path = reloadable
    wait_until(lambda: any(e["type"] == "new" for e in event_steps(centre)), TIMEOUT_S, "an event")
    outbox = agent.outbox
    data = yaml.safe_load(path.read_text())
    data["cameras"][0]["fps"] = 4
    path.write_text(yaml.safe_dump(data))

    centre.send("reload", {}, b"r1")
    body = centre.reply_body(b"r1")
    assert body == {"ok": True, "config": str(path), "changed": ["cameras"]}
    assert agent.config.cameras[0].fps == 4 and agent.workers[0].config.fps == 4
    assert agent.outbox is outbox  # the same file, the same counters
    at_reload = outbox.stats().last_seq

    # The person in the looping scene is found again by the new pipeline.
    wait_until(
        lambda: any(e["type"] == "new" and e["seq"] > at_reload for e in event_steps(centre)),
        TIMEOUT_S,
        "an event after the reload",
    )
    last = outbox.stats().last_seq
    wait_until(lambda: set(range(1, last + 1)) <= set(seqs(centre)), TIMEOUT_S, "every seq")
    received = seqs(centre)
    assert [s for s, n in Counter(received).items() if n > 1] == []
    assert sorted(received) == list(range(1, max(received) + 1))
    # Every event open at the reload was ended before the new cameras opened theirs.
    ids = {e["id"] for e in event_steps(centre) if e["seq"] <= at_reload}
    ended = {e["id"] for e in event_steps(centre) if e["type"] == "end"}
    assert ids <= ended


def test_a_bad_reload_is_refused_with_the_reason(reloadable: tuple[Agent, Centre, Path]) -> None:
    agent, centre, path = reloadable
    config, workers = agent.config, agent.workers
    path.write_text("site_id: reload-site\ncameras: []\n")
    centre.send("reload", {}, b"r2")
    body = centre.reply_body(b"r2")
    assert body["ok"] is False
    assert "refused, the running config is kept" in str(body["error"])
    assert "cameras" in str(body["error"]) and "device_id" in str(body["error"])
    assert agent.config is config and agent.workers is workers
    frames = agent.workers[0].pipeline.clock.frames
    wait_until(lambda: agent.workers[0].pipeline.clock.frames > frames, 30.0, "frames go on")


def test_a_reload_whose_new_camera_is_not_a_video_keeps_the_running_cameras(
    reloadable: tuple[Agent, Centre, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """check-config finds the file there; only opening it finds it is no video. The
    running camera comes back and the reply says which camera and why; one error line,
    no traceback (it logged one, for bad input)."""
    agent, centre, path = reloadable
    not_video = tmp_path / "clip.mp4"
    not_video.write_bytes(bytes(range(256)) * 100)
    data = yaml.safe_load(path.read_text())
    data["cameras"].append({"id": "cam2", "source": {"kind": "opencv", "uri": str(not_video)}})
    path.write_text(yaml.safe_dump(data))
    with caplog.at_level(logging.INFO, logger="edge_agent"):
        centre.send("reload", {}, b"r3")
        body = centre.reply_body(b"r3")
    assert body["ok"] is False and "camera cam2: cannot decode video file" in str(body["error"])
    assert agent.camera_ids() == ("cam1",)
    frames = agent.workers[0].pipeline.clock.frames
    wait_until(lambda: agent.workers[0].pipeline.clock.frames > frames, 30.0, "frames go on")
    assert not [r for r in caplog.records if r.exc_info], "a traceback for bad input"
