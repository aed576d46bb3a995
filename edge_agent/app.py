"""Wires the stages into a running agent: one process, a few threads.

Per camera: a capture thread (source → latest-frame mailbox) and an analysis
thread (mailbox → pipeline → outbox). One publisher thread drains the outbox to
MQTT. The camera thread never waits for detection, the pipeline never waits for
the network, and the publisher never touches frames.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2

from edge_agent import __version__
from edge_agent.analyzers import build_analyzers
from edge_agent.capture import EndOfStream, FrameSource, LatestFrameMailbox, open_source
from edge_agent.config import AgentConfig, CameraConfig
from edge_agent.detect.base import Detector
from edge_agent.detect.tflite import create_detector
from edge_agent.encode import SCHEMA_VERSION, Topics
from edge_agent.events import EventEngine, EventSettings
from edge_agent.motion import MotionGate, MotionSettings
from edge_agent.mqtt import MqttSettings, Publisher
from edge_agent.outbox import Outbox
from edge_agent.pipeline import CameraPipeline, EventSink, FrameOutput, GateSettings
from edge_agent.rules import build_rules
from edge_agent.track import IouTracker, TrackerSettings
from edge_agent.types import Frame, OutboundMessage
from edge_agent.zones import Zone, zones_from_config

log = logging.getLogger(__name__)

CAPTURE_TIMEOUT_S = 1.0
STATS_INTERVAL_S = 60.0


def new_boot_id() -> str:
    """Identifies one run of the agent; consumers use it to tell restarts apart."""
    return secrets.token_hex(4)


def mqtt_settings(config: AgentConfig) -> MqttSettings:
    mqtt = config.mqtt
    tls = mqtt.tls
    return MqttSettings(
        host=mqtt.host,
        port=mqtt.port,
        client_id=config.client_id,
        protocol=mqtt.protocol,
        keepalive_s=mqtt.keepalive_s,
        username=mqtt.username,
        password=mqtt.password,
        tls_ca_file=tls.ca_file if tls else None,
        tls_cert_file=tls.cert_file if tls else None,
        tls_key_file=tls.key_file if tls else None,
    )


def build_detector(config: AgentConfig) -> Detector:
    detector = config.detector
    return create_detector(
        detector.model,
        score_threshold=detector.score_threshold,
        labels_of_interest=detector.labels,
        num_threads=detector.threads,
    )


def build_pipeline(
    config: AgentConfig,
    camera: CameraConfig,
    *,
    detector: Detector,
    detector_lock: threading.Lock,
    boot_id: str,
    sink: EventSink,
) -> CameraPipeline:
    """One camera's stages from its config; shared by ``run`` and ``replay``."""
    zones: list[Zone] = zones_from_config(camera.zones)
    return CameraPipeline(
        camera_id=camera.id,
        motion=MotionGate(MotionSettings(**config.motion.model_dump())),
        detector=detector,
        detector_lock=detector_lock,
        tracker=IouTracker(TrackerSettings(**config.tracker.model_dump())),
        engine=EventEngine(
            camera.id,
            labels_of_interest=config.detector.labels,
            zones=zones,
            settings=EventSettings(**config.events.model_dump()),
        ),
        topics=Topics(config.topic_root),
        boot_id=boot_id,
        sink=sink,
        gate=GateSettings(
            refresh_interval_s=config.detector.refresh_interval_s,
            keepalive_interval_s=config.detector.keepalive_interval_s,
        ),
        rules=build_rules(camera.rules, zones=zones, timezone=config.timezone),
        analyzers=build_analyzers(camera.analyzers),
    )


class OutboxSink:
    """The running agent's sink: durable first, then a nudge to the publisher."""

    def __init__(self, outbox: Outbox, wake: Callable[[], None]) -> None:
        self._outbox = outbox
        self._wake = wake

    def emit(self, messages: Sequence[OutboundMessage], output: FrameOutput) -> None:
        self._outbox.enqueue_many(messages)
        self._wake()


@dataclass
class CameraWorker:
    config: CameraConfig
    source: FrameSource
    mailbox: LatestFrameMailbox
    pipeline: CameraPipeline
    errors: int = 0
    last_error: str | None = None


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        cv2.setNumThreads(1)  # DESIGN.md §9: OpenCV's pool costs more CPU than it saves here
        self.config = config
        self.boot_id = new_boot_id()
        self.topics = Topics(config.topic_root)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.outbox = Outbox(
            config.outbox.path,
            max_bytes=config.outbox.max_bytes,
            max_rows=config.outbox.max_rows,
        )
        self.detector = build_detector(config)
        self._detector_lock = threading.Lock()
        self.publisher = Publisher(
            mqtt_settings(config),
            self.outbox,
            status_topic=self.topics.status,
            birth_payload=self._birth(),
            max_inflight=config.mqtt.max_inflight,
        )
        sink = OutboxSink(self.outbox, self.publisher.wake)
        self.workers: list[CameraWorker] = []
        for camera in config.cameras:
            pipeline = build_pipeline(
                config,
                camera,
                detector=self.detector,
                detector_lock=self._detector_lock,
                boot_id=self.boot_id,
                sink=sink,
            )
            self.workers.append(
                CameraWorker(camera, open_source(camera), LatestFrameMailbox(), pipeline)
            )

    def _birth(self) -> dict[str, object]:
        return {
            "v": SCHEMA_VERSION,
            "version": __version__,
            "boot": self.boot_id,
            "site": self.config.site_id,
            "device": self.config.device_id,
            "host": socket.gethostname(),
            "cameras": [c.id for c in self.config.cameras],
            "model": self.config.detector.model,
            "started": round(time.time(), 3),
        }

    def start(self) -> None:
        self.publisher.start()
        for worker in self.workers:
            for target, name in (
                (self._capture_loop, "capture"),
                (self._analysis_loop, "analysis"),
            ):
                thread = threading.Thread(
                    target=target, args=(worker,), name=f"{name}-{worker.config.id}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        log.info(
            "agent started: site=%s device=%s boot=%s cameras=%s",
            self.config.site_id,
            self.config.device_id,
            self.boot_id,
            ",".join(w.config.id for w in self.workers),
        )

    def _capture_loop(self, worker: CameraWorker) -> None:
        min_interval_s = 1.0 / worker.config.fps
        last_put_s: float | None = None
        try:
            while not self._stop.is_set():
                try:
                    frame = worker.source.read(CAPTURE_TIMEOUT_S)
                except EndOfStream:
                    log.info("camera %s: end of stream", worker.config.id)
                    return
                if frame is None:
                    continue
                # Decimate a faster source to the configured analysis rate.
                if last_put_s is not None and frame.monotonic_s - last_put_s < 0.9 * min_interval_s:
                    continue
                last_put_s = frame.monotonic_s
                worker.mailbox.put(frame, wait_for_reader=not worker.source.live)
        except Exception as error:  # a backend bug must not kill the process silently
            worker.errors += 1
            worker.last_error = f"capture failed: {error}"
            log.exception("camera %s: capture thread failed", worker.config.id)
        finally:
            worker.mailbox.close()

    def _analysis_loop(self, worker: CameraWorker) -> None:
        last_frame: Frame | None = None
        while True:
            frame = worker.mailbox.get(timeout_s=0.5)
            if frame is None:
                if worker.mailbox.closed or self._stop.is_set():
                    break
                continue
            last_frame = frame
            try:
                worker.pipeline.process(frame)
            except Exception as error:  # one bad frame must not stop the camera
                worker.errors += 1
                worker.last_error = f"analysis failed: {error}"
                log.exception(
                    "camera %s: analysis failed on frame %d", worker.config.id, frame.index
                )
        try:
            worker.pipeline.finish(last_frame)
        except Exception:
            log.exception("camera %s: could not close open events", worker.config.id)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until ``stop`` is requested; True if it was."""
        return self._stop.wait(timeout_s)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Stop capture, close open events into the outbox, flush what the link allows."""
        self._stop.set()
        for worker in self.workers:
            worker.source.close()
            worker.mailbox.close()  # releases a capture thread waiting for the reader
        for thread in self._threads:
            thread.join(timeout=10.0)
        self.publisher.stop(timeout_s=flush_timeout_s)
        depth = self.outbox.depth()
        if depth:
            log.info("stopped with %d message(s) kept in the outbox for the next start", depth)
        self.outbox.close()
        log.info("agent stopped")
