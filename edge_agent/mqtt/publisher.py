"""The device's MQTT side: :class:`Publisher` drains the durable
:class:`~edge_agent.outbox.Outbox` to the broker, sends volatile messages (stats,
previews) that are never buffered, and takes commands.
docs/delivery.md states the guarantees for operators; this docstring says how.

Delivery model. The outbox is the source of truth: a row is deleted only after its
PUBACK. Within one process paho itself retransmits every unacknowledged QoS 1 message
(with DUP) when it reconnects, in the order it first sent them, so after a disconnect
the publisher keeps its in-flight table instead of re-publishing those rows from the
outbox (which would send each of them twice); rows still in flight when the process dies
are re-published by the next process. Duplicates remain possible (at-least-once):
consumers deduplicate by event id / ``seq``.

Order: two streams. *Urgent* rows (gap notices first, then alerts in ``seq`` order) are
always taken first; the rest follow in ``seq`` order, paced by a token bucket
(messages/s and bytes/s, bursts of ``burst_s`` worth) so a backlog neither starves live
traffic nor floods a thin uplink. Urgent rows are not paced. A JSON message older than
``historical_after_s`` when it is sent says ``"historical":true`` (and carries the user
property ``historical=true``); a message that is not historical has no such key.

Ordering across a reconnect: paho calls ``on_connect`` and *then* retransmits the old
in-flight messages. New rows are therefore published only after the broker has
acknowledged this connection's birth message, which paho sends before those
retransmissions.

MQTT 5: ``clean_start=False`` with a session expiry so a short outage keeps the session
(and commands queued for us); the CONNACK's Receive Maximum caps our in-flight window
and its Maximum Packet Size is checked before sending. A PUBACK failure reason code
(not authorised, too large, ...) moves the message to the outbox's dead-letter table:
never retried, never blocking the queue, reported on the gaps topic. Quota exceeded is
the one transient code: that message is retried after a pause. With MQTT 3.1.1 the
broker cannot say no (mosquitto drops refused messages and still acknowledges them).

Threads: paho's network thread (``loop_start``) runs the callbacks, which only record
facts and set an event (a command is queued to the ``mqtt-commands`` thread,
:mod:`edge_agent.mqtt.command_queue`); the ``mqtt-drain`` thread claims outbox rows,
publishes and acknowledges in batches. The pipeline only calls :meth:`Publisher.wake`,
which never blocks. :meth:`Publisher.stop` returns the names of threads that did not end
within its budget (and logs them as errors).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from edge_agent.encode import Topics, encode_status
from edge_agent.mqtt.client import (
    Client,
    ClientFactory,
    ConnectFlags,
    DisconnectFlags,
    MQTTErrorCode,
    MQTTMessage,
    PackedProperties,
    PacketTypes,
    Properties,
    ReasonCode,
    connect_properties,
    new_client,
    new_properties,
)
from edge_agent.mqtt.command_queue import CommandCallback, CommandQueue, InboundCommand
from edge_agent.mqtt.pacer import DrainPacer
from edge_agent.mqtt.settings import DrainSettings, MqttSettings
from edge_agent.mqtt.wire import (
    HISTORICAL_TAIL,
    is_json_object,
    plain_properties_body,
    publish_packet_bytes,
    row_properties_body,
)
from edge_agent.outbox import Outbox, OutboxError, StoredMessage
from edge_agent.remote import Reply

__all__ = ["Publisher", "PublisherStats"]

_log = logging.getLogger("edge_agent.mqtt")

_IDLE_WAIT_S = 5.0  # drain thread safety net; all real work is event driven
_HOUSEKEEPING_INTERVAL_S = 1.0  # TTL sweep
_NOTICE_RETRY_S = 60.0  # after the broker refused a gap notice
_TRANSIENT_RETRY_S = 1.0  # after "quota exceeded"
_TRANSIENT_REASONS = frozenset({0x91, 0x97})  # packet identifier in use, quota exceeded
_POISON_STRIKES = 3  # connections in a row lost with the same message first in flight
# A broker that ends the session on purpose is not saying anything about our message.
_DELIBERATE_DISCONNECTS = frozenset({0x8B, 0x8E, 0x9C, 0x9D})


@dataclass(frozen=True)
class PublisherStats:
    published_total: int
    acked_total: int
    reconnects: int
    inflight: int
    last_error: str | None = None
    rejected_total: int = 0  # moved to the dead-letter table (broker or paho refused)
    connected: bool = False
    session_present: bool = False  # the broker kept our session over the last reconnect
    historical_total: int = 0  # sent with historical: true
    retried_total: int = 0  # transient refusals (quota exceeded), sent again later
    paced: bool = False  # the backlog is being held back by the drain rate limit
    volatile_sent: int = 0
    volatile_dropped: int = 0  # not connected (never buffered) or refused by paho
    broker_receive_maximum: int | None = None
    broker_maximum_packet_bytes: int | None = None


@dataclass
class _Stream:
    """One ordered stream of outbox rows: claimed rows not yet published, and a cursor."""

    urgent: bool
    buffer: deque[StoredMessage] = field(default_factory=deque)
    cursor: int = 0  # highest row id claimed so far (the non-urgent stream)
    epoch_seen: int = -1  # the outbox's urgent_epoch when last asked (the urgent stream)
    more: bool = False  # the last claim filled a batch: ask again even if epoch is unchanged


class Publisher:
    """Publishes outbox rows, urgent ones first, at most ``max_inflight`` unacknowledged.

    Status on ``topics.status`` (QoS 1, retained; :func:`edge_agent.encode.encode_status`):
    the Last Will says ``offline``; every (re)connect publishes ``online`` plus
    ``birth_payload``; :meth:`stop` publishes ``stopped`` and disconnects cleanly so the
    will is not sent. Gap notices go to ``topics.gaps``. With ``on_command``, commands on
    ``topics.commands`` are run on the ``mqtt-commands`` thread and answered.

    MQTT 5 messages carry the content type and user properties ``("v", "1")``,
    ``("seq", "<seq>")``, ``("historical", "true")`` when historical, then the message's
    own user properties.
    """

    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        topics: Topics,
        *,
        birth_payload: Mapping[str, object],
        max_inflight: int = 20,
        batch: int = 100,
        drain: DrainSettings | None = None,
        on_command: CommandCallback | None = None,
        command_queue_size: int = 8,
        clock: Callable[[], float] = time.time,
        client_factory: ClientFactory = new_client,
    ) -> None:
        if max_inflight < 1 or batch < 1:
            raise ValueError("max_inflight and batch must be at least 1")
        self.settings = settings
        self.topics = topics
        self.drain = drain or DrainSettings()
        self._outbox = outbox
        self._max_inflight = max_inflight
        self._batch = batch
        self._clock = clock
        self._v5 = settings.protocol == "5"
        self._pacer = DrainPacer(
            self.drain.rate_msgs_per_s, self.drain.rate_bytes_per_s, burst_s=self.drain.burst_s
        )
        self._birth_payload = dict(birth_payload)
        self._client = client_factory(settings, clean_session=not settings.keeps_session)
        # We bound in-flight ourselves; paho's own limit would only add a second queue.
        self._client.max_inflight_messages_set(0)
        self._client.will_set(
            topics.status,
            self._status_payload("offline", with_time=False),
            qos=1,
            retain=True,
            properties=self._properties("application/json"),
        )
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._commands: CommandQueue | None = None
        self._commands_ready = threading.Event()  # cmd/ subscription acknowledged
        if on_command is not None:
            self._commands = CommandQueue(on_command, self._send_reply, capacity=command_queue_size)
            self._client.on_message = self._on_command
            self._client.on_subscribe = self._on_command_subscribed

        self._lock = threading.Lock()  # guards the fields below, shared with paho's thread
        self._wake_event = threading.Event()
        self._acks: deque[tuple[int, ReasonCode]] = deque()
        self._connected = False
        self._ready = False  # connected and our birth acknowledged: safe to publish rows
        self._birth_mid: int | None = None
        self._ever_connected = False
        self._reconnects = 0
        self._session_present = False
        self._receive_maximum: int | None = None
        self._maximum_packet_bytes: int | None = None
        self._last_error: str | None = None
        self._volatile_sent = 0
        self._volatile_dropped = 0
        self._published_total = 0
        self._acked_total = 0
        self._rejected_total = 0
        self._historical_total = 0
        self._retried_total = 0
        self._paced = False

        # Owned by the drain thread (and by stop() once that thread has ended).
        self._inflight: dict[int, StoredMessage] = {}
        self._urgent = _Stream(urgent=True)
        self._rest = _Stream(urgent=False)
        self._to_delete: list[int] = []  # acknowledged, not yet deleted from the outbox
        self._refused: list[tuple[StoredMessage, str]] = []  # not yet dead-lettered
        self._notice_pause_until = 0.0
        self._rest_pause_until = 0.0
        self._next_housekeeping = 0.0
        self._lost_links = 0  # ready connections lost for no stated reason (paho thread)
        self._lost_links_seen = 0
        self._strike_row: int | None = None
        self._strikes = 0

        self._stop_requested = threading.Event()
        self._stop_deadline = math.inf
        self._thread = threading.Thread(target=self._run, name="mqtt-drain", daemon=True)
        self._started = False

    # -- public API -------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and start draining; returns at once."""
        if self._started:
            raise RuntimeError("Publisher.start() called twice")
        self._started = True
        s = self.settings
        # Keep the session over reconnects *and* restarts: commands queued for us while
        # we were away still arrive.
        clean_start, properties = connect_properties(s)
        if self._commands is not None:
            self._commands.start()
        self._client.connect_async(
            s.host, s.port, keepalive=s.keepalive_s, clean_start=clean_start, properties=properties
        )
        self._client.loop_start()
        self._thread.start()

    def wake(self) -> None:
        """Tell the drain thread there is something new in the outbox. Never blocks."""
        self._wake_event.set()

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    def publish_volatile(
        self,
        topic: str,
        payload: bytes,
        *,
        content_type: str,
        expiry_s: float,
        qos: int = 0,
        retain: bool = False,
        user_properties: tuple[tuple[str, str], ...] = (),
    ) -> bool:
        """Send a latest-only message (stats, preview) now, or drop it: never buffered.

        MQTT 5 gives it a message expiry of ``expiry_s`` (rounded up to whole seconds),
        so a broker does not hand a stale one to a consumer that connects later. Returns
        False when not connected or paho refused it. Safe from any thread.
        """
        if qos not in (0, 1):
            raise ValueError(f"volatile messages use QoS 0 or 1, not {qos}")
        if not expiry_s > 0:
            raise ValueError(f"expiry_s must be positive, not {expiry_s}")
        with self._lock:
            connected = self._connected
        sent = False
        if connected:
            try:
                info = self._client.publish(
                    topic,
                    payload,
                    qos=qos,
                    retain=retain,
                    properties=self._properties(
                        content_type,
                        expiry_s=math.ceil(expiry_s),
                        user_properties=user_properties,
                    ),
                )
                sent = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            except ValueError as error:
                _log.warning("volatile message on %r refused: %s", topic, error)
        with self._lock:
            if sent:
                self._volatile_sent += 1
            else:
                self._volatile_dropped += 1
        return sent

    def inflight_seqs(self) -> list[int]:
        """Seqs published and not yet acknowledged (diagnostics and fault tests)."""
        while True:
            try:
                return sorted(m.seq for m in list(self._inflight.values()))
            except RuntimeError:  # the drain thread changed the dict meanwhile
                continue

    def stats(self) -> PublisherStats:
        with self._lock:
            return PublisherStats(
                published_total=self._published_total,
                acked_total=self._acked_total,
                reconnects=self._reconnects,
                inflight=len(self._inflight),
                last_error=self._last_error,
                rejected_total=self._rejected_total,
                connected=self._connected,
                session_present=self._session_present,
                historical_total=self._historical_total,
                retried_total=self._retried_total,
                paced=self._paced,
                volatile_sent=self._volatile_sent,
                volatile_dropped=self._volatile_dropped,
                broker_receive_maximum=self._receive_maximum,
                broker_maximum_packet_bytes=self._maximum_packet_bytes,
            )

    def stop(self, timeout_s: float = 5.0) -> tuple[str, ...]:
        """Drain what we can within ``timeout_s``, publish ``stopped``, disconnect cleanly.

        Whatever is not acknowledged by then stays in the outbox for the next start.
        Returns the names of our threads still running after their join timeout (a
        stuck command, a drain step blocked on the disk), each also logged as an error;
        empty when everything stopped.
        """
        if not self._started:
            return ()
        start = time.monotonic()
        deadline = start + timeout_s
        # Keep a slice of the budget for the "stopped" status and the disconnect.
        self._stop_deadline = deadline - min(1.0, timeout_s / 4.0)
        self._stop_requested.set()
        self._wake_event.set()
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        alive = [] if not self._thread.is_alive() else [self._thread.name]
        if self._commands is not None and not self._commands.stop(
            max(0.0, self._stop_deadline - time.monotonic())
        ):
            alive.append(self._commands.thread_name)
        if self.connected:
            info = self._client.publish(
                self.topics.status,
                self._status_payload("stopped"),
                qos=1,
                retain=True,
                properties=self._properties("application/json"),
            )
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as error:
                _log.warning("could not publish 'stopped' status: %s", error)
        self._client.disconnect()
        self._client.loop_stop()
        if not self._thread.is_alive():
            self._settle_acks()  # acks that arrived after the drain thread ended
            self._flush()
            # Give our claims back: a later publisher on this outbox sends those rows.
            claimed = [m.row_id for m in self._inflight.values()]
            claimed += [m.row_id for s in (self._urgent, self._rest) for m in s.buffer]
            self._outbox.release(claimed + self._to_delete)
        with self._lock:
            self._connected = False
            self._ready = False
        for name in alive:
            _log.error("thread %r did not stop within %.1f s; left running", name, timeout_s)
        return tuple(alive)

    # -- paho callbacks (network thread): record and wake, nothing slow ---------

    def _on_connect(
        self,
        client: Client,
        userdata: object,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            with self._lock:
                self._last_error = f"connection refused: {reason_code}"
            _log.error("MQTT broker %s:%s refused connection: %s", *self._where(), reason_code)
            return
        receive_maximum = getattr(properties, "ReceiveMaximum", None) if properties else None
        maximum_packet = getattr(properties, "MaximumPacketSize", None) if properties else None
        birth = client.publish(
            self.topics.status,
            self._status_payload("online"),
            qos=1,
            retain=True,
            properties=self._properties("application/json"),
        )
        with self._lock:
            if self._ever_connected:
                self._reconnects += 1
            self._ever_connected = True
            self._connected = True
            self._ready = False
            self._birth_mid = birth.mid
            self._session_present = bool(flags.session_present)
            self._receive_maximum = int(receive_maximum) if receive_maximum else None
            self._maximum_packet_bytes = int(maximum_packet) if maximum_packet else None
        if self._commands is not None:
            # Subscribing again on a resumed session is harmless and covers a lost one.
            self._commands_ready.clear()
            client.subscribe(self.topics.commands, qos=1)
        _log.info(
            "connected to MQTT broker %s:%s (session %s)",
            *self._where(),
            "resumed" if flags.session_present else "new",
        )
        self._wake_event.set()

    def _on_connect_fail(self, client: Client, userdata: object) -> None:
        """The broker was unreachable, or refused us before MQTT (a TLS handshake failed:
        wrong CA, host name, revoked or expired certificate): visible in stats."""
        with self._lock:
            self._last_error = "cannot connect to {}:{} (unreachable, or TLS refused)".format(
                *self._where()
            )

    @property
    def commands_ready(self) -> bool:
        """True once the broker acknowledged our ``cmd/`` subscription on this connection."""
        return self._commands_ready.is_set()

    def _on_command_subscribed(
        self,
        client: Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if all(not code.is_failure for code in reason_codes):
            self._commands_ready.set()
        else:
            with self._lock:
                self._last_error = f"command subscription refused: {reason_codes}"
            _log.error("the broker refused our command subscription: %s", reason_codes)

    def _on_command(self, client: Client, userdata: object, msg: MQTTMessage) -> None:
        """A command on ``{root}/cmd/{name}``: queue it for the ``mqtt-commands`` thread.

        The reply goes to the MQTT 5 response topic when it lies under
        ``{root}/reply/`` (the only place the broker's ACL lets a device write
        replies), otherwise to ``{root}/reply/{name}``, with the correlation data
        echoed. Replies are QoS 1, never retained, and expire after a minute. A command
        that finds the queue full is refused at once (``busy``).
        """
        name = self.topics.command_name(msg.topic)
        if self._commands is None or name is None:
            return
        requested = getattr(msg.properties, "ResponseTopic", None) if msg.properties else None
        correlation = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        command = InboundCommand(
            name=name,
            payload=bytes(msg.payload),
            retained=bool(msg.retain),
            reply_topic=(
                requested
                if isinstance(requested, str) and self.topics.is_reply(requested)
                else self.topics.reply(name)
            ),
            correlation=bytes(correlation) if correlation else None,
        )
        if not self._commands.submit(command):
            _log.warning("command %r refused: %d commands waiting", name, self._commands.capacity)
            self._send_reply(
                command,
                Reply.error(f"busy: {self._commands.capacity} commands waiting; try again later"),
            )

    def _send_reply(self, command: InboundCommand, reply: Reply) -> None:
        properties: Properties | None = None
        if self._v5:
            properties = new_properties(PacketTypes.PUBLISH)
            properties.ContentType = reply.content_type
            properties.MessageExpiryInterval = 60
            if command.correlation:
                properties.CorrelationData = command.correlation
        try:
            self._client.publish(
                command.reply_topic, reply.payload, qos=1, retain=False, properties=properties
            )
        except ValueError as error:
            _log.warning("reply to command %r refused: %s", command.name, error)

    def _on_disconnect(
        self,
        client: Client,
        userdata: object,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            was_connected = self._connected
            if self._ready and reason_code.value not in _DELIBERATE_DISCONNECTS:
                self._lost_links += 1
            self._connected = False
            self._ready = False
            self._birth_mid = None
            if reason_code.value != 0:
                self._last_error = f"disconnected: {reason_code}"
        if was_connected and reason_code.value != 0:
            _log.warning("lost MQTT broker %s:%s: %s", *self._where(), reason_code)
        self._wake_event.set()

    def _on_publish(
        self,
        client: Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            wake = not self._paced or reason_code.is_failure
            if mid == self._birth_mid:
                # paho sent the birth before retransmitting the previous connection's
                # in-flight messages, so from here on new rows go out after them.
                self._ready = True
                self._birth_mid = None
                wake = True
            self._acks.append((mid, reason_code))
        # Wake per PUBACK, not per half window: the next PUBLISH carries the TCP ACK the
        # broker's Nagle is waiting for; waiting for several PUBACKs stalls on the
        # peer's 40 ms delayed ACK (measured: 10x slower). While paced, the drain thread
        # wakes on its own timer and the acks can wait for it.
        if wake:
            self._wake_event.set()

    # -- drain thread -------------------------------------------------------------

    def _run(self) -> None:
        wait_s = 0.0
        while True:
            try:
                if self._stop_requested.is_set():
                    wait_s = min(wait_s, max(0.0, self._stop_deadline - time.monotonic()))
                self._wake_event.wait(wait_s)
                self._wake_event.clear()
                self._settle_acks()
                if self._stop_requested.is_set() and (
                    time.monotonic() >= self._stop_deadline or self._drained()
                ):
                    self._flush()
                    return
                wait_s = self._step()
            except Exception as error:  # a dead drain thread must be loud, not silent
                _log.exception("MQTT drain step failed; retrying in %.0f s", _IDLE_WAIT_S)
                with self._lock:
                    self._last_error = f"drain failed: {error!r}"
                wait_s = _IDLE_WAIT_S

    def _step(self) -> float:
        """One round of work; returns how long the drain thread may sleep."""
        now_s = time.monotonic()
        if now_s >= self._next_housekeeping:
            self._next_housekeeping = now_s + _HOUSEKEEPING_INTERVAL_S
            self._flush()
            self._guard(self._outbox.expire, "expire")
        with self._lock:
            ready = self._ready
            lost_links = self._lost_links
        if lost_links != self._lost_links_seen:
            self._lost_links_seen = lost_links
            self._check_poison()
        wait_s = _IDLE_WAIT_S
        if ready:
            if now_s >= self._notice_pause_until and self._outbox.notice_wanted():
                self._guard(lambda: self._outbox.issue_gap_notice(self.topics.gaps), "gap notice")
            caught_up, wait_s = self._publish_more()
            with self._lock:
                self._paced = wait_s < _IDLE_WAIT_S and not caught_up
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
            with self._lock:
                self._last_error = f"outbox {what} failed: {error}"

    def _drained(self) -> bool:
        if self._inflight or self._urgent.buffer or self._rest.buffer:
            return False
        return self._outbox.unclaimed() == 0

    def _settle_acks(self) -> None:
        """Match PUBACKs to rows; the rows are deleted later, in batches (_flush)."""
        with self._lock:
            acks = list(self._acks)
            self._acks.clear()
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
            with self._lock:
                self._acked_total += delivered
                self._retried_total += retried

    def _refuse(self, message: StoredMessage, reason: str) -> None:
        _log.error(
            "seq %d on %s %s; moved to the dead-letter table (reported on %s)",
            message.seq,
            message.topic,
            reason,
            self.topics.gaps,
        )
        self._refused.append((message, reason))
        if message.is_gap_notice:
            self._notice_pause_until = time.monotonic() + _NOTICE_RETRY_S
        with self._lock:
            self._rejected_total += 1
            self._last_error = f"seq {message.seq} {reason}"

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
                with self._lock:
                    self._last_error = f"outbox ack failed: {error}"
        if self._refused:
            try:
                self._outbox.dead_letter(self._refused)
                self._refused = []
            except OutboxError as error:
                with self._lock:
                    self._last_error = f"outbox dead-letter failed: {error}"

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
        with self._lock:
            receive_maximum = self._receive_maximum
            maximum_packet = self._maximum_packet_bytes
        window = min(self._max_inflight, receive_maximum or self._max_inflight)
        now_wall_s = self._clock()
        historical_after_s = self.drain.historical_after_s
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
            return False, _IDLE_WAIT_S
        finally:
            if published:
                with self._lock:
                    self._published_total += published
                    self._historical_total += historical

    # -- helpers ------------------------------------------------------------------

    def _row_properties(self, message: StoredMessage, historical: bool) -> PackedProperties | None:
        if not self._v5:
            return None
        return PackedProperties(row_properties_body(message, historical))

    def _where(self) -> tuple[str, int]:
        return self.settings.host, self.settings.port

    def _status_payload(self, state: str, *, with_time: bool = True) -> bytes:
        return encode_status(state, self._birth_payload, ts=self._clock() if with_time else None)

    def _properties(
        self,
        content_type: str,
        *,
        expiry_s: int | None = None,
        user_properties: tuple[tuple[str, str], ...] = (),
    ) -> PackedProperties | None:
        if not self._v5:
            return None
        return PackedProperties(
            plain_properties_body(content_type, user_properties, expiry_s=expiry_s)
        )
