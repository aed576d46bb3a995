"""Which broker of the list to dial next: failover after a bound, failback when planned.

The device has one MQTT link at a time, to one broker of ``mqtt.brokers``. paho's
network thread asks :meth:`BrokerChooser.next_attempt` before every reconnect (the
previous connection ended, or the previous attempt failed):

- a connection that had worked and was lost is retried on the same broker first (a
  restart, a network blip: the session is there);
- after ``after_attempts`` failed attempts on one broker, or ``after_s`` since its first
  failure, whichever comes first, the next broker in the list is tried (the list wraps);
- the first time a broker is tried in an outage the back-off starts again at its base,
  so failover is quick; once every broker has failed in this outage the back-off keeps
  growing (all of them down, or our own uplink: do not hammer them);
- a failback the publisher planned (the first broker answers again, ``prefer_first``)
  is a switch with no wait, after the publisher has emptied its in-flight window.

Pure (no paho, no sockets): the clock is injectable, tests/unit/mqtt/test_failover.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Attempt", "Broker", "BrokerChooser", "FailoverSettings"]


@dataclass(frozen=True)
class Broker:
    """One broker of the list (TLS settings are the link's, shared by every broker)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class FailoverSettings:
    """When to leave a broker that does not answer, and whether to go back to the first."""

    after_attempts: int = 3
    after_s: float = 30.0
    prefer_first: bool = True  # probe the first broker while on another; return when it is back
    probe_interval_s: float = 30.0
    probes_to_return: int = 2  # answers in a row before returning: not on a broker mid-restart

    def __post_init__(self) -> None:
        if self.after_attempts < 1 or self.probes_to_return < 1:
            raise ValueError("after_attempts and probes_to_return must be at least 1")
        if not (self.after_s > 0 and self.probe_interval_s > 0):
            raise ValueError("after_s and probe_interval_s must be positive")


@dataclass(frozen=True)
class Attempt:
    """The next connection attempt: to ``brokers[index]``."""

    index: int
    restart_backoff: bool  # draw the delay from the back-off's first window again
    immediate: bool = False  # a planned switch: no delay at all
    moved: bool = False  # a different broker from the last attempt's


class BrokerChooser:
    """The failover state of one link. Thread-safe: paho's network thread asks for
    attempts, the publisher's threads plan failbacks and read :attr:`current`."""

    def __init__(
        self,
        brokers: tuple[Broker, ...],
        settings: FailoverSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not brokers:
            raise ValueError("at least one broker")
        self.brokers = brokers
        self.settings = settings or FailoverSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._current = 0
        self._failures = 0  # failed attempts on the current broker since it last worked
        self._failing_since: float | None = None  # the current broker's first failure
        self._tried: set[int] = {0}  # brokers tried in this outage
        self._planned: int | None = None
        self.moves = 0  # switches between brokers so far (failovers and failbacks)

    @property
    def current(self) -> int:
        with self._lock:
            return self._current

    @property
    def broker(self) -> Broker:
        return self.brokers[self.current]

    def next_attempt(self, *, connection_worked: bool) -> Attempt:
        """Called before each reconnect: the previous connection had ``connection_worked``
        (a CONNACK accepted us) or the previous attempt failed."""
        with self._lock:
            now = self._clock()
            if self._planned is not None:
                target, self._planned = self._planned, None
                return self._move_locked(target, restart_backoff=True, immediate=True)
            if connection_worked:
                self._failures = 0
                self._failing_since = None
                self._tried = {self._current}
                return Attempt(self._current, restart_backoff=True)
            self._failures += 1
            if self._failing_since is None:
                self._failing_since = now
            bound_reached = (
                self._failures >= self.settings.after_attempts
                or now - self._failing_since >= self.settings.after_s
            )
            if len(self.brokers) == 1 or not bound_reached:
                return Attempt(self._current, restart_backoff=False)
            target = (self._current + 1) % len(self.brokers)
            return self._move_locked(target, restart_backoff=target not in self._tried)

    def _move_locked(
        self, target: int, *, restart_backoff: bool, immediate: bool = False
    ) -> Attempt:
        moved = target != self._current
        self._current = target
        self._failures = 0
        self._failing_since = None
        self._tried.add(target)
        if moved:
            self.moves += 1
        return Attempt(target, restart_backoff=restart_backoff, immediate=immediate, moved=moved)

    @property
    def wants_first(self) -> bool:
        """On another broker than the first, with ``prefer_first``: probe the first."""
        with self._lock:
            return self.settings.prefer_first and self._current != 0 and self._planned is None

    def plan_return_to_first(self) -> None:
        """The next reconnect goes to the first broker at once (the publisher then ends
        the current connection with a normal DISCONNECT)."""
        with self._lock:
            self._planned = 0

    def cancel_plan(self) -> None:
        with self._lock:
            self._planned = None
