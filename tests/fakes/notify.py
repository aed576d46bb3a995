"""systemd's end of sd_notify for tests: a datagram socket bound in a temporary directory."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from pathlib import Path


class NotifyListener:
    """Receives what the agent sends to ``$NOTIFY_SOCKET``, on its own thread, in order.

    Bound in a short temporary directory (a socket path must fit in 108 bytes)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="sdn")
        self.path = str(Path(self._dir.name) / "notify")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._lock = threading.Lock()
        self._messages: list[dict[str, str]] = []
        self._thread = threading.Thread(target=self._receive, name="notify-listener", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except OSError:
                return
            if not data:  # close() wakes us with an empty datagram
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self._messages.append(fields)

    def messages(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._messages)

    def with_key(self, key: str, value: str | None = None) -> list[dict[str, str]]:
        return [m for m in self.messages() if key in m and (value is None or m[key] == value)]

    def statuses(self) -> list[str]:
        return [m["STATUS"] for m in self.messages() if "STATUS" in m]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            waker = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            waker.sendto(b"", self.path)
            waker.close()
        self._thread.join(timeout=5.0)
        self._sock.close()
        self._dir.cleanup()

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
