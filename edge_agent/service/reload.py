"""Reloading the config of a running agent (SIGHUP, or the MQTT ``reload`` command).

A new config is checked like ``check-config`` does (schema, then files and names) before
anything changes; a bad one is refused with every reason and the running config stays.
Some sections are bound to the process — the identity and topics, the broker connection,
the outbox file, the status LED pin — and changing them needs a restart: a reload that
changes one of those is refused too (saying which), rather than half-applied. Everything
else (cameras, zones, rules, analyzers, motion, tracker, events, detector, stats
interval) is applied by rebuilding the cameras; the outbox and the MQTT link are never
touched, so ``seq`` simply continues.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.config_check import check_config_file

__all__ = ["RESTART_ONLY", "ReloadOutcome", "check_reload", "restart_only_changes"]

RESTART_ONLY: tuple[str, ...] = (
    "site_id",
    "device_id",
    "mqtt",
    "outbox",
    "status",
    "web",
    "recording",  # the clip store and its caps are opened once, at start
    "updates",  # the trusted keys: a release cannot change who may sign the next one
)
"""Top-level config keys a reload cannot change (docs/service.md, Reload)."""
RESTART_HINT = "systemctl restart edge-agent"


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did: applied, or refused with every reason (the old config runs on)."""

    applied: bool
    problems: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # top-level sections that differ, when applied
    path: str = ""

    def summary(self) -> str:
        if self.applied:
            what = ", ".join(self.changed) if self.changed else "nothing changed"
            return f"config {self.path} reloaded ({what})"
        return f"config {self.path} refused, the running config is kept: " + "; ".join(
            self.problems
        )

    def reply_body(self) -> dict[str, object]:
        if self.applied:
            return {"ok": True, "config": self.path, "changed": list(self.changed)}
        return {"ok": False, "error": self.summary()}


def changed_sections(old: AgentConfig, new: AgentConfig) -> tuple[str, ...]:
    old_data, new_data = old.model_dump(), new.model_dump()
    return tuple(key for key in old_data if old_data[key] != new_data.get(key))


def restart_only_changes(old: AgentConfig, new: AgentConfig) -> list[str]:
    return [key for key in changed_sections(old, new) if key in RESTART_ONLY]


def check_reload(path: Path, current: AgentConfig) -> tuple[AgentConfig | None, ReloadOutcome]:
    """The config to apply, or None and the refusal; never raises (check-config's checks)."""
    check = check_config_file(path)
    if check.config is None or check.problems:
        return None, ReloadOutcome(False, check.problems or ("the file is empty",), path=str(path))
    restart = restart_only_changes(current, check.config)
    if restart:
        return None, ReloadOutcome(
            False,
            (f"{', '.join(restart)} can change only with a restart: {RESTART_HINT}",),
            path=str(path),
        )
    return check.config, ReloadOutcome(
        True, changed=changed_sections(current, check.config), path=str(path)
    )
