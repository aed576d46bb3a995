"""MQTT transport: the only module that imports paho (paho-mqtt 2.x, callback API v2).

:class:`Publisher` drains the durable :class:`~edge_agent.outbox.Outbox` to the broker;
:class:`Subscriber` is a small consumer for the demo, ``edge-agent watch`` and tests.

Delivery model (DESIGN.md §5). paho only queues in RAM, so the outbox is the source of
truth: a row is deleted only after its PUBACK. Within one process paho itself
retransmits every unacknowledged QoS 1 message (with DUP) when it reconnects, in the
order it first sent them. So after a disconnect the publisher keeps its in-flight
table instead of re-publishing those rows from the outbox (which would send each of
them twice); rows still in flight when the process dies are re-published from the
outbox by the next process. Duplicates remain possible (at-least-once): consumers
deduplicate by event id / ``seq``.

Ordering across a reconnect: paho calls ``on_connect`` and *then* retransmits the old
in-flight messages. New outbox rows are therefore published only after the broker has
acknowledged this connection's birth message, which paho sends before those
retransmissions, so the wire order stays ``seq`` order.

Threads: paho's network thread (``loop_start``) runs the callbacks, which only record
facts and set an event; the ``mqtt-drain`` thread reads the outbox, publishes and
deletes acknowledged rows in batches. The pipeline only calls :meth:`Publisher.wake`,
which sets an event and never blocks.
"""

from __future__ import annotations

import json
import logging
import math
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.outbox import Outbox, StoredMessage

__all__ = [
    "SCHEMA_VERSION",
    "MqttSettings",
    "Publisher",
    "PublisherStats",
    "ReceivedMessage",
    "Subscriber",
    "SubscriberError",
]

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Value of the ``v`` user property and of ``v`` in status payloads."""

Protocol = Literal["5", "3.1.1"]
_IDLE_WAIT_S = 5.0  # drain thread safety net; all real work is event driven


@dataclass(frozen=True)
class MqttSettings:
    """How to reach the broker. Plain data: the pydantic config converts into this."""

    host: str
    port: int
    client_id: str
    protocol: Protocol = "5"
    keepalive_s: int = 30
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_insecure: bool = False
    reconnect_min_delay_s: float = 1.0
    reconnect_max_delay_s: float = 60.0

    @property
    def uses_tls(self) -> bool:
        return any(f is not None for f in (self.tls_ca_file, self.tls_cert_file, self.tls_key_file))


@dataclass(frozen=True)
class PublisherStats:
    published_total: int
    acked_total: int
    reconnects: int
    inflight: int
    last_error: str | None = None
    rejected_total: int = 0  # broker refused (MQTT 5 failure reason) or paho refused the message
    connected: bool = False


@dataclass(frozen=True)
class ReceivedMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None

    def json(self) -> Any:
        return json.loads(self.payload)

    def user_property(self, name: str) -> str | None:
        """The first user property called ``name``, or None."""
        for key, value in self.user_properties:
            if key == name:
                return value
        return None


class SubscriberError(RuntimeError):
    """The subscriber could not connect or the broker refused a subscription."""


def _protocol(protocol: Protocol) -> MQTTProtocolVersion:
    if protocol == "5":
        return MQTTProtocolVersion.MQTTv5
    if protocol == "3.1.1":
        return MQTTProtocolVersion.MQTTv311
    raise ValueError(f"MQTT protocol must be '5' or '3.1.1', not {protocol!r}")


def _new_client(
    *,
    client_id: str,
    protocol: Protocol,
    clean_session: bool | None,
    username: str | None,
    password: str | None,
    tls_ca_file: Path | None,
    tls_cert_file: Path | None,
    tls_key_file: Path | None,
    tls_insecure: bool,
    reconnect_min_delay_s: float,
    reconnect_max_delay_s: float,
) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        # paho rejects clean_session with MQTT 5 (clean_start is given to connect()).
        clean_session=clean_session if protocol == "3.1.1" else None,
        protocol=_protocol(protocol),
    )
    if username is not None:
        client.username_pw_set(username, password)
    if any(f is not None for f in (tls_ca_file, tls_cert_file, tls_key_file)):
        client.tls_set(
            ca_certs=str(tls_ca_file) if tls_ca_file else None,
            certfile=str(tls_cert_file) if tls_cert_file else None,
            keyfile=str(tls_key_file) if tls_key_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        if tls_insecure:
            client.tls_insecure_set(True)
    client.enable_logger(_log.getChild("paho"))  # paho's own packet log, at DEBUG
    # paho takes whole seconds here.
    min_delay = max(1, math.ceil(reconnect_min_delay_s))
    client.reconnect_delay_set(
        min_delay=min_delay, max_delay=max(min_delay, math.ceil(reconnect_max_delay_s))
    )
    return client


def _new_properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]


def _compact_json(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Publisher:
    """Publishes outbox rows in ``seq`` order, at most ``max_inflight`` unacknowledged.

    Status on ``status_topic`` (QoS 1, retained): the Last Will says ``offline``; every
    (re)connect publishes ``online`` plus ``birth_payload``; :meth:`stop` publishes
    ``stopped`` and disconnects cleanly so the will is not sent.

    MQTT 5 messages carry the content type and user properties ``("v", "1")`` and
    ``("seq", "<seq>")`` followed by the message's own user properties.

    A PUBACK with an MQTT 5 failure reason code (e.g. not authorised) is logged and the
    row stays in the outbox; this process does not retry it, the next one will.
    """

    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        *,
        status_topic: str,
        birth_payload: Mapping[str, object],
        max_inflight: int = 20,
        batch: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_inflight < 1 or batch < 1:
            raise ValueError("max_inflight and batch must be at least 1")
        self.settings = settings
        self.status_topic = status_topic
        self._outbox = outbox
        self._max_inflight = max_inflight
        self._batch = batch
        self._clock = clock
        self._v5 = settings.protocol == "5"
        self._status_fields = {
            k: v for k, v in birth_payload.items() if k not in ("v", "state", "ts")
        }
        self._client = _new_client(
            client_id=settings.client_id,
            protocol=settings.protocol,
            clean_session=True,
            username=settings.username,
            password=settings.password,
            tls_ca_file=settings.tls_ca_file,
            tls_cert_file=settings.tls_cert_file,
            tls_key_file=settings.tls_key_file,
            tls_insecure=settings.tls_insecure,
            reconnect_min_delay_s=settings.reconnect_min_delay_s,
            reconnect_max_delay_s=settings.reconnect_max_delay_s,
        )
        # We bound in-flight ourselves; paho's own limit would only add a second queue.
        self._client.max_inflight_messages_set(0)
        self._client.will_set(
            status_topic,
            self._status_payload("offline", with_time=False),
            qos=1,
            retain=True,
            properties=self._properties(PacketTypes.WILLMESSAGE, "application/json", ()),
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

        self._lock = threading.Lock()  # guards the fields below, shared with paho's thread
        self._wake_event = threading.Event()
        self._acks: deque[tuple[int, ReasonCode]] = deque()
        self._connected = False
        self._ready = False  # connected and our birth acknowledged: safe to publish rows
        self._birth_mid: int | None = None
        self._ever_connected = False
        self._reconnects = 0
        self._last_error: str | None = None

        # Owned by the drain thread (and by stop() once that thread has ended).
        self._inflight: dict[int, StoredMessage] = {}
        self._buffer: deque[StoredMessage] = deque()
        self._cursor = 0  # highest outbox row id read so far
        self._to_delete: list[int] = []  # acknowledged, not yet deleted from the outbox
        self._published_total = 0
        self._acked_total = 0
        self._rejected_total = 0

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
        self._client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def wake(self) -> None:
        """Tell the drain thread there is something new in the outbox. Never blocks."""
        self._wake_event.set()

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

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
            )

    def stop(self, timeout_s: float = 5.0) -> None:
        """Drain what we can within ``timeout_s``, publish ``stopped``, disconnect cleanly.

        Whatever is not acknowledged by then stays in the outbox for the next start.
        """
        if not self._started:
            return
        start = time.monotonic()
        deadline = start + timeout_s
        # Keep a slice of the budget for the "stopped" status and the disconnect.
        self._stop_deadline = deadline - min(1.0, timeout_s / 4.0)
        self._stop_requested.set()
        self._wake_event.set()
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.connected:
            info = self._client.publish(
                self.status_topic,
                self._status_payload("stopped"),
                qos=1,
                retain=True,
                properties=self._properties(PacketTypes.PUBLISH, "application/json", ()),
            )
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as error:
                _log.warning("could not publish 'stopped' status: %s", error)
        self._client.disconnect()
        self._client.loop_stop()
        if not self._thread.is_alive():
            self._settle_acks()  # acks that arrived after the drain thread ended
            self._flush_acks()
        with self._lock:
            self._connected = False
            self._ready = False

    # -- paho callbacks (network thread): record and wake, nothing slow ---------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            with self._lock:
                self._last_error = f"connection refused: {reason_code}"
            _log.error("MQTT broker %s:%s refused connection: %s", *self._where(), reason_code)
            return
        birth = client.publish(
            self.status_topic,
            self._status_payload("online"),
            qos=1,
            retain=True,
            properties=self._properties(PacketTypes.PUBLISH, "application/json", ()),
        )
        with self._lock:
            if self._ever_connected:
                self._reconnects += 1
            self._ever_connected = True
            self._connected = True
            self._ready = False
            self._birth_mid = birth.mid
        _log.info("connected to MQTT broker %s:%s", *self._where())
        self._wake_event.set()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            was_connected = self._connected
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
        client: paho.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            if mid == self._birth_mid:
                # paho sent the birth before retransmitting the previous connection's
                # in-flight messages, so from here on new rows go out after them.
                self._ready = True
                self._birth_mid = None
            self._acks.append((mid, reason_code))
        self._wake_event.set()

    # -- drain thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                wait_s = _IDLE_WAIT_S
                if self._stop_requested.is_set():
                    wait_s = min(wait_s, max(0.0, self._stop_deadline - time.monotonic()))
                self._wake_event.wait(wait_s)
                self._wake_event.clear()
                self._settle_acks()
                if self._stop_requested.is_set() and (
                    time.monotonic() >= self._stop_deadline or self._drained()
                ):
                    self._flush_acks()
                    return
                with self._lock:
                    ready = self._ready
                caught_up = self._publish_more() if ready else True
                if caught_up or len(self._to_delete) >= self._batch:
                    self._flush_acks()
        except Exception as error:  # a dead drain thread must be loud, not silent
            _log.exception("MQTT drain thread failed")
            with self._lock:
                self._last_error = f"drain thread failed: {error!r}"

    def _drained(self) -> bool:
        if self._inflight or self._buffer:
            return False
        return not self._outbox.pending(1, after_row_id=self._cursor)

    def _settle_acks(self) -> None:
        """Match PUBACKs to rows; the rows are deleted later, in batches (_flush_acks)."""
        with self._lock:
            acks = list(self._acks)
            self._acks.clear()
        delivered = 0
        rejected = 0
        for mid, reason_code in acks:
            message = self._inflight.pop(mid, None)
            if message is None:
                continue  # a status message
            if reason_code.is_failure:
                rejected += 1
                _log.error(
                    "broker refused seq %d on %s: %s (kept in the outbox)",
                    message.seq,
                    message.topic,
                    reason_code,
                )
                with self._lock:
                    self._last_error = f"publish refused: {reason_code}"
                continue
            delivered += 1
            self._to_delete.append(message.row_id)
        if delivered or rejected:
            with self._lock:
                self._acked_total += delivered
                self._rejected_total += rejected

    def _flush_acks(self) -> None:
        """Delete acknowledged rows, one transaction per batch.

        Deferring the delete while a backlog drains costs nothing in safety: the read
        cursor is already past these rows, and a crash before the delete only means
        they are sent again (at-least-once), at most ``batch`` of them.
        """
        if self._to_delete:
            self._outbox.ack(self._to_delete)
            self._to_delete = []

    def _publish_more(self) -> bool:
        """Publish until the in-flight window is full; True if the outbox ran dry."""
        while len(self._inflight) < self._max_inflight:
            if not self._buffer:
                rows = self._outbox.pending(self._batch, after_row_id=self._cursor)
                if not rows:
                    return True
                self._buffer.extend(rows)
                self._cursor = rows[-1].row_id
            message = self._buffer[0]
            try:
                info = self._client.publish(
                    message.topic,
                    message.payload,
                    qos=message.qos,
                    retain=message.retain,
                    properties=self._properties(
                        PacketTypes.PUBLISH,
                        message.content_type,
                        (
                            ("v", str(SCHEMA_VERSION)),
                            ("seq", str(message.seq)),
                            *message.user_properties,
                        ),
                    ),
                )
            except ValueError as error:
                # Invalid topic or oversized payload: retrying can never succeed.
                self._buffer.popleft()
                _log.error("dropping seq %d on %r: %s", message.seq, message.topic, error)
                self._outbox.ack([message.row_id])
                with self._lock:
                    self._rejected_total += 1
                    self._last_error = f"invalid message seq {message.seq}: {error}"
                continue
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and message.qos == 0:
                return False  # paho drops QoS 0 while disconnected; keep it for after reconnect
            # For QoS 1/2 paho keeps a message published during a disconnect and sends it
            # on reconnect, so it is in flight either way.
            self._buffer.popleft()
            self._inflight[info.mid] = message
            with self._lock:
                self._published_total += 1
        return False

    # -- helpers ------------------------------------------------------------------

    def _where(self) -> tuple[str, int]:
        return self.settings.host, self.settings.port

    def _status_payload(self, state: str, *, with_time: bool = True) -> bytes:
        body: dict[str, object] = {"v": SCHEMA_VERSION, "state": state}
        if with_time:
            body["ts"] = round(self._clock(), 3)
        body.update(self._status_fields)
        return _compact_json(body)

    def _properties(
        self, packet_type: int, content_type: str, user_properties: tuple[tuple[str, str], ...]
    ) -> Properties | None:
        if not self._v5:
            return None
        props = _new_properties(packet_type)
        props.ContentType = content_type
        props.UserProperty = list(user_properties) or [("v", str(SCHEMA_VERSION))]
        return props


class Subscriber:
    """Connects, subscribes at QoS 1 and hands every message to ``on_message``.

    With ``clean_start=False`` and ``session_expiry_s > 0`` (MQTT 5; with 3.1.1 the
    session is kept while the broker lives) the broker queues QoS 1 messages while we
    are away, so a reconnect loses nothing. ``on_message`` runs on paho's thread.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topics: Sequence[str],
        *,
        client_id: str,
        on_message: Callable[[ReceivedMessage], None],
        protocol: Protocol = "5",
        clean_start: bool = True,
        session_expiry_s: int = 0,
        qos: int = 1,
        keepalive_s: int = 30,
        username: str | None = None,
        password: str | None = None,
        tls_ca_file: Path | None = None,
        tls_cert_file: Path | None = None,
        tls_key_file: Path | None = None,
        tls_insecure: bool = False,
        reconnect_min_delay_s: float = 1.0,
        reconnect_max_delay_s: float = 5.0,
    ) -> None:
        if not topics:
            raise ValueError("Subscriber needs at least one topic")
        self.host = host
        self.port = port
        self.topics = tuple(topics)
        self.client_id = client_id
        self._on_message_cb = on_message
        self._protocol = protocol
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self._qos = qos
        self._keepalive_s = keepalive_s
        self._client = _new_client(
            client_id=client_id,
            protocol=protocol,
            clean_session=clean_start,
            username=username,
            password=password,
            tls_ca_file=tls_ca_file,
            tls_cert_file=tls_cert_file,
            tls_key_file=tls_key_file,
            tls_insecure=tls_insecure,
            reconnect_min_delay_s=reconnect_min_delay_s,
            reconnect_max_delay_s=reconnect_max_delay_s,
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._cond = threading.Condition()
        self._connected = False
        self._connects = 0
        self._subscribed = False
        self._error: str | None = None
        self._started = False

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._connected

    @property
    def connects(self) -> int:
        """Successful connections so far (1 after start, +1 per reconnect)."""
        with self._cond:
            return self._connects

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe; return once the broker granted every subscription."""
        if self._started:
            raise RuntimeError("Subscriber.start() called twice")
        self._started = True
        properties: Properties | None = None
        clean_start: paho.CleanStartOption = paho.MQTT_CLEAN_START_FIRST_ONLY
        if self._protocol == "5":
            clean_start = self._clean_start
            properties = _new_properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self._session_expiry_s
        try:
            self._client.connect(
                self.host,
                self.port,
                keepalive=self._keepalive_s,
                clean_start=clean_start,
                properties=properties,
            )
        except OSError as error:
            raise SubscriberError(
                f"cannot connect to MQTT broker {self.host}:{self.port}: {error}"
            ) from error
        self._client.loop_start()
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._subscribed and self._error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            failure = self._error
            subscribed = self._subscribed
        if not subscribed:
            self.stop()
            raise SubscriberError(
                failure
                or f"no SUBACK from {self.host}:{self.port} within {timeout_s} s for {self.topics}"
            )

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        with self._cond:
            self._connected = False

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            with self._cond:
                self._error = f"broker {self.host}:{self.port} refused connection: {reason_code}"
                self._cond.notify_all()
            return
        with self._cond:
            first = self._connects == 0
            self._connects += 1
            self._connected = True
        if first or not flags.session_present:
            client.subscribe([(topic, self._qos) for topic in self.topics])

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._connected = False

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [
            f"{topic}: {code}"
            for topic, code in zip(self.topics, reason_codes, strict=False)
            if code.is_failure
        ]
        with self._cond:
            if refused:
                self._error = "broker refused subscription: " + "; ".join(refused)
            else:
                self._subscribed = True
            self._cond.notify_all()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        props = msg.properties
        user_properties: tuple[tuple[str, str], ...] = ()
        content_type: str | None = None
        if props is not None:
            user_properties = tuple((str(k), str(v)) for k, v in getattr(props, "UserProperty", []))
            content_type = getattr(props, "ContentType", None)
        received = ReceivedMessage(
            topic=msg.topic,
            payload=bytes(msg.payload),
            qos=msg.qos,
            retain=bool(msg.retain),
            user_properties=user_properties,
            content_type=content_type,
        )
        try:
            self._on_message_cb(received)
        except Exception:  # a consumer bug must not kill paho's network thread
            _log.exception("on_message handler failed for %s", msg.topic)
