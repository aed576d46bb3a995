"""Who may use the page: one per-device password, sessions, CSRF tokens, login limits.

The password is kept as a scrypt hash (RFC 7914; n=2**14, r=8, p=1, a 16-byte random salt,
a 32-byte key: 16 MiB and about 0.2 s of CPU per try on the development machine) in a file
of one line, ``scrypt$16384$8$1$<salt>$<key>`` (base64), mode 0600. A login gives a random
session token in an HttpOnly, SameSite=Strict cookie that expires; each session has its
own CSRF token, sent back on every POST in a header or a hidden field. Failed logins are
limited per client address and in total, so a password cannot be guessed at network speed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.files import write_atomic

__all__ = [
    "LoginLimiter",
    "PasswordFileError",
    "Session",
    "SessionStore",
    "csrf_matches",
    "hash_password",
    "read_password_hash",
    "verify_password",
    "write_password_file",
]

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # a longer one is refused before hashing (no CPU for garbage)
MAX_SESSIONS = 16  # the oldest is logged out past this


class PasswordFileError(Exception):
    """The password file is missing or not a password hash."""


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=KEY_BYTES
    )


def hash_password(password: str) -> str:
    """The line a password file holds; ValueError for a password too short or too long."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise ValueError(
            f"the password must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    encode = base64.b64encode
    return (
        f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$"
        f"{encode(salt).decode('ascii')}${encode(key).decode('ascii')}"
    )


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the ``stored`` line (constant-time compare)."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        scheme, n, r, p, salt, key = stored.strip().split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def write_password_file(path: Path, password: str, *, owner: tuple[int, int] | None = None) -> None:
    """Hash ``password`` into ``path`` (mode 0600, ``owner`` (uid, gid) when given: the
    service's user, that must read it), replacing it atomically."""
    line = hash_password(password) + "\n"
    write_atomic(path, line.encode("ascii"), 0o600, owner=owner)


def read_password_hash(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise PasswordFileError(
            f"cannot read the page's password file {path}: {error}; "
            "set one with: edge-agent web-password --config FILE"
        ) from None
    if not text.startswith("scrypt$") or text.count("$") != 5:
        raise PasswordFileError(f"{path} does not hold a password hash (edge-agent web-password)")
    return text


@dataclass(frozen=True)
class Session:
    token: str  # the cookie's value
    csrf_token: str  # must come back on every POST
    expires_mono_s: float


class SessionStore:
    """The logged-in sessions (in memory: a restart logs everyone out). Thread-safe."""

    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def create(self) -> Session:
        now_s = self._clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now_s + self.ttl_s)
        with self._lock:
            self._drop_expired_locked(now_s)
            while len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.expires_mono_s)
                del self._sessions[oldest.token]
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            self._drop_expired_locked(self._clock())
            return self._sessions.get(token)

    def end(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def _drop_expired_locked(self, now_s: float) -> None:
        for token in [t for t, s in self._sessions.items() if s.expires_mono_s <= now_s]:
            del self._sessions[token]


def csrf_matches(session: Session, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(session.csrf_token, token)


class LoginLimiter:
    """At most ``per_address`` failed logins a minute from one client address, and four
    times that from all together; past that, logins are refused without hashing until
    the oldest failure is a minute old. Thread-safe."""

    WINDOW_S = 60.0

    def __init__(self, per_address: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_address = per_address
        self.total = 4 * per_address
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def retry_after_s(self, address: str) -> float:
        """0 when ``address`` may try now, else the seconds until it may."""
        now_s = self._clock()
        with self._lock:
            self._forget_locked(now_s)
            mine = self._failures.get(address, deque())
            waits = [0.0]
            if len(mine) >= self.per_address:
                waits.append(mine[0] + self.WINDOW_S - now_s)
            if len(self._all) >= self.total:
                waits.append(self._all[0] + self.WINDOW_S - now_s)
            return max(waits)

    def begin(self, address: str) -> float | None:
        """Check and count in one step: None when ``address`` must wait, else a stamp the
        attempt is counted under (as a failure) until ``succeeded`` takes it back. Many
        attempts at once cannot all pass the check before the first one fails."""
        now_s = self._clock()
        with self._lock:
            self._forget_locked(now_s)
            mine = self._failures.get(address, deque())
            if len(mine) >= self.per_address or len(self._all) >= self.total:
                return None
            self._failures.setdefault(address, deque()).append(now_s)
            self._all.append(now_s)
            return now_s

    def cancel(self, address: str, stamp: float) -> None:
        """An attempt ``begin`` counted that was never tried (the server was busy)."""
        with self._lock:
            for times in (self._failures.get(address), self._all):
                if times is not None:
                    with contextlib.suppress(ValueError):
                        times.remove(stamp)

    def failed(self, address: str) -> None:
        now_s = self._clock()
        with self._lock:
            self._failures.setdefault(address, deque()).append(now_s)
            self._all.append(now_s)

    def succeeded(self, address: str, stamp: float | None = None) -> None:
        """The address's failures are forgotten, and the attempt counted at ``stamp``
        no longer counts towards all addresses' limit (a script's Basic-auth requests)."""
        with self._lock:
            self._failures.pop(address, None)
            if stamp is not None:
                with contextlib.suppress(ValueError):
                    self._all.remove(stamp)

    def _forget_locked(self, now_s: float) -> None:
        horizon = now_s - self.WINDOW_S
        while self._all and self._all[0] <= horizon:
            self._all.popleft()
        for address in list(self._failures):
            times = self._failures[address]
            while times and times[0] <= horizon:
                times.popleft()
            if not times:
                del self._failures[address]
