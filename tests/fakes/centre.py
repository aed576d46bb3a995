"""A command-centre client over a real broker: subscribes to one device, sends commands
with MQTT 5 response topics and correlation data (plain paho, not the agent's code)."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as paho
from helpers import wait_until
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fakes.mqtt import Inbox


class Centre:
    def __init__(self, port: int, root: str) -> None:
        self.root = root
        self.inbox: Inbox[paho.MQTTMessage] = Inbox()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="centre", protocol=paho.MQTTv5
        )
        subscribed = threading.Event()
        self.client.on_message = lambda _c, _u, msg: self.inbox(msg)
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(f"{root}/#", qos=1)
        wait_until(subscribed.is_set, 10.0, "the centre's subscription")

    def send(
        self,
        name: str,
        body: object,
        correlation: bytes,
        retain: bool = False,
        *,
        response_topic: str | None = None,
    ) -> None:
        """Send command ``name``; ``body`` bytes go as they are, anything else as JSON."""
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = response_topic or f"{self.root}/reply/centre"
        properties.CorrelationData = correlation
        payload = body if isinstance(body, bytes) else json.dumps(body)
        info = self.client.publish(
            f"{self.root}/cmd/{name}", payload, qos=1, retain=retain, properties=properties
        )
        info.wait_for_publish(timeout=10.0)

    def clear_retained(self, name: str) -> None:
        info = self.client.publish(f"{self.root}/cmd/{name}", b"", qos=1, retain=True)
        info.wait_for_publish(10.0)

    def reply(self, correlation: bytes, topic: str | None = None) -> paho.MQTTMessage | None:
        for message in self.inbox.at(topic or f"{self.root}/reply/centre"):
            if getattr(message.properties, "CorrelationData", None) == correlation:
                return message
        return None

    def reply_body(self, correlation: bytes, timeout_s: float = 30.0) -> dict[str, object]:
        wait_until(lambda: self.reply(correlation) is not None, timeout_s, f"reply {correlation!r}")
        message = self.reply(correlation)
        assert message is not None
        body = json.loads(message.payload)
        assert isinstance(body, dict)
        return body

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
