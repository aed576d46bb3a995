"""Where a camera pipeline's output goes (``pipeline.FrameSink``).

- ``OutboxSink``: the running agent's; the only one that encodes (``encode.Encoder``).
- ``PrintSink``: ``edge-agent replay``'s; one line (or JSON payload) per event on stdout.
- ``CollectingSink``: keeps every output in lists, for ``hw-sim eval`` and tests.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

from edge_agent.analytics import Alert, CountReport, SceneState
from edge_agent.encode import Encoder, alert_body, counts_body, event_body, state_body
from edge_agent.outbox import EVICTION_PRIORITY, Outbox, OutboxError
from edge_agent.pipeline import FrameOutput
from edge_agent.types import ObjectEvent, OutboundMessage, Thumbnail

log = logging.getLogger(__name__)


class OutboxSink:
    """The running agent's sink: durable first, then a nudge to the publisher.

    When the outbox cannot write (a full disk), the messages are *held* here, in order,
    and stored ahead of anything newer at the next emit or :meth:`retry` (the
    housekeeping thread's, about once a second), at most every ``retry_interval_s`` while
    the disk keeps refusing (each try writes everything held): an event's ``end`` refused
    by a full disk is sent once there is room, instead of never. What is held is bounded
    (``max_held_messages``, ``max_held_bytes``); past that, the least important and
    oldest held messages (thumbnails first, alerts last) are dropped *and counted*: the
    outbox reports their seqs as ``unstored`` in the next gap notice and in ``stats``
    (docs/delivery.md). :meth:`close` (a clean stop) tries once more and says loudly what
    is lost. Analysis goes on throughout. Shared by every camera's analysis thread, so
    one lock keeps the order.
    """

    def __init__(
        self,
        outbox: Outbox,
        encoder: Encoder,
        wake: Callable[[], None],
        *,
        max_held_messages: int = 1000,
        max_held_bytes: int = 8 << 20,
        retry_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox
        self._encoder = encoder
        self._wake = wake
        self.max_held_messages = max_held_messages
        self.max_held_bytes = max_held_bytes
        self.retry_interval_s = retry_interval_s
        self._clock = clock
        self._next_try_s = -math.inf  # while held: no try before this (monotonic)
        self._lock = threading.Lock()
        self._held: list[tuple[OutboundMessage, int]] = []  # (message, size in bytes)
        self._held_bytes = 0
        self.write_failures = 0
        self.held_dropped = 0  # given up on while held (counted as unstored by the outbox)
        self._dropped_in_outage = 0  # since the disk last took a write

    @property
    def held(self) -> int:
        """Messages waiting for the disk to take them."""
        with self._lock:
            return len(self._held)

    def emit(self, output: FrameOutput) -> None:
        messages = self._encoder.messages(output)
        with self._lock:
            stored = self._store_locked(messages)
        if stored:
            self._wake()

    def retry(self) -> None:
        """Store what the disk refused earlier, if it has room now (cheap when nothing is held)."""
        with self._lock:
            stored = bool(self._held) and self._store_locked([])
        if stored:
            self._wake()

    def close(self) -> None:
        """A clean stop: one last try; what still cannot be stored is given up on and said."""
        with self._lock:
            self._next_try_s = -math.inf  # the last chance: try now
            if not self._held or self._store_locked([]):
                return
            lost = [message for message, _ in self._held]
            self._drop_locked(lost)
            self._held, self._held_bytes = [], 0
        ends = sum(1 for m in lost if (m.json_body or {}).get("type") == "end")
        log.error(
            "stopping with %d message(s) the disk would not store, %d of them an event or "
            "alert end: they are lost (reported as unstored); the next start ends the "
            "events still open with end_reason restart",
            len(lost),
            ends,
        )

    def _store_locked(self, messages: Sequence[OutboundMessage]) -> bool:
        """Store the held messages, then ``messages``; on failure hold ``messages`` too.
        True when something was stored."""
        batch = [message for message, _ in self._held] + list(messages)
        if not batch:
            return False
        now_s = self._clock()
        if self._held and now_s < self._next_try_s:
            self._hold_locked(messages)  # the disk refused a moment ago: queue behind
            return False
        try:
            self._outbox.enqueue_many(batch, burn=False)
        except OutboxError:
            self.write_failures += 1  # the outbox has logged it (rate-limited)
            self._next_try_s = now_s + self.retry_interval_s
            self._hold_locked(messages)
            return False
        if self._held:
            log.warning(
                "stored %d message(s) held while the disk refused them (%d dropped meanwhile)",
                len(self._held),
                self._dropped_in_outage,
            )
            self._held, self._held_bytes = [], 0
        self._dropped_in_outage = 0
        return True

    def _hold_locked(self, messages: Sequence[OutboundMessage]) -> None:
        for message in messages:
            size = _size_bytes(message)
            self._held.append((message, size))
            self._held_bytes += size
        excess = len(self._held) - self.max_held_messages
        if excess <= 0 and self._held_bytes <= self.max_held_bytes:
            return
        # Least important first (thumbnails, then states, events, alerts), oldest first.
        order = sorted(
            range(len(self._held)),
            key=lambda i: (-EVICTION_PRIORITY[self._held[i][0].message_class], i),
        )
        victims: set[int] = set()
        held_bytes = self._held_bytes
        for index in order:
            if len(self._held) - len(victims) <= self.max_held_messages and (
                held_bytes <= self.max_held_bytes
            ):
                break
            victims.add(index)
            held_bytes -= self._held[index][1]
        if self._dropped_in_outage == 0:
            log.error(
                "more than %d message(s) or %d bytes held while the disk refuses them: "
                "dropping the least important (reported as unstored)",
                self.max_held_messages,
                self.max_held_bytes,
            )
        self._drop_locked([self._held[i][0] for i in sorted(victims)])
        self._held = [item for i, item in enumerate(self._held) if i not in victims]
        self._held_bytes = held_bytes

    def _drop_locked(self, messages: Sequence[OutboundMessage]) -> None:
        if not messages:
            return
        self.held_dropped += len(messages)
        self._dropped_in_outage += len(messages)
        try:
            self._outbox.report_unstored(messages)
        except OutboxError as error:  # closed under us: nothing left to report to
            log.error("could not count %d lost message(s): %s", len(messages), error)


def _size_bytes(message: OutboundMessage) -> int:
    body = message.binary_body
    if body is None:
        body = json.dumps(message.json_body, separators=(",", ":")).encode()
    return len(body) + len(message.topic)


class PrintSink:
    """Replay's sink: one line on stdout per event, alert, state and count, timed in
    seconds from ``origin_s`` (the video's start: the file's own time, not the clock of
    the replay); with ``as_json``, every payload body as one JSON line."""

    def __init__(self, as_json: bool, boot_id: str, origin_s: float = 0.0) -> None:
        self._as_json = as_json
        self._boot_id = boot_id
        self._origin_s = origin_s
        self.count = 0  # object event steps
        self.alerts = self.states = self.counts = 0  # alert steps, state changes, count reports

    def emit(self, output: FrameOutput) -> None:
        self.alerts += len(output.alerts)
        self.states += len(output.states)
        self.counts += len(output.counts)
        if self._as_json:
            bodies = [alert_body(a, self._boot_id) for a in output.alerts]
            bodies += [state_body(s, self._boot_id) for s in output.states]
            bodies += [counts_body(c, self._boot_id) for c in output.counts]
            for body in bodies:
                print(json.dumps(body, separators=(",", ":")), flush=True)
        else:
            for line in self._text_lines(output):
                print(line, flush=True)
        for event in output.events:
            self.count += 1
            body = event_body(event, self._boot_id)
            if self._as_json:
                print(json.dumps(body, separators=(",", ":")), flush=True)
            else:
                zones = ",".join(event.zones) or "-"
                print(
                    f"{self._at(event.frame_time_s)} {event.lifecycle.value.upper():6} "
                    f"{event.label:10} score={event.score:.2f} zones={zones} id={event.event_id}",
                    flush=True,
                )

    def _at(self, time_s: float) -> str:
        return f"{time_s - self._origin_s:9.2f}s"

    def _text_lines(self, output: FrameOutput) -> list[str]:
        """Alerts, states and counts as the rules a site is tuned for produce them."""
        lines = [
            f"{self._at(a.frame_time_s)} {a.lifecycle.value.upper():6} "
            f"{a.kind}:{','.join(a.labels) or '-'} rule={a.rule} zone={a.zone or '-'} "
            f"id={a.alert_id}"
            for a in output.alerts
        ]
        lines += [
            f"{self._at(s.frame_time_s)} STATE  {s.analyzer}={s.state}"
            + (f" score={s.score:.2f}" if s.score is not None else "")
            for s in output.states
        ]
        for c in output.counts:
            crossed = " ".join(
                f"{direction}:{label}={n}"
                for direction, labels in c.counts.items()
                for label, n in labels.items()
            )
            lines.append(f"{self._at(c.period_end_s)} COUNT  {c.line} {crossed or 'none'}")
        return lines


class CollectingSink:
    """Keeps what the pipeline emitted, decoded (nothing is encoded)."""

    def __init__(self) -> None:
        self.outputs: list[FrameOutput] = []
        self.alerts: list[Alert] = []
        self.states: list[SceneState] = []
        self.counts: list[CountReport] = []
        self.events: list[ObjectEvent] = []
        self.thumbnails: list[Thumbnail] = []

    def emit(self, output: FrameOutput) -> None:
        self.outputs.append(output)
        self.alerts.extend(output.alerts)
        self.states.extend(output.states)
        self.counts.extend(output.counts)
        self.events.extend(output.events)
        self.thumbnails.extend(output.thumbnails)
