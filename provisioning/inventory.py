"""A site inventory (YAML) and what it turns into: per-device agent configs and the
broker's ACL lines (docs/enrolment.md).

The inventory is validated strictly (pydantic, unknown keys refused, ids checked with
the device's own rules) and every generated config is validated again as an
:class:`~edge_agent.config.AgentConfig`, so a bundle that reaches a pole will load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge_agent.config import ConfigError, parse_config
from edge_agent.ids import check_id

__all__ = ["Inventory", "InventoryError", "load_inventory"]


class InventoryError(ValueError):
    """The inventory cannot be used; the message lists every problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Location(_Strict):
    description: str = ""
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)


class Zone(_Strict):
    name: str
    polygon: list[tuple[float, float]] = Field(min_length=3)


class Camera(_Strict):
    id: str
    kind: Literal["opencv", "picamera2", "sim"]
    uri: str | None = None  # opencv: file, device or RTSP URL; sim: the scene name
    zones: list[Zone] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_id(value, "camera id")

    def source(self) -> dict[str, Any]:
        if self.kind == "opencv":
            if not self.uri:
                raise ValueError(f"camera {self.id}: kind opencv needs a uri")
            return {"kind": "opencv", "uri": self.uri}
        if self.kind == "sim":
            return {"kind": "sim", "scenario": self.uri or "street"}
        return {"kind": "picamera2"}


RESERVED_NAMES = ("provisioner", "command-centre")
"""Broker identities that are not devices; ``enrol-*`` names enrolment tokens."""


class Device(_Strict):
    device_id: str
    location: Location = Field(default_factory=Location)
    cameras: list[Camera] = Field(min_length=1)
    # The technician's page at this IP:port of the device's own network (docs/web.md);
    # its password is made at enrolment, on the device, and shown once to the technician.
    page: str | None = None

    @field_validator("device_id")
    @classmethod
    def _id(cls, value: str) -> str:
        check_id(value, "device_id")
        if value in RESERVED_NAMES or value.startswith("enrol-"):
            raise ValueError(f"device_id {value!r} is reserved for a broker identity")
        return value


class Broker(_Strict):
    host: str
    port: int = Field(8883, ge=1, le=65535)  # mTLS listener (devices)
    enrol_port: int = Field(8885, ge=1, le=65535)  # enrolment listener (token holders)
    topic_prefix: str = "city"

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_id(value, "topic_prefix")


class Inventory(_Strict):
    site_id: str
    timezone: str = "UTC"
    broker: Broker
    certificate_days: int = Field(14, ge=1, le=90)  # short-lived: renewed automatically
    renew_at_fraction: float = Field(2 / 3, gt=0, lt=1)
    token_days: int = Field(7, ge=1, le=90)
    devices: list[Device] = Field(min_length=1)

    @field_validator("site_id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_id(value, "site_id")

    @field_validator("devices")
    @classmethod
    def _unique(cls, devices: list[Device]) -> list[Device]:
        ids = [d.device_id for d in devices]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"device ids repeated: {', '.join(repeated)}")
        return devices

    def device(self, device_id: str) -> Device:
        for device in self.devices:
            if device.device_id == device_id:
                return device
        raise KeyError(device_id)

    def agent_config(self, device: Device) -> dict[str, Any]:
        """The device's config; TLS paths are filled in on the device at enrolment."""
        config: dict[str, Any] = {
            "site_id": self.site_id,
            "device_id": device.device_id,
            "timezone": self.timezone,
            "cameras": [
                {
                    "id": camera.id,
                    "source": camera.source(),
                    "zones": [
                        {"name": z.name, "polygon": [list(p) for p in z.polygon]}
                        for z in camera.zones
                    ],
                }
                for camera in device.cameras
            ],
            "mqtt": {
                "host": self.broker.host,
                "port": self.broker.port,
                "client_id": device.device_id,  # = certificate CN = broker username
                "topic_prefix": self.broker.topic_prefix,
                "tls": {
                    "ca_file": "/etc/edge-agent/ca.crt",
                    "cert_file": "/etc/edge-agent/device.crt",
                    "key_file": "/etc/edge-agent/device.key",
                    "renew_at_fraction": round(self.renew_at_fraction, 4),
                },
            },
        }
        if device.page is not None:
            config["web"] = {"enabled": True, "listen": device.page}
        parse_config(config, f"inventory entry {device.device_id}")  # ConfigError if not
        return config

    def acl_lines(self, device: Device) -> list[str]:
        """What the reference ACL grants this device (its patterns with %u filled in),
        for review; the broker needs no per-device lines."""
        root = f"{self.broker.topic_prefix}/+/{device.device_id}"
        return [
            f"# {device.device_id} ({device.location.description or 'no location'})",
            f"topic write {root}/#",
            f"topic read {root}/cmd/#",
        ]


def load_inventory(path: Path) -> Inventory:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        inventory = Inventory.model_validate(data)
    except OSError as error:
        raise InventoryError(f"{path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise InventoryError(f"{path}: not YAML: {error}") from None
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in error.errors()
        ]
        raise InventoryError(f"{path}:\n  " + "\n  ".join(problems)) from None
    for device in inventory.devices:
        try:
            inventory.agent_config(device)
        except (ValueError, ConfigError) as error:
            raise InventoryError(f"{path}: {device.device_id}: {error}") from None
    return inventory
