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
:mod:`edge_agent.mqtt.command_queue`); the ``mqtt-drain`` thread
(:mod:`edge_agent.mqtt.drain`) claims outbox rows, publishes and acknowledges in
batches. The pipeline only calls :meth:`Publisher.wake`, which never blocks.
:meth:`Publisher.stop` returns the names of threads that did not end within its budget
(and logs them as errors).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edge_agent.encode import Topics
from edge_agent.mqtt.client import (
    MAX_COMMAND_PACKET_BYTES,
    Client,
    ClientFactory,
    ConnectFlags,
    DisconnectFlags,
    JitteredClient,
    MQTTErrorCode,
    Properties,
    ReasonCode,
    connect_properties,
    new_client,
    reload_tls,
)
from edge_agent.mqtt.command_queue import CommandCallback, CommandPort
from edge_agent.mqtt.drain import Drain, LinkState
from edge_agent.mqtt.failback import Failback, probe_broker_port
from edge_agent.mqtt.settings import DrainSettings, MqttSettings
from edge_agent.mqtt.status import StatusMessages, message_properties
from edge_agent.mqtt.wire import publish_packet_bytes
from edge_agent.outbox import Outbox
from edge_agent.service.logs import worth_saying

__all__ = ["Publisher", "PublisherStats"]

_log = logging.getLogger("edge_agent.mqtt")

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
    broker: str = ""  # host:port of the broker in use (or being tried)
    broker_moves: int = 0  # switches between the brokers of the list (failover, failback)


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
        self._clock = clock
        self._v5 = settings.protocol == "5"
        self._client = client_factory(settings, clean_session=not settings.keeps_session)
        # We bound in-flight ourselves; paho's own limit would only add a second queue.
        self._client.max_inflight_messages_set(0)
        self._status = StatusMessages(
            self._client, topics.status, birth_payload, v5=self._v5, clock=clock
        )
        self._status.set_will()
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._online_payload: bytes | None = None  # this connection's birth (announce)
        self._link = LinkState()
        self._commands: CommandPort | None = None
        if on_command is not None:
            self._commands = CommandPort(
                self._client,
                topics,
                self._link,
                on_command,
                v5=self._v5,
                capacity=command_queue_size,
            )
        self._drain = Drain(
            outbox,
            self._client,
            self._link,
            gaps_topic=topics.gaps,
            settings=self.drain,
            max_inflight=max_inflight,
            batch=batch,
            v5=self._v5,
            clock=clock,
        )
        self._failback: Failback | None = None
        self._chooser = self._client.brokers if isinstance(self._client, JitteredClient) else None
        chooser = self._chooser
        if chooser is not None and len(chooser.brokers) > 1 and chooser.settings.prefer_first:
            self._failback = Failback(
                chooser,
                self._link,
                inflight=self._drain.inflight_count,
                leave=self._leave_broker,
                probe=lambda broker: probe_broker_port(
                    broker, self._client._ssl_context, min(5.0, chooser.settings.probe_interval_s)
                ),
            )
        self._started = False
        self._oversize_volatile = 0  # volatile messages over the broker's packet size

    # -- public API -------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and start draining; returns at once."""
        if self._started:
            raise RuntimeError("Publisher.start() called twice")
        self._started = True
        s = self.settings
        # Keep the session over reconnects *and* restarts: commands queued for us while
        # we were away still arrive.
        clean_start, properties = connect_properties(
            s, maximum_packet_bytes=MAX_COMMAND_PACKET_BYTES
        )
        if self._commands is not None:
            self._commands.start()
        self._client.connect_async(
            s.host, s.port, keepalive=s.keepalive_s, clean_start=clean_start, properties=properties
        )
        self._client.loop_start()
        self._drain.start()
        if self._failback is not None:
            self._failback.start()

    def wake(self) -> None:
        """Tell the drain thread there is something new in the outbox. Never blocks."""
        self._link.wake.set()

    @property
    def connected(self) -> bool:
        with self._link.lock:
            return self._link.connected

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
        with self._link.lock:
            connected, maximum_packet = self._link.connected, self._link.maximum_packet_bytes
        sent = False
        properties = message_properties(
            self._v5, content_type, expiry_s=math.ceil(expiry_s), user_properties=user_properties
        )
        size = publish_packet_bytes(
            topic, len(payload), len(properties.pack()) if properties else 1
        )
        if connected and maximum_packet is not None and size > maximum_packet:
            connected = False  # the broker would drop the link for it: dropped here, counted
            with self._link.lock:
                self._oversize_volatile += 1
                oversize = self._oversize_volatile
            if worth_saying(oversize):  # previews: up to 5 a second
                _log.warning(
                    "%r not sent: %d bytes, the broker takes %d (%d such so far)",
                    topic,
                    size,
                    maximum_packet,
                    oversize,
                )
        if connected:
            try:
                info = self._client.publish(
                    topic, payload, qos=qos, retain=retain, properties=properties
                )
                sent = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            except ValueError as error:
                _log.warning("volatile message on %r refused: %s", topic, error)
        with self._link.lock:
            if sent:
                self._link.volatile_sent += 1
            else:
                self._link.volatile_dropped += 1
        return sent

    def announce(self) -> bool:
        """Publish this connection's ``online`` status again (Sparkplug's rebirth), byte
        for byte: the same ``ts``, so it does not read as a reconnect. Retained, QoS 1;
        False when not connected. Safe from any thread."""
        with self._link.lock:
            payload = self._online_payload if self._link.connected else None
        if payload is None:
            return False
        return self._status.send(payload).rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def reload_tls(self) -> None:
        """Reconnect with the certificate now in the TLS files (renewal, no restart)."""
        reload_tls(self._client, self.settings)

    def inflight_seqs(self) -> list[int]:
        """Seqs published and not yet acknowledged (diagnostics and fault tests)."""
        return self._drain.inflight_seqs()

    def stats(self) -> PublisherStats:
        with self._link.lock:
            return PublisherStats(
                published_total=self._link.published_total,
                acked_total=self._link.acked_total,
                reconnects=self._link.reconnects,
                inflight=self._drain.inflight_count(),
                last_error=self._link.last_error,
                rejected_total=self._link.rejected_total,
                connected=self._link.connected,
                session_present=self._link.session_present,
                historical_total=self._link.historical_total,
                retried_total=self._link.retried_total,
                paced=self._link.paced,
                volatile_sent=self._link.volatile_sent,
                volatile_dropped=self._link.volatile_dropped,
                broker_receive_maximum=self._link.receive_maximum,
                broker_maximum_packet_bytes=self._link.maximum_packet_bytes,
                broker="{}:{}".format(*self._where()),
                broker_moves=self._chooser.moves if self._chooser is not None else 0,
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
        deadline = time.monotonic() + timeout_s
        # Keep a slice of the budget for the "stopped" status and the disconnect.
        stop_deadline = deadline - min(1.0, timeout_s / 4.0)
        alive = []
        if self._commands is not None:
            # Told now, waited for after the drain: an idle command thread ends at once, and
            # a drain that uses its whole budget (no broker) must not leave it none.
            self._commands.request_stop()
        if self._failback is not None and not self._failback.stop(timeout_s / 4.0):
            alive.append(self._failback.thread.name)
        self._drain.request_stop(stop_deadline)
        drain_thread = self._drain.thread
        drain_thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if drain_thread.is_alive():
            alive.append(drain_thread.name)
        if self._commands is not None and not self._commands.stop(
            max(0.0, stop_deadline - time.monotonic())
        ):
            alive.append(self._commands.thread_name)
        if self.connected:
            info = self._status.send(self._status.payload("stopped"))
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as error:
                _log.warning("could not publish 'stopped' status: %s", error)
        self._client.disconnect()
        self._client.loop_stop()
        if not drain_thread.is_alive():
            self._drain.release()  # acks that came late, deletes, and our claims given back
        with self._link.lock:
            self._link.connected = False
            self._link.ready = False
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
            with self._link.lock:
                self._link.last_error = f"connection refused: {reason_code}"
            _log.error("MQTT broker %s:%s refused connection: %s", *self._where(), reason_code)
            return
        receive_maximum = getattr(properties, "ReceiveMaximum", None) if properties else None
        maximum_packet = getattr(properties, "MaximumPacketSize", None) if properties else None
        self._online_payload = self._status.payload("online")
        birth = self._status.send(self._online_payload)
        with self._link.lock:
            if self._link.ever_connected:
                self._link.reconnects += 1
            self._link.ever_connected = True
            self._link.connected = True
            self._link.ready = False
            self._link.hold = False  # a planned move (failback) ends here
            self._link.leaving = False
            self._link.birth_mid = birth.mid
            self._link.session_present = bool(flags.session_present)
            self._link.receive_maximum = int(receive_maximum) if receive_maximum else None
            self._link.maximum_packet_bytes = int(maximum_packet) if maximum_packet else None
        if self._commands is not None:
            self._commands.subscribe(client)
        _log.info(
            "connected to MQTT broker %s:%s (session %s)",
            *self._where(),
            "resumed" if flags.session_present else "new",
        )
        self._link.wake.set()

    def _on_connect_fail(self, client: Client, userdata: object) -> None:
        """The broker was unreachable, or refused us before MQTT (a TLS handshake failed:
        wrong CA, host name, revoked or expired certificate): visible in stats."""
        problem = "cannot connect to {}:{} (unreachable, or TLS refused)".format(*self._where())
        with self._link.lock:
            said, self._link.last_error = self._link.last_error == problem, problem
        if not said:  # once an outage: paho tries again with back-off, and says nothing
            _log.warning("%s; trying again with back-off, messages are kept in the outbox", problem)

    @property
    def commands_ready(self) -> bool:
        """True once the broker acknowledged our ``cmd/`` subscription on this connection."""
        return self._commands is not None and self._commands.ready

    def _on_disconnect(
        self,
        client: Client,
        userdata: object,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._link.lock:
            was_connected = self._link.connected
            planned = self._link.leaving  # our own DISCONNECT, moving to another broker
            self._link.leaving = False
            failed = reason_code.value != 0 and not planned
            if self._link.ready and failed and reason_code.value not in _DELIBERATE_DISCONNECTS:
                self._link.lost_links += 1
            self._link.connected = False
            self._link.ready = False
            self._link.birth_mid = None
            if failed:
                self._link.last_error = f"disconnected: {reason_code}"
        if was_connected and failed:
            _log.warning("lost MQTT broker %s:%s: %s", *self._where(), reason_code)
        self._link.wake.set()

    def _on_publish(
        self,
        client: Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._link.lock:
            wake = not self._link.paced or reason_code.is_failure
            if mid == self._link.birth_mid:
                # paho sent the birth before retransmitting the previous connection's
                # in-flight messages, so from here on new rows go out after them.
                self._link.ready = True
                self._link.birth_mid = None
                wake = True
            self._link.acks.append((mid, reason_code))
        # Wake per PUBACK, not per half window: the next PUBLISH carries the TCP ACK the
        # broker's Nagle is waiting for; waiting for several PUBACKs stalls on the
        # peer's 40 ms delayed ACK (measured: 10x slower). While paced, the drain thread
        # wakes on its own timer and the acks can wait for it.
        if wake:
            self._link.wake.set()

    # -- helpers ------------------------------------------------------------------

    def _where(self) -> tuple[str, int]:
        if self._chooser is not None:
            broker = self._chooser.broker
            return broker.host, broker.port
        return self.settings.host, self.settings.port

    def _leave_broker(self) -> bool:
        """A planned move (failback thread): ``offline`` on the broker we leave, acknowledged,
        then a normal DISCONNECT (no will); paho dials the next broker at once."""
        info = self._status.send(self._status.payload("offline"))
        try:
            info.wait_for_publish(timeout=5.0)
            published = info.is_published()
        except (RuntimeError, ValueError) as error:
            _log.warning("could not say 'offline' before leaving %s:%s: %s", *self._where(), error)
            published = False
        if not published and self._online_payload is not None:
            # The ``offline`` may still go out later (paho keeps it queued, and resends it
            # after the next birth): ``online`` again, queued behind it, has the last word.
            self._status.send(self._online_payload)
        if not published:
            return False
        with self._link.lock:
            self._link.leaving = True  # the DISCONNECT below is ours, not a lost link
        # Not client.disconnect(): that would stop paho's reconnect loop for good.
        self._client._send_disconnect()
        return True
