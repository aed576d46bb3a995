"""How to reach the broker and how fast to replay the outbox: plain, frozen data.

The pydantic config converts into these (``MqttSettings.from_config``,
``DrainSettings.from_config``);
nothing here knows about paho.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edge_agent.mqtt.failover import Broker, FailoverSettings

if TYPE_CHECKING:
    from edge_agent.config import AgentConfig, OutboxConfig

Protocol = Literal["5", "3.1.1"]


@dataclass(frozen=True)
class MqttSettings:
    """How to reach the broker. Plain data: the pydantic config converts into this.

    ``session_expiry_s > 0`` keeps the MQTT session over reconnects (and, with MQTT 5,
    restarts); 0 asks for a clean session on every connect.
    """

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
    session_expiry_s: int = 3600  # 0: a clean session on every connect
    tls: bool = False  # TLS even without files of our own (the system's CAs verify the broker)
    # More than one broker: host/port are the first; the link fails over along the list.
    brokers: tuple[Broker, ...] = ()
    failover: FailoverSettings = field(default_factory=FailoverSettings)

    @property
    def broker_list(self) -> tuple[Broker, ...]:
        """Every broker in the order they are tried (just host:port when none are listed)."""
        return self.brokers or (Broker(self.host, self.port),)

    @property
    def uses_tls(self) -> bool:
        files = (self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
        return self.tls or any(f is not None for f in files)

    @property
    def keeps_session(self) -> bool:
        return self.session_expiry_s > 0

    @classmethod
    def from_config(cls, config: AgentConfig) -> MqttSettings:
        """The device's link: its own client id, its TLS files, and a session kept over
        reconnects with MQTT 5 (3.1.1 always starts clean, docs/delivery.md)."""
        mqtt = config.mqtt
        tls = mqtt.tls
        brokers = tuple(Broker(host, port) for host, port in mqtt.broker_list())
        return cls(
            host=brokers[0].host,
            port=brokers[0].port,
            brokers=brokers if len(brokers) > 1 else (),
            failover=FailoverSettings(**mqtt.failover.model_dump()),
            client_id=config.client_id,
            protocol=mqtt.protocol,
            keepalive_s=mqtt.keepalive_s,
            username=mqtt.username,
            password=mqtt.password,
            tls_ca_file=tls.ca_file if tls else None,
            tls_cert_file=tls.cert_file if tls else None,
            tls_key_file=tls.key_file if tls else None,
            session_expiry_s=mqtt.session_expiry_s if mqtt.protocol == "5" else 0,
            tls=tls is not None,  # `tls: {}` means TLS with the system's CAs, never plain text
            reconnect_min_delay_s=mqtt.reconnect_min_delay_s,
            reconnect_max_delay_s=mqtt.reconnect_max_delay_s,
        )

    @classmethod
    def consumer(
        cls,
        host: str,
        port: int,
        client_id: str,
        *,
        session_expiry_s: int = 0,
        reconnect_max_delay_s: float = 5.0,
        **options: Any,
    ) -> MqttSettings:
        """Settings for a :class:`~edge_agent.mqtt.Subscriber`: by default a clean session
        and a quick reconnect (a watcher, a test), where a device keeps its session."""
        return cls(
            host,
            port,
            client_id,
            session_expiry_s=session_expiry_s,
            reconnect_max_delay_s=reconnect_max_delay_s,
            **options,
        )


@dataclass(frozen=True)
class DrainSettings:
    """How the outbox is replayed (docs/delivery.md). ``math.inf`` rates: no pacing."""

    rate_msgs_per_s: float = 100.0
    rate_bytes_per_s: float = 512 * 1024
    historical_after_s: float = 60.0
    burst_s: float = 1.0  # the bucket holds this many seconds' worth

    def __post_init__(self) -> None:
        if not (self.rate_msgs_per_s > 0 and self.rate_bytes_per_s > 0 and self.burst_s > 0):
            raise ValueError("drain rates and burst_s must be positive")
        if self.historical_after_s < 0:
            raise ValueError("historical_after_s must not be negative")

    @classmethod
    def from_config(cls, config: OutboxConfig) -> DrainSettings:
        return cls(
            rate_msgs_per_s=config.drain_rate_msgs_per_s,
            rate_bytes_per_s=float(config.drain_rate_bytes_per_s),
            historical_after_s=config.historical_after_s,
        )

    @classmethod
    def unlimited(cls, historical_after_s: float = 60.0) -> DrainSettings:
        return cls(math.inf, math.inf, historical_after_s)
