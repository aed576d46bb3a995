"""The ``mqtt-failback`` thread: back to the first broker of the list once it answers.

While the link is on another broker and ``failover.prefer_first`` is set, the first
broker is probed every ``probe_interval_s`` (a TCP connection, and the TLS handshake
with the link's own context when the link uses TLS: the broker listens and its
certificate is good; no MQTT CONNECT, which would take over our own session). After
``probes_to_return`` answers in a row the link moves back, planned so that nothing is
lost or sent twice:

1. the drain stops sending new rows (``LinkState.hold``);
2. once every row in flight is acknowledged (at most ``drain_timeout_s``; otherwise the
   move is put off to the next probe), the publisher says ``offline`` (retained) on the
   broker it leaves and ends that connection with a normal DISCONNECT (no will);
3. paho reconnects at once to the first broker (:class:`BrokerChooser` plans it); the
   birth there lifts the hold and the outbox carries on in ``seq`` order.

A move after a failure (the broker died) cannot be planned: what was in flight is sent
again to the next broker (at-least-once, consumers deduplicate by ``seq``).

A return that does not hold (the first broker takes TCP but refuses the device, or dies
again before the device is settled there) doubles the probe interval, up to an hour, so a
half-broken first broker does not pull the device back and forth every minute.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable

from edge_agent.mqtt.drain import LinkState
from edge_agent.mqtt.failover import Broker, BrokerChooser

__all__ = ["Failback", "ProbeSchedule", "probe_broker_port"]

_log = logging.getLogger("edge_agent.mqtt")

THREAD_NAME = "mqtt-failback"
MAX_PROBE_INTERVAL_S = 3600.0
_POLL_S = 0.05


def probe_broker_port(broker: Broker, context: ssl.SSLContext | None, timeout_s: float) -> bool:
    """True when ``broker`` accepts a TCP connection (and completes a TLS handshake with
    ``context``, checking its certificate against the host name)."""
    try:
        with socket.create_connection((broker.host, broker.port), timeout=timeout_s) as raw:
            if context is None:
                return True
            with context.wrap_socket(raw, server_hostname=broker.host):
                return True
    except (OSError, ssl.SSLError):
        return False


class ProbeSchedule:
    """How often the first broker is probed: ``base_s``, doubled (up to ``cap_s``) after
    each return that did not hold, back to ``base_s`` after one that did."""

    def __init__(self, base_s: float, cap_s: float = MAX_PROBE_INTERVAL_S) -> None:
        self.base_s = base_s
        self.cap_s = max(cap_s, base_s)
        self.interval_s = base_s
        self._returning = False

    def returned(self) -> None:
        """We just left for the first broker."""
        self._returning = True

    def may_probe(self, *, on_first: bool, ready: bool) -> bool:
        """Each tick: False while a return is still settling (or held)."""
        if not self._returning:
            return True
        if on_first:
            if ready:  # connected, birth acknowledged: it held
                self._returning = False
                self.interval_s = self.base_s
            return False
        self._returning = False  # failed over again before the first broker took us
        self.interval_s = min(self.cap_s, self.interval_s * 2)
        _log.warning(
            "the return to the first broker did not hold; probing it every %.0f s",
            self.interval_s,
        )
        return True


class Failback:
    """Probes the first broker while on another, and moves back (module docstring)."""

    def __init__(
        self,
        chooser: BrokerChooser,
        link: LinkState,
        *,
        inflight: Callable[[], int],
        leave: Callable[[], bool],
        probe: Callable[[Broker], bool],
        drain_timeout_s: float = 10.0,
    ) -> None:
        self._chooser = chooser
        self._link = link
        self._inflight = inflight
        self._leave = leave
        self._probe = probe
        self._drain_timeout_s = drain_timeout_s
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout_s: float) -> bool:
        """False if the thread is still running after ``timeout_s`` (a probe hanging)."""
        self._stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=max(0.0, timeout_s))
        return not self.thread.is_alive()

    def _run(self) -> None:
        settings = self._chooser.settings
        schedule = ProbeSchedule(settings.probe_interval_s)
        answers = 0
        while not self._stopping.wait(schedule.interval_s):
            with self._link.lock:
                ready = self._link.ready
            on_first = self._chooser.current == 0
            if not schedule.may_probe(on_first=on_first, ready=ready):
                continue
            if not (ready and self._chooser.wants_first):
                answers = 0
                continue
            first = self._chooser.brokers[0]
            answers = answers + 1 if self._probe(first) else 0
            if answers < settings.probes_to_return:
                continue
            answers = 0
            try:
                if self._move_back(first):
                    schedule.returned()
            except Exception:  # never leave the drain on hold because of a bug here
                _log.exception("moving back to the first broker %s failed", first)
                self._release_hold()

    def _move_back(self, first: Broker) -> bool:
        """True when we left for ``first``."""
        with self._link.lock:
            self._link.hold = True
        self._link.wake.set()
        deadline = time.monotonic() + self._drain_timeout_s
        while self._inflight() > 0 and time.monotonic() < deadline:
            if self._stopping.wait(_POLL_S):
                break
        with self._link.lock:
            still_held = self._link.hold and self._link.ready  # no reconnect meanwhile
        if self._stopping.is_set() or not still_held or self._inflight() > 0:
            _log.info("not moving back to %s now: messages still in flight", first)
            self._release_hold()
            return False
        self._chooser.plan_return_to_first()
        _log.warning("the first broker %s answers again: moving back to it", first)
        if not self._leave():
            self._chooser.cancel_plan()
            self._release_hold()
            return False
        return True  # the hold ends with the birth on the first broker (Publisher._on_connect)

    def _release_hold(self) -> None:
        with self._link.lock:
            self._link.hold = False
        self._link.wake.set()
