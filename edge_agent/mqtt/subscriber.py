"""A small MQTT consumer: for the demo, ``edge-agent watch``, the bench and tests.

:class:`Subscriber` connects, subscribes at QoS 1 and hands every message, as a
:class:`ReceivedMessage`, to one callback.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.mqtt.client import (
    Client,
    ClientFactory,
    ConnectFlags,
    DisconnectFlags,
    MQTTErrorCode,
    MQTTMessage,
    PacketTypes,
    Properties,
    ReasonCode,
    connect_properties,
    new_client,
    new_properties,
)
from edge_agent.mqtt.settings import MqttSettings

__all__ = ["ReceivedMessage", "Subscriber", "SubscriberError"]

_log = logging.getLogger("edge_agent.mqtt")


@dataclass(frozen=True)
class ReceivedMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    message_expiry_s: int | None = None  # remaining MQTT 5 message expiry, if any

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


class Subscriber:
    """Connects, subscribes at QoS 1 and hands every message to ``on_message``.

    With ``settings.session_expiry_s > 0`` the session is kept (MQTT 5: for that long;
    3.1.1: while the broker lives) and the broker queues QoS 1 messages while we are
    away, so a reconnect loses nothing; :meth:`MqttSettings.consumer` defaults to a clean
    session. ``on_message`` runs on paho's thread.
    """

    def __init__(
        self,
        settings: MqttSettings,
        topics: Sequence[str],
        on_message: Callable[[ReceivedMessage], None],
        *,
        qos: int = 1,
        client_factory: ClientFactory = new_client,
    ) -> None:
        if not topics:
            raise ValueError("Subscriber needs at least one topic")
        self.settings = settings
        self.host = settings.host
        self.port = settings.port
        self.topics = tuple(topics)
        self.client_id = settings.client_id
        self._on_message_cb = on_message
        self._qos = qos
        self._client = client_factory(settings, clean_session=not settings.keeps_session)
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
        clean_start, properties = connect_properties(self.settings)
        try:
            self._client.connect(
                self.host,
                self.port,
                keepalive=self.settings.keepalive_s,
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

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        expiry_s: int | None = None,
    ) -> bool:
        """Send one QoS 1 message, never retained: a command, with its MQTT 5 response
        topic, correlation data and message expiry (ignored with 3.1.1). False when paho
        refused it (not connected, a bad topic)."""
        properties: Properties | None = None
        if self.settings.protocol == "5":
            properties = new_properties(PacketTypes.PUBLISH)
            if response_topic is not None:
                properties.ResponseTopic = response_topic
            if correlation is not None:
                properties.CorrelationData = correlation
            if expiry_s is not None:
                properties.MessageExpiryInterval = expiry_s
        try:
            info = self._client.publish(topic, payload, qos=1, retain=False, properties=properties)
        except ValueError as error:
            _log.warning("publish on %r refused: %s", topic, error)
            return False
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

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
        client: Client,
        userdata: object,
        flags: ConnectFlags,
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
        client: Client,
        userdata: object,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._connected = False

    def _on_subscribe(
        self,
        client: Client,
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

    def _on_message(self, client: Client, userdata: object, msg: MQTTMessage) -> None:
        props = msg.properties
        user_properties: tuple[tuple[str, str], ...] = ()
        content_type: str | None = None
        expiry_s: int | None = None
        if props is not None:
            user_properties = tuple((str(k), str(v)) for k, v in getattr(props, "UserProperty", []))
            content_type = getattr(props, "ContentType", None)
            expiry_s = getattr(props, "MessageExpiryInterval", None)
        received = ReceivedMessage(
            topic=msg.topic,
            payload=bytes(msg.payload),
            qos=msg.qos,
            retain=bool(msg.retain),
            user_properties=user_properties,
            content_type=content_type,
            message_expiry_s=expiry_s,
        )
        try:
            self._on_message_cb(received)
        except Exception:  # a consumer bug must not kill paho's network thread
            _log.exception("on_message handler failed for %s", msg.topic)
