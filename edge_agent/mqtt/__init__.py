"""MQTT transport (docs/delivery.md states the guarantees; each module says how).

- :mod:`.settings`: :class:`MqttSettings`, :class:`DrainSettings` (plain data)
- :mod:`.pacer`: :class:`DrainPacer`, the drain's token bucket (pure)
- :mod:`.backoff`: :class:`FullJitterBackoff`, reconnect delays with full jitter (pure)
- :mod:`.failover`: :class:`BrokerChooser`, which broker of the list to dial next (pure)
- :mod:`.wire`: MQTT 5 properties packed by hand, PUBLISH sizes (pure)
- :mod:`.client`: :func:`new_client`, the only module that imports paho
- :mod:`.publisher`: :class:`Publisher`, the device's side: status, volatile messages,
  commands, paho's callbacks
- :mod:`.drain`: the ``mqtt-drain`` thread, outbox rows → broker
- :mod:`.command_queue`: commands run off paho's network thread
- :mod:`.failback`: the ``mqtt-failback`` thread, back to the first broker when it answers
- :mod:`.subscriber`: :class:`Subscriber`, a small consumer
- :mod:`.probe`: :func:`probe_broker`, the self-test's one-shot look at the broker
"""

from edge_agent.encode import SCHEMA_VERSION
from edge_agent.mqtt.backoff import FullJitterBackoff
from edge_agent.mqtt.client import ClientFactory, new_client
from edge_agent.mqtt.command_queue import CommandCallback
from edge_agent.mqtt.failover import Broker, BrokerChooser, FailoverSettings
from edge_agent.mqtt.pacer import DrainPacer
from edge_agent.mqtt.publisher import Publisher, PublisherStats
from edge_agent.mqtt.settings import DrainSettings, MqttSettings, Protocol
from edge_agent.mqtt.subscriber import ReceivedMessage, Subscriber, SubscriberError

__all__ = [
    "SCHEMA_VERSION",
    "Broker",
    "BrokerChooser",
    "ClientFactory",
    "CommandCallback",
    "DrainPacer",
    "DrainSettings",
    "FailoverSettings",
    "FullJitterBackoff",
    "MqttSettings",
    "Protocol",
    "Publisher",
    "PublisherStats",
    "ReceivedMessage",
    "Subscriber",
    "SubscriberError",
    "new_client",
]
