"""One-time enrolment tokens: random, stored only as a hash, with an expiry, used once.

A token is ``<id>.<secret>``: the id (``enrol-`` + 16 hex) is the broker username of
the enrolling device and names its enrolment topics; the secret (32 random bytes,
URL-safe base64) is its broker password. Neither store keeps the secret: ``tokens.json``
keeps its SHA-256 (the secret is random, so no stretching is needed) and
``enrol-passwd`` (for mosquitto's enrolment listener) mosquitto's own PBKDF2-SHA512
hash of it, only for tokens neither used nor expired. Both files are rewritten
atomically under an exclusive lock, so two requests with the same token cannot both
succeed.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from edge_agent.enrol import parse_token
from edge_agent.ids import check_id, write_atomic

__all__ = ["TokenRecord", "TokenRefused", "TokenStore"]


class TokenRefused(Exception):
    """The token is unknown, wrong, expired or already used (the message says which)."""


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    site_id: str
    device_id: str
    expires_at: datetime


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mosquitto_hash(password: str, *, iterations: int = 101) -> str:
    """A mosquitto 2.0 password-file hash (``$7$``: PBKDF2-SHA512, 12-byte salt)."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


class TokenStore:
    """``tokens.json`` in the provisioning state directory."""

    def __init__(
        self, path: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    ) -> None:
        self.path = path
        self._clock = clock

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data: dict[str, Any] = (
                json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
            )
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                write_atomic(self.path, json.dumps(data, indent=1).encode(), 0o600)
                self._write_passwd(data)

    def _write_passwd(self, data: dict[str, Any]) -> None:
        now = self._clock()
        lines = [
            f"{tid}:{record['mosquitto']}\n"
            for tid, record in sorted(data.items())
            if record["used_at"] is None and datetime.fromisoformat(record["expires_at"]) > now
        ]
        write_atomic(self.passwd_path, "".join(lines).encode(), 0o600)

    @property
    def passwd_path(self) -> Path:
        """The password file for mosquitto's enrolment listener (copy it to the broker
        and reload mosquitto after issuing tokens)."""
        return self.path.with_name("enrol-passwd")

    def issue(self, site_id: str, device_id: str, valid_for: timedelta) -> str:
        """A new token for this device (earlier unused ones for it stay valid until used
        or expired). Returns the token text; only its hash is stored."""
        check_id(site_id, "site_id")
        check_id(device_id, "device_id")
        token_id, secret = f"enrol-{secrets.token_hex(8)}", secrets.token_urlsafe(32)
        with self._locked() as data:
            data[token_id] = {
                "sha256": _hash(secret),
                "mosquitto": mosquitto_hash(secret),
                "site_id": site_id,
                "device_id": device_id,
                "expires_at": (self._clock() + valid_for).isoformat(),
                "used_at": None,
            }
        return f"{token_id}.{secret}"

    def redeem(
        self, token: str, *, token_id: str | None = None, key_id: str | None = None
    ) -> TokenRecord:
        """Check and use up ``token``. ``token_id``, when given, is the id the request
        arrived under (its topic) and must match the token's own. ``key_id`` names the
        key being enrolled: the same key may ask again with a used token (its answer was
        lost on a flaky uplink) until the token expires; any other key is refused."""
        try:
            tid, secret = parse_token(token)
        except ValueError as error:
            raise TokenRefused(str(error)) from None
        if token_id is not None and token_id != tid:
            raise TokenRefused("the token does not belong to this enrolment topic")
        with self._locked() as data:
            record = data.get(tid)
            if record is None or not hmac.compare_digest(record["sha256"], _hash(secret)):
                raise TokenRefused("unknown token")
            expires_at = datetime.fromisoformat(record["expires_at"])
            now = self._clock()
            if now >= expires_at:
                raise TokenRefused(f"token expired at {record['expires_at']}")
            if record["used_at"] is not None:
                if key_id is None or record.get("key_id") != key_id:
                    raise TokenRefused(f"token already used at {record['used_at']}")
            else:
                record["used_at"] = now.isoformat()
                record["key_id"] = key_id
        return TokenRecord(tid, record["site_id"], record["device_id"], expires_at)
