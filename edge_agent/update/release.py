"""A release: a directory of files and its signed metadata, ``release.json`` (docs/updates.md).

The ideas of TUF, cut to what a fleet of cameras needs: the metadata names the release's
``kind`` (model, config or agent), its ``version``, when it ``expires`` and the sha256 and
size of every file; it is signed with Ed25519 by the operator's key, and a device holds
only public keys (``updates.trusted_keys``). A device refuses a release whose metadata is
not signed by a trusted key (tampered metadata, wrong key), a file that differs from its
entry (tampered file), a file that has no entry (unlisted), a version not newer than the
installed one (a rollback attack: replaying an old, signed, vulnerable release) and an
expired one (a freeze attack: holding a device on an old release for ever).

The signature covers the canonical JSON of ``signed`` (sorted keys, no spaces, ASCII), so
re-indenting the file does not break it and changing one byte of meaning does.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from edge_agent import crypto
from edge_agent.config_base import StrictModel
from edge_agent.files import write_atomic
from edge_agent.strict_json import loads_strict, nests_deeper_than
from edge_agent.types import CLOCK_SET_AFTER_S

__all__ = [
    "FILE_NAME",
    "METADATA",
    "VERSION",
    "Release",
    "ReleaseRefused",
    "agent_wheel",
    "canonical",
    "file_sha256",
    "make_metadata",
    "sign_metadata",
    "verify_release",
    "version_key",
]

METADATA = "release.json"
VERSION = r"^[0-9]{1,9}(\.[0-9]{1,9}){0,3}$"
"""Dotted numbers ("7", "2026.12.1"), compared number by number: also a directory name."""
FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
"""A release is flat: one level of plain names, nothing to climb out of its directory."""
Kind = Literal["model", "config", "agent"]
REQUIRED: dict[str, str] = {"config": "config.yaml"}  # the file a kind cannot do without
AGENT_DIST = "edge_agent"  # the agent's wheels are edge_agent-{version}-{tags}.whl


class ReleaseRefused(Exception):
    """A release that must not be installed; the message says why (the reply's error)."""


class FileEntry(StrictModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Signed(StrictModel):
    v: Literal[1] = 1
    kind: Kind
    version: str = Field(pattern=VERSION)
    expires: datetime
    files: dict[str, FileEntry] = Field(min_length=1)


class Signature(StrictModel):
    keyid: str
    sig: str = Field(pattern=r"^[0-9a-f]{128}$")


class Metadata(StrictModel):
    signed: Signed
    signatures: list[Signature] = Field(default_factory=list)


CLOCK_SET_AFTER = datetime.fromtimestamp(CLOCK_SET_AFTER_S, timezone.utc)
"""A device clock before this was never set: a release's expiry cannot be judged by it."""


@dataclass(frozen=True)
class Release:
    """A verified release: what it is and where its files are."""

    kind: Kind
    version: str
    expires: datetime
    files: tuple[str, ...]
    path: Path

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "version": self.version, "expires": self.expires.isoformat()}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def agent_wheel(files: list[str] | tuple[str, ...], version: str) -> str:
    """The agent's own wheel in an agent release of ``version``: the release holds wheels
    only (the agent's and any dependency that changed), and exactly one of the agent,
    ``edge_agent-{version}-….whl`` (what runs is what the version says).
    :class:`ReleaseRefused` saying what is wrong."""
    for name in files:
        if not name.endswith(".whl"):
            raise ReleaseRefused(f"an agent release holds wheels only, not {name!r}")
    ours = [n for n in files if n.split("-")[0].lower().replace(".", "_") == AGENT_DIST]
    if len(ours) != 1:
        raise ReleaseRefused(
            f"an agent release must hold exactly one {AGENT_DIST}-{version}-….whl "
            f"(it holds {len(ours)} {AGENT_DIST} wheels)"
        )
    parts = ours[0].split("-")
    if len(parts) < 5 or parts[1] != version:
        raise ReleaseRefused(
            f"the agent's wheel {ours[0]!r} is not version {version}, the release's "
            "(build the wheel with the release's version)"
        )
    return ours[0]


def canonical(signed: dict[str, object]) -> bytes:
    """The bytes a signature covers."""
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def make_metadata(folder: Path, *, kind: str, version: str, expires: datetime) -> dict[str, object]:
    """Unsigned metadata listing every file in ``folder`` (the operator's side)."""
    files = {
        p.name: {"sha256": file_sha256(p), "size": p.stat().st_size}
        for p in sorted(folder.iterdir())
        if p.name != METADATA
    }
    signed = Signed.model_validate(
        {"kind": kind, "version": version, "expires": _utc(expires), "files": files}
    )
    return {"signed": signed.model_dump(mode="json"), "signatures": []}


def sign_metadata(folder: Path, private_raw: bytes) -> str:
    """Add (or replace) this key's signature to ``folder/release.json``; its key id."""
    path = folder / METADATA
    body = json.loads(path.read_text(encoding="utf-8"))
    keyid = crypto.ed25519_key_id(crypto.ed25519_public(private_raw))
    sig = crypto.ed25519_sign(private_raw, canonical(body["signed"])).hex()
    others = [s for s in body.get("signatures", []) if s.get("keyid") != keyid]
    body["signatures"] = [*others, {"keyid": keyid, "sig": sig}]
    write_atomic(path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode(), 0o644)
    return keyid


MAX_METADATA_DEPTH = 16  # release.json nests four levels (signed, files, a file's entry)


def _load(folder: Path) -> tuple[Metadata, dict[str, object]]:
    try:
        text = (folder / METADATA).read_text(encoding="utf-8")
        if nests_deeper_than(text, MAX_METADATA_DEPTH):  # read before it is trusted
            raise ValueError(f"nested deeper than {MAX_METADATA_DEPTH} levels")
        raw: Any = loads_strict(text)  # a key given twice: which one was signed?
        return Metadata.model_validate(raw), raw["signed"]
    except FileNotFoundError:
        raise ReleaseRefused(f"no {METADATA} in the release") from None
    except (ValueError, TypeError, KeyError) as error:  # ValidationError is a ValueError
        what = (
            "; ".join(str(e["msg"]) for e in error.errors()[:3])
            if isinstance(error, ValidationError)
            else str(error)
        )
        raise ReleaseRefused(f"{METADATA} cannot be read: {what}") from None


def _check_signature(metadata: Metadata, raw_signed: dict[str, object], keys: list[bytes]) -> None:
    message = canonical(raw_signed)
    by_id = {crypto.ed25519_key_id(k): k for k in keys}
    for signature in metadata.signatures:
        key = by_id.get(signature.keyid)
        if key is not None and crypto.ed25519_verify(key, bytes.fromhex(signature.sig), message):
            return
    ids = ", ".join(s.keyid for s in metadata.signatures) or "none"
    raise ReleaseRefused(
        f"the metadata is not signed by a trusted key (signatures by: {ids}); tampered, or "
        "signed with a key this device does not trust"
    )


def _check_files(folder: Path, signed: Signed) -> None:
    present = {p.name for p in folder.iterdir() if p.name != METADATA}
    for name in sorted(present - set(signed.files)):
        raise ReleaseRefused(f"file {name!r} is not listed in the signed metadata")
    for name, entry in sorted(signed.files.items()):
        path = folder / name
        if name not in present or not path.is_file() or path.is_symlink():
            raise ReleaseRefused(f"file {name!r} is listed but missing")
        if path.stat().st_size != entry.size:
            raise ReleaseRefused(
                f"file {name!r} has {path.stat().st_size} bytes, the metadata says {entry.size}"
            )
        if file_sha256(path) != entry.sha256:
            raise ReleaseRefused(f"file {name!r} does not match its sha256 (tampered)")


def verify_release(
    folder: Path,
    *,
    trusted_keys: list[bytes],
    installed: str | None,
    now: datetime,
    kind: str | None = None,
) -> Release:
    """The release in ``folder`` if it may be installed over version ``installed`` (of
    its kind) at ``now``; :class:`ReleaseRefused` saying why not. The signature is checked
    first: nothing unsigned is trusted, not even its version or kind."""
    metadata, raw_signed = _load(folder)
    _check_signature(metadata, raw_signed, trusted_keys)
    signed = metadata.signed
    for name in signed.files:
        if not re.fullmatch(FILE_NAME, name):
            raise ReleaseRefused(f"file name {name[:64]!r} is not a plain name")
    if kind is not None and signed.kind != kind:
        raise ReleaseRefused(f"a {signed.kind} release, not a {kind} one")
    expires = _utc(signed.expires)
    if now < CLOCK_SET_AFTER:  # 1970 after a boot without RTC, before NTP answered
        raise ReleaseRefused(
            f"the device's clock is not set (it says {now.isoformat()}), so the release's "
            "expiry cannot be checked; send it again once NTP has set the clock"
        )
    if now >= expires:
        raise ReleaseRefused(f"the release expired at {expires.isoformat()}")
    if installed is not None and version_key(signed.version) <= version_key(installed):
        same = signed.version == installed
        raise ReleaseRefused(
            f"version {signed.version} is already installed"
            if same
            else f"version {signed.version} is older than the installed {installed} "
            "(rollback refused)"
        )
    _check_files(folder, signed)
    required = REQUIRED.get(signed.kind)
    if required is not None and required not in signed.files:
        raise ReleaseRefused(f"a {signed.kind} release must hold {required}")
    if signed.kind == "model" and not any(n.endswith(".tflite") for n in signed.files):
        raise ReleaseRefused("a model release must hold a .tflite file")
    if signed.kind == "agent":
        agent_wheel(tuple(signed.files), signed.version)
    return Release(signed.kind, signed.version, expires, tuple(sorted(signed.files)), folder)
