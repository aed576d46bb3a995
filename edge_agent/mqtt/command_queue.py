"""Commands off paho's network thread: a bounded queue and one ``mqtt-commands`` thread.

paho runs ``on_message`` on its network thread, which also reads PUBACKs and sends
keepalives; a command may be slow (``snapshot`` JPEG-encodes a frame), so the publisher
only queues it there and this thread runs it and sends the reply. When the queue is full
the command is refused at once (``{"ok":false,"error":"busy: ..."}``) rather than
queued without bound or run on the network thread. When the agent stops, the commands
still waiting, and any that arrive after, are refused (``STOPPING``) rather than dropped:
paho acknowledged them on arrival, so the broker will not send them again.

Where the reply goes is decided here too (:func:`reply_route`): a response topic the
device may not or cannot publish to is never used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.config_base import mqtt_text_problem
from edge_agent.encode import Topics
from edge_agent.mqtt.client import (
    Client,
    MQTTMessage,
    PacketTypes,
    Properties,
    ReasonCode,
    new_properties,
)
from edge_agent.mqtt.drain import LinkState
from edge_agent.remote import MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES, Reply
from edge_agent.strict_json import MAX_ECHO_CHARS, loads_strict, nests_deeper_than, shown

__all__ = [
    "RESPONSE_TOPIC_KEY",
    "CommandCallback",
    "CommandPort",
    "CommandQueue",
    "InboundCommand",
    "reply_route",
    "response_topic_in_payload",
    "unpublishable",
]

_log = logging.getLogger("edge_agent.mqtt")

CommandCallback = Callable[[str, bytes, bool], Reply | None]
"""(command name, payload, retained) → the reply, or None for no reply (runs on the
``mqtt-commands`` thread)."""

THREAD_NAME = "mqtt-commands"
STOPPING = "the agent is stopping: the command was not run; send it again once the device is online"


@dataclass(frozen=True)
class InboundCommand:
    """A command as received, with where its reply goes."""

    name: str
    payload: bytes
    retained: bool
    reply_topic: str
    correlation: bytes | None = None


def reply_route(topics: Topics, name: str, requested: object) -> tuple[str, str | None]:
    """Where the reply to command ``name`` goes, and why the requested MQTT 5 response
    topic was refused (None: it was fine, or there was none).

    A response topic under ``{root}/reply/`` is used as is; any other is replaced by
    ``{root}/reply/{name}`` (the broker's ACL allows no other). One under ``reply/`` that
    cannot be published to (:func:`unpublishable`: a wildcard, a control character, ...)
    is refused, with the reason on the default topic, rather than run and answered
    nowhere, or published and the connection dropped by the broker for it.
    """
    default = topics.reply(name)
    if not isinstance(requested, str) or not topics.is_reply(requested):
        return default, None
    problem = unpublishable(requested)
    if problem is not None:
        return default, (
            f"response topic {shown(requested, 4 * MAX_ECHO_CHARS)!r} is not a valid topic to "
            f"publish to ({problem}); the command was not run"
        )
    return requested, None


MAX_TOPIC_BYTES = 65_535


def unpublishable(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or None. Beyond wildcards, the broker takes a
    character MQTT forbids in a topic (a control character, a surrogate, a noncharacter:
    mosquitto checks them all) as a malformed packet and drops the connection that sent
    it; paho sends the message again on the next connection, and so on."""
    if any(char in topic for char in "+#"):
        return "it holds a wildcard + or #"
    problem = mqtt_text_problem(topic)
    if problem is not None:
        return problem
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        return f"it is longer than {MAX_TOPIC_BYTES} bytes"
    return None


RESPONSE_TOPIC_KEY = "response_topic"
"""MQTT 3.1.1 has no Response Topic property: the request's JSON object may carry it."""


def response_topic_in_payload(payload: bytes) -> tuple[bytes, object]:
    """MQTT 3.1.1: the payload without its ``response_topic`` key, and that key's value
    (None when absent). A payload that is not a small JSON object is returned as it is:
    the command handler refuses it with its own reason."""
    if len(payload) > MAX_PAYLOAD_BYTES or b'"' + RESPONSE_TOPIC_KEY.encode() not in payload:
        return payload, None
    try:
        text = payload.decode(json.detect_encoding(payload))
        if nests_deeper_than(text, MAX_JSON_DEPTH):
            return payload, None
        body = loads_strict(text)  # a key given twice: left for the handler to refuse
    except (UnicodeDecodeError, ValueError, RecursionError):
        return payload, None
    if not isinstance(body, dict) or RESPONSE_TOPIC_KEY not in body:
        return payload, None
    requested = body.pop(RESPONSE_TOPIC_KEY)
    return json.dumps(body, separators=(",", ":")).encode(), requested


class CommandQueue:
    """Runs queued commands one at a time, in arrival order, on its own thread."""

    def __init__(
        self,
        callback: CommandCallback,
        send_reply: Callable[[InboundCommand, Reply], None],
        *,
        capacity: int = 8,
    ) -> None:
        if capacity < 1:
            raise ValueError("the command queue needs room for at least one command")
        self.capacity = capacity
        self._callback = callback
        self._send_reply = send_reply
        self._queue: queue.Queue[InboundCommand | None] = queue.Queue(maxsize=capacity)
        self._stopping = threading.Event()
        self._accepting = threading.Lock()  # no command queued after the last one is refused
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    @property
    def thread_name(self) -> str:
        return self._thread.name

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        self._thread.start()

    def submit(self, command: InboundCommand) -> bool:
        """Queue ``command``; False when the queue is full or stopping (``stopping`` says
        which). Never blocks."""
        with self._accepting:
            if self._stopping.is_set():
                return False
            try:
                self._queue.put_nowait(command)
            except queue.Full:
                return False
            return True

    def request_stop(self) -> None:
        """Finish the command in hand, refuse the rest (a ``STOPPING`` reply each); returns
        at once (``stop`` waits)."""
        with self._accepting:
            self._stopping.set()
        # Wake an idle thread; a busy one checks _stopping after its command.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def stop(self, timeout_s: float) -> bool:
        """``request_stop``, then wait; False if the thread is still busy after
        ``timeout_s`` (the caller reports it)."""
        if not self._thread.is_alive():
            return True
        self.request_stop()
        self._thread.join(timeout=max(0.0, timeout_s))
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            command = self._queue.get()
            if command is None or self._stopping.is_set():
                break
            try:
                reply = self._callback(command.name, command.payload, command.retained)
            except Exception:  # a handler bug must not end the command thread
                _log.exception("command %r failed", shown(command.name))
                reply = Reply.error("internal error")
            if reply is not None:
                self._send_reply(command, reply)
        self._refuse_waiting(command)

    def _refuse_waiting(self, command: InboundCommand | None) -> None:
        """Stopping: each command taken or still queued gets a refusal, not silence.
        ``submit`` queues nothing once ``_stopping`` is set, so this empties the queue."""
        refused = 0
        while True:
            if command is not None and not command.retained:  # retained: ignored anyway
                self._send_reply(command, Reply.error(STOPPING))
                refused += 1
            try:
                command = self._queue.get_nowait()
            except queue.Empty:
                break
        if refused:
            _log.warning("stopping: %d waiting command(s) refused, not run", refused)


class CommandPort:
    """The publisher's command side: the ``cmd/+`` subscription, paho's ``on_message`` (on
    the network thread: route and queue, never run), the :class:`CommandQueue` and the
    replies. The reply goes to the MQTT 5 response topic (with 3.1.1: the request's
    ``response_topic`` key, taken out before the command sees it) when it lies under
    ``{root}/reply/`` (the only place the broker's ACL lets a device write replies),
    otherwise to ``{root}/reply/{name}``, with the correlation data echoed. Replies are
    QoS 1, never retained, and expire after a minute. A command that finds the queue full,
    or asks for a response topic no one can publish to (a wildcard), is refused at once."""

    def __init__(
        self,
        client: Client,
        topics: Topics,
        link: LinkState,
        callback: CommandCallback,
        *,
        v5: bool,
        capacity: int,
    ) -> None:
        self._client = client
        self._topics = topics
        self._link = link
        self._v5 = v5
        self._queue = CommandQueue(callback, self.send_reply, capacity=capacity)
        self._ready = threading.Event()  # cmd/ subscription acknowledged
        client.on_message = self.on_message
        client.on_subscribe = self.on_subscribed

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def thread_name(self) -> str:
        return self._queue.thread_name

    @property
    def stopping(self) -> bool:
        return self._queue.stopping

    def start(self) -> None:
        self._queue.start()

    def request_stop(self) -> None:
        self._queue.request_stop()

    def stop(self, timeout_s: float) -> bool:
        return self._queue.stop(timeout_s)

    def subscribe(self, client: Client) -> None:
        """On every CONNACK: subscribing again on a resumed session is harmless and covers
        a lost one."""
        self._ready.clear()
        client.subscribe(self._topics.commands, qos=1)

    def on_subscribed(
        self,
        client: Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if all(not code.is_failure for code in reason_codes):
            self._ready.set()
        else:
            with self._link.lock:
                self._link.last_error = f"command subscription refused: {reason_codes}"
            _log.error("the broker refused our command subscription: %s", reason_codes)

    def on_message(self, client: Client, userdata: object, msg: MQTTMessage) -> None:
        """A command on ``{root}/cmd/{name}``: queue it for the ``mqtt-commands`` thread."""
        name = self._topics.command_name(msg.topic)
        if name is None:
            return
        payload = bytes(msg.payload)
        requested = getattr(msg.properties, "ResponseTopic", None) if msg.properties else None
        correlation = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        if not self._v5:  # no properties: the response topic may be in the JSON object
            payload, requested = response_topic_in_payload(payload)
        reply_topic, refusal = reply_route(self._topics, name, requested)
        command = InboundCommand(
            name=name,
            payload=payload,
            retained=bool(msg.retain),
            reply_topic=reply_topic,
            correlation=bytes(correlation) if correlation else None,
        )
        if refusal is not None:
            _log.warning("command %r refused: %s", shown(name), refusal)
            self.send_reply(command, Reply.error(refusal))
        elif not self._queue.submit(command):
            if self._queue.stopping:
                _log.warning("command %r refused: the agent is stopping", shown(name))
                if not command.retained:  # a retained command is ignored, never answered
                    self.send_reply(command, Reply.error(STOPPING))
                return
            capacity = self._queue.capacity
            _log.warning("command %r refused: %d commands waiting", shown(name), capacity)
            self.send_reply(
                command, Reply.error(f"busy: {capacity} commands waiting; try again later")
            )

    def send_reply(self, command: InboundCommand, reply: Reply) -> None:
        properties: Properties | None = None
        if self._v5:
            properties = new_properties(PacketTypes.PUBLISH)
            properties.ContentType = reply.content_type
            properties.MessageExpiryInterval = 60
            if command.correlation:
                properties.CorrelationData = command.correlation
            if reply.user_properties:
                properties.UserProperty = list(reply.user_properties)
        try:
            self._client.publish(
                command.reply_topic, reply.payload, qos=1, retain=False, properties=properties
            )
        except ValueError as error:
            _log.warning("reply to command %r refused: %s", shown(command.name), error)
