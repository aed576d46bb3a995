"""One update at a time, from a received archive to kept or rolled back (docs/updates.md).

``update_commit`` (or ``update_fetch``) unpacks and verifies the release and places it
beside the running one in the command thread, so a refusal is the command's reply. The
rest runs on an ``update`` thread of its own: wait while an event is open (the reply and
``status`` say ``deferred``), switch, apply (a config or model release: the agent's
reload; the agent itself: exit for systemd to start the new one), then the health check —
frames flow, the detector runs, the broker is reached — until ``health_deadline_s``:
healthy keeps the release, anything else rolls it back and applies the old one again.
Every outcome goes to ``{root}/update`` (retained) and into ``status``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from edge_agent import __version__
from edge_agent.update import agent_env
from edge_agent.update.config import UpdatesConfig
from edge_agent.update.errors import UpdateError
from edge_agent.update.release import (
    METADATA,
    Release,
    ReleaseRefused,
    agent_wheel,
    verify_release,
)
from edge_agent.update.store import ReleaseStore, UpdateState
from edge_agent.update.transfer import Staging, TransferError, unpack

__all__ = ["UpdateError", "UpdateHost", "Updater"]

_log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the deferral and the health check look again
_PRIVATE = ("pid", "prestarted")  # state.json's own fields, not published


class UpdateHost(Protocol):
    """What the updater needs from the running agent (``edge_agent.update.host``)."""

    def open_event_cameras(self) -> list[str]:
        """Cameras with an event open now."""
        ...

    def apply_release(self, kind: str) -> str | None:
        """Load what ``current`` of ``kind`` now names; None when applied, else why not."""
        ...

    def health_problems(self, since_mono_s: float) -> list[str]:
        """What is not yet healthy since the switch at ``since_mono_s``; [] when all is."""
        ...

    def publish_update(self, body: Mapping[str, object]) -> None: ...

    def restart_for_update(self) -> None:
        """Exit so that systemd starts the new agent."""
        ...


class Updater:
    """The update commands and the update thread; thread-safe."""

    def __init__(
        self,
        settings: UpdatesConfig,
        host: UpdateHost,
        *,
        store: ReleaseStore | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store or ReleaseStore(settings.dir)
        self.staging = Staging(self.store.staging, max_bytes=settings.max_bytes)
        self._host = host
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.pending: str | None = None  # why a placed release waits (deferred), if it does
        self.started_state = self.store.repair()

    # -- commands (edge_agent.remote) ---------------------------------------------

    def begin(self, archive_id: str, size: int, sha256: str) -> dict[str, object]:
        try:
            have = self.staging.begin(archive_id, size, sha256)
        except TransferError as error:
            raise UpdateError(str(error), error.have) from None
        return {"ok": True, "id": archive_id, "have": have, "size": size}

    def chunk(
        self, archive_id: str, offset: int, data: str, sha256: str | None
    ) -> dict[str, object]:
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise UpdateError("data is not base64") from None
        try:
            have = self.staging.chunk(archive_id, offset, raw, sha256)
        except TransferError as error:
            raise UpdateError(str(error), error.have) from None
        return {"ok": True, "id": archive_id, "have": have}

    def commit(self, archive_id: str, *, kind: str | None = None) -> dict[str, object]:
        """Install the received archive (a refusal raises :class:`UpdateError`)."""
        try:
            archive = self.staging.complete(archive_id)
        except TransferError as error:
            raise UpdateError(str(error), error.have) from None
        return self._install(archive_id, archive, kind)

    def fetch(self, archive_id: str, url: str, size: int, sha256: str) -> dict[str, object]:
        try:
            archive = self.staging.fetch(archive_id, url, size, sha256)
        except TransferError as error:
            raise UpdateError(str(error)) from None
        return self._install(archive_id, archive, None)

    def _install(self, archive_id: str, archive: Path, kind: str | None) -> dict[str, object]:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise UpdateError("busy: an update is in progress; ask `status` how it goes")
            folder = self.store.staging / f"{archive_id}.d"
            try:
                unpack(archive, folder, max_bytes=self.settings.max_bytes)
                release = self._verify(folder, kind)
            except (TransferError, ReleaseRefused) as error:
                self.staging.discard(archive_id)
                self._publish_refusal(str(error))
                raise UpdateError(f"refused: {error}") from None
            state = self.store.place(release)
            self.staging.discard(archive_id)
            if release.kind == "agent":
                self._build_agent_env(state, release)
            deferred = self._deferral()
            self.pending = deferred
            self._thread = threading.Thread(
                target=self._run, args=(state,), name="update", daemon=True
            )
            self._thread.start()
        _log.info("update %s %s placed; %s", state.kind, state.version, deferred or "switching")
        body: dict[str, object] = {
            "ok": True,
            "kind": state.kind,
            "version": state.version,
            "previous": state.previous,
            "state": "deferred" if deferred else "switching",
        }
        if deferred:
            body["reason"] = deferred
        return body

    def _verify(self, folder: Path, kind: str | None) -> Release:
        claimed = _claimed_kind(folder)
        installed = self.store.current(claimed) if claimed else None
        if claimed == "agent" and installed is None:
            installed = __version__  # the factory install runs: nothing older than it
        release = verify_release(
            folder,
            trusted_keys=self.settings.keys(),
            installed=installed,
            now=datetime.fromtimestamp(self._wall_clock(), timezone.utc),
            kind=kind,
        )
        if release.kind == "agent":
            self._launch()  # refused now, rather than switched to a release that never runs
        return release

    def _launch(self) -> agent_env.Launch:
        launch = agent_env.launched()
        if launch is None:
            raise ReleaseRefused(
                "this agent was not started by the launcher (python -m "
                "edge_agent.update.launcher, deploy/systemd/edge-agent.service): an agent "
                "release would never run"
            )
        if launch.releases.resolve() != self.store.root.resolve():
            raise ReleaseRefused(
                f"the launcher runs agent releases from {launch.releases}, updates.dir is "
                f"{self.store.root}: set EDGE_AGENT_RELEASES_DIR in the unit to updates.dir"
            )
        return launch

    def _build_agent_env(self, state: UpdateState, release: Release) -> None:
        """The placed agent release's environment, before any switch; refused (and its
        folder removed) when it cannot be made or does not start."""
        folder = self.store.root / "agent" / release.version
        try:
            wheels = [agent_wheel(release.files, release.version)]
            wheels += [n for n in release.files if n != wheels[0]]
            agent_env.build_env(
                folder, release.version, wheels, self._launch().base_python, on_step=self.store.step
            )
        except (agent_env.AgentEnvError, ReleaseRefused, OSError) as error:
            reason = f"the new agent does not install or start: {error}"
            self.store.refuse_placed(state, reason)
            self._publish_refusal(reason)
            raise UpdateError(f"refused: {reason}") from None

    def report(self) -> dict[str, object]:
        """For ``status``: what runs, the last update, and what waits."""
        return {**self.store.report(), "pending": self.pending}

    # -- the update thread ---------------------------------------------------------

    def start(self) -> None:
        """After the agent started: a new agent on trial runs its health check now."""
        state = self.started_state
        if state is not None and state.phase == "trial" and state.kind == "agent":
            if state.version != __version__:  # the launcher fell back to another agent
                self._roll_back(
                    state,
                    f"the agent that started is {__version__}, not the release's "
                    f"{state.version} (its environment did not run)",
                )
                return
            self._thread = threading.Thread(
                target=self._check, args=(state, time.monotonic()), name="update", daemon=True
            )
            self._thread.start()
        repaired = self.store.take_repaired()  # this start took an update back: say so
        if repaired is None:
            return
        state, moved_back = repaired
        if state.phase == "rolled_back":
            self._publish(state)
        if state.kind == "agent" and moved_back:
            # This process is still the new agent that failed its trial: exit 75 so that
            # systemd starts the old one, which ``current`` names again.
            self._host.restart_for_update()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _deferral(self) -> str | None:
        cameras = self._host.open_event_cameras()
        if not cameras:
            return None
        return f"an event is open on {', '.join(cameras)}: the switch waits until it ends"

    def _run(self, state: UpdateState) -> None:
        try:
            self._run_guarded(state)
        except Exception as error:  # the thread must never die with a release half-applied
            _log.exception("update %s %s failed", state.kind, state.version)
            self.pending = None
            current = self.store.state()
            if current is None or current.phase not in ("installed", "switching", "trial"):
                return
            reason = f"the update failed on the device: {error}"
            try:
                if current.phase == "installed":  # never switched: nothing to apply again
                    _log.error("update %s %s given up: %s", state.kind, state.version, reason)
                    self._publish(self.store.roll_back(current, reason))
                else:
                    self._roll_back(current, reason)
            except Exception:  # e.g. the disk still full: the next start's repair takes it back
                _log.exception("update %s %s: the rollback failed too", state.kind, state.version)

    def _run_guarded(self, state: UpdateState) -> None:
        waited_since = time.monotonic()
        if self.pending:
            self._publish(state, phase="deferred", reason=self.pending)
        while (why := self._deferral()) is not None:
            self.pending = why
            if time.monotonic() - waited_since > self.settings.defer_max_s:
                reason = f"not switched: events stayed open for {self.settings.defer_max_s:.0f} s"
                done = self.store.roll_back(state, reason)  # never switched: nothing changes
                self.pending = None
                self._publish(done)
                return
            if self._stop.wait(POLL_S):
                return  # the agent stops: the next start finds ``installed`` and says so
        self.pending = None
        switched_at = time.monotonic()
        state = self.store.switch(state)
        if state.kind == "agent":
            self._publish(state, reason="switched; restarting into the new agent")
            self._host.restart_for_update()
            return
        problem = self._host.apply_release(state.kind)
        if problem is not None:
            self._roll_back(state, f"the release could not be applied: {problem}")
            return
        self._check(state, switched_at)

    def _check(self, state: UpdateState, since_mono_s: float) -> None:
        deadline_s = since_mono_s + self.settings.health_deadline_s
        problems = self._host.health_problems(since_mono_s)
        while problems and time.monotonic() < deadline_s:
            if self._stop.wait(POLL_S):
                return  # stopping mid-check: the next start rolls back (not proven healthy)
            problems = self._host.health_problems(since_mono_s)
        if problems:
            self._roll_back(
                state,
                f"health check failed within {self.settings.health_deadline_s:.0f} s: "
                + "; ".join(problems),
            )
            return
        kept = self.store.keep(
            state, "healthy: frames flow, the detector runs, the broker is reached"
        )
        _log.info("update %s %s kept", kept.kind, kept.version)
        self._publish(kept)

    def _roll_back(self, state: UpdateState, reason: str) -> None:
        _log.error("update %s %s rolled back: %s", state.kind, state.version, reason)
        done = self.store.roll_back(state, reason)
        if state.kind == "agent":
            self._publish(done)
            self._host.restart_for_update()  # the old agent takes over
            return
        again = self._host.apply_release(state.kind)
        if again is not None:
            _log.error("the previous %s could not be applied again either: %s", state.kind, again)
        self._publish(done)

    def _publish(
        self, state: UpdateState, *, phase: str | None = None, reason: str | None = None
    ) -> None:
        body = {
            **{k: v for k, v in state.as_json().items() if k not in _PRIVATE},
            "phase": phase or state.phase,
            "reason": reason if reason is not None else state.reason,
            "ts": round(self._wall_clock(), 3),
        }
        self._host.publish_update(body)

    def _publish_refusal(self, reason: str) -> None:
        self._host.publish_update(
            {"phase": "refused", "reason": reason, "ts": round(self._wall_clock(), 3)}
        )


def _claimed_kind(folder: Path) -> str | None:
    """The kind the (not yet verified) metadata claims: only to pick which installed
    version to compare with. The signature check that follows covers it."""
    try:
        kind = json.loads((folder / METADATA).read_text(encoding="utf-8"))["signed"]["kind"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None  # the verification that follows says why
    return kind if kind in ("model", "config", "agent") else None
