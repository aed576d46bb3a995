"""Signed releases for the update tests, made as the operator's tool makes them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edge_agent import crypto
from edge_agent.update.release import METADATA, make_metadata, sign_metadata
from edge_agent.update.transfer import pack

KEY = crypto.ed25519_new_key()
PUBLIC_HEX = crypto.ed25519_public(KEY).hex()
OTHER_KEY = crypto.ed25519_new_key()


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
