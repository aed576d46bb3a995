"""A real, throwaway mosquitto on a free loopback port, for tests and ``edge-agent demo``.

Tests must exercise the real protocol (retained messages, wills, persistent sessions,
broker restarts), so they run the real broker rather than a fake. ``LocalBroker`` owns a
temp dir holding its config, log and persistence file; ``restart()`` reuses the same
port and persistence so persistent sessions survive, exactly like a broker outage in
the field.

>>> with LocalBroker() as broker:  # doctest: +SKIP
...     broker.port > 0
True
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = [
    "BrokerNotAvailable",
    "BrokerStartError",
    "LocalBroker",
    "find_mosquitto",
    "free_loopback_port",
]

_FALLBACK_PATHS = (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto"))
_POLL_S = 0.01


class BrokerNotAvailable(RuntimeError):
    """mosquitto is not installed where we can find it."""


class BrokerStartError(RuntimeError):
    """mosquitto was found but did not start listening."""


def find_mosquitto() -> Path:
    """Path of the mosquitto binary, or ``BrokerNotAvailable`` saying how to get one."""
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    for candidate in _FALLBACK_PATHS:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerNotAvailable(
        "mosquitto not found on PATH nor in /usr/sbin; install it "
        "(Debian/Raspberry Pi OS: `sudo apt-get install mosquitto`; the service need not run)"
    )


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_lines(log_path: Path) -> list[str]:
    """mosquitto config lines every test broker shares: a full log in ``log_path`` (read
    when a test fails) and, started as root (a CI container), staying root: mosquitto
    would drop to user "mosquitto", which cannot write our temp dir."""
    lines = [
        f"log_dest file {log_path}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lines.append("user root")
    return lines


class LocalBroker:
    """Runs ``mosquitto -c <tmp>/mosquitto.conf`` listening on ``127.0.0.1:port``."""

    host = "127.0.0.1"

    def __init__(self, *, port: int | None = None, extra_config: str = "") -> None:
        self.binary = find_mosquitto()
        self.port = port if port is not None else free_loopback_port()
        self.dir = Path(tempfile.mkdtemp(prefix="edge-agent-mosquitto-"))
        self.config_path = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        self._extra_config = extra_config
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        data_dir = self.dir / "data"
        data_dir.mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            *service_lines(self.log_path),
            "persistence true",
            f"persistence_location {data_dir}/",
            # A test subscriber may lag a fast drain by thousands of messages; mosquitto's
            # default (1000 queued per client) would then drop some silently.
            "max_queued_messages 0",
        ]
        if self._extra_config:
            lines.append(self._extra_config)
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start mosquitto and return once its port accepts TCP connections."""
        if self.running:
            return
        # stderr to a file, not a pipe: nobody reads a pipe while the broker runs.
        with open(self.dir / "stderr.log", "ab") as stderr:
            self._process = subprocess.Popen(
                [str(self.binary), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise BrokerStartError(
                    f"mosquitto exited with code {code} on port {self.port}:"
                    f" {self.log_text()[-2000:]}"
                )
            if self._accepts_connections():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerStartError(
                    f"mosquitto did not listen on {self.host}:{self.port} within {timeout_s} s;"
                    f" log: {self.log_text()[-2000:]}"
                )
            time.sleep(_POLL_S)

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM and wait: mosquitto saves its persistence file on the way out."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._reap()

    def kill(self) -> None:
        """SIGKILL: a crash. Persistence is only what mosquitto last saved."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait()
        self._reap()

    def _reap(self) -> None:
        self._process = None

    def restart(self, timeout_s: float = 10.0) -> None:
        """Stop (if running) and start again on the same port with the same persistence."""
        self.stop(timeout_s)
        self.start(timeout_s)

    def log_text(self) -> str:
        """mosquitto's log file plus anything it printed to stderr."""
        parts = []
        for path in (self.dir / "stderr.log", self.log_path):
            with contextlib.suppress(FileNotFoundError):
                parts.append(path.read_text(encoding="utf-8", errors="replace"))
        return "".join(parts)

    def close(self) -> None:
        """Stop the broker and delete its temp dir."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalBroker:
        try:
            self.start()
        except BaseException:
            self.close()  # a broker that failed to start leaves no temp dir behind
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalBroker({self.host}:{self.port}, {state}, dir={self.dir})"
