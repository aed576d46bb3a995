"""sd_notify with the standard library: one AF_UNIX datagram per message to ``$NOTIFY_SOCKET``.

The protocol is systemd's (sd_notify(3)): newline-separated ``KEY=value`` fields in one
datagram; an address starting with ``@`` is in the abstract namespace. No libsystemd, no
python-systemd: a service on a Pi should not need either, and this is twenty lines. Sending
never raises: a lost notification must not stop the agent (systemd then restarts it,
which is the watchdog doing its job).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Protocol

__all__ = [
    "Notifier",
    "NotifySocket",
    "NullNotifier",
    "SocketNotifier",
    "notifier_from_env",
    "watchdog_interval_s",
]

log = logging.getLogger(__name__)


class NotifySocket(Protocol):
    """The part of a datagram socket the notifier uses (a fake in unit tests)."""

    def sendto(self, data: bytes, address: str | bytes, /) -> int: ...

    def close(self) -> None: ...


class Notifier(Protocol):
    """Where service state goes: systemd's socket, or nowhere."""

    @property
    def enabled(self) -> bool: ...

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields as one message; False when it could not be sent."""
        ...

    def close(self) -> None: ...


class NullNotifier:
    """Not under systemd (or not Type=notify): every message goes nowhere."""

    enabled = False

    def send(self, *fields: str) -> bool:
        return False

    def close(self) -> None:
        pass


def _socket_address(address: str) -> str | bytes:
    """``@name`` is Linux's abstract namespace: a leading NUL byte instead of the ``@``."""
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    return address


class SocketNotifier:
    """Sends to systemd's notification socket."""

    enabled = True

    def __init__(self, address: str, sock: NotifySocket | None = None) -> None:
        if not address or address[0] not in "/@":
            raise ValueError(f"NOTIFY_SOCKET must be a path or an @abstract name: {address!r}")
        self.address = address
        self._target = _socket_address(address)
        self._sock: NotifySocket = sock or socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
        )
        self._failed = False  # log the first failure of a run only, then each recovery

    def send(self, *fields: str) -> bool:
        message = "\n".join(fields).encode()
        try:
            self._sock.sendto(message, self._target)
        except OSError as error:
            if not self._failed:
                log.warning("sd_notify to %s failed: %s", self.address, error)
            self._failed = True
            return False
        if self._failed:
            log.info("sd_notify to %s works again", self.address)
            self._failed = False
        return True

    def close(self) -> None:
        self._sock.close()


def notifier_from_env(environ: Mapping[str, str] | None = None) -> Notifier:
    """The notifier for this process: ``$NOTIFY_SOCKET`` when set and usable, else a no-op."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return NullNotifier()
    try:
        return SocketNotifier(address)
    except (ValueError, OSError) as error:
        log.warning("ignoring NOTIFY_SOCKET: %s", error)
        return NullNotifier()


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to send ``WATCHDOG=1``: half of systemd's ``WATCHDOG_USEC`` (as
    sd_watchdog_enabled(3) advises), or None when no watchdog is asked of this process."""
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None  # meant for another process (our parent, say)
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2_000_000
