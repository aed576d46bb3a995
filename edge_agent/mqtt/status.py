"""The device's retained status on ``{root}/status``: one place that says how it is sent.

Four moments publish it (docs/mqtt-api.md, status): the Last Will says ``offline`` (set
before connecting, sent by the broker if the link dies); every (re)connect says ``online``
with the birth payload; a planned move to another broker says ``offline`` first; a stop
says ``stopped``. Each is JSON (:func:`edge_agent.encode.encode_status`), QoS 1, retained.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from edge_agent.encode import encode_status
from edge_agent.mqtt.client import Client, MQTTMessageInfo, PackedProperties
from edge_agent.mqtt.wire import plain_properties_body

__all__ = ["StatusMessages", "message_properties"]

JSON = "application/json"  # the status messages' content type


def message_properties(
    v5: bool,
    content_type: str,
    *,
    expiry_s: int | None = None,
    user_properties: tuple[tuple[str, str], ...] = (),
) -> PackedProperties | None:
    """A message's MQTT 5 properties, packed (None with MQTT 3.1.1, which has none)."""
    if not v5:
        return None
    return PackedProperties(plain_properties_body(content_type, user_properties, expiry_s=expiry_s))


class StatusMessages:
    """Builds and sends the status messages of one device's connection (thread-safe as
    paho's ``publish`` is)."""

    def __init__(
        self,
        client: Client,
        topic: str,
        birth_payload: Mapping[str, object],
        *,
        v5: bool,
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self.topic = topic
        self._birth_payload = dict(birth_payload)
        self._properties = message_properties(v5, JSON)
        self._clock = clock

    def payload(self, state: str, *, with_time: bool = True) -> bytes:
        """``state`` with the birth payload; the will has no time (it is sent later)."""
        return encode_status(state, self._birth_payload, ts=self._clock() if with_time else None)

    def set_will(self) -> None:
        """``offline``, for the broker to send if the link dies without a DISCONNECT."""
        self._client.will_set(
            self.topic,
            self.payload("offline", with_time=False),
            qos=1,
            retain=True,
            properties=self._properties,
        )

    def send(self, payload: bytes) -> MQTTMessageInfo:
        """Publish ``payload`` (from :meth:`payload`) as the retained status, QoS 1."""
        return self._client.publish(
            self.topic, payload, qos=1, retain=True, properties=self._properties
        )
