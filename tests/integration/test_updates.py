"""Signed updates over a real broker with a real agent (docs/updates.md): a good config
release switches and stays; a config whose camera is dead and a model file that is not a
model each fail and roll back by themselves; tampered, older and expired releases are
refused with the reason. The releases go as ``update_begin`` / ``update_chunk`` /
``update_commit``, and ``update_fetch`` takes one from a local http server. The agent's own
update, from a real wheel to the launched new agent: test_agent_update.py."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes.centre import Centre
from fakes.releases import (
    KEY,
    OTHER_KEY,
    UpdatingAgent,
    archive_of,
    make_release,
    running_updating_agent,
    updating_agent_config,
)
from fakes.releases import send_archive as send
from helpers import wait_until
from realdata import require_model

from edge_agent import crypto
from edge_agent.broker import LocalBroker
from edge_agent.update.release import verify_release
from edge_agent.update.store import ReleaseStore

ROOT = "city/upd-site/dev-1"
TIMEOUT_S = 60.0


Device = UpdatingAgent


@pytest.fixture
def device(tmp_path: Path, broker: LocalBroker) -> Iterator[Device]:
    """An agent taking updates, its model installed as model release 1."""
    releases = tmp_path / "releases"
    store = ReleaseStore(releases)
    folder = store.staging / "m1.d"
    folder.mkdir()
    shutil.copyfile(require_model("ssd_mobilenet_v1"), folder / "model.tflite")
    make_release(folder, {}, kind="model", version="1")
    now = datetime.now(timezone.utc)
    model = verify_release(
        folder, trusted_keys=[crypto.ed25519_public(KEY)], installed=None, now=now
    )
    store.keep(store.switch(store.place(model)), "installed at the factory")
    data = updating_agent_config(
        "upd-site",
        model=str(releases / "model" / "current" / "model.tflite"),
        broker_port=broker.port,
        tmp_path=tmp_path,
        releases=releases,
        health_deadline_s=10,
    )
    path = tmp_path / "config.yaml"
    with running_updating_agent(data, path, broker.port, ROOT) as running:
        yield running


def outcome(
    centre: Centre, kind: str, version: str, phases: tuple[str, ...] = ("kept", "rolled_back")
) -> dict[str, Any]:
    """The device's final word on ``kind`` ``version`` on its ``update`` topic (the
    fixture clears the retained one, so nothing is left from an earlier test)."""

    def final() -> dict[str, Any] | None:
        for message in reversed(centre.inbox.at(f"{ROOT}/update")):
            body = json.loads(message.payload) if message.payload else {}
            if (body.get("kind"), body.get("version")) == (kind, version) and body[
                "phase"
            ] in phases:
                return dict(body)
        return None

    wait_until(lambda: final() is not None, TIMEOUT_S, f"the outcome of release {version}")
    result = final()
    assert result is not None
    return result


def config_release(tmp_path: Path, data: dict[str, Any], version: str, **options: Any) -> bytes:
    files = {"config.yaml": yaml.safe_dump(data).encode()}
    return archive_of(make_release(tmp_path / f"c{version}", files, version=version, **options))


def test_a_good_config_release_switches_and_stays_and_bad_ones_are_refused(
    tmp_path: Path, device: Device
) -> None:
    agent, centre, data = device.agent, device.centre, device.data
    changed = json.loads(json.dumps(data))
    changed["cameras"][0]["fps"] = 4
    reply = send(centre, config_release(tmp_path, changed, "2"), "c2")
    assert reply == {
        "ok": True,
        "kind": "config",
        "version": "2",
        "previous": None,
        "state": "switching",
    }
    kept = outcome(centre, "config", "2")
    assert kept["phase"] == "kept", kept
    assert agent.config.cameras[0].fps == 4
    assert agent.config_path == Path(data["updates"]["dir"]) / "config" / "current" / "config.yaml"
    centre.send("status", {}, b"s1")
    status = centre.reply_body(b"s1")
    assert status["update"]["current"]["config"] == "2"  # type: ignore[index]
    assert status["update"]["last"]["phase"] == "kept"  # type: ignore[index]

    refusals = {
        "older": (config_release(tmp_path, changed, "1"), "older than the installed 2"),
        "expired": (
            config_release(
                tmp_path, changed, "7", expires=datetime.now(timezone.utc) - timedelta(hours=1)
            ),
            "expired",
        ),
        "wrongkey": (
            config_release(tmp_path, changed, "8", key=OTHER_KEY),
            "not signed by a trusted key",
        ),
    }
    for name, (archive, why) in refusals.items():
        body = send(centre, archive, name)
        assert body["ok"] is False and why in str(body["error"]), body
    tampered = tmp_path / "c9"
    make_release(tampered, {"config.yaml": yaml.safe_dump(changed).encode()}, version="9")
    (tampered / "config.yaml").write_text(yaml.safe_dump(changed).replace("fps: 4", "fps: 5"))
    body = send(centre, archive_of(tampered), "tampered")
    assert body["ok"] is False and "does not match its sha256" in str(body["error"])
    assert agent.config.cameras[0].fps == 4  # nothing changed


def test_a_config_whose_camera_is_dead_rolls_back_by_itself(tmp_path: Path, device: Device) -> None:
    agent, centre, data = device.agent, device.centre, device.data
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = json.loads(json.dumps(data))
    dead["cameras"][0]["source"] = {"kind": "opencv", "uri": f"rtsp://127.0.0.1:{port}/none"}
    reply = send(centre, config_release(tmp_path, dead, "2"), "dead")
    assert reply["ok"] is True
    rolled = outcome(centre, "config", "2")
    assert rolled["phase"] == "rolled_back", rolled
    assert "cam1" in rolled["reason"]
    assert agent.config.cameras[0].source.kind == "sim"  # type: ignore[union-attr]
    assert ReleaseStore(Path(data["updates"]["dir"])).current("config") is None
    frames = agent.workers[0].pipeline.clock.frames
    wait_until(lambda: agent.workers[0].pipeline.clock.frames > frames, 30.0, "frames again")


def test_a_model_that_is_not_a_model_rolls_back_and_a_good_one_stays(
    tmp_path: Path, device: Device
) -> None:
    agent, centre, data = device.agent, device.centre, device.data
    detector = agent.detectors.for_camera("cam1")
    bad = archive_of(make_release(tmp_path / "m2", {"model.tflite": b"not a model"}, kind="model"))
    served = tmp_path / "www"
    served.mkdir()
    (served / "m2.tar").write_bytes(bad)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/m2.tar"
        body = {"id": "m2", "url": url, "size": len(bad), "sha256": hashlib.sha256(bad).hexdigest()}
        centre.send("update_fetch", body, b"f1")
        assert centre.reply_body(b"f1")["ok"] is True
    finally:
        server.shutdown()
        server.server_close()
    rolled = outcome(centre, "model", "2")
    assert rolled["phase"] == "rolled_back" and "could not be applied" in rolled["reason"]
    assert ReleaseStore(Path(data["updates"]["dir"])).current("model") == "1"
    # The old release applied again: its model loaded again from model/current (version 1).
    rolled_back_detector = agent.detectors.for_camera("cam1")
    assert rolled_back_detector.model_name == detector.model_name
    frames = agent.workers[0].pipeline.clock.frames
    wait_until(lambda: agent.workers[0].pipeline.clock.frames > frames, 30.0, "frames again")

    # A good model release (the same network, as a new version) switches and stays.
    good = {"model.tflite": require_model("ssd_mobilenet_v1").read_bytes()}
    reply = send(
        centre, archive_of(make_release(tmp_path / "m3", good, kind="model", version="3")), "m3"
    )
    assert reply["previous"] == "1"
    assert outcome(centre, "model", "3")["phase"] == "kept"
    assert (
        agent.detectors.for_camera("cam1") is not rolled_back_detector
    )  # loaded again from model/current
    assert ReleaseStore(Path(data["updates"]["dir"])).previous("model") == "1"
