"""The ``web:`` config section: the technician page, off unless switched on.

The page is for the device's own network: ``listen`` must be a loopback, private
(RFC 1918 / ULA) or link-local address. ``0.0.0.0``, ``::`` and public addresses are
refused unless ``allow_any_address`` says the installer means it (a device with one
interface on a closed site network, say); docs/web.md explains the choice.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from edge_agent.config_base import StrictModel

__all__ = ["WebConfig", "split_listen"]


def split_listen(listen: str) -> tuple[str, int]:
    """``"192.168.1.20:8080"`` or ``"[fe80::1]:8080"`` → (host, port); ValueError if not."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"listen {listen!r}: give an address and a port, e.g. 192.168.1.20:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not 0 <= port <= 65535:  # 0: any free port (tests)
        raise ValueError(f"listen {listen!r}: the port must be 0-65535")
    return host, port


class WebConfig(StrictModel):
    """The technician page (docs/web.md)."""

    enabled: bool = False
    listen: str = "127.0.0.1:8080"  # an IP address of this device and a port
    allow_any_address: bool = False  # let listen be 0.0.0.0, :: or a public address
    # Extra names the page may be reached by (the Host header), beside IP literals and
    # "localhost": refusing other names stops DNS-rebinding pages from talking to it.
    host_names: list[str] = Field(default_factory=list)
    password_file: Path | None = None  # default: "web-password" beside the config file
    session_ttl_s: float = Field(8 * 3600.0, ge=60.0, le=7 * 86400.0)
    login_failures_per_minute: int = Field(5, ge=1, le=100)  # per client address

    @field_validator("listen")
    @classmethod
    def _an_address_and_port(cls, listen: str) -> str:
        host, _ = split_listen(listen)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"listen {listen!r}: the host must be an IP address") from None
        return listen

    @model_validator(mode="after")
    def _local_network_only(self) -> WebConfig:
        address = ipaddress.ip_address(split_listen(self.listen)[0])
        local = address.is_loopback or address.is_private or address.is_link_local
        if not self.allow_any_address and (address.is_unspecified or not local):
            raise ValueError(
                f"listen {self.listen!r} is not an address of the local network only; "
                "name the device's LAN address (e.g. 192.168.1.20:8080), or set "
                "allow_any_address: true if every interface is meant"
            )
        return self
