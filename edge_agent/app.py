"""Runs the stages as a live agent: one process, a few threads, one writer per field.

Per camera a capture thread (source → latest-frame mailbox) and an analysis thread
(mailbox → pipeline → outbox); one drain thread publishes the outbox to MQTT; one
housekeeping thread keeps the LED, stats and previews. The camera thread never waits
for detection, the pipeline never waits for the network, and the publisher never
touches frames. Built from the config by ``edge_agent.assemble``.

Who writes what: each field has one writing thread (or a lock, named); every other
thread only reads it, one int or one reference at a time (the ``worker.`` fields are
``edge_agent.worker.CameraWorker``'s).

=================  ==============================================  ===========================
thread             the only writer of                              hands off through
=================  ==============================================  ===========================
``capture-{cam}``  the source, decimation,                         ``LatestFrameMailbox.put``;
                   ``worker.capture_failures``                     packets: ``PacketFeed.put``
``analysis-{cam}`` ``CameraPipeline`` (tracker, rules, ``clock``), ``OutboxSink.emit`` →
                   ``worker.latest``, ``worker.last_frame_mono_s``, ``Outbox`` lock →
                   ``worker.analysis_failures``                    ``Publisher.wake()``
``clip-finisher``  a closed clip's file and index row; the         ``ClipStore`` lock; a clip
                   recorder's ``clips_written``, ``finish_failed`` comes from ``analysis``
``mqtt-drain``     the publisher's in-flight table, streams and    ``Outbox`` lock; link facts
                   pacing (edge_agent/mqtt/drain.py)               under ``LinkState``'s lock
paho network       connection facts and PUBACKs, in ``LinkState``  ``Drain.wake``; a command is
                   (records and wakes, nothing slow)               queued, never run here
``mqtt-commands``  ``worker.preview`` on/off (``set_preview``,     the reply (``Reply``),
                   under ``_preview_lock``); snapshots; a          ``publish_volatile``
                   reference request (``set_references``: only
                   queued, under each slot's lock, or a
                   classifier's one-bool restart flag; the
                   ``analysis-{cam}`` thread takes it at its
                   next frame)
``housekeeping``   the LED, ``worker.stats_mark``, a preview's     ``publish_volatile``;
                   ``PreviewBudget`` (timing, size, quality) and   ``OutboxSink.retry`` (its
                   ``worker.preview_bytes``; ends an expired       lock): what a full disk
                   preview under ``_preview_lock``                 refused is stored later
caller of          ``_threads``, ``not_stopped``; closes the       ``_stop``, ``mailbox.close()``
``start``/``stop`` sources and the sink after the join
``web`` and its    sessions, login failures, the page's frame      ``Agent.reload()``, as a
request threads    cache (each under its lock); a zone save        SIGHUP (edge_agent/web)
(``web.enabled``)  writes the config file, then reloads
``reload`` (SIGHUP ``workers``, ``detector``, ``config`` (each      ``_cameras_stop``; the old
thread or          replaced whole, under ``_reload_lock``)         camera threads joined first
``mqtt-commands``)
=================  ==============================================  ===========================

A shared detector is a ``LockedDetector``: analysis threads take turns at it.

Housekeeping also tells systemd how the agent is (``edge_agent.service``). A reload stops
the camera threads (open events end), then starts new ones from the new config; the outbox
and the MQTT link stay, so ``seq`` runs on without a gap or a repeat (docs/service.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from edge_agent.agent_reports import AgentReports
from edge_agent.assemble import (
    Detectors,
    birth_payload,
    build_detector,
    build_detectors,
    build_pipeline,
    build_recorder,
    clip_commands,
    detector_labels,
    new_boot_id,
    open_clip_store,
)
from edge_agent.camera_commands import PREVIEW_EXPIRY_S, CameraCommands
from edge_agent.capture import CaptureError, FrameSource, LatestFrameMailbox, open_source
from edge_agent.config import AgentConfig
from edge_agent.detect.base import LockedDetector
from edge_agent.encode import Encoder, Topics, interrupted_end
from edge_agent.indicator import Condition, open_indicator
from edge_agent.mqtt import DrainSettings, MqttSettings, Publisher
from edge_agent.outbox import Outbox, OutboxError
from edge_agent.remote import CommandHandler, Reply
from edge_agent.service import (
    Notifier,
    ServiceMonitor,
    notifier_from_env,
    watchdog_interval_s,
)
from edge_agent.service.logs import worth_saying
from edge_agent.service.reload import ReloadOutcome, check_reload
from edge_agent.sinks import OutboxSink
from edge_agent.web.feed import RecentOutputs, TeeSink
from edge_agent.worker import CameraWorker

if TYPE_CHECKING:
    from edge_agent.renew import Renewer
    from edge_agent.update.manager import Updater
    from edge_agent.web.server import WebServer

__all__ = [
    "PREVIEW_EXPIRY_S",
    "Agent",
    "CameraWorker",
    "birth_payload",
    "new_boot_id",
]

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0  # how often the status LED's condition is re-evaluated
JOIN_TIMEOUT_S = 15.0  # a capture read returns within its stream timeout


class Agent(CameraCommands, AgentReports):
    """The running agent; also the target of commands from the command centre."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        """``config_path``: where ``reload`` reads the config again (None: no reload);
        ``notifier``: where service state goes (default: ``$NOTIFY_SOCKET``, if set)."""
        # OpenCV's pool costs more CPU than it saves here (docs/pipeline.md §4, bench/README.md)
        cv2.setNumThreads(1)
        self.config = config
        self.config_path = config_path
        self.boot_id = new_boot_id()
        self.topics = Topics(config.topic_root)
        self._started_mono_s = time.monotonic()
        self._stop = threading.Event()
        self._housekeeping_failures: dict[str, int] = {}  # step -> failures since start
        self._cameras_stop = threading.Event()  # the current cameras' threads (reload, stop)
        self._cameras_started_mono_s = self._started_mono_s
        self._reload_lock = threading.Lock()  # one reload at a time, and never during stop
        self._started = False
        self.service = ServiceMonitor(
            notifier if notifier is not None else notifier_from_env(),
            watchdog_s=watchdog_interval_s(),
        )
        self._threads: list[threading.Thread] = []
        self._preview_lock = threading.Lock()  # command handler and housekeeping
        self.not_stopped: tuple[str, ...] = ()  # threads that outlived ``stop``'s join
        self.exit_code = 0  # 75: an update asks systemd for a restart (docs/updates.md)
        # First, so the LED flickers "starting" while the model loads.
        self.indicator = open_indicator(config.status.led)
        self.indicator.show(Condition.STARTING)
        try:
            self._assemble(config)
        except BaseException:
            self.indicator.close()  # release the pin: the process may go on (tests, a retry)
            raise

    def _assemble(self, config: AgentConfig) -> None:
        # First: its repair finishes or takes back an update a power cut interrupted,
        # before the model below is read (docs/updates.md). None: no signed updates.
        self.updater = self._updater(config)
        self.outbox = Outbox.from_config(config.outbox)
        if self.outbox.recovered_from is not None:
            log.error(
                "the outbox was corrupt and was moved aside to %s; starting with an empty one",
                self.outbox.recovered_from,
            )
        self._end_what_the_last_run_left_open()
        # Each model once, shared by the cameras that look through it (a crowd camera's own).
        self.detectors = build_detectors(config, build=build_detector, wrap=LockedDetector)
        # None: no recording (docs/recording.md). A clips index the agent cannot open (its
        # disk read-only or full, the permissions) costs the clips, not the events.
        self.clips = None
        self.recording_unavailable = None
        try:
            self.clips = open_clip_store(config)
        except OSError as problem:
            self.recording_unavailable = str(problem)
            log.error("recording is off until the agent restarts: %s", problem)
        self.commands = CommandHandler(
            self, clips=clip_commands(config, self.clips), updates=self.updater
        )
        self.publisher = Publisher(
            MqttSettings.from_config(config),
            self.outbox,
            self.topics,
            birth_payload=self._birth(),
            max_inflight=config.mqtt.max_inflight,
            drain=DrainSettings.from_config(config.outbox),
            on_command=self._on_mqtt_command,
        )
        self.renewer = self._renewer(config)
        self.sink = OutboxSink(self.outbox, Encoder(self.topics, self.boot_id), self.publisher.wake)
        self.recent = RecentOutputs() if config.web.enabled else None  # the page's event list
        self.web: WebServer | None = None
        self.workers: list[CameraWorker] = self._build_workers(config, self.detectors)

    def _build_workers(self, config: AgentConfig, detectors: Detectors) -> list[CameraWorker]:
        workers: list[CameraWorker] = []
        opened: FrameSource | None = None  # a source not yet in a worker
        try:
            for camera in config.cameras:
                sink = self.sink if self.recent is None else TeeSink(self.sink, self.recent)
                source = opened = open_source(camera)  # first: its recorder may take packets
                pipeline = build_pipeline(
                    config,
                    camera,
                    detector=detectors.for_camera(camera.id),
                    sink=sink,
                    references=True,
                    recorder=build_recorder(config, camera, self.clips, source=source),
                )
                workers.append(CameraWorker(camera, source, LatestFrameMailbox(), pipeline))
                opened = None
        except BaseException:
            for worker in workers:
                worker.source.close()
            if opened is not None:
                opened.close()
            raise
        return workers

    def _end_what_the_last_run_left_open(self) -> None:
        """Events and alerts the previous run opened and never ended (it was killed, or
        the power went) get their ``end`` now, marked ``end_reason: "restart"``, so a
        command centre does not show a person in the yard for ever."""
        try:
            leftovers = self.outbox.open_lifecycles()
            if leftovers:
                self.outbox.enqueue_many([interrupted_end(m) for m in leftovers])
        except OutboxError as error:  # a full disk: they stay open, the next start retries
            log.error("could not end the events the last run left open: %s", error)
            return
        if leftovers:
            log.warning(
                "ended %d event(s)/alert(s) the last run left open (end_reason: restart)",
                len(leftovers),
            )

    def _birth(self) -> dict[str, object]:
        return birth_payload(
            self.config,
            self.boot_id,
            outbox_reset=self.outbox.recovered_from,
            camera_models=self.detectors.camera_models,
        )

    def start(self) -> None:
        with self._reload_lock:  # a SIGHUP meanwhile is refused, not run half-way
            self.publisher.start()
            self._start_cameras()
            self._spawn(self._housekeeping_loop, "housekeeping")
            if self.config.web.enabled:
                from edge_agent.web.server import start_web  # only with the page (memory)

                self.web = start_web(self, self.config.web, self.recent)
            self._started = True
        if self.updater is not None:
            self.updater.start()  # a new agent on trial checks its health now
        log.info(
            "agent started: site=%s device=%s boot=%s cameras=%s",
            self.config.site_id,
            self.config.device_id,
            self.boot_id,
            ",".join(w.config.id for w in self.workers),
        )

    def _start_cameras(self) -> None:
        stop = self._cameras_stop
        self._cameras_started_mono_s = time.monotonic()
        for worker in self.workers:
            for target, name in (
                (worker.capture_loop, "capture"),
                (worker.analysis_loop, "analysis"),
            ):
                self._spawn(target, f"{name}-{worker.config.id}", stop)

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, name=name, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- housekeeping: stats and previews (volatile: sent now or never) ----------

    def _housekeeping_loop(self) -> None:
        next_stats_s = time.monotonic() + self.config.stats_interval_s
        wait_s = min(self.config.stats_interval_s, STATUS_INTERVAL_S)
        while not self._stop.wait(wait_s):
            now_s = time.monotonic()
            stats_due = now_s >= next_stats_s
            if stats_due:
                next_stats_s = now_s + self.config.stats_interval_s
            self._housekeeping_pass(now_s, stats_due=stats_due)
            wait_s = self._next_wake_s(min(next_stats_s, now_s + STATUS_INTERVAL_S))

    def _housekeeping_pass(self, now_s: float, *, stats_due: bool) -> None:
        """Each step on its own: one that fails (a renewal's key on a full disk) must not
        keep the others, the stats that would say what is wrong among them, from running.
        A failure is logged at a step's 1st, 10th, 100th and every 1000th."""
        steps: list[tuple[str, Callable[[], object]]] = [
            ("retry", self.sink.retry),  # an end a full disk refused: stored once it can
            ("status LED", lambda: self.indicator.show(self.condition(now_s))),
            ("watchdog", lambda: self.service.tick(self.service_health(now_s), now_s)),
        ]
        if self.renewer is not None:
            steps.append(("certificate renewal", self.renewer.tick))
        steps += [
            (f"preview {w.config.id}", partial(self._send_preview, w, now_s)) for w in self.workers
        ]
        if stats_due:
            steps.append(("stats", self.publish_stats))
        for name, step in steps:
            try:
                step()
            except Exception:  # never let one step's bug stop the others, or the device
                failures = self._housekeeping_failures
                count = failures[name] = failures.get(name, 0) + 1
                if worth_saying(count):
                    log.exception("housekeeping: %s failed (%d times)", name, count)

    def _next_wake_s(self, next_due_s: float) -> float:
        """Seconds until the status, stats or a preview frame are due (previews change
        under us)."""
        due = [next_due_s, self.service.next_due_s()]
        for worker in self.workers:
            preview = worker.preview  # read once: a command may switch it off meanwhile
            if preview is not None:
                due.append(preview.next_due_s)
        return max(0.05, min(due) - time.monotonic())

    # -- commands (edge_agent.remote.CommandTarget) --------------------------------

    def _renewer(self, config: AgentConfig) -> Renewer | None:
        tls = config.mqtt.tls
        if tls is None or tls.renew_at_fraction is None or tls.cert_file is None:
            return None
        assert tls.key_file is not None  # TlsConfig: both or neither
        from edge_agent.renew import Renewer  # cryptography: only on enrolled devices

        return Renewer(
            device_id=config.device_id,
            topic_root=self.topics.root,
            cert_file=tls.cert_file,
            key_file=tls.key_file,
            link=self.publisher,
            renew_at_fraction=tls.renew_at_fraction,
        )

    def _updater(self, config: AgentConfig) -> Updater | None:
        if config.updates is None:
            return None
        from edge_agent.update.host import build_updater  # cryptography: only when updating

        return build_updater(self, config.updates, self.topics.root)

    def _on_mqtt_command(self, name: str, payload: bytes, retained: bool) -> Reply | None:
        """The renewed certificate (docs/enrolment.md) goes to the renewer, every other
        command to :meth:`_on_command`."""
        if self.renewer is not None and name == self.renewer.COMMAND and not retained:
            return self.renewer.on_certificate(payload)
        return self._on_command(name, payload, retained)

    def _on_command(self, name: str, payload: bytes, retained: bool) -> Reply | None:
        return self.commands.handle(name, payload, retained=retained)

    def reload_config(self) -> dict[str, object]:
        return self.reload().reply_body()

    # -- lifecycle -----------------------------------------------------------------

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until ``stop`` is requested; True if it was."""
        return self._stop.wait(timeout_s)

    def request_stop(self) -> None:
        self._stop.set()

    def reload(self, path: Path | None = None, *, force_detector: bool = False) -> ReloadOutcome:
        """Read the config again (from ``path``, else where it came from) and apply it, or
        keep the running one and say why. Thread-safe; never raises for a bad config.
        ``force_detector``: load the model again though its config did not change (a model
        release replaced the file: docs/updates.md)."""
        source = path or self.config_path
        if source is None:
            return ReloadOutcome(False, ("this agent was not started from a config file",))
        with self._reload_lock:
            if self._stop.is_set() or not self._started:
                why = "the agent is stopping" if self._stop.is_set() else "the agent is starting"
                log.error("config %s not reloaded: %s; reload again once it runs", source, why)
                return ReloadOutcome(False, (why,), path=str(source))
            self.service.reloading(time.monotonic_ns() // 1000)
            outcome = self._reload_locked(source, force_detector)
            self.service.reloaded(outcome.summary())
        (log.info if outcome.applied else log.error)("%s", outcome.summary())
        return outcome

    def _reload_locked(self, path: Path, force_detector: bool) -> ReloadOutcome:
        new, outcome = check_reload(path, self.config)
        if new is None:
            return outcome
        # A camera's relabel filter changes what the shared model must report, too.
        relabelled = detector_labels(new) != detector_labels(self.config)
        fresh = force_detector or "detector" in outcome.changed or relabelled
        loaded = None if fresh else self.detectors.by_model
        try:  # else only a model no camera used yet loads (a new crowd camera's)
            detectors = build_detectors(
                new, build=build_detector, wrap=LockedDetector, loaded=loaded
            )
        except Exception as error:  # a model that does not load: keep the running one
            return replace(outcome, applied=False, problems=(f"detector: {error}",))
        self._stop_cameras(JOIN_TIMEOUT_S)
        try:
            workers = self._build_workers(new, detectors)
        except Exception as error:  # a camera that cannot open: bring the old ones back
            if isinstance(error, CaptureError):  # bad input, said in full: no traceback
                log.error("reload: %s; reopening the old cameras", error)
            else:
                log.exception("reload: could not open the new cameras; reopening the old ones")
            problems: tuple[str, ...] = (f"cameras: {error}",)
            try:
                self.workers = self._build_workers(self.config, self.detectors)
                self._start_cameras()
            except Exception as again:  # they stay stopped, silent: the watchdog starves
                problems += (f"the running cameras could not be reopened either: {again}",)
            return replace(outcome, applied=False, problems=problems)
        with self._preview_lock:  # a preview being watched goes on with the same camera
            for worker in workers:
                old = next((w for w in self.workers if w.config.id == worker.config.id), None)
                if old is not None:
                    worker.preview, worker.preview_bytes = old.preview, old.preview_bytes
        self.config, self.detectors, self.workers = new, detectors, workers
        self._start_cameras()
        return outcome

    def _stop_cameras(self, join_timeout_s: float) -> list[threading.Thread]:
        """Stop the cameras' threads (their open events end, as at a clean stop) and close
        their sources; the threads still running after ``join_timeout_s`` (logged)."""
        self._cameras_stop.set()
        for worker in self.workers:
            worker.mailbox.close()  # releases a capture thread waiting for the reader
        names = {f"{n}-{w.config.id}" for w in self.workers for n in ("capture", "analysis")}
        threads = [t for t in self._threads if t.name in names]
        for thread in threads:
            thread.join(timeout=join_timeout_s)
        stuck = [t for t in threads if t.is_alive()]
        if stuck and not self._stop.is_set():
            log.error("reload: camera thread(s) still running: %s", [t.name for t in stuck])
        self._threads = [t for t in self._threads if t not in threads or t.is_alive()]
        stuck_names = {t.name for t in stuck}
        for worker in self.workers:
            if f"capture-{worker.config.id}" in stuck_names:
                continue  # never release a capture mid-read: its thread still holds it
            worker.source.close()
        self._cameras_stop = threading.Event()
        return stuck

    def stop(
        self, flush_timeout_s: float = 5.0, *, join_timeout_s: float = JOIN_TIMEOUT_S
    ) -> tuple[str, ...]:
        """Stop capture, close open events into the outbox, flush what the link allows.

        Returns (and keeps in ``not_stopped``) the names of the threads still running
        after ``join_timeout_s`` each, logged as an error: a stuck capture backend, say.
        They are daemon threads, so they do not keep the process alive.
        """
        self.service.stopping()
        self._stop.set()
        if self.updater is not None:
            self.updater.stop()  # mid-check: the next start rolls back (not proven healthy)
        if self.web is not None:
            self.web.close()
        with self._reload_lock:  # a reload in progress finishes first
            stuck = self._stop_cameras(join_timeout_s)
            for thread in self._threads:
                if thread not in stuck:  # waited for once already
                    thread.join(timeout=join_timeout_s)
            self.not_stopped = tuple(t.name for t in self._threads if t.is_alive())
        if self.not_stopped:
            log.error(
                "thread(s) still running %.0f s after stop: %s",
                join_timeout_s,
                ", ".join(self.not_stopped),
            )
        self.sink.close()  # what a full disk refused: one last try, or said to be lost
        # The publisher logs its own stuck threads; they are the agent's to report too.
        self.not_stopped += self.publisher.stop(timeout_s=flush_timeout_s)
        depth = self.outbox.depth()
        if depth:
            log.info("stopped with %d message(s) kept in the outbox for the next start", depth)
        self.outbox.close()
        if self.clips is not None:
            self.clips.close()
        self.indicator.close()
        log.info("agent stopped")
        return self.not_stopped
