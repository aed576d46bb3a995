"""The agent's configuration: one YAML file, validated whole before anything starts.

Every model forbids unknown keys, so a typo (``treshold``) is an error a
technician sees at ``check-config`` time instead of a default silently used at
3 a.m. ``load_config`` collects *every* problem, each with the dotted path of the
offending key, so one run of ``edge-agent check-config`` lists them all.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from edge_agent.analyzers.config import AnalyzerConfig, ReferenceStoreConfig
from edge_agent.config_base import (
    DAY_S,
    HOUR_S,
    Identifier,
    StrictModel,
    UnitFloat,
    repeated_names,
)
from edge_agent.config_delivery import BrokerConfig as BrokerConfig
from edge_agent.config_delivery import FailoverConfig as FailoverConfig
from edge_agent.config_delivery import MqttConfig as MqttConfig
from edge_agent.config_delivery import OutboxConfig as OutboxConfig
from edge_agent.config_delivery import OutboxTtlConfig as OutboxTtlConfig
from edge_agent.config_delivery import TlsConfig as TlsConfig
from edge_agent.config_delivery import brokers_text as brokers_text
from edge_agent.datafiles import is_model_path
from edge_agent.detect.filters import LabelFilterConfig, filter_problems, relabel_targets
from edge_agent.privacy.config import PrivacyConfig, shape_problem
from edge_agent.recording.config import RecordingConfig
from edge_agent.rules.config import RuleConfig, ZoneScheduleConfig, rule_problems
from edge_agent.update.config import UpdatesConfig
from edge_agent.web.config import WebConfig
from edge_agent.yaml_text import load_yaml


class SimSourceConfig(StrictModel):
    """A scene from the hardware simulator (``hw-sim list`` names them)."""

    kind: Literal["sim"] = "sim"
    scenario: str = "street"
    width: int = Field(960, ge=64, le=4096)
    height: int = Field(540, ge=64, le=4096)
    loop: bool = True
    realtime: bool = True  # pace frames at the camera fps, like a real camera


class OpenCVSourceConfig(StrictModel):
    """A video file, a USB camera (``/dev/video0`` or an index) or an RTSP/HTTP URL."""

    kind: Literal["opencv"] = "opencv"
    uri: str = Field(min_length=1)
    loop: bool = False  # files only: start again at the end (demo, soak tests)
    realtime: bool = True  # files only: pace frames at the file's own fps
    reconnect_min_delay_s: float = Field(0.5, gt=0, le=HOUR_S)
    reconnect_max_delay_s: float = Field(30.0, gt=0, le=HOUR_S)
    read_timeout_s: float = Field(10.0, gt=0, le=HOUR_S)


class PyAVSourceConfig(StrictModel):
    """An RTSP/HTTP stream (or a video file) read with PyAV (the ``recording`` extra): the
    camera's own H.264/H.265 packets reach the recorder, so clips are remuxed, not
    re-encoded (docs/recording.md)."""

    kind: Literal["pyav"] = "pyav"
    uri: str = Field(min_length=1)
    loop: bool = False  # files only: start again at the end
    # False: time frames by the stream's own timestamps and read as fast as it comes
    # (replay); True: a file is paced at its own rate, a stream timed as it arrives
    realtime: bool = True
    reconnect_min_delay_s: float = Field(0.5, gt=0, le=HOUR_S)
    reconnect_max_delay_s: float = Field(30.0, gt=0, le=HOUR_S)
    read_timeout_s: float = Field(10.0, gt=0, le=HOUR_S)
    rtsp_transport: Literal["tcp", "udp"] = "tcp"  # tcp: no lost packets, no broken clips


class Picamera2SourceConfig(StrictModel):
    """The Raspberry Pi camera: a full ``main`` stream plus a small ``lores`` one for analysis."""

    kind: Literal["picamera2"] = "picamera2"
    camera_num: int = Field(0, ge=0)
    main_size: tuple[int, int] = (1280, 720)
    lores_size: tuple[int, int] = (320, 180)


SourceConfig = Annotated[
    SimSourceConfig | OpenCVSourceConfig | PyAVSourceConfig | Picamera2SourceConfig,
    Field(discriminator="kind"),
]


MAX_ZONE_POINTS = 256
"""A drawn zone has a handful of corners; each point costs every track on every frame."""


class ZoneConfig(StrictModel):
    """A named region of the picture, as a polygon in normalised (0..1) coordinates."""

    name: Identifier
    polygon: list[tuple[UnitFloat, UnitFloat]] = Field(min_length=3, max_length=MAX_ZONE_POINTS)
    labels: list[str] | None = None  # None: every label of interest
    schedule: ZoneScheduleConfig | None = None  # None: always active
    inertia_frames: int = Field(3, ge=1, le=100)  # frames in/out before it counts

    @field_validator("polygon")
    @classmethod
    def _has_area(cls, polygon: list[tuple[float, float]]) -> list[tuple[float, float]]:
        problem = shape_problem(polygon)
        if problem is not None:
            raise ValueError(problem)
        return polygon


def _refuse_repeats(what: str, names: list[str]) -> None:
    repeated = repeated_names(names)
    if repeated:
        raise ValueError(f"{what} must be unique, repeated: {', '.join(repeated)}")


class RegionConfig(StrictModel):
    """Where the detector looks (docs/pipeline.md §6): crops around motion and tracks at
    native resolution, so a person 25 px tall is found; a full-frame pass on a cadence."""

    enabled: bool = True  # False: one full-frame pass per detection run
    max_invokes_per_frame: int = Field(4, ge=1, le=16)  # the CPU bound on a busy scene
    full_frame_every_s: float = Field(2.0, gt=0, le=HOUR_S)  # at least this often while tracking
    min_region_px: int = Field(0, ge=0)  # smallest crop side in image px; 0: model input / 3
    track_padding: float = Field(0.25, ge=0)  # context around a track box, x its long side
    motion_padding: float = Field(0.1, ge=0)  # the same around a motion box
    merge_max_growth: float = Field(1.2, ge=1)  # merge two crops a square this x the smaller holds
    nms_iou: float = Field(0.5, gt=0, le=1)  # one object seen by two crops: boxes overlapping this
    regrow: bool = True  # re-run a larger crop around a box cut by a crop's edge


class PreviewConfig(StrictModel):
    """What a live preview may cost (docs/configuration.md): the budget holds over any
    10 s window; quality, then width, then fps go down to fit it."""

    budget_bps: int = Field(64_000, ge=8_000, le=10_000_000)  # bits/s of JPEG + framing
    min_width_px: int = Field(320, ge=64, le=1280)  # a narrower request is its own floor
    min_fps: float = Field(1.0, gt=0, le=5)  # a lower request is its own floor


class CameraConfig(StrictModel):
    id: Identifier
    source: SourceConfig
    fps: float = Field(5.0, gt=0, le=60)
    zones: list[ZoneConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    analyzers: list[AnalyzerConfig] = Field(default_factory=list)
    # label (or "*") -> bounds a detection must meet in this view (docs/configuration.md)
    detection_filters: dict[str, LabelFilterConfig] = Field(default_factory=dict)
    regions: RegionConfig = Field(default_factory=lambda: RegionConfig())
    # analysed frames in a row the tracker may carry a busy, fully tracked scene without the
    # detector (docs/pipeline.md §6); 0: the detector runs whenever the gate opens
    max_skipped_frames: int = Field(2, ge=0, le=10)
    # a manifest model for this camera alone; None: the device's (a crowd camera: see
    # docs/analytics.md, crowd)
    model: str | None = Field(None, min_length=1)
    references: ReferenceStoreConfig | None = None  # None: the agent's (docs/analyzers.md)
    preview: PreviewConfig = Field(default_factory=lambda: PreviewConfig())
    privacy: PrivacyConfig = Field(default_factory=lambda: PrivacyConfig())  # docs/privacy.md
    record: bool = True  # with a `recording:` section: False leaves this camera out

    @field_validator("zones")
    @classmethod
    def _unique_zone_names(cls, zones: list[ZoneConfig]) -> list[ZoneConfig]:
        _refuse_repeats("zone names", [z.name for z in zones])
        return zones

    @field_validator("model")
    @classmethod
    def _a_manifest_model(cls, model: str | None) -> str | None:
        if model is not None and is_model_path(model):
            raise ValueError("a camera's model is a manifest name; a model file goes in detector")
        return model

    @model_validator(mode="after")
    def _rules_fit_the_zones(self) -> CameraConfig:
        problems = rule_problems(self.rules, [z.name for z in self.zones])
        problems += [f"detection_filters: {p}" for p in filter_problems(self.detection_filters)]
        repeated = repeated_names([a.name for a in self.analyzers])
        if repeated:
            problems.append(f"analyzer names must be unique per camera: {', '.join(repeated)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def default_detector_threads() -> int:
    """One interpreter thread per core but one, at least 1, at most 8: the core left free
    decodes, gates and publishes beside the invoke (docs/pipeline.md §4: on 2 cores the
    pipeline keeps 0.87-0.90 of the bare invoke rate on 1 thread, 0.73-0.77 on 2)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores - 1))


class DetectorConfig(StrictModel):
    model: str = "ssd_mobilenet_v1"  # a manifest name, or a path to your own .tflite
    layout: str | None = None  # a model file's output layout (docs/models.md)
    labels_file: Path | None = None  # your model's labels: one per line, or a YAML list
    score_threshold: UnitFloat = 0.5
    labels: list[str] = Field(
        default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "bus", "truck"],
        min_length=1,
    )
    threads: int = Field(default_factory=default_detector_threads, ge=1, le=8)  # cores - 1
    refresh_interval_s: float = Field(1.0, gt=0, le=HOUR_S)  # re-detect live tracks without motion
    # detect at least this often regardless
    keepalive_interval_s: float = Field(10.0, gt=0, le=HOUR_S)

    @model_validator(mode="after")
    def _own_model_says_how_to_read_it(self) -> DetectorConfig:
        if is_model_path(self.model) and self.layout is None:
            raise ValueError(
                "a model file needs its layout: detector.layout "
                "(ssd_postprocess, yolox or ultralytics; docs/models.md)"
            )
        if self.labels_file is not None and "labels" not in self.model_fields_set:
            raise ValueError(
                "with labels_file, list the labels of interest in detector.labels "
                "(the default COCO list does not apply to your own labels)"
            )
        return self


class MotionConfig(StrictModel):
    """The cheap gate in front of the detector (see docs/pipeline.md for the reasoning)."""

    frame_height_px: int = Field(100, ge=32, le=480)
    pixel_threshold: int = Field(30, ge=1, le=255)  # grey-level change that counts
    min_area_ratio: float = Field(0.002, ge=0.0, le=1.0)  # share of pixels that must change
    # background blend per frame; frames closer than 0.15 s blend less (the same per second)
    background_alpha: float = Field(0.05, gt=0, le=1)
    noise_blur_px: int = Field(5, ge=1, le=31)
    min_frames: int = Field(2, ge=1, le=30)  # consecutive motion frames before the gate opens
    exposure_compensation: bool = True
    noise_opening: bool = True  # drop isolated changed pixels (compression noise)
    # A changed pixel whose value the background holds within this many gate-frame pixels
    # (~1 % of the picture height each), give or take half the threshold, does not count:
    # a pole swaying in the wind or a slight pan does not light up every edge. 0: off.
    shake_tolerance_px: int = Field(1, ge=0, le=3)
    # A changed region counts only with this many pixels that changed within the last
    # moving_window_frames frames (and at least 0.15 s each): the spot someone left after
    # standing still (a "ghost") does not hold the gate open. 0 turns the check off.
    min_moving_px: int = Field(8, ge=0, le=10_000)
    moving_window_frames: int = Field(5, ge=1, le=100)
    # False: no gate at all, the detector runs on every analysed frame (a junction where
    # something always moves gains nothing from the gate and saves its cost).
    enabled: bool = True


class TrackerConfig(StrictModel):
    iou_threshold: UnitFloat = 0.3
    max_missed_s: float = Field(3.0, gt=0, le=HOUR_S)  # a track not seen for this long ends
    min_hits: int = Field(2, ge=1)  # detections before a track becomes an event
    # ... spanning at least this long (min_hits alone counts frames: 0.07 s at 30 fps)
    min_confirm_s: float = Field(0.15, ge=0, le=HOUR_S)
    # ... unless seen once at this score or above, clear of other boxes (null: never at once)
    confirm_score: UnitFloat | None = 0.7


class EventsConfig(StrictModel):
    update_min_interval_s: float = Field(5.0, ge=0, le=DAY_S)
    update_box_iou_below: UnitFloat = 0.6  # an update is significant when the box moved this much
    update_score_gain: UnitFloat = 0.1
    thumbnail_width_px: int = Field(320, ge=32, le=1920)
    thumbnail_jpeg_quality: int = Field(70, ge=10, le=100)


class StatusLedConfig(StrictModel):
    """An LED on a GPIO pin showing the device's condition (edge_agent/indicator.py)."""

    pin: int | str  # BCM number (17) or a gpiozero pin name ("GPIO17", "BOARD11")
    active_high: bool = True  # False when the LED is wired from 3.3 V to the pin

    @field_validator("pin")
    @classmethod
    def _plausible_pin(cls, pin: int | str) -> int | str:
        if isinstance(pin, int) and not 0 <= pin <= 53:
            raise ValueError(f"GPIO {pin} does not exist (BCM numbers are 0-53)")
        if isinstance(pin, str) and not pin.strip():
            raise ValueError("give a BCM number (17) or a pin name (GPIO17, BOARD11)")
        return pin


class StatusConfig(StrictModel):
    led: StatusLedConfig | None = None  # none: the condition is only in the status reply
    # A camera whose last frame is older than this counts as failed (LED, status reply).
    camera_silent_after_s: float = Field(10.0, gt=0, le=DAY_S)


class AgentConfig(StrictModel):
    site_id: Identifier
    device_id: Identifier
    timezone: str = "UTC"  # the site's IANA timezone, for zone schedules ("Asia/Jakarta")
    cameras: list[CameraConfig] = Field(min_length=1)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    status: StatusConfig = Field(default_factory=StatusConfig)
    references: ReferenceStoreConfig = Field(default_factory=ReferenceStoreConfig)
    stats_interval_s: float = Field(60.0, ge=1.0, le=DAY_S)
    web: WebConfig = Field(default_factory=WebConfig)  # the technician page (docs/web.md)
    recording: RecordingConfig | None = None  # None: no clips (docs/recording.md)
    updates: UpdatesConfig | None = None  # None: no signed updates (docs/updates.md)

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        _refuse_repeats("camera ids", [c.id for c in cameras])
        return cameras

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {name!r} (use an IANA name like 'Asia/Jakarta')"
            ) from None
        return name

    @model_validator(mode="after")
    def _relabels_name_labels_of_interest(self) -> AgentConfig:
        """A box renamed to a label outside detector.labels would be dropped at once."""
        wanted = set(self.detector.labels)
        problems = [
            f"cameras[{c}].detection_filters relabel to {label!r}, not in detector.labels"
            for c, camera in enumerate(self.cameras)
            for label in sorted(relabel_targets(camera.detection_filters) - wanted)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"{self.site_id}-{self.device_id}"

    @property
    def topic_root(self) -> str:
        return f"{self.mqtt.topic_prefix}/{self.site_id}/{self.device_id}"


class ConfigError(Exception):
    """A config file that cannot be used; ``problems`` lists every one found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{listing}")


_TAGGED_UNIONS = ("source", "rules", "analyzers")
"""Keys whose value is a union chosen by ``kind``: pydantic puts the tag into the location."""


def _location(loc: tuple[int | str, ...]) -> str:
    """Turn pydantic's location into the dotted path a person would write: cameras[0].fps."""
    path = ""
    for index, part in enumerate(loc):
        previous = loc[index - 1] if index > 0 else None
        before = loc[index - 2] if index > 1 else None
        if isinstance(part, int):
            path += f"[{part}]"
        elif previous == "source" or (isinstance(previous, int) and before in _TAGGED_UNIONS):
            continue  # the union member's tag ("opencv", "crowd") adds nothing for the reader
        elif re.fullmatch(r"function-after\[.*\]", part):
            continue
        else:
            path += f".{part}" if path else part
    return path or "(top level)"


def problems_of(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (misspelt, or not valid here)"
        elif isinstance(item.get("input"), (date, datetime)) and item["type"] == "string_type":
            message = f"YAML reads {item['input']} as a date: quote it ('...') to make it text"
        problems.append(f"{_location(item['loc'])}: {message}")
    return problems


def parse_config(data: object, source: str = "<config>") -> AgentConfig:
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must hold a mapping of keys (site_id, cameras, ...)"])
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, problems_of(error)) from None


MAX_CONFIG_BYTES = 4 << 20
"""A site's config is a few kB (a hundred cameras with zones: a few hundred kB)."""


def read_config_data(path: Path) -> object:
    """The YAML document in ``path``; every way the file cannot be read is a ConfigError."""
    source = str(path)
    try:
        if path.exists() and not path.is_file():  # /dev/zero, a FIFO: would never end
            what = "a directory" if path.is_dir() else "not a regular file"
            raise ConfigError(source, [f"cannot read the file: it is {what}"])
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(source, [f"cannot read the file: {error.strerror or error}"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            source, [f"the file is larger than {MAX_CONFIG_BYTES >> 20} MiB: not a config"]
        )
    if not raw.strip():
        raise ConfigError(source, ["the file is empty (expected site_id, device_id, cameras, ...)"])
    if b"\0" in raw:
        raise ConfigError(source, ["the file is binary, not YAML text"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(source, ["the file is not UTF-8 text"]) from None
    try:
        data = load_yaml(text)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or error
        raise ConfigError(source, [f"not valid YAML{where}: {problem}"]) from None
    except RecursionError:
        raise ConfigError(source, ["not valid YAML: nested too deeply for the parser"]) from None
    if data is None:
        raise ConfigError(source, ["the file holds no settings (only comments or blank)"])
    return data


def load_config(path: Path) -> AgentConfig:
    return parse_config(read_config_data(path), str(path))
