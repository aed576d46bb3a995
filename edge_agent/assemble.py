"""The composition root: config → the objects the agent, replay, eval and bench run.

Each stage's settings come from its config section by ``Settings.from_config`` (the
stages know nothing of YAML); this module only puts the pieces together, so ``run``,
``replay``, ``hw-sim eval``, bench/ and the tests build a camera exactly alike.
"""

from __future__ import annotations

import logging
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_agent import __version__
from edge_agent.analyzers import build_analyzers
from edge_agent.capture import FrameSource, PacketSource
from edge_agent.config import AgentConfig, CameraConfig, DetectorConfig
from edge_agent.datafiles import DataFileError, is_model_path, load_manifest
from edge_agent.detect.base import Detector
from edge_agent.detect.filters import relabel_sources
from edge_agent.detect.frame import FrameDetector
from edge_agent.detect.regions import RegionSettings
from edge_agent.detect.tflite import create_detector
from edge_agent.encode import SCHEMA_VERSION
from edge_agent.events import EventEngine, EventSettings
from edge_agent.motion import MotionGate, MotionSettings
from edge_agent.pipeline import CameraPipeline, FrameRecorder, FrameSink, GateSettings
from edge_agent.privacy import privacy_filter
from edge_agent.recording import ClipStore, RetentionCaps
from edge_agent.recording.commands import ClipCommands
from edge_agent.rules import build_rules
from edge_agent.track import IouTracker, TrackerSettings
from edge_agent.types import ImageBGR
from edge_agent.zones import Zone, zones_from_config

log = logging.getLogger(__name__)

CROWD_MODEL = "yolox_nano"
"""What a camera with a ``crowd`` rule looks through when the device's model returns at most
10 boxes per invoke (SSD): YOLOX-Nano (Apache-2.0, up to 50) counts a simulated crowd of 30
within 2 %, SSD 19 of them even with regions (bench/bench_crowd.py, docs/analytics.md)."""


def new_boot_id() -> str:
    """Identifies one run of the agent; consumers use it to tell restarts apart."""
    return secrets.token_hex(4)


def detector_labels(config: AgentConfig) -> list[str]:
    """What the shared model must report: the labels of interest, and those a camera's
    detection filters rename into one ("cell phone" on an overhead car park)."""
    wanted = list(config.detector.labels)
    for camera in config.cameras:
        wanted += sorted(relabel_sources(camera.detection_filters) - set(wanted))
    return wanted


def birth_payload(
    config: AgentConfig,
    boot_id: str,
    *,
    outbox_reset: Path | None = None,
    camera_models: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """What the retained ``online`` status says about this run (docs/mqtt-api.md).
    ``camera_models`` (camera id -> the model it looks through) is told only when a camera
    does not use the device's ``model`` (a crowd camera on YOLOX, say)."""
    birth: dict[str, object] = {
        "v": SCHEMA_VERSION,
        "version": __version__,
        "boot": boot_id,
        "site": config.site_id,
        "device": config.device_id,
        "host": socket.gethostname(),
        "cameras": [c.id for c in config.cameras],
        "model": config.detector.model,
        "started": round(time.time(), 3),
    }
    if camera_models and any(m != config.detector.model for m in camera_models.values()):
        birth["camera_models"] = dict(camera_models)
    if outbox_reset is not None:
        birth["outbox_reset"] = str(outbox_reset)  # the outbox was corrupt at start
    return birth


def build_detector(config: AgentConfig) -> Detector:
    detector = config.detector
    return create_detector(
        detector.model,
        score_threshold=detector.score_threshold,
        labels_of_interest=detector_labels(config),
        num_threads=detector.threads,
        layout=detector.layout,
        labels_file=detector.labels_file,
    )


def box_capped(detector: DetectorConfig) -> bool:
    """Whether the device's model is a manifest SSD, whose post-process op inside the model
    returns at most 10 boxes per invoke: too few for a crowd."""
    if is_model_path(detector.model):
        return False  # the user's own model: theirs to choose
    try:
        return load_manifest().model(detector.model).format == "ssd_postprocess"
    except DataFileError:
        return False


def camera_model(config: AgentConfig, camera: CameraConfig) -> str:
    """The model a camera looks through: its own ``model``, else ``CROWD_MODEL`` for a
    camera with a crowd rule on a box-capped device model, else the device's."""
    if camera.model is not None:
        return camera.model
    if any(rule.kind == "crowd" for rule in camera.rules) and box_capped(config.detector):
        return CROWD_MODEL
    return config.detector.model


def camera_models(config: AgentConfig) -> dict[str, str]:
    """Camera id -> the model it asks for (``camera_model``)."""
    return {camera.id: camera_model(config, camera) for camera in config.cameras}


def with_model(config: AgentConfig, model: str) -> AgentConfig:
    """``config`` with ``model`` (a manifest name, read by its manifest layout and labels) as
    the device's model."""
    if model == config.detector.model:
        return config
    update = {"model": model, "layout": None, "labels_file": None}
    detector = config.detector.model_copy(update=update)
    return config.model_copy(update={"detector": detector})


def shared_threads(config: AgentConfig, models: int) -> AgentConfig:
    """``config`` with its default ``detector.threads`` (the cores but one) shared by the
    ``models`` the cameras look through, each at least 1: their cameras invoke them at the
    same time, and each on the cores but one would take the core the default leaves free
    for decoding (two models on a 4-core Pi: 6 threads). A value the config sets stands."""
    detector = config.detector
    if models < 2 or "threads" in detector.model_fields_set:
        return config
    shared = detector.model_copy(update={"threads": max(1, detector.threads // models)})
    return config.model_copy(update={"detector": shared})


@dataclass(frozen=True)
class Detectors:
    """The models a device loads (each once, shared by the cameras that use it) and which
    camera looks through which."""

    by_model: Mapping[str, Detector]
    camera_models: Mapping[str, str]  # camera id -> model name

    def for_camera(self, camera_id: str) -> Detector:
        return self.by_model[self.camera_models[camera_id]]


def build_detectors(
    config: AgentConfig,
    *,
    build: Callable[[AgentConfig], Detector] = build_detector,
    wrap: Callable[[Detector], Detector] = lambda detector: detector,
    loaded: Mapping[str, Detector] | None = None,
) -> Detectors:
    """Load the models the cameras use (``camera_model``), each wrapped by ``wrap`` (the agent:
    ``LockedDetector``), reusing those in ``loaded`` (a reload). A crowd camera whose default
    ``CROWD_MODEL`` is not on this device (`models fetch` cannot download it) counts with the
    device's model, with a warning; a model a camera names itself must load."""
    by_model: dict[str, Detector] = {}
    reusable = loaded or {}
    config = shared_threads(config, len(set(camera_models(config).values())))

    def load(model: str) -> Detector:
        if model not in by_model:
            reused = reusable.get(model)
            by_model[model] = wrap(build(with_model(config, model))) if reused is None else reused
        return by_model[model]

    chosen: dict[str, str] = {}
    for camera in config.cameras:
        model = camera_model(config, camera)
        try:
            load(model)
        except DataFileError as error:
            if camera.model is not None or model == config.detector.model:
                raise
            log.warning(
                "camera %s: crowd model %s not available (%s); counting with %s, which "
                "returns at most 10 boxes per invoke",
                camera.id,
                model,
                error,
                config.detector.model,
            )
            model = config.detector.model
            load(model)
        chosen[camera.id] = model
    if not by_model:
        load(config.detector.model)
    return Detectors(by_model, chosen)


def camera_detector(config: AgentConfig, camera: CameraConfig) -> Detector:
    """The detector one camera looks through, loaded alone (replay, snapshot)."""
    return build_detectors(config.model_copy(update={"cameras": [camera]})).for_camera(camera.id)


def build_pipeline(
    config: AgentConfig,
    camera: CameraConfig,
    *,
    detector: Detector,
    sink: FrameSink,
    references: bool = False,
    recorder: FrameRecorder | None = None,
) -> CameraPipeline:
    """One camera's stages from its config. A detector shared by several cameras' threads
    must come wrapped in ``LockedDetector``.

    ``references``: the analyzers load and keep their stored references (the running agent
    only; replay, eval and bench learn at start and never touch a device's references)."""
    zones: list[Zone] = zones_from_config(camera.zones)
    return CameraPipeline(
        camera_id=camera.id,
        motion=MotionGate(MotionSettings.from_config(config.motion)),
        detector=FrameDetector(
            detector,
            regions=RegionSettings.from_config(camera.regions),
            filters=camera.detection_filters,
            labels_of_interest=config.detector.labels,
        ),
        tracker=IouTracker(TrackerSettings.from_config(config.tracker)),
        engine=EventEngine(
            camera.id,
            labels_of_interest=config.detector.labels,
            zones=zones,
            settings=EventSettings.from_config(config.events),
            privacy=privacy_filter(camera.privacy),
        ),
        sink=sink,
        gate=GateSettings.from_config(config.detector, camera.max_skipped_frames),
        rules=build_rules(camera.rules, zones=zones, timezone=config.timezone),
        analyzers=build_analyzers(
            camera.analyzers,
            camera_id=camera.id,
            references=(camera.references or config.references) if references else None,
        ),
        recorder=recorder,
    )


def open_clip_store(config: AgentConfig) -> ClipStore | None:
    """The clips directory and index, when the config asks for recording."""
    recording = config.recording
    if recording is None:
        return None
    caps = RetentionCaps(
        max_total_bytes=round(recording.max_total_mb * 1024 * 1024),
        min_free_bytes=round(recording.min_free_mb * 1024 * 1024),
        max_age_s=None if recording.max_age_days is None else recording.max_age_days * 86400,
    )
    return ClipStore(recording.path, caps)


def build_recorder(
    config: AgentConfig,
    camera: CameraConfig,
    store: ClipStore | None,
    *,
    frame_filter: Callable[[ImageBGR], ImageBGR] | None = None,
    source: FrameSource | None = None,
) -> FrameRecorder | None:
    """A camera's recorder, or None (no ``recording:``, or the camera has ``record: false``).
    ``frame_filter``: what each clip frame goes through before encoding; by default the
    camera's privacy masks and face blur (edge_agent/privacy).

    ``source``: the camera's open source. One that hands over its own packets (kind
    ``pyav``) is remuxed, unless ``recording.remux`` is false or the camera has privacy
    masks or face blur: a remuxed clip is the camera's picture as sent, so a camera that
    hides anything is encoded, through the filter."""
    recording = config.recording
    if recording is None or store is None or not camera.record:
        return None
    # PyAV (the ``recording`` extra) is imported only when a config records.
    try:
        from edge_agent.recording.recorder import CameraRecorder, RecordingSettings
    except ImportError as error:
        raise RuntimeError(
            f"recording: needs PyAV ({error}); install it with pip install "
            "'edge-agent[recording]', or remove the recording: section"
        ) from None

    pre_roll_max_bytes = round(recording.pre_roll_max_mb * 1024 * 1024)
    settings = RecordingSettings(
        pre_roll_s=recording.pre_roll_s,
        post_roll_s=recording.post_roll_s,
        keyframe_interval_s=recording.keyframe_interval_s,
        max_clip_s=recording.max_clip_s,
        width_px=recording.width_px,
        crf=recording.crf,
        pre_roll_max_bytes=pre_roll_max_bytes,
    )
    privacy = privacy_filter(camera.privacy)
    packets = None
    if isinstance(source, PacketSource) and recording.remux:
        if privacy.active or frame_filter is not None:
            log.info("camera %s: clips are encoded, not remuxed: a filter applies", camera.id)
        else:
            packets = source.packet_feed(pre_roll_max_bytes)
    if frame_filter is None:  # a clip is a picture that leaves: the camera's masks and blur
        frame_filter = privacy.protect
    return CameraRecorder(camera.id, store, settings, frame_filter=frame_filter, packets=packets)


def clip_commands(config: AgentConfig, store: ClipStore | None) -> ClipCommands | None:
    """What the clip commands act on, paced as configured; None: the device does not record."""
    if store is None or config.recording is None:
        return None
    return ClipCommands(
        store,
        rate_bytes_per_s=config.recording.fetch_rate_bytes_per_s,
        chunk_max_bytes=config.recording.fetch_chunk_max_bytes,
    )
