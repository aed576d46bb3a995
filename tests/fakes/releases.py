"""Signed releases for the update tests, made as the operator's tool makes them."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent import crypto
from edge_agent.update.release import METADATA, make_metadata, sign_metadata
from edge_agent.update.transfer import pack

if TYPE_CHECKING:
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
