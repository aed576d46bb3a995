"""The ``mqtt-drain`` thread: outbox rows → the broker, acknowledged in batches.

:class:`Drain` is the only writer of its in-flight table, its two streams (urgent rows,
then the rest in ``seq`` order, paced by :class:`~edge_agent.mqtt.pacer.DrainPacer`), and
the lists of rows to delete and to dead-letter. What paho's network thread learns
(connection up, birth acknowledged, PUBACKs, the broker's limits) reaches it through
:class:`LinkState`, under that object's one lock; the counters :meth:`Publisher.stats
<edge_agent.mqtt.Publisher.stats>` reports live there too. The module docstring of
:mod:`edge_agent.mqtt.publisher` states the delivery model this implements.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.mqtt.client import Client, MQTTErrorCode, PackedProperties, ReasonCode
from edge_agent.mqtt.pacer import DrainPacer
from edge_agent.mqtt.settings import DrainSettings
from edge_agent.mqtt.wire import (
    HISTORICAL_TAIL,
    is_json_object,
    publish_packet_bytes,
    row_properties_body,
)
from edge_agent.outbox import Outbox, OutboxError, StoredMessage

__all__ = ["Drain", "LinkState"]

_log = logging.getLogger("edge_agent.mqtt")

_IDLE_WAIT_S = 5.0  # drain thread safety net; all real work is event driven
_HOUSEKEEPING_INTERVAL_S = 1.0  # TTL sweep
_NOTICE_RETRY_S = 60.0  # after the broker refused a gap notice
_TRANSIENT_RETRY_S = 1.0  # after "quota exceeded"
_TRANSIENT_REASONS = frozenset({0x91, 0x97})  # packet identifier in use, quota exceeded
_POISON_STRIKES = 3  # connections in a row lost with the same message first in flight


@dataclass
class LinkState:
    """Facts paho's callbacks record for the drain thread, and the publisher's counters.

    Every field is read and written under ``lock`` (``wake`` and ``acks`` are the
    hand-over: a callback appends an ack and sets ``wake``; the drain thread takes them).
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)
    acks: deque[tuple[int, ReasonCode]] = field(default_factory=deque)
    connected: bool = False
    ready: bool = False  # connected and our birth acknowledged: safe to publish rows
    hold: bool = False  # no new rows: a planned move to another broker (mqtt/failback.py)
    leaving: bool = False  # our own DISCONNECT of that move is on its way (not a lost link)
    birth_mid: int | None = None
    ever_connected: bool = False
    reconnects: int = 0
    session_present: bool = False
    receive_maximum: int | None = None
    maximum_packet_bytes: int | None = None
    last_error: str | None = None
    volatile_sent: int = 0
    volatile_dropped: int = 0
    published_total: int = 0
    acked_total: int = 0
    rejected_total: int = 0
    historical_total: int = 0
    retried_total: int = 0
    paced: bool = False
    lost_links: int = 0  # ready connections lost for no stated reason


@dataclass
class _Stream:
    """One ordered stream of outbox rows: claimed rows not yet published, and a cursor."""

    urgent: bool
    buffer: deque[StoredMessage] = field(default_factory=deque)
    cursor: int = 0  # highest row id claimed so far (the non-urgent stream)
    epoch_seen: int = -1  # the outbox's urgent_epoch when last asked (the urgent stream)
    more: bool = False  # the last claim filled a batch: ask again even if epoch is unchanged


class Drain:
    """Claims outbox rows, publishes them at most ``max_inflight`` unacknowledged, and
    deletes or dead-letters them as PUBACKs come in (see the module docstring)."""

    def __init__(
        self,
        outbox: Outbox,
        client: Client,
        link: LinkState,
        *,
        gaps_topic: str,
        settings: DrainSettings,
        max_inflight: int,
        batch: int,
        v5: bool,
        clock: Callable[[], float],
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._link = link
        self._gaps_topic = gaps_topic
        self._settings = settings
        self._max_inflight = max_inflight
        self._batch = batch
        self._v5 = v5
        self._clock = clock
        self._pacer = DrainPacer(
            settings.rate_msgs_per_s, settings.rate_bytes_per_s, burst_s=settings.burst_s
        )
        # Owned by the drain thread (and by release() once that thread has ended).
        self._inflight: dict[int, StoredMessage] = {}
        self._urgent = _Stream(urgent=True)
        self._rest = _Stream(urgent=False)
        self._to_delete: list[int] = []  # acknowledged, not yet deleted from the outbox
        self._refused: list[tuple[StoredMessage, str]] = []  # not yet dead-lettered
        self._notice_pause_until = 0.0
        self._rest_pause_until = 0.0
        self._next_housekeeping = 0.0
        self._lost_links_seen = 0
        self._was_ready = False  # to trim the pacer's credit on each new connection
        self._backlog_waited = False  # ... and when a backlog resumes after a wait
        self._strike_row: int | None = None
        self._strikes = 0

        self._stop_requested = threading.Event()
        self._stop_deadline = math.inf
        self.thread = threading.Thread(target=self._run, name="mqtt-drain", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def request_stop(self, deadline: float) -> None:
        """Drain what can be drained until ``deadline`` (monotonic), then end the thread."""
        self._stop_deadline = deadline
        self._stop_requested.set()
        self._link.wake.set()

    def release(self) -> None:
        """Once the thread has ended: settle acks that came late, delete and dead-letter,
        and give our claims back (a later publisher on this outbox sends those rows)."""
        self._settle_acks()
        self._flush()
        claimed = [m.row_id for m in self._inflight.values()]
        claimed += [m.row_id for s in (self._urgent, self._rest) for m in s.buffer]
        self._outbox.release(claimed + self._to_delete)

    def inflight_count(self) -> int:
        return len(self._inflight)

    def inflight_seqs(self) -> list[int]:
        """Seqs published and not yet acknowledged (diagnostics and fault tests)."""
        while True:
            try:
                return sorted(m.seq for m in list(self._inflight.values()))
            except RuntimeError:  # the drain thread changed the dict meanwhile
                continue

    def _run(self) -> None:
        wait_s = 0.0
        while True:
            try:
                if self._stop_requested.is_set():
                    wait_s = min(wait_s, max(0.0, self._stop_deadline - time.monotonic()))
                self._link.wake.wait(wait_s)
                self._link.wake.clear()
                self._settle_acks()
                if self._stop_requested.is_set() and (
                    time.monotonic() >= self._stop_deadline or self._drained()
                ):
                    self._flush()
                    return
                wait_s = self._step()
            except Exception as error:  # a dead drain thread must be loud, not silent
                _log.exception("MQTT drain step failed; retrying in %.0f s", _IDLE_WAIT_S)
                with self._link.lock:
                    self._link.last_error = f"drain failed: {error!r}"
                wait_s = _IDLE_WAIT_S

    def _step(self) -> float:
        """One round of work; returns how long the drain thread may sleep."""
        now_s = time.monotonic()
        if now_s >= self._next_housekeeping:
            self._next_housekeeping = now_s + _HOUSEKEEPING_INTERVAL_S
            self._flush()
            self._guard(self._outbox.expire, "expire")
        with self._link.lock:
            ready = self._link.ready and not self._link.hold
            lost_links = self._link.lost_links
        if lost_links != self._lost_links_seen:
            self._lost_links_seen = lost_links
            self._check_poison()
        if ready and not self._was_ready:
            self._pacer.trim()  # no burst of credit saved up while offline
        self._was_ready = ready
        wait_s = _IDLE_WAIT_S
        if ready:
            if now_s >= self._notice_pause_until and self._outbox.notice_wanted():
                self._guard(lambda: self._outbox.issue_gap_notice(self._gaps_topic), "gap notice")
            caught_up, wait_s = self._publish_more()
            with self._link.lock:
                self._link.paced = wait_s < _IDLE_WAIT_S and not caught_up
            if caught_up:
                self._flush()  # live traffic: delete at once, one transaction per batch
        # While a backlog drains (fast or paced), deletes wait for a full batch or the
        # next housekeeping round: one transaction per 100 rows, not per PUBACK.
        if not ready or len(self._to_delete) >= self._batch or self._refused:
            self._flush()
        return min(wait_s, max(0.0, self._next_housekeeping - time.monotonic()) + 0.001)

    def _check_poison(self) -> None:
        """A link lost again and again with the same message first in flight: set it aside.

        Some brokers (mosquitto 2.0 with ``message_size_limit``) close the connection on
        a message they will not take instead of refusing it, and do not announce the
        limit. paho would resend it on every reconnect, forever: the queue would be
        blocked. After ``_POISON_STRIKES`` such losses in a row (each on a connection
        whose birth was acknowledged) the message is dead-lettered like a refused one.
        """
        head = next(iter(self._inflight.items()), None)
        if head is None:
            self._strike_row, self._strikes = None, 0
            return
        mid, message = head
        if message.row_id == self._strike_row:
            self._strikes += 1
        else:
            self._strike_row, self._strikes = message.row_id, 1
        if self._strikes < _POISON_STRIKES or not self._forget_in_paho(mid):
            return
        del self._inflight[mid]
        self._strike_row, self._strikes = None, 0
        self._refuse(
            message,
            f"lost the connection {_POISON_STRIKES} times in a row (too large for the broker?)",
        )

    def _forget_in_paho(self, mid: int) -> bool:
        """Drop one message from paho's retransmission queue (paho has no API for it)."""
        out_messages = getattr(self._client, "_out_messages", None)
        mutex = getattr(self._client, "_out_message_mutex", None)
        if out_messages is None or mutex is None:
            _log.error("cannot set a message aside: this paho version hides its queue")
            return False
        with mutex:
            return out_messages.pop(mid, None) is not None

    def _guard(self, action: Callable[[], object], what: str) -> None:
        """Run an outbox write; a failure (e.g. disk full) is recorded and retried later."""
        try:
            action()
        except OutboxError as error:
            with self._link.lock:
                self._link.last_error = f"outbox {what} failed: {error}"

    def _drained(self) -> bool:
        if self._inflight or self._urgent.buffer or self._rest.buffer:
            return False
        return self._outbox.unclaimed() == 0

    def _settle_acks(self) -> None:
        """Match PUBACKs to rows; the rows are deleted later, in batches (_flush)."""
        with self._link.lock:
            acks = list(self._link.acks)
            self._link.acks.clear()
        delivered = 0
        retried = 0
        for mid, reason_code in acks:
            message = self._inflight.pop(mid, None)
            if message is None:
                continue  # a status or volatile message
            if not reason_code.is_failure:
                delivered += 1
                self._to_delete.append(message.row_id)
            elif reason_code.value in _TRANSIENT_REASONS:
                retried += 1
                _log.warning(
                    "broker deferred seq %d on %s: %s; retrying",
                    message.seq,
                    message.topic,
                    reason_code,
                )
                self._outbox.release([message.row_id])
                stream = self._urgent if message.urgent else self._rest
                stream.cursor = min(stream.cursor, message.row_id - 1)
                self._rest_pause_until = time.monotonic() + _TRANSIENT_RETRY_S
            else:
                self._refuse(
                    message, f"refused by the broker: {reason_code} ({reason_code.value:#04x})"
                )
        if delivered or retried:
            with self._link.lock:
                self._link.acked_total += delivered
                self._link.retried_total += retried

    def _refuse(self, message: StoredMessage, reason: str) -> None:
        _log.error(
            "seq %d on %s %s; moved to the dead-letter table (reported on %s)",
            message.seq,
            message.topic,
            reason,
            self._gaps_topic,
        )
        self._refused.append((message, reason))
        if message.is_gap_notice:
            self._notice_pause_until = time.monotonic() + _NOTICE_RETRY_S
        with self._link.lock:
            self._link.rejected_total += 1
            self._link.last_error = f"seq {message.seq} {reason}"

    def _flush(self) -> None:
        """Delete acknowledged rows and dead-letter refused ones, one transaction each.

        Deferring the delete while a backlog drains costs nothing in safety: the rows
        stay claimed, and a crash before the delete only means they are sent again
        (at-least-once), at most ``batch`` of them. If the disk refuses the write the
        lists are kept and retried on the next flush.
        """
        if self._to_delete:
            try:
                self._outbox.ack(self._to_delete)
                self._to_delete = []
            except OutboxError as error:
                with self._link.lock:
                    self._link.last_error = f"outbox ack failed: {error}"
        if self._refused:
            try:
                self._outbox.dead_letter(self._refused)
                self._refused = []
            except OutboxError as error:
                with self._link.lock:
                    self._link.last_error = f"outbox dead-letter failed: {error}"

    def _next_message(self) -> StoredMessage | None:
        """The next row to send: urgent ones first, then the rest, each in seq order."""
        urgent = self._urgent
        if not urgent.buffer:
            epoch = self._outbox.urgent_epoch
            if epoch != urgent.epoch_seen or urgent.more:
                rows = self._outbox.claim(self._batch, urgent=True)
                urgent.buffer.extend(rows)
                urgent.epoch_seen = epoch
                urgent.more = len(rows) == self._batch
        if urgent.buffer:
            return urgent.buffer[0]
        rest = self._rest
        if not rest.buffer:
            rows = self._outbox.claim(self._batch, urgent=False, after_row_id=rest.cursor)
            if not rows:
                return None
            rest.buffer.extend(rows)
            rest.cursor = rows[-1].row_id
        return rest.buffer[0]

    def _publish_more(self) -> tuple[bool, float]:
        """Publish while the window allows: (outbox ran dry, how long to wait if paced)."""
        with self._link.lock:
            receive_maximum = self._link.receive_maximum
            maximum_packet = self._link.maximum_packet_bytes
        window = min(self._max_inflight, receive_maximum or self._max_inflight)
        if self._backlog_waited:
            # No burst of credit saved up while the backlog waited (for PUBACKs, or for
            # a drain thread that woke late from a paced wait on a busy machine).
            self._pacer.trim()
            self._backlog_waited = False
        now_wall_s = self._clock()
        historical_after_s = self._settings.historical_after_s
        published = historical = 0
        try:
            while len(self._inflight) < window:
                message = self._next_message()
                if message is None:
                    return True, _IDLE_WAIT_S
                if not message.urgent:
                    wait_s = self._pacer.delay_s()
                    if wait_s <= 0.0 and self._rest_pause_until > time.monotonic():
                        wait_s = self._rest_pause_until - time.monotonic()
                    if wait_s > 0.0:
                        self._backlog_waited = True
                        return False, wait_s
                stream = self._urgent if message.urgent else self._rest
                payload = message.payload
                is_historical = now_wall_s - message.created_at_s > historical_after_s
                if is_historical and is_json_object(message):
                    payload = payload[:-1] + HISTORICAL_TAIL
                properties = self._row_properties(message, is_historical)
                if maximum_packet is not None:
                    size = publish_packet_bytes(
                        message.topic,
                        len(payload),
                        len(properties.pack()) if properties is not None else 1,
                    )
                    if size > maximum_packet:
                        stream.buffer.popleft()
                        self._refuse(
                            message,
                            f"is too large for the broker ({size} > {maximum_packet} bytes)",
                        )
                        continue
                try:
                    info = self._client.publish(
                        message.topic,
                        payload,
                        qos=message.qos,
                        retain=message.retain,
                        properties=properties,
                    )
                except ValueError as error:
                    # Invalid topic or oversized payload: retrying can never succeed.
                    stream.buffer.popleft()
                    self._refuse(message, f"was refused by the MQTT client: {error}")
                    continue
                if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and message.qos == 0:
                    return False, _IDLE_WAIT_S  # paho drops QoS 0 while disconnected
                # For QoS 1/2 paho keeps a message published during a disconnect and
                # sends it on reconnect, so it is in flight either way.
                stream.buffer.popleft()
                self._inflight[info.mid] = message
                published += 1
                historical += is_historical
                if not message.urgent:
                    self._pacer.spend(len(payload) + len(message.topic))
            self._backlog_waited = True  # the window is full
            return False, _IDLE_WAIT_S
        finally:
            if published:
                with self._link.lock:
                    self._link.published_total += published
                    self._link.historical_total += historical

    def _row_properties(self, message: StoredMessage, historical: bool) -> PackedProperties | None:
        if not self._v5:
            return None
        return PackedProperties(row_properties_body(message, historical))
