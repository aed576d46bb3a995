"""The running agent's side of an update: what is open, how a release is applied, and the
health check after a switch (docs/updates.md). Kept out of ``edge_agent.app`` (its file
holds the threads and lifecycle); the agent hands itself in as a :class:`RunningAgent`.

The health check is the watchdog's and selftest's questions asked of the live agent since
the switch: every camera has delivered a frame, the detector has run on one of them (once,
directly: a quiet scene may never wake the motion gate) and the broker link is up.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from edge_agent.assemble import Detectors
from edge_agent.encode import Topics
from edge_agent.service.reload import ReloadOutcome
from edge_agent.update.config import UpdatesConfig
from edge_agent.update.manager import Updater
from edge_agent.update.store import ReleaseStore
from edge_agent.worker import CameraWorker

__all__ = [
    "CONFIG_FILE",
    "RESTART_EXIT_CODE",
    "AgentHost",
    "RunningAgent",
    "build_updater",
    "effective_config_path",
]

_log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"  # the file a config release holds
RESTART_EXIT_CODE = 75  # EX_TEMPFAIL: systemd's Restart=on-failure starts the new agent
UPDATE_EXPIRY_S = 30 * 24 * 3600  # the retained outcome on {root}/update lasts a month
RETRY_S = 600.0  # how long an outcome waits for the link to come up
POLL_S = 0.5


class Link(Protocol):
    @property
    def connected(self) -> bool: ...

    def publish_volatile(
        self,
        topic: str,
        payload: bytes,
        *,
        content_type: str,
        expiry_s: float,
        qos: int = 0,
        retain: bool = False,
    ) -> bool: ...


class RunningAgent(Protocol):
    """What the host reads of ``edge_agent.app.Agent``."""

    config_path: Path | None
    exit_code: int

    @property
    def workers(self) -> Sequence[CameraWorker]: ...

    @property
    def detectors(self) -> Detectors: ...

    @property
    def publisher(self) -> Link: ...

    def reload(
        self, path: Path | None = None, *, force_detector: bool = False
    ) -> ReloadOutcome: ...

    def request_stop(self) -> None: ...


def effective_config_path(bootstrap: Path, settings: UpdatesConfig | None) -> Path:
    """The config the agent runs: the installed config release's, when there is one
    (repaired first: a power cut mid-update is finished or taken back), else
    ``bootstrap`` (the file the service names). The agent is still given ``bootstrap``
    as its ``config_path``: :class:`AgentHost` points it at the release's."""
    if settings is None:
        return bootstrap
    store = ReleaseStore(settings.dir)
    store.repair()
    if store.current("config") is None:
        return bootstrap
    return store.current_dir("config") / CONFIG_FILE


def agent_on_trial(settings: UpdatesConfig) -> bool:
    """Whether this start is a new agent's trial (after ``effective_config_path``'s
    repair): failing it now rolls the agent back at the next start."""
    state = ReleaseStore(settings.dir).state()
    return state is not None and state.kind == "agent" and state.phase == "trial"


class AgentHost:
    """:class:`edge_agent.update.manager.UpdateHost` for the running agent."""

    def __init__(self, agent: RunningAgent, settings: UpdatesConfig, topic_root: str) -> None:
        self._agent = agent
        self._store = ReleaseStore(settings.dir)
        self._bootstrap = agent.config_path  # the service's file; a release's runs instead
        if self._store.current("config") is not None and agent.config_path is not None:
            agent.config_path = self._store.current_dir("config") / CONFIG_FILE
        self._topic = Topics(topic_root).update
        self._detector_ran_since: float | None = None
        self._lock = threading.Lock()
        self._unsent: bytes | None = None  # the latest outcome the link was down for
        self._retry: threading.Thread | None = None

    def open_event_cameras(self) -> list[str]:
        return [w.config.id for w in self._agent.workers if w.pipeline.open_events]

    def apply_release(self, kind: str) -> str | None:
        if kind == "config":
            path = self._bootstrap
            if self._store.current("config") is not None:
                path = self._store.current_dir("config") / CONFIG_FILE
            if path is None:
                return "this agent was not started from a config file"
            self._agent.config_path = path
            outcome = self._agent.reload(path)
        elif kind == "model":  # the config names .../model/current/...: same text, new file
            outcome = self._agent.reload(force_detector=True)
        else:
            return f"a {kind} release is not applied by a reload"
        return None if outcome.applied else outcome.summary()

    def health_problems(self, since_mono_s: float) -> list[str]:
        workers = list(self._agent.workers)
        problems = [
            f"camera {w.config.id}: no frame since the switch"
            for w in workers
            if w.last_frame_mono_s is None or w.last_frame_mono_s < since_mono_s
        ]
        if self._detector_ran_since != since_mono_s:
            problems += self._detector_problem(workers, since_mono_s)
        if not self._agent.publisher.connected:
            problems.append("the broker is not reached")
        return problems

    def _detector_problem(self, workers: list[CameraWorker], since_mono_s: float) -> list[str]:
        worker = next((w for w in workers if w.latest is not None), None)
        frame = None if worker is None else worker.latest
        if worker is None or frame is None or frame.monotonic_s < since_mono_s:
            return ["the detector has not run yet (no frame)"]
        try:  # the model that camera looks through (a crowd camera may have its own)
            self._agent.detectors.for_camera(worker.config.id).detect(frame.image)
        except Exception as error:  # a model that loads but cannot run
            return [f"the detector fails: {error}"]
        self._detector_ran_since = since_mono_s
        return []

    def publish_update(self, body: Mapping[str, object]) -> None:
        payload = json.dumps({"v": 1, **body}, separators=(",", ":")).encode()
        with self._lock:
            self._unsent = None  # a newer outcome replaces one still waiting
        sent = self._send(payload)
        if not sent:  # offline (a start, a link cut): the latest goes once the link is up
            _log.warning("update outcome not published yet (offline): %s", payload.decode())
            with self._lock:
                self._unsent = payload
                if self._retry is None or not self._retry.is_alive():
                    self._retry = threading.Thread(
                        target=self._send_when_up, name="update-publish", daemon=True
                    )
                    self._retry.start()

    def _send_when_up(self) -> None:
        deadline_s = time.monotonic() + RETRY_S
        while time.monotonic() < deadline_s:
            time.sleep(POLL_S)  # not a test: the link has no "connected" event to wait on
            with self._lock:
                payload = self._unsent
                if payload is None:
                    return
                if self._agent.publisher.connected and self._send(payload):
                    self._unsent = None
                    return

    def _send(self, payload: bytes) -> bool:
        return self._agent.publisher.publish_volatile(
            self._topic,
            payload,
            content_type="application/json",
            expiry_s=UPDATE_EXPIRY_S,
            qos=1,
            retain=True,
        )

    def restart_for_update(self) -> None:
        self._agent.exit_code = RESTART_EXIT_CODE
        self._agent.request_stop()


def build_updater(
    agent: RunningAgent, settings: UpdatesConfig | None, topic_root: str
) -> Updater | None:
    """The agent's updater when its config has ``updates:`` (None: no updates)."""
    if settings is None:
        return None
    return Updater(settings, AgentHost(agent, settings, topic_root))
