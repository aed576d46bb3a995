"""What the agent says about itself: the LED's condition, the watchdog's health, stats,
the ``status`` reply and ``announce``.

A mixin of ``edge_agent.app.Agent`` (kept apart so the agent's file holds its threads and
lifecycle): it only reads what the agent built (workers, outbox, publisher, recorder
store, updater) — the ``housekeeping`` thread publishes stats, the ``mqtt-commands``
thread answers ``status`` and ``announce``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

from edge_agent import __version__
from edge_agent.config import AgentConfig
from edge_agent.encode import Topics
from edge_agent.indicator import Condition, Health, StatusIndicator, condition_of
from edge_agent.mqtt import Publisher
from edge_agent.outbox import Outbox, disk_free_bytes
from edge_agent.recording import ClipStore
from edge_agent.service import ServiceHealth
from edge_agent.stats import (
    STATS_SCHEMA,
    CameraStats,
    build_stats,
    encode_stats,
    stats_expiry_s,
)
from edge_agent.worker import CameraWorker

if TYPE_CHECKING:
    from edge_agent.update.manager import Updater

__all__ = ["AgentReports"]


class AgentReports:
    config: AgentConfig
    workers: list[CameraWorker]
    outbox: Outbox
    publisher: Publisher
    topics: Topics
    boot_id: str
    indicator: StatusIndicator
    clips: ClipStore | None
    recording_unavailable: str | None  # why a config that records does not (status)
    updater: Updater | None
    _started_mono_s: float
    _cameras_started_mono_s: float

    def condition(self, now_s: float) -> Condition:
        """The device's condition now (the LED's pattern): ``starting`` until every camera
        has sent a frame or ``status.camera_silent_after_s`` has passed since the start."""
        silent_after_s = self.config.status.camera_silent_after_s
        last_frames = [w.last_frame_mono_s for w in self.workers]
        if None in last_frames and now_s - self._cameras_started_mono_s < silent_after_s:
            return Condition.STARTING
        delivering = sum(1 for t in last_frames if t is not None and now_s - t <= silent_after_s)
        return condition_of(
            Health(
                cameras=len(self.workers),
                cameras_delivering=delivering,
                uplink_connected=self.publisher.connected,
            )
        )

    def service_health(self, now_s: float) -> ServiceHealth:
        """What the watchdog goes by: a camera is silent when its last frame (or, before
        its first, the cameras' start) is older than ``status.camera_silent_after_s``."""
        silent_after_s = self.config.status.camera_silent_after_s
        workers = self.workers  # read once: a reload replaces the list
        silent = tuple(
            w.config.id
            for w in workers
            if now_s - (w.last_frame_mono_s or self._cameras_started_mono_s) > silent_after_s
        )
        return ServiceHealth(
            starting=self.condition(now_s) is Condition.STARTING,
            cameras=tuple(w.config.id for w in workers),
            silent_cameras=silent,
            frames_total=sum(w.pipeline.clock.frames for w in workers),
            outbox_depth=self.outbox.depth(),
            outbox_writable=self.outbox.accepting_writes,
            uplink_connected=self.publisher.connected,
        )

    def stats_body(self, *, new_interval: bool = True) -> dict[str, object]:
        """The stats payload; ``new_interval`` starts the next interval (periodic stats
        only: a ``status`` command must not shorten the published window)."""
        cameras: dict[str, CameraStats] = {}
        now_s = time.monotonic()
        for worker in self.workers:
            # Periodic stats start the next interval (housekeeping, the mark's only writer).
            cameras[worker.config.id] = worker.interval_stats(
                now_s, self._started_mono_s, new_interval=new_interval
            )
        return build_stats(
            boot_id=self.boot_id,
            uptime_s=now_s - self._started_mono_s,
            outbox=self.outbox.stats(),
            publisher=self.publisher.stats(),
            cameras=cameras,
            disk_free_bytes=disk_free_bytes(self.config.outbox.path),
            condition=self.condition(now_s).value,
        )

    def publish_stats(self, *, new_interval: bool = True) -> bool:
        return self.publisher.publish_volatile(
            self.topics.stats,
            encode_stats(self.stats_body(new_interval=new_interval)),
            content_type="application/json",
            expiry_s=stats_expiry_s(self.config.stats_interval_s),
            user_properties=(("schema", STATS_SCHEMA),),
        )

    def status_report(self) -> dict[str, object]:
        stats = self.stats_body(new_interval=False)
        publisher_stats = cast("dict[str, object]", stats["publisher"])
        report: dict[str, object] = {
            "version": __version__,
            "boot": self.boot_id,
            "uptime_s": stats["uptime_s"],
            "outbox": stats["outbox"],
            "cameras": stats["cameras"],
            "previews": [w.config.id for w in self.workers if w.preview is not None],
            "condition": self.condition(time.monotonic()).value,
            "status_led": self.indicator.description,
            "recording": self.recording_report(),
            "update": self.updater.report() if self.updater is not None else None,
        }
        if self.recording_unavailable is not None:
            report["recording_unavailable"] = self.recording_unavailable
        led_unavailable = self.indicator.unavailable  # its pin is tried again meanwhile
        if led_unavailable is not None:
            report["status_led_unavailable"] = led_unavailable
        # Which broker answers this device (of mqtt.brokers): as in stats.
        for key in ("broker", "broker_moves"):
            if key in publisher_stats:
                report[key] = publisher_stats[key]
        return report

    def recording_report(self) -> dict[str, object] | None:
        """The clips on disk and each camera's recorder (status): None when not recording."""
        if self.clips is None:
            return None
        cameras = {
            w.config.id: w.pipeline.recorder.stats()
            for w in self.workers
            if w.pipeline.recorder is not None
        }
        return {**self.clips.stats(), "cameras": cameras}

    def announce(self) -> dict[str, object]:
        """Sparkplug's rebirth: the retained ``online`` status again, then stats now (camera
        figures since the last stats; the periodic window is not shortened). Analyzer
        states are not sent again: they are retained on the broker already, and a new copy
        would take a new ``seq`` and read as a change."""
        announced = ["status"] if self.publisher.announce() else []
        if self.publish_stats(new_interval=False):
            announced.append("stats")
        return {"ok": True, "boot": self.boot_id, "announced": announced}
