"""What the agent tells systemd, and when: READY once cameras are up, a STATUS line, and
WATCHDOG=1 only while the agent is alive.

"Alive" is what the watchdog exists for: frames arrive on every camera and the outbox
accepts writes. A camera that went silent or a disk that refuses writes withholds the
ping, so after ``WatchdogSec`` systemd restarts the agent (``Restart=on-failure``) — a
restart reopens the camera and the outbox, which is what a technician would try first.
The agent's housekeeping thread calls :meth:`ServiceMonitor.tick`; nothing here reads
clocks or sockets on its own, so tests drive it with plain values.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from edge_agent.service.notify import Notifier

__all__ = ["STATUS_PERIOD_S", "ServiceHealth", "ServiceMonitor"]

STATUS_PERIOD_S = 10.0  # how often STATUS is refreshed when no watchdog sets the pace


@dataclass(frozen=True)
class ServiceHealth:
    """The agent's liveness facts at one moment (built by the housekeeping thread)."""

    starting: bool  # cameras have not all delivered yet and the start grace is not over
    cameras: tuple[str, ...]
    silent_cameras: tuple[str, ...]  # no frame for status.camera_silent_after_s
    frames_total: int  # frames analysed, every camera, since the cameras were (re)built
    outbox_depth: int
    outbox_writable: bool
    uplink_connected: bool

    @property
    def alive(self) -> bool:
        return not self.starting and not self.silent_cameras and self.outbox_writable

    def status_line(self, fps: float | None) -> str:
        """One short line for ``systemctl status`` (systemd shows it as "Status:")."""
        if self.starting:
            head = f"starting: {len(self.cameras)} camera(s)"
        elif self.silent_cameras:
            head = f"camera(s) silent: {','.join(self.silent_cameras)} of {len(self.cameras)}"
        else:
            head = f"{len(self.cameras)} camera(s) ok"
        rate = f", {fps:.1f} fps" if fps is not None else ""
        outbox = (
            f"outbox {self.outbox_depth} queued"
            if self.outbox_writable
            else f"outbox NOT WRITABLE ({self.outbox_depth} queued)"
        )
        broker = "broker connected" if self.uplink_connected else "broker down"
        return f"{head}{rate}; {outbox}; {broker}"


class ServiceMonitor:
    """Turns health ticks into sd_notify messages; thread-safe (housekeeping, reload, stop)."""

    def __init__(self, notifier: Notifier, *, watchdog_s: float | None) -> None:
        self.notifier = notifier
        self.watchdog_s = watchdog_s
        self.period_s = watchdog_s if watchdog_s is not None else STATUS_PERIOD_S
        self._lock = threading.Lock()
        self.ready = False
        self._paused = False  # reloading or stopping: no READY, no WATCHDOG
        self._next_due_s = -float("inf")
        self._last: tuple[float, int] | None = None  # (when, frames_total) of the last STATUS
        self.watchdog_pings = 0

    def next_due_s(self) -> float:
        """When the next tick has something to send (monotonic seconds)."""
        return self._next_due_s

    def tick(self, health: ServiceHealth, now_s: float) -> None:
        with self._lock:
            if self._paused or now_s < self._next_due_s:
                return
            self._next_due_s = now_s + self.period_s
            fps = self._fps(health, now_s)
            fields = [f"STATUS={health.status_line(fps)}"]
            if not self.ready and not health.starting:
                self.ready = True
                fields.insert(0, "READY=1")
            if self.ready and health.alive and self.watchdog_s is not None:
                fields.insert(0, "WATCHDOG=1")
                self.watchdog_pings += 1
            self.notifier.send(*fields)

    def _fps(self, health: ServiceHealth, now_s: float) -> float | None:
        last, self._last = self._last, (now_s, health.frames_total)
        if last is None or now_s <= last[0] or health.frames_total < last[1]:
            return None  # the first tick, or the cameras were rebuilt meanwhile
        return (health.frames_total - last[1]) / (now_s - last[0])

    def reloading(self, monotonic_usec: int) -> None:
        with self._lock:
            self._paused = True
            self.notifier.send(
                "RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}", "STATUS=reloading the config"
            )

    def reloaded(self, status: str) -> None:
        """The reload ended (applied or refused): READY again, and a tick at once."""
        with self._lock:
            self._paused = False
            self._last = None
            self._next_due_s = -float("inf")
            self.notifier.send("READY=1", f"STATUS={status}")

    def stopping(self) -> None:
        with self._lock:
            self._paused = True
            self.notifier.send("STOPPING=1", "STATUS=stopping")
