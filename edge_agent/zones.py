"""Zones: named polygons in normalised coordinates; an object is in a zone when
the middle of its box's bottom edge (where it stands) is inside."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_agent.types import Box

if TYPE_CHECKING:
    from edge_agent.config import ZoneConfig


@dataclass(frozen=True)
class Zone:
    name: str
    polygon: tuple[tuple[float, float], ...]
    labels: frozenset[str] | None = None  # None: every label

    def contains(self, point: tuple[float, float]) -> bool:
        """Even-odd ray casting; points on an edge count as inside one of the neighbours."""
        x, y = point
        inside = False
        vertices = self.polygon
        j = len(vertices) - 1
        for i, (xi, yi) in enumerate(vertices):
            xj, yj = vertices[j]
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                inside = not inside
            j = i
        return inside

    def accepts(self, label: str, box: Box) -> bool:
        return (self.labels is None or label in self.labels) and self.contains(box.bottom_centre)


def zones_of(zones: Sequence[Zone], label: str, box: Box) -> tuple[str, ...]:
    return tuple(zone.name for zone in zones if zone.accepts(label, box))


def zones_from_config(configs: Sequence[ZoneConfig]) -> list[Zone]:
    return [
        Zone(z.name, tuple(z.polygon), frozenset(z.labels) if z.labels is not None else None)
        for z in configs
    ]
