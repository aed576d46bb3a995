"""The delivery side of the agent's config: the MQTT link (brokers, TLS, failover) and the
outbox that holds what the link has not yet delivered (docs/delivery.md). Part of
``edge_agent.config``, which re-exports every name; apart only to keep modules short."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge_agent.config_base import (
    DAY_S,
    HOUR_S,
    MONTH_S,
    StrictModel,
    mqtt_text_problem,
    repeated_names,
)


class TlsConfig(StrictModel):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Enrolled devices (docs/enrolment.md): renew the certificate at this fraction of its
    # lifetime over the MQTT link; None never renews.
    renew_at_fraction: float | None = Field(None, gt=0, lt=1)

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class BrokerConfig(StrictModel):
    """One broker of ``mqtt.brokers`` (TLS, credentials and client id are the link's)."""

    host: str = Field(min_length=1)
    port: int = Field(1883, ge=1, le=65535)


class FailoverConfig(StrictModel):
    """When the device leaves a broker of ``mqtt.brokers`` that does not answer, and
    whether it goes back to the first (docs/high-availability.md)."""

    after_attempts: int = Field(3, ge=1, le=100)  # failed attempts on one broker, then the next
    after_s: float = Field(30.0, gt=0, le=DAY_S)  # ... or this long since its first failure
    prefer_first: bool = True  # return to the first broker once it answers again
    probe_interval_s: float = Field(30.0, gt=0, le=DAY_S)  # how often the first is probed meanwhile
    probes_to_return: int = Field(2, ge=1, le=100)  # answers in a row before returning


class MqttConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    # Several brokers, tried in order (instead of host/port): docs/high-availability.md
    brokers: list[BrokerConfig] | None = Field(None, min_length=1)
    failover: FailoverConfig = Field(default_factory=FailoverConfig)
    client_id: str | None = None  # default: "{site_id}-{device_id}", unique per device
    topic_prefix: str = Field("city", pattern=r"^[^#+]*[^/#+]$")
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(30, ge=5, le=3600)
    username: str | None = None
    password: str | None = Field(None, repr=False)  # never printed; keep the file 0600
    tls: TlsConfig | None = None
    max_inflight: int = Field(20, ge=1, le=1000)
    # MQTT 5: commands queued while we are away; a four-byte integer (0xFFFFFFFF: never ends)
    session_expiry_s: int = Field(3600, ge=0, le=0xFFFFFFFF)
    reconnect_min_delay_s: float = Field(1.0, gt=0, le=HOUR_S)
    reconnect_max_delay_s: float = Field(60.0, gt=0, le=HOUR_S)

    @field_validator("topic_prefix", "client_id", "username")
    @classmethod
    def _mqtt_text(cls, value: str | None) -> str | None:
        problem = None if value is None else mqtt_text_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, (int, float)) else value

    @model_validator(mode="after")
    def _one_way_to_name_brokers(self) -> MqttConfig:
        if self.brokers is None:
            return self
        if {"host", "port"} & self.model_fields_set:
            raise ValueError("give either host/port (one broker) or brokers (a list), not both")
        repeated = repeated_names([f"{b.host}:{b.port}" for b in self.brokers])
        if repeated:
            raise ValueError(f"brokers: listed twice: {', '.join(repeated)}")
        return self

    def broker_list(self) -> list[tuple[str, int]]:
        """(host, port) of every broker, in the order they are tried."""
        if self.brokers is None:
            return [(self.host, self.port)]
        return [(b.host, b.port) for b in self.brokers]


def brokers_text(mqtt: MqttConfig) -> str:
    """``host:port``, or the list in the order it is tried: ``a:8883, then b:8883``."""
    return ", then ".join(f"{host}:{port}" for host, port in mqtt.broker_list())


class OutboxTtlConfig(StrictModel):
    """How long each class may wait in the outbox before it is dropped (and counted)."""

    alert: float = Field(7 * 86400.0, gt=0, le=MONTH_S)
    event: float = Field(3 * 86400.0, gt=0, le=MONTH_S)
    state: float = Field(86400.0, gt=0, le=MONTH_S)
    thumbnail: float = Field(86400.0, gt=0, le=MONTH_S)


class OutboxConfig(StrictModel):
    path: Path = Path("/var/lib/edge-agent/outbox.db")
    max_bytes: int = Field(256 * 1024 * 1024, ge=64 * 1024)
    max_rows: int = Field(1_000_000, ge=100)
    ttl_s: OutboxTtlConfig = Field(default_factory=OutboxTtlConfig)
    # Replay after an outage is paced so a backlog does not starve live traffic or a thin uplink.
    drain_rate_msgs_per_s: float = Field(100.0, gt=0)
    drain_rate_bytes_per_s: int = Field(512 * 1024, ge=1024)
    # older than this at send time → historical
    historical_after_s: float = Field(60.0, ge=0, le=DAY_S)
