"""The ``updates:`` section of the agent config (docs/updates.md)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from edge_agent.config_base import DAY_S, WEEK_S, StrictModel

__all__ = ["UpdatesConfig"]


class UpdatesConfig(StrictModel):
    # Where releases are installed beside each other (docs/updates.md, On disk).
    dir: Path = Path("/var/lib/edge-agent/releases")
    # Ed25519 public keys (64 hex digits each) whose signature makes a release trusted:
    # `edge-provision release keygen` prints one. Two during a key rotation.
    trusted_keys: list[str] = Field(min_length=1)
    # After a switch: frames flow, the detector runs and the broker is reached within
    # this, or the release is rolled back by itself.
    health_deadline_s: float = Field(120.0, gt=0, le=DAY_S)
    # A switch waits while an event is open; after this long it is given up.
    defer_max_s: float = Field(3600.0, gt=0, le=WEEK_S)
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024)  # one archive, and unpacked

    def keys(self) -> list[bytes]:
        return [bytes.fromhex(k) for k in self.trusted_keys]

    @field_validator("trusted_keys")
    @classmethod
    def _hex_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not re.fullmatch(r"[0-9a-f]{64}", key):
                raise ValueError(f"{key[:70]!r} is not an Ed25519 public key (64 hex digits)")
        return keys
