"""Installed releases on disk, switched by symlink, every step crash-safe (docs/updates.md).

::

    {dir}/state.json                the update in progress, or the last one's outcome
    {dir}/staging/                  archives being received, releases being unpacked
    {dir}/{kind}/{version}/         an installed release (renamed into place whole)
    {dir}/{kind}/current -> {v}     what runs
    {dir}/{kind}/previous -> {v}    what ran before: the rollback target

A switch is ``os.replace`` of a symlink (atomic on POSIX), and ``state.json`` is written
(atomically, fsynced) *before* each step that changes what runs, so a power cut at any
step leaves a state the next start can finish or take back (:meth:`ReleaseStore.repair`):
until the new release has passed its health check, taking back is the rule. The one
exception is the agent itself: its switch ends with the process exiting on purpose, so the
first start in ``trial`` runs the new code and its health check; a second start still in
``trial`` means the new agent died before keeping itself, and it is rolled back (and that
process, still the new code, exits 75 so that the old agent runs: the updater's start).
A repair in a process of its own (the unit's ``ExecStartPre``) never takes that trial.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.files import fsync_path, write_atomic

if TYPE_CHECKING:  # not at run time: the unit's ExecStartPre repairs without cryptography
    from edge_agent.update.release import Release

__all__ = ["KINDS", "ReleaseStore", "UpdateState"]

_log = logging.getLogger(__name__)

KINDS = ("model", "config", "agent")
STATE = "state.json"
# Phases: installed (placed, not switched), switching, trial (switched, health pending),
# rolling_back, then kept or rolled_back (final).
FINAL = ("kept", "rolled_back")
_REPAIRED: dict[Path, tuple[UpdateState, bool]] = {}
"""What :meth:`ReleaseStore.repair` took back in this process, by store (to publish once),
and whether it moved ``current`` back (an agent that did: this process is the wrong one)."""


@dataclass(frozen=True)
class UpdateState:
    """The last (or current) update as ``state.json`` holds it."""

    kind: str
    version: str
    previous: str | None
    phase: str
    reason: str = ""
    ts: float = 0.0
    attempts: int = 0  # starts in ``trial`` (the agent kind only)
    pid: int = 0  # the process whose start took the trial: a second repair in it is a no-op
    prestarted: bool = False  # a separate repair saw the trial before any agent start took it

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def _point(link: Path, target: str | None) -> None:
    """``link`` -> ``target`` (a sibling's name) by atomic rename; None removes it."""
    if target is None:
        link.unlink(missing_ok=True)
    else:
        tmp = link.with_name(f".{link.name}.tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    fsync_path(link.parent)


class ReleaseStore:
    """The releases under ``root``; one update at a time (the caller serialises)."""

    def __init__(
        self,
        root: Path,
        *,
        on_step: Callable[[str], None] = lambda step: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``on_step``: called after each durable step by name (the crash tests kill the
        process there)."""
        self.root = root
        self.staging = root / "staging"
        self._on_step = on_step
        self.step = on_step  # for the steps of others (an agent release's environment)
        self._clock = clock
        for folder in (root, self.staging, *(root / k for k in KINDS)):
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)

    # -- what is installed -----------------------------------------------------------

    def current(self, kind: str) -> str | None:
        """The version that runs, or None (nothing installed: the bootstrap files run)."""
        link = self.root / kind / "current"
        return os.readlink(link) if link.is_symlink() else None

    def previous(self, kind: str) -> str | None:
        link = self.root / kind / "previous"
        return os.readlink(link) if link.is_symlink() else None

    def current_dir(self, kind: str) -> Path:
        """The path that always names what runs (through the symlink)."""
        return self.root / kind / "current"

    def state(self) -> UpdateState | None:
        try:
            body = json.loads((self.root / STATE).read_text(encoding="utf-8"))
            return UpdateState(**body)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as error:  # written atomically: only by hand
            _log.error("%s cannot be read (%s); ignored", self.root / STATE, error)
            return None

    def _write_state(self, state: UpdateState, step: str) -> UpdateState:
        state = replace(state, ts=round(self._clock(), 3))
        write_atomic(self.root / STATE, json.dumps(state.as_json()).encode(), 0o644)
        self._on_step(step)
        return state

    # -- the steps -----------------------------------------------------------------

    def place(self, release: Release) -> UpdateState:
        """Move a verified, unpacked release (under ``staging``) to ``{kind}/{version}``."""
        target = self.root / release.kind / release.version
        if target.exists():  # a half-finished earlier try of the same version
            shutil.rmtree(target)
        for name in release.files:  # the bytes on disk before the rename makes them visible
            fsync_path(release.path / name)
        fsync_path(release.path)  # ... and the folder's entries for them
        os.replace(release.path, target)
        fsync_path(target.parent)
        self._on_step("placed")
        state = UpdateState(release.kind, release.version, self.current(release.kind), "installed")
        return self._write_state(state, "installed")

    def switch(self, state: UpdateState) -> UpdateState:
        """Make ``state.version`` current, the old current ``previous``; phase ``trial``."""
        folder = self.root / state.kind
        state = self._write_state(replace(state, phase="switching"), "switching")
        if state.previous is not None:
            _point(folder / "previous", state.previous)
            self._on_step("previous_linked")
        _point(folder / "current", state.version)
        self._on_step("current_linked")
        return self._write_state(replace(state, phase="trial"), "trial")

    def refuse_placed(self, state: UpdateState, reason: str) -> UpdateState:
        """A placed release found unfit before its switch (an agent release whose
        environment does not start): final, nothing switched, its folder removed."""
        state = self._write_state(replace(state, phase="rolled_back", reason=reason), "refused")
        self._remove_unused(state.kind, state.version)
        return state

    def _remove_unused(self, kind: str, version: str) -> None:
        if version not in (self.current(kind), self.previous(kind)):
            shutil.rmtree(self.root / kind / version, ignore_errors=True)

    def keep(self, state: UpdateState, reason: str) -> UpdateState:
        """The health check passed: final. Older releases than ``previous`` are removed."""
        state = self._write_state(replace(state, phase="kept", reason=reason), "kept")
        self._prune(state.kind)
        return state

    def roll_back(self, state: UpdateState, reason: str) -> UpdateState:
        """Back to ``previous`` (or to the bootstrap files when there was none)."""
        folder = self.root / state.kind
        state = self._write_state(
            replace(state, phase="rolling_back", reason=reason), "rolling_back"
        )
        _point(folder / "current", state.previous)
        self._on_step("current_restored")
        return self._write_state(replace(state, phase="rolled_back"), "rolled_back")

    def _prune(self, kind: str) -> None:
        keep = {self.current(kind), self.previous(kind)}
        for path in (self.root / kind).iterdir():
            if path.is_dir() and not path.is_symlink() and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)

    # -- at start ------------------------------------------------------------------

    def repair(self, *, agent_start: bool = True) -> UpdateState | None:
        """At start, before anything reads a release: finish or take back an update a
        power cut (or a crash) interrupted; the state after it (None: there never was one).
        Leftovers of an unpacking are removed; a partly received archive is kept (the
        transfer resumes). ``agent_start=False``: a repair in a process of its own (the
        unit's ``ExecStartPre``), which never takes a new agent's trial; a second one with
        no agent start between takes back a new agent that did not even start."""
        for path in self.staging.iterdir():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
        for kind in KINDS:
            for name in ("current", "previous"):
                (self.root / kind / f".{name}.tmp").unlink(missing_ok=True)
        state = self.state()
        if state is None or state.phase in FINAL:
            return state
        moved_back = state.phase != "installed"  # else nothing was switched
        if state.phase == "installed":
            why = "interrupted before the switch; the running release was kept"
            state = self._write_state(replace(state, phase="rolled_back", reason=why), "repaired")
            self._remove_unused(state.kind, state.version)  # e.g. a half-built environment
        elif state.phase == "trial" and state.kind == "agent" and state.pid == os.getpid():
            return state  # repaired once already in this process (the CLI, then the agent)
        elif state.phase == "trial" and state.kind == "agent" and state.attempts == 0:
            if agent_start:  # the switch ended with an exit on purpose: this start is its trial
                trial = replace(state, attempts=1, pid=os.getpid())
                return self._write_state(trial, "trial_started")
            if not state.prestarted:  # before the new agent's start: leave it its trial
                return self._write_state(replace(state, prestarted=True), "prestarted")
            state = self.roll_back(state, "the new agent did not start (its repair never ran)")
        else:
            why = (
                "the new agent did not keep itself (it failed or was cut off before its "
                "health check passed)"
                if state.phase == "trial" and state.kind == "agent"
                else f"interrupted during the update ({state.phase}); rolled back"
            )
            state = self.roll_back(state, why)
        _log.warning("update %s %s: %s", state.kind, state.version, state.reason)
        _REPAIRED[self.root.resolve()] = (state, moved_back)
        return state

    def take_repaired(self) -> tuple[UpdateState, bool] | None:
        """What the repair at this start took back, and whether it moved ``current`` back
        (once: then None)."""
        return _REPAIRED.pop(self.root.resolve(), None)

    def report(self) -> dict[str, object]:
        """For status: what runs of each kind, and the last update."""
        state = self.state()
        return {
            "current": {k: self.current(k) for k in KINDS},
            "last": state.as_json() if state is not None else None,
        }
