"""One running agent per outbox: a lock file beside it, held while ``edge-agent run`` runs.

Two agents on one outbox would end each other's open events as "restart" at start and
log in to the broker as the same device, throwing each other off. The lock also tells
``edge-agent selftest`` that the agent is running, so it does not take the camera or the
broker session from it. ``flock`` locks go with the process: a killed agent leaves no
stale lock behind (its pid stays in the file, only as a hint).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["AlreadyRunning", "RunLock", "lock_path", "running_pid"]


class AlreadyRunning(RuntimeError):
    """Another process holds the outbox's run lock."""


def lock_path(outbox_path: Path) -> Path:
    return outbox_path.with_name(outbox_path.name + ".lock")


def _pid_in(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


class RunLock:
    def __init__(self, outbox_path: Path) -> None:
        self.path = lock_path(outbox_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``AlreadyRunning`` naming the holder's pid;
        ``OSError`` when the folder cannot hold it (a disk problem, not a second agent)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _pid_in(fd)
            os.close(fd)
            holder = f"pid {pid}" if pid is not None else "another process"
            raise AlreadyRunning(
                f"another edge-agent ({holder}) is running on the outbox "
                f"{self.path.with_suffix('')}; stop it first (systemctl stop edge-agent)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def running_pid(outbox_path: Path) -> int | None:
    """The pid of the agent running on this outbox (0 when it is not known), or None
    when none runs. Never creates the lock file."""
    try:
        fd = os.open(lock_path(outbox_path), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _pid_in(fd) or 0
    finally:
        os.close(fd)
    return None
