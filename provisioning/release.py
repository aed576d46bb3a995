"""``edge-provision release``: the operator's side of signed updates (docs/updates.md).

    edge-provision release keygen KEY                # the signing key (keep it offline)
    edge-provision release make DIR --kind model --version 7 --expires 2027-01-01 --key KEY
    edge-provision release agent DIR WHEEL... --expires 2027-01-01 --key KEY
    edge-provision release sign DIR --key KEY2       # a second signature (key rotation)
    edge-provision release pack DIR OUT.tar
    edge-provision release rollout OUT.tar --devices city/s/pi-1,city/s/pi-2 --waves 1,10,50%

An agent release is the agent's wheel (``edge_agent-{version}-….whl``; the release takes
its version) and any dependency wheels that changed, for the devices' platform; the device
installs them beside the running agent over its factory venv (edge_agent.update.agent_env).

A rollout sends the archive to each device of a wave over MQTT (``update_begin``, the
``update_chunk`` s, ``update_commit``), waits for each device's outcome on its retained
``{root}/update``, and goes on to the next wave only while the failures (refused, rolled
back, no answer in time) stay at or under ``--max-failures``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import re
import shutil
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge_agent import crypto
from edge_agent.files import write_atomic
from edge_agent.mqtt.client import PacketTypes, new_client, new_properties
from edge_agent.mqtt.settings import MqttSettings
from edge_agent.update.release import (
    METADATA,
    VERSION,
    ReleaseRefused,
    agent_wheel,
    make_metadata,
    sign_metadata,
)
from edge_agent.update.transfer import pack

__all__ = ["Fleet", "register", "wave_sizes"]

CHUNK_BYTES = 45_000  # base64 in a JSON command: under the device's 64 kB payload limit
FINAL = ("kept", "rolled_back", "refused")


def wave_sizes(spec: str, devices: int) -> list[int]:
    """How many devices each wave adds: ``spec`` lists cumulative targets, counts or
    percentages of the fleet ("1,10,50%"); a last wave takes the rest.

    >>> wave_sizes("1,10,50%", 40)
    [1, 9, 10, 20]
    """
    sizes, done = [], 0
    for part in [p.strip() for p in spec.split(",") if p.strip()] + ["100%"]:
        target = math.ceil(devices * float(part[:-1]) / 100) if part.endswith("%") else int(part)
        target = min(max(target, done), devices)
        if target > done:
            sizes.append(target - done)
            done = target
    return sizes


@dataclass
class Fleet:
    """Request/response to devices over one MQTT connection (MQTT 5)."""

    settings: MqttSettings
    reply_level: str = "rollout"
    timeout_s: float = 60.0
    _client: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _changed: threading.Condition = field(init=False)
    _replies: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    _outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _counter: int = 0

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)
        self._client = new_client(self.settings, clean_session=True)
        connected = threading.Event()
        self._client.on_connect = lambda *_a: connected.set()
        self._client.on_message = self._on_message
        self._client.connect(self.settings.host, self.settings.port)
        self._client.loop_start()
        if not connected.wait(self.timeout_s):
            raise ConnectionError(f"broker {self.settings.host}:{self.settings.port} not reached")

    def watch(self, roots: list[str]) -> None:
        for root in roots:
            self._client.subscribe(f"{root}/reply/{self.reply_level}", qos=1)
            self._client.subscribe(f"{root}/update", qos=1)

    def _on_message(self, _c: object, _u: object, message: Any) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        with self._changed:
            if str(message.topic).endswith("/update"):
                self._outcomes[str(message.topic).removesuffix("/update")] = body
            else:
                correlation = getattr(message.properties, "CorrelationData", None)
                if correlation is not None:
                    self._replies[bytes(correlation)] = body
            self._changed.notify_all()

    def request(self, root: str, command: str, body: dict[str, object]) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            correlation = f"{self._counter}".encode()
        properties = new_properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = f"{root}/reply/{self.reply_level}"
        properties.CorrelationData = correlation
        properties.MessageExpiryInterval = int(self.timeout_s)
        self._client.publish(
            f"{root}/cmd/{command}", json.dumps(body), qos=1, properties=properties
        )
        with self._changed:
            if not self._changed.wait_for(lambda: correlation in self._replies, self.timeout_s):
                return {"ok": False, "error": f"no reply to {command} in {self.timeout_s:.0f} s"}
            return self._replies.pop(correlation)

    def forget(self, root: str) -> None:
        """Drop what ``root`` said before (its retained outcome of an earlier update)."""
        with self._lock:
            self._outcomes.pop(root, None)

    def outcome(self, root: str, version: str, timeout_s: float) -> dict[str, Any]:
        """The device's final update outcome for ``version`` (or a timeout)."""

        def final() -> bool:
            body = self._outcomes.get(root, {})
            return body.get("phase") in FINAL and body.get("version", version) == version

        with self._changed:
            if not self._changed.wait_for(final, timeout_s):
                return {"phase": "timeout", "reason": f"no outcome in {timeout_s:.0f} s"}
            return dict(self._outcomes[root])

    def send(self, root: str, archive: Path, archive_id: str) -> dict[str, Any]:
        data = archive.read_bytes()
        begin = self.request(
            root,
            "update_begin",
            {"id": archive_id, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        )
        if not begin.get("ok"):
            return begin
        offset = int(begin["have"])  # resumes a transfer cut short
        while offset < len(data):
            piece = data[offset : offset + CHUNK_BYTES]
            body = {
                "id": archive_id,
                "offset": offset,
                "data": base64.b64encode(piece).decode(),
                "sha256": hashlib.sha256(piece).hexdigest(),
            }
            reply = self.request(root, "update_chunk", body)
            if not reply.get("ok") and "have" not in reply:
                return reply
            offset = int(reply["have"])
        return self.request(root, "update_commit", {"id": archive_id})

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def rollout(
    fleet: Fleet,
    archive: Path,
    roots: list[str],
    *,
    waves: str,
    max_failures: int,
    outcome_timeout_s: float,
    out: Any = sys.stdout,
) -> int:
    """Send ``archive`` wave by wave; 0 when every device kept it, 1 when stopped."""
    version = _archive_version(archive)
    archive_id = f"release-{hashlib.sha256(archive.read_bytes()).hexdigest()[:16]}"
    fleet.watch(roots)
    failures, start = 0, 0
    for number, size in enumerate(wave_sizes(waves, len(roots)), 1):
        wave = roots[start : start + size]
        start += size
        pending = []
        for root in wave:
            fleet.forget(root)
            reply = fleet.send(root, archive, archive_id)
            if reply.get("ok"):
                pending.append(root)
            elif "already installed" in str(reply.get("error")):
                print(f"wave {number}\t{root}\tkept\talready installed", file=out)
            else:
                failures += 1
                print(f"wave {number}\t{root}\trefused\t{reply.get('error')}", file=out)
        for root in pending:
            outcome = fleet.outcome(root, version, outcome_timeout_s)
            ok = outcome.get("phase") == "kept"
            failures += 0 if ok else 1
            print(
                f"wave {number}\t{root}\t{outcome.get('phase')}\t{outcome.get('reason')}", file=out
            )
        if failures > max_failures:
            left = len(roots) - start
            print(
                f"stopped after wave {number}: {failures} failure(s) > {max_failures};"
                f" {left} device(s) not sent",
                file=out,
            )
            return 1
    print(f"done: {len(roots)} device(s), {failures} failure(s)", file=out)
    return 0


def _archive_version(archive: Path) -> str:
    with tarfile.open(archive, "r:") as tar:
        member = tar.extractfile(METADATA)
        assert member is not None
        return str(json.loads(member.read())["signed"]["version"])


# -- the command line ----------------------------------------------------------------------


def _read_key(path: Path) -> bytes:
    return bytes.fromhex(path.read_text(encoding="utf-8").strip())


def _cmd_keygen(args: argparse.Namespace) -> int:
    key = crypto.ed25519_new_key()
    write_atomic(args.key, key.hex().encode() + b"\n", 0o600)
    public = crypto.ed25519_public(key).hex()
    print(f"wrote the signing key to {args.key} (keep it offline); the devices' config:")
    print(f"updates:\n  trusted_keys:\n    - {public}")
    return 0


def _cmd_make(args: argparse.Namespace) -> int:
    expires = _expires(args.expires)
    if args.kind == "agent":
        try:
            agent_wheel([p.name for p in args.dir.iterdir() if p.name != METADATA], args.version)
        except ReleaseRefused as error:
            print(f"edge-provision: {error}", file=sys.stderr)
            return 2
    body = make_metadata(args.dir, kind=args.kind, version=args.version, expires=expires)
    write_atomic(args.dir / METADATA, json.dumps(body, indent=1).encode(), 0o644)
    if args.key is not None:
        print(f"signed by key {sign_metadata(args.dir, _read_key(args.key))}")
    print(f"wrote {args.dir / METADATA}: {args.kind} {args.version}, expires {expires.isoformat()}")
    return 0


def _expires(text: str) -> datetime:
    expires = datetime.fromisoformat(text)
    return expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc)


def _cmd_agent(args: argparse.Namespace) -> int:
    wheels: list[Path] = args.wheels
    names = [w.name for w in wheels]
    ours = [n for n in names if n.startswith("edge_agent-")]
    version = ours[0].split("-")[1] if len(ours) == 1 else ""
    try:
        if not re.fullmatch(VERSION, version):
            raise ReleaseRefused(
                f"the agent's wheel must be one edge_agent-VERSION-….whl with VERSION dotted "
                f"numbers (a release's version); got {', '.join(ours) or 'none'}"
            )
        agent_wheel(names, version)
    except ReleaseRefused as error:
        print(f"edge-provision: {error}", file=sys.stderr)
        return 2
    if args.dir.exists() and any(args.dir.iterdir()):
        print(f"edge-provision: {args.dir} is not empty", file=sys.stderr)
        return 2
    args.dir.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        shutil.copyfile(wheel, args.dir / wheel.name)
    expires = _expires(args.expires)
    body = make_metadata(args.dir, kind="agent", version=version, expires=expires)
    write_atomic(args.dir / METADATA, json.dumps(body, indent=1).encode(), 0o644)
    print(f"signed by key {sign_metadata(args.dir, _read_key(args.key))}")
    print(
        f"wrote {args.dir / METADATA}: agent {version}, {len(wheels) - 1} dependency "
        f"wheel(s), expires {expires.isoformat()}"
    )
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    print(f"signed by key {sign_metadata(args.dir, _read_key(args.key))}")
    return 0


def _cmd_pack(args: argparse.Namespace) -> int:
    pack(args.dir, args.archive)
    print(f"wrote {args.archive}")
    return 0


def _cmd_rollout(args: argparse.Namespace) -> int:
    settings = MqttSettings.consumer(
        args.host,
        args.port,
        args.client_id,
        tls_ca_file=args.ca,
        tls_cert_file=args.cert,
        tls_key_file=args.key,
    )
    fleet = Fleet(settings, timeout_s=args.reply_timeout_s)
    try:
        return rollout(
            fleet,
            args.archive,
            [r.strip() for r in args.devices.split(",") if r.strip()],
            waves=args.waves,
            max_failures=args.max_failures,
            outcome_timeout_s=args.outcome_timeout_s,
        )
    finally:
        fleet.close()


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    release = commands.add_parser("release", help="make, sign, pack and roll out releases")
    sub = release.add_subparsers(dest="release_command", required=True, metavar="STEP")
    keygen = sub.add_parser("keygen", help="a new Ed25519 signing key; prints its public key")
    keygen.add_argument("key", type=Path)
    keygen.set_defaults(handler=_cmd_keygen)
    make = sub.add_parser("make", help="write DIR/release.json listing DIR's files")
    make.add_argument("dir", type=Path)
    make.add_argument("--kind", choices=("model", "config", "agent"), required=True)
    make.add_argument("--version", required=True, help="dotted numbers, newer than the last")
    make.add_argument("--expires", required=True, help="ISO date or time (UTC unless given)")
    make.add_argument("--key", type=Path, help="sign with this key too")
    make.set_defaults(handler=_cmd_make)
    agent = sub.add_parser(
        "agent", help="DIR: an agent release of the agent's wheel (and dependency wheels)"
    )
    agent.add_argument("dir", type=Path, help="made here (new or empty)")
    agent.add_argument("wheels", type=Path, nargs="+", help="edge_agent-VERSION-….whl, …")
    agent.add_argument("--expires", required=True, help="ISO date or time (UTC unless given)")
    agent.add_argument("--key", type=Path, required=True)
    agent.set_defaults(handler=_cmd_agent)
    sign = sub.add_parser("sign", help="add a signature to DIR/release.json")
    sign.add_argument("dir", type=Path)
    sign.add_argument("--key", type=Path, required=True)
    sign.set_defaults(handler=_cmd_sign)
    packer = sub.add_parser("pack", help="DIR into the tar archive devices take")
    packer.add_argument("dir", type=Path)
    packer.add_argument("archive", type=Path)
    packer.set_defaults(handler=_cmd_pack)
    roll = sub.add_parser("rollout", help="send an archive to devices in waves")
    roll.add_argument("archive", type=Path)
    roll.add_argument("--devices", required=True, help="device roots, comma-separated")
    roll.add_argument("--waves", default="1,10,50%", help="cumulative targets (default 1,10,50%%)")
    roll.add_argument("--max-failures", type=int, default=0, help="stop when more fail")
    roll.add_argument("--host", required=True)
    roll.add_argument("--port", type=int, default=8883)
    roll.add_argument("--client-id", default="rollout")
    roll.add_argument("--ca", type=Path)
    roll.add_argument("--cert", type=Path)
    roll.add_argument("--key", type=Path)
    roll.add_argument("--reply-timeout-s", type=float, default=60.0)
    roll.add_argument("--outcome-timeout-s", type=float, default=600.0)
    roll.set_defaults(handler=_cmd_rollout)
