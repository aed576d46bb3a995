"""Saving the zone editor's work, and going back: the config file is the one truth.

A save changes one camera's ``zones`` (and the alert rules that name them), and its
counting lines and privacy masks when sent, in the YAML the agent was started from; checks
the *whole* file as ``check-config`` does; keeps the file it replaces as ``<config>.prev``;
writes the new one atomically (same mode) and applies it through the agent's reload — the
SIGHUP path. A reload the agent refuses puts the previous file back, so disk and running
config never disagree. ``rollback`` swaps the file and its ``.prev`` and reloads. Comments
in the YAML do not survive a save (they stay in ``.prev``); docs/web.md says so.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from edge_agent.config import ConfigError, problems_of, read_config_data
from edge_agent.config_base import StrictModel
from edge_agent.config_check import check_config_data
from edge_agent.files import fsync_path, write_atomic
from edge_agent.service.reload import ReloadOutcome

log = logging.getLogger(__name__)

__all__ = ["ConfigEditor", "EditResult", "LineEdit", "ZoneEdit", "ZonesEdit", "previous_path"]

ZoneRuleKind = Literal["intrusion", "loitering", "crowd", "stopped_vehicle", "congestion"]


class ZoneEdit(StrictModel):
    """One zone as the editor sends it; other keys a zone of that name had are kept."""

    name: str
    polygon: list[tuple[float, float]]
    rules: list[ZoneRuleKind] = Field(default_factory=list)
    # Left out: the zone's schedule stays; null: always active; else {start, end[, days]}
    # (checked with the whole config).
    schedule: dict[str, object] | None = None


class LineEdit(StrictModel):
    """One counting line (a ``line_crossing`` rule) as the editor sends it."""

    name: str
    a: tuple[float, float]
    b: tuple[float, float]


class ZonesEdit(StrictModel):
    """A save: every zone of one camera (a zone left out is removed, with its rules), and
    its counting lines when ``lines`` is given, its privacy masks when ``masks`` is given
    (None: they stay as they are). A mask's shape is checked with the whole config."""

    camera: str
    zones: list[ZoneEdit]
    lines: list[LineEdit] | None = None
    masks: list[list[tuple[float, float]]] | None = None


@dataclass(frozen=True)
class EditResult:
    status: int  # the HTTP status to answer with
    body: dict[str, object] = field(default_factory=dict)


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def _mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


def apply_zones(data: object, edit: ZonesEdit) -> list[str]:
    """Change ``data`` (a config document) in place; the problems when it cannot."""
    cameras = data.get("cameras") if isinstance(data, dict) else None
    if not isinstance(cameras, list):
        return ["the config file has no cameras list"]
    camera = next((c for c in cameras if isinstance(c, dict) and c.get("id") == edit.camera), None)
    if camera is None:
        return [f"no camera {edit.camera!r} in the config file"]
    old_zones = {z.get("name"): z for z in camera.get("zones") or [] if isinstance(z, dict)}
    zones = []
    for z in edit.zones:
        zone = {**old_zones.get(z.name, {}), "name": z.name}
        zone["polygon"] = [[x, y] for x, y in z.polygon]
        if "schedule" in z.model_fields_set:
            zone.pop("schedule", None)
            if z.schedule is not None:
                zone["schedule"] = z.schedule
        zones.append(zone)
    camera["zones"] = zones
    wanted = [(kind, z.name) for z in edit.zones for kind in dict.fromkeys(z.rules)]
    rules = [r for r in camera.get("rules") or [] if isinstance(r, dict)]
    kept = [r for r in rules if "zone" not in r or (r.get("kind"), r["zone"]) in wanted]
    have = {(r.get("kind"), r.get("zone")) for r in kept}
    kept += [{"kind": kind, "zone": zone} for kind, zone in wanted if (kind, zone) not in have]
    if edit.lines is not None:
        old_lines = {r.get("name"): r for r in kept if r.get("kind") == "line_crossing"}
        kept = [r for r in kept if r.get("kind") != "line_crossing"]
        kept += [
            {
                **old_lines.get(line.name, {"kind": "line_crossing"}),
                "name": line.name,
                "a": list(line.a),
                "b": list(line.b),
            }
            for line in edit.lines
        ]
    camera["rules"] = kept
    if edit.masks is not None:
        privacy = camera.get("privacy") or {}  # its other keys (face blur) stay
        if not isinstance(privacy, dict):
            return [f"camera {edit.camera!r}: privacy is not a mapping in the config file"]
        # A copy: another camera may share this mapping through a YAML alias (`*p`).
        masks = [[[x, y] for x, y in mask] for mask in edit.masks]
        camera["privacy"] = {**privacy, "masks": masks}
    return []


class ConfigEditor:
    """Saves and rollbacks of the config at ``path``, one at a time, applied by ``reload``."""

    def __init__(self, path: Path, reload: Callable[[], ReloadOutcome]) -> None:
        self.path = path
        self.previous = previous_path(path)
        self._reload = reload
        self._lock = threading.Lock()

    def save_zones(self, body: object) -> EditResult:
        try:
            edit = ZonesEdit.model_validate(body)
        except ValidationError as error:
            return EditResult(400, {"ok": False, "problems": problems_of(error)})
        with self._lock:
            try:
                current = self.path.read_bytes()
                data = read_config_data(self.path)
            except (OSError, ConfigError) as error:
                return EditResult(409, {"ok": False, "problems": [f"the config file: {error}"]})
            problems = apply_zones(data, edit)
            if problems:
                return EditResult(400, {"ok": False, "problems": problems})
            return self._replace_locked(current, data)

    def rollback(self) -> EditResult:
        with self._lock:
            try:
                current = self.path.read_bytes()
                data = read_config_data(self.previous)
            except (OSError, ConfigError) as error:
                return EditResult(404, {"ok": False, "problems": [f"no previous config: {error}"]})
            return self._replace_locked(current, data)

    def _unwritable(self, error: OSError) -> str:
        problem = f"cannot write the config file {self.path}: {error.strerror or error}"
        if error.errno == errno.ENOSPC:
            return f"{problem}; free space on {self.path.parent}'s disk. Nothing was changed"
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):  # ProtectSystem=strict
            return (
                f"{problem}; the agent needs write access to {self.path.parent} "
                "(under systemd: docs/web.md, Under systemd). Nothing was changed"
            )
        return f"{problem}. Nothing was changed"

    def _replace_locked(self, current: bytes, data: object) -> EditResult:
        """Check ``data`` whole; write it, keeping ``current`` as .prev; reload; undo if the
        agent refuses it."""
        check = check_config_data(data, str(self.path), config_path=self.path)
        if not check.ok:
            problems = list(check.problems) or ["the config is empty"]
            return EditResult(422, {"ok": False, "problems": problems})
        mode = _mode_of(self.path)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)
        data_bytes = text.encode("utf-8")
        try:
            kept = self.previous.read_bytes() if self.previous.exists() else None
        except OSError:
            kept = None
        # Both files are written in full before either name changes: a full disk (or a
        # read-only /etc) fails here and leaves the config and its rollback point as they were.
        staged = self.path.with_name(f".{self.path.name}.new")
        previous_written = False
        try:
            write_atomic(staged, data_bytes, mode)
            write_atomic(self.previous, current, mode)
            previous_written = True
            os.replace(staged, self.path)
            fsync_path(self.path.parent)  # the rename survives a power cut
        except OSError as error:
            with contextlib.suppress(OSError):
                staged.unlink(missing_ok=True)
                if previous_written and kept is not None:  # the rename itself failed
                    write_atomic(self.previous, kept, mode)
            return EditResult(409, {"ok": False, "problems": [self._unwritable(error)]})
        outcome = self._reload()
        if not outcome.applied:
            problems = list(outcome.problems)
            try:
                write_atomic(self.path, current, mode)  # disk agrees with what runs
                if kept is not None:  # and the rollback still goes where it went before
                    write_atomic(self.previous, kept, mode)
            except OSError as error:
                problems.append(
                    f"and the file could not be put back ({error.strerror or error}): "
                    f"{self.path} holds the refused version, the running one is in "
                    f"{self.previous}; press Roll back once the disk is writable"
                )
                log.error("config %s: %s", self.path, problems[-1])
            return EditResult(409, {"ok": False, "problems": problems})
        return EditResult(
            200, {"ok": True, "changed": list(outcome.changed), "previous": str(self.previous)}
        )
