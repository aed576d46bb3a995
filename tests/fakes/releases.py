"""Signed releases for the update tests, made as the operator's tool makes them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from helpers import sim_camera, wait_until

from edge_agent import crypto
from edge_agent.app import Agent
from edge_agent.config import parse_config
from edge_agent.update.release import METADATA, make_metadata, sign_metadata
from edge_agent.update.transfer import pack
from fakes.centre import Centre

KEY = crypto.ed25519_new_key()
PUBLIC_HEX = crypto.ed25519_public(KEY).hex()
OTHER_KEY = crypto.ed25519_new_key()
CHUNK_BYTES = 40_000  # a chunk's data, under the 64 kB command payload once base64


def make_release(
    folder: Path,
    files: dict[str, bytes],
    *,
    kind: str = "config",
    version: str = "2",
    expires: datetime | None = None,
    key: bytes = KEY,
) -> Path:
    """``folder`` holding ``files`` and their release.json, signed with ``key``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    expires = expires or datetime.now(timezone.utc) + timedelta(days=30)
    body = make_metadata(folder, kind=kind, version=version, expires=expires)
    (folder / METADATA).write_text(json.dumps(body))
    sign_metadata(folder, key)
    return folder


def archive_of(folder: Path) -> bytes:
    """The tar the devices take (``edge-provision release pack``)."""
    out = folder.with_name(folder.name + ".tar")
    pack(folder, out)
    return out.read_bytes()


def send_archive(
    centre: Centre, archive: bytes, name: str, *, commit_timeout_s: float = 30.0
) -> dict[str, object]:
    """The archive to the device in ``update_chunk``s after its ``update_begin`` (each
    reply checked), then the ``update_commit``: the commit's reply."""
    centre.send(
        "update_begin",
        {"id": name, "size": len(archive), "sha256": hashlib.sha256(archive).hexdigest()},
        f"{name}-b".encode(),
    )
    assert centre.reply_body(f"{name}-b".encode())["have"] == 0
    for offset in range(0, len(archive), CHUNK_BYTES):
        piece = archive[offset : offset + CHUNK_BYTES]
        tag = f"{name}-{offset}".encode()
        body = {"id": name, "offset": offset, "data": base64.b64encode(piece).decode()}
        centre.send("update_chunk", body, tag)
        assert centre.reply_body(tag)["have"] == offset + len(piece)
    centre.send("update_commit", {"id": name}, f"{name}-c".encode())
    return centre.reply_body(f"{name}-c".encode(), timeout_s=commit_timeout_s)


def updating_agent_config(
    site_id: str,
    *,
    model: str,
    broker_port: int,
    tmp_path: Path,
    releases: Path,
    health_deadline_s: float,
) -> dict[str, Any]:
    """An agent on the simulator's empty street that takes updates signed with ``KEY``."""
    return {
        "site_id": site_id,
        "device_id": "dev-1",
        "cameras": [sim_camera(scenario="empty_street", loop=True)],
        "detector": {"model": model, "layout": "ssd_postprocess", "threads": 1},
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "reconnect_min_delay_s": 0.5},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "references": {"directory": None},
        "updates": {
            "dir": str(releases),
            "trusted_keys": [PUBLIC_HEX],
            "health_deadline_s": health_deadline_s,
        },
    }


@dataclass
class UpdatingAgent:
    """An agent taking updates and a centre on its root; ``restart`` as systemd would."""

    agent: Agent
    centre: Centre
    data: dict[str, Any]
    path: Path

    def restart(self) -> None:
        """As systemd would after the agent exited: a new process on the same files."""
        self.agent.stop()
        self.agent = Agent(parse_config(self.data), config_path=self.path)
        self.agent.start()


@contextmanager
def running_updating_agent(
    data: dict[str, Any], path: Path, broker_port: int, root: str
) -> Iterator[UpdatingAgent]:
    """``data`` written to ``path`` and run as an agent listening for commands, with a
    centre on its root; the agent of the moment stopped after, its retained ``update``
    cleared."""
    path.write_text(yaml.safe_dump(data))
    centre = Centre(broker_port, root)
    running = UpdatingAgent(Agent(parse_config(data), config_path=path), centre, data, path)
    running.agent.start()
    try:
        wait_until(lambda: running.agent.publisher.commands_ready, 30.0, "the agent listening")
        yield running
    finally:
        running.agent.stop()
        centre.client.publish(f"{root}/update", b"", qos=1, retain=True).wait_for_publish(10)
        centre.close()
