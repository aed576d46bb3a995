"""Ids that are safe as one MQTT topic level and one file name, and files written only
inside their folder (docs/enrolment.md). No third-party imports: the city-side tool
(``provisioning``) uses the same rules as the device."""

from __future__ import annotations

import re
from pathlib import Path

from edge_agent.files import write_atomic

__all__ = ["ID_PATTERN", "check_id", "inside", "write_atomic"]

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
"""Site, device and consumer ids: never ``/``, ``+`` or ``#``, so an id is exactly one
topic level (the broker's ACL substitutes it for ``%u``) and one path component."""


def check_id(value: str, what: str = "id") -> str:
    """``value`` if it is a valid site/device id, else ValueError naming ``what``."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a valid id: 1-63 characters of a-z, 0-9 and '-',"
            " starting with a letter or digit (no '/', '+', '#')"
        )
    return value


def inside(directory: Path, name: str) -> Path:
    """``directory/name`` resolved, refused unless it stays inside ``directory``."""
    base = directory.resolve()
    target = (base / name).resolve()
    if target == base or base not in target.parents:
        raise ValueError(f"{name!r} would be written outside {base}; refused")
    return target
