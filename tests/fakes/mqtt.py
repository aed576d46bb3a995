"""MQTT test doubles: a stand-in for paho's client, and an inbox for what a consumer got.

:class:`FakeClient` is handed to ``Publisher``/``Subscriber`` through ``client_factory=``
(``Publisher(..., client_factory=fake.factory)``): it records what they publish and plays
paho's network thread on a thread of its own, so the callbacks (CONNACK, PUBACK, SUBACK,
incoming messages) run the way paho runs them, never on the test's thread. No broker,
no socket.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Generic, Protocol, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

NETWORK_THREAD = "fake-paho-network"


@dataclass(frozen=True)
class Sent:
    """One message as handed to the client (MQTT 5 properties decoded as a broker would)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    content_type: str | None
    user_properties: list[tuple[str, str]]
    expiry_s: int | None
    correlation: bytes | None = None

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.payload)
        return body

    def prop(self, name: str) -> str | None:
        return dict(self.user_properties).get(name)


def decode(properties: Properties | None) -> dict[str, Any]:
    """MQTT 5 properties as a broker would read them (hand-packed ones are unpacked)."""
    if properties is None:
        return {"content_type": None, "user_properties": [], "expiry_s": None, "correlation": None}
    if type(properties) is not Properties:
        unpacked = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        unpacked.unpack(properties.pack())  # type: ignore[no-untyped-call]
        properties = unpacked
    return {
        "content_type": getattr(properties, "ContentType", None),
        "user_properties": [(str(k), str(v)) for k, v in getattr(properties, "UserProperty", [])],
        "expiry_s": getattr(properties, "MessageExpiryInterval", None),
        "correlation": getattr(properties, "CorrelationData", None),
    }


def command_message(
    topic: str, body: object = None, *, retain: bool = False, **properties: object
) -> SimpleNamespace:
    """An incoming message as paho hands it to ``on_message`` (JSON ``body``, MQTT 5
    ``properties`` such as ``ResponseTopic``/``CorrelationData``)."""
    payload = b"" if body is None else json.dumps(body).encode()
    return SimpleNamespace(
        topic=topic,
        payload=payload,
        qos=1,
        retain=retain,
        properties=SimpleNamespace(**properties) if properties else None,
    )


class _Info:
    """paho's MQTTMessageInfo, as far as the code under test reads it."""

    def __init__(self, mid: int) -> None:
        self.rc = paho.MQTT_ERR_SUCCESS
        self.mid = mid

    def wait_for_publish(self, timeout: float | None = None) -> None:
        return None


class FakeClient:
    """Records what is published; a thread plays paho's network loop.

    ``connect``/``connect_async`` are accepted (CONNACK ``success``); every QoS 1/2
    publish is acknowledged (PUBACK ``success``) unless ``auto_ack`` is off. The test
    drives the rest: :meth:`deliver` (a message arrives), :meth:`drop_connection`.
    """

    def __init__(self, *, session_present: bool = False, auto_ack: bool = True) -> None:
        self.sent: list[Sent] = []
        self.will: Sent | None = None
        self.subscriptions: list[tuple[str, int]] = []
        self.session_present = session_present
        self.auto_ack = auto_ack
        self.settings: object = None
        self.clean_session: bool | None = None
        self.connects = 0
        self.on_connect: Callable[..., None] | None = None
        self.on_connect_fail: Callable[..., None] | None = None
        self.on_disconnect: Callable[..., None] | None = None
        self.on_publish: Callable[..., None] | None = None
        self.on_subscribe: Callable[..., None] | None = None
        self.on_message: Callable[..., None] | None = None
        self._lock = threading.Lock()
        self._mid = 0
        self._events: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def factory(self, settings: object, *, clean_session: bool) -> FakeClient:
        """The ``client_factory`` to hand to Publisher or Subscriber."""
        self.settings = settings
        self.clean_session = clean_session
        return self

    # -- what paho offers, as far as the code under test uses it ------------------------

    def max_inflight_messages_set(self, inflight: int) -> None:
        pass

    def will_set(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        self.will = Sent(topic, bytes(payload), qos, retain, **decode(properties))

    def connect_async(self, host: str, port: int, **options: object) -> None:
        self._on_network(self._accept)

    def connect(self, host: str, port: int, **options: object) -> None:
        self._on_network(self._accept)

    def loop_start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=NETWORK_THREAD, daemon=True)
        self._thread.start()

    def loop_stop(self) -> None:
        if self._thread is not None:
            self._events.put(None)
            self._thread.join(timeout=10.0)
            self._thread = None

    def disconnect(self) -> None:
        self._on_network(lambda: self._lost(ReasonCode(PacketTypes.DISCONNECT, "Success")))

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> _Info:
        self.sent.append(Sent(topic, bytes(payload), qos, retain, **decode(properties)))
        mid = self._next_mid()
        if qos > 0 and self.auto_ack:
            self._on_network(
                lambda: self._call("on_publish", mid, _success(PacketTypes.PUBACK), None)
            )
        return _Info(mid)

    def subscribe(self, topic: str | list[tuple[str, int]], qos: int = 0) -> tuple[int, int]:
        pairs = topic if isinstance(topic, list) else [(topic, qos)]
        self.subscriptions.extend(pairs)
        mid = self._next_mid()
        granted = [ReasonCode(PacketTypes.SUBACK, identifier=q) for _, q in pairs]
        self._on_network(lambda: self._call("on_subscribe", mid, granted, None))
        return paho.MQTT_ERR_SUCCESS, mid

    # -- what the test drives ----------------------------------------------------------

    def deliver(self, message: object) -> None:
        """A message arrives (on the network thread, as paho delivers it)."""
        self._on_network(lambda: self._call("on_message", message))

    def drop_connection(self) -> None:
        """The link is lost (not a clean disconnect)."""
        self._on_network(
            lambda: self._lost(ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"))
        )

    def published_on(self, topic: str) -> list[Sent]:
        return [s for s in list(self.sent) if s.topic == topic]

    # -- the fake network thread -------------------------------------------------------

    def _next_mid(self) -> int:
        with self._lock:
            self._mid += 1
            return self._mid

    def _on_network(self, event: Callable[[], None]) -> None:
        self._events.put(event)

    def _loop(self) -> None:
        while (event := self._events.get()) is not None:
            event()

    def _call(self, name: str, *args: object) -> None:
        callback = getattr(self, name)
        if callback is not None:
            callback(self, None, *args)

    def _accept(self) -> None:
        self.connects += 1
        flags = paho.ConnectFlags(session_present=self.session_present)
        self._call("on_connect", flags, _success(PacketTypes.CONNACK), None)

    def _lost(self, reason: ReasonCode) -> None:
        self._call("on_disconnect", paho.DisconnectFlags(False), reason, None)


def _success(packet_type: int) -> ReasonCode:
    return ReasonCode(packet_type, "Success")


# -- what a consumer received -----------------------------------------------------------


class _Message(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes: ...


M = TypeVar("M", bound=_Message)


class Inbox(Generic[M]):
    """Everything a subscriber received, in arrival order; thread-safe (a subscriber's
    ``on_message`` runs on paho's thread). Use it as the ``on_message`` callback.

    Holds ``ReceivedMessage`` for a ``Subscriber``, or paho's ``MQTTMessage`` for a raw
    paho client; either has ``topic`` and ``payload``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[M] = []

    def __call__(self, message: M) -> None:
        with self._lock:
            self._messages.append(message)

    def all(self) -> list[M]:
        with self._lock:
            return list(self._messages)

    def topics(self) -> list[str]:
        return [m.topic for m in self.all()]

    def at(self, topic: str) -> list[M]:
        """Messages on exactly ``topic``."""
        return [m for m in self.all() if m.topic == topic]

    def payloads(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.at(topic)]

    def on(self, fragment: str) -> list[M]:
        """Messages whose topic contains ``fragment`` (e.g. ``"/gaps"``, ``"/events/"``)."""
        return [m for m in self.all() if fragment in m.topic]

    def under(self, level: str) -> list[M]:
        """Messages whose topic has ``level`` right below a device root (``a/b/c/level``)."""
        return [m for m in self.all() if m.topic.split("/")[3] == level]

    def statuses(self) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.under("status")]

    def states(self) -> list[str]:
        return [str(json.loads(m.payload)["state"]) for m in self.on("/status")]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.under("events")]

    def event_seqs(self) -> list[int]:
        return [int(json.loads(m.payload)["seq"]) for m in self.on("/events/")]

    def event_ids(self) -> list[tuple[int, str]]:
        """(seq, event id) of the events received, in arrival order."""
        bodies = [json.loads(m.payload) for m in self.on("/events/")]
        return [(int(b["seq"]), str(b["id"])) for b in bodies]

    def reported_seqs(self) -> list[int]:
        """Seqs listed as lost in the gap notices received."""
        lost = []
        for notice in self.on("/gaps"):
            for item in json.loads(notice.payload)["gaps"]:
                lost.extend(range(item["from"], item["to"] + 1))
        return lost
