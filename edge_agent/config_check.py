"""What the config schema cannot see: files that must exist, names that must be known.

``check_config_file`` is what ``edge-agent check-config`` runs: it never raises, and it
reports every problem in one go. The schema's problems (edge_agent/config.py) come first;
the checks here then run on every part of the file that validated on its own (the detector,
each camera, mqtt, outbox), so a typo in one camera does not hide an unknown model or a
missing video file elsewhere. ``--offline`` leaves out what only the device can show: its
TLS files, its outbox directory and the mode of its copy of a config holding a password.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from edge_agent.capture.pyav_source import PYAV_MISSING
from edge_agent.capture.sim_source import SIMULATOR_MISSING
from edge_agent.config import (
    AgentConfig,
    CameraConfig,
    ConfigError,
    DetectorConfig,
    MqttConfig,
    OpenCVSourceConfig,
    OutboxConfig,
    PyAVSourceConfig,
    SimSourceConfig,
    parse_config,
    read_config_data,
)
from edge_agent.datafiles import DataFileError
from edge_agent.security import TlsConfigError, check_secret_file, tls_problems

_Model = TypeVar("_Model", bound=BaseModel)

# Where the commands look for the config when none is named: the service's file.
DEFAULT_CONFIG_PATH = Path("/etc/edge-agent/config.yaml")
CONFIG_ENV = "EDGE_AGENT_CONFIG"


def default_config_path() -> Path:
    """``$EDGE_AGENT_CONFIG`` when set, else ``/etc/edge-agent/config.yaml``."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


# What to do when there is no config file at the default path: a device's first one comes
# from enrolment, a laptop names its file (the commands' and the self-test's hint).
NO_CONFIG_YET = (
    "no config here yet: enrol this device (`sudo edge-agent enroll --token …`, "
    "docs/enrolment.md), or name the file with --config FILE"
)
# The service's config is the agent user's, 0600, in a directory only its group enters.
NOT_THIS_USERS = (
    "this user may not read it: run the command as the agent's user, "
    "`sudo -u edge-agent edge-agent …` (or as root)"
)


def no_such_file(path: Path) -> str:
    """The hint for a file the user named that is not there (a typo, another directory)."""
    return (
        f"there is no file {path}: check the name you gave "
        f"(the device's own config is {default_config_path()})"
    )


def config_file_hint(path: Path) -> str | None:
    """What to do when the config cannot be read at all: none there yet at the default
    path (enrol), a named file that does not exist, or not this user's to read; None
    otherwise (its problems say the rest). Never raises: a directory this user may not
    enter makes ``Path.exists`` raise."""
    try:
        path.stat()
    except FileNotFoundError:
        if os.path.abspath(path) == os.path.abspath(default_config_path()):
            return NO_CONFIG_YET
        return no_such_file(path)
    except PermissionError:
        return NOT_THIS_USERS
    except OSError:
        return None
    return None if os.access(path, os.R_OK) else NOT_THIS_USERS


@dataclass(frozen=True)
class ConfigCheck:
    """The outcome of a check: the config when the schema accepted it, and every problem."""

    config: AgentConfig | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.problems


@dataclass(frozen=True)
class _Parts:
    """The sections that validated, each on its own (cameras keep their index in the file)."""

    detector: DetectorConfig | None
    cameras: tuple[tuple[int, CameraConfig], ...]
    mqtt: MqttConfig | None
    outbox: OutboxConfig | None


def check_config_file(path: Path, *, offline: bool = False) -> ConfigCheck:
    """Every problem with the config file at ``path``; never raises."""
    try:
        data = read_config_data(path)
    except ConfigError as error:
        return ConfigCheck(None, tuple(error.problems))
    return check_config_data(data, str(path), config_path=path, offline=offline)


def check_config_data(
    data: object,
    source: str = "<config>",
    *,
    config_path: Path | None = None,
    offline: bool = False,
) -> ConfigCheck:
    """Every problem with already-read config ``data``: schema first, then the rest."""
    try:
        config: AgentConfig | None = parse_config(data, source)
        structural: list[str] = []
    except ConfigError as error:
        config, structural = None, error.problems
    parts = _parts_of(config) if config is not None else _valid_parts(data)
    semantic = _part_problems(parts, config_path, offline=offline)
    problems = structural + [p for p in semantic if p not in structural]
    return ConfigCheck(config, tuple(problems))


def semantic_problems(
    config: AgentConfig, config_path: Path | None = None, *, offline: bool = False
) -> list[str]:
    """What the schema cannot see: files that must exist, names that must be known."""
    return _part_problems(_parts_of(config), config_path, offline=offline)


def _parts_of(config: AgentConfig) -> _Parts:
    return _Parts(config.detector, tuple(enumerate(config.cameras)), config.mqtt, config.outbox)


def _valid_parts(data: object) -> _Parts:
    """The sections of a file the schema refused that are valid on their own."""
    if not isinstance(data, dict):
        return _Parts(None, (), None, None)
    cameras = data.get("cameras")
    valid_cameras: list[tuple[int, CameraConfig]] = []
    if isinstance(cameras, list):
        for index, camera in enumerate(cameras):
            checked = _validated(CameraConfig, camera)
            if checked is not None:
                valid_cameras.append((index, checked))
    return _Parts(
        _validated(DetectorConfig, data.get("detector", {})),
        tuple(valid_cameras),
        _validated(MqttConfig, data.get("mqtt", {})),
        _validated(OutboxConfig, data.get("outbox", {})),
    )


def _validated(model: type[_Model], data: object) -> _Model | None:
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


def _part_problems(parts: _Parts, config_path: Path | None, *, offline: bool) -> list[str]:
    problems: list[str] = []
    detector, mqtt = parts.detector, parts.mqtt
    if detector is not None:
        problems.extend(_unusable("detector", lambda: _model_problems(detector, parts.cameras)))
    if mqtt is not None and mqtt.tls is not None and not offline:
        tls = mqtt.tls
        problems.extend(
            _unusable(
                "mqtt.tls",
                lambda: [
                    f"mqtt.tls: {problem}"
                    for problem in tls_problems(
                        ca_file=tls.ca_file, cert_file=tls.cert_file, key_file=tls.key_file
                    )
                ],
            )
        )
    if mqtt is not None and mqtt.password is not None and config_path is not None and not offline:
        try:
            check_secret_file(config_path, "config file holding mqtt.password")
        except TlsConfigError as error:
            problems.append(f"mqtt.password: {error}")
    outbox = parts.outbox
    if outbox is not None and not offline:
        problems.extend(_unusable("outbox.path", lambda: _outbox_problems(outbox.path)))
    for index, camera in parts.cameras:
        where = f"cameras[{index}].source"
        problems.extend(_unusable(where, partial(source_problems, where, camera)))
        problems.extend(_face_model_problems(f"cameras[{index}].privacy", camera))
        problems.extend(_camera_model_problems(f"cameras[{index}].model", camera))
    return problems


def _camera_model_problems(where: str, camera: CameraConfig) -> list[str]:
    """A camera's own model that is no detector of the manifest: the agent would not start."""
    from edge_agent import datafiles

    if camera.model is None:
        return []
    try:
        entry = datafiles.load_manifest().model(camera.model)
    except DataFileError as error:
        return [f"{where}: {error}"]
    return [] if entry.is_detector else [f"{where}: {entry.name} is a face model, not a detector"]


def _face_model_problems(where: str, camera: CameraConfig) -> list[str]:
    """Face blur asked for with no usable face model: the agent would refuse to start."""
    from edge_agent import datafiles

    privacy = camera.privacy
    if not privacy.blur_faces:
        return []
    try:
        entry = datafiles.load_manifest().model(privacy.face_model)
        datafiles.resolve_model_file(privacy.face_model)
    except DataFileError as error:
        return [f"{where}.face_model: {error}"]
    if entry.format != "blazeface":
        return [f"{where}.face_model: {entry.name} is a {entry.format} model, not a face model"]
    return []


def _unusable(where: str, check: Callable[[], list[str]]) -> list[str]:
    """The check's problems, or why a path it was given cannot even be looked at (a name
    too long for the file system, a NUL byte)."""
    try:
        return check()
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        return [f"{where}: a path here cannot be used: {reason}"]


def _model_problems(
    detector: DetectorConfig, cameras: Sequence[tuple[int, CameraConfig]]
) -> list[str]:
    """The model resolves (a manifest name, or a model file with its labels), and every
    label the config names is one the model can produce."""
    from edge_agent.datafiles import load_manifest
    from edge_agent.detect.filters import unknown_filter_labels
    from edge_agent.detect.tflite import ModelLoadError, model_labels

    try:
        manifest = load_manifest()
    except DataFileError as error:
        return [f"detector.model: cannot read the model manifest: {error}"]
    try:
        labels = model_labels(
            detector.model,
            layout=detector.layout,
            labels_file=detector.labels_file,
            manifest=manifest,
        )
    except ModelLoadError as error:
        return [f"detector: {error}"]
    except (KeyError, DataFileError):
        known = ", ".join(e.name for e in manifest.entries if e.kind == "model" and e.is_detector)
        return [f"detector.model: unknown model {detector.model!r} (known: {known})"]
    problems = _label_problems(detector, cameras, frozenset(labels))
    problems.extend(
        f"cameras[{c}].detection_filters: {label!r} is not a label of model {detector.model}"
        for c, camera in cameras
        for label in unknown_filter_labels(camera.detection_filters, labels)
    )
    return problems


def _label_problems(
    detector: DetectorConfig,
    cameras: Sequence[tuple[int, CameraConfig]],
    model_labels: frozenset[str],
) -> list[str]:
    """Labels the model cannot produce: a typo here means a rule that silently never fires.
    (A rule label the detector is not asked for is fine: the rule is narrower.)"""
    problems = [
        f"detector.labels: {label!r} is not a label of model {detector.model}"
        for label in detector.labels
        if label not in model_labels
    ]
    for c, camera in cameras:
        places = [
            (f"cameras[{c}].zones[{z}].labels", zone.labels) for z, zone in enumerate(camera.zones)
        ]
        places += [
            (f"cameras[{c}].rules[{r}].labels", getattr(rule, "labels", None))
            for r, rule in enumerate(camera.rules)
        ]
        for where, labels in places:
            problems.extend(
                f"{where}: {label!r} is not a label of model {detector.model}"
                for label in labels or ()
                if label not in model_labels
            )
    return problems


def source_problems(where: str, camera: CameraConfig) -> list[str]:
    """A video file that is not there, a simulator scene that does not exist, PyAV
    missing for a ``kind: pyav`` camera."""
    source = camera.source
    if isinstance(source, OpenCVSourceConfig) and "://" not in source.uri:
        is_device = source.uri.isdigit() or source.uri.startswith("/dev/video")
        if not is_device and not Path(source.uri).is_file():
            return [f"{where}.uri: video file not found: {source.uri}"]
    elif isinstance(source, PyAVSourceConfig):
        if importlib.util.find_spec("av") is None:
            return [f"{where}: {PYAV_MISSING}"]
        if "://" not in source.uri and not Path(source.uri).is_file():
            return [f"{where}.uri: video file not found: {source.uri}"]
    elif isinstance(source, SimSourceConfig):
        scenes = _sim_scenes()
        if isinstance(scenes, str):
            return [f"{where}: {scenes}"]
        problem = sim_scene_problem(source.scenario)
        if problem is not None:
            return [f"{where}.scenario: {problem}"]
    return []


def sim_scene_problem(scenario: str) -> str | None:
    """Why ``scenario`` is not a simulator scene (unknown, or no simulator), or None."""
    scenes = _sim_scenes()
    if isinstance(scenes, str):
        return scenes
    if scenario not in scenes:
        return f"unknown simulator scene {scenario!r} (known: {', '.join(scenes)})"
    return None


def _sim_scenes() -> tuple[str, ...] | str:
    """The simulator's scene names, or why they cannot be known (hw_sim is a dev package)."""
    try:
        from hw_sim.scenes import scenario_names
    except ImportError as error:
        return f"{SIMULATOR_MISSING} ({error})"
    return scenario_names()


def _outbox_problems(path: Path) -> list[str]:
    """The agent creates the outbox and its directory; it cannot when a file is in the way."""
    if "\0" in str(path):
        raise ValueError("embedded null byte")  # pathlib's probes would just say False
    if path.is_dir():
        return [f"outbox.path: {path} is a directory; give the database file's path"]
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return [f"outbox.path: cannot create {path.parent}: {ancestor} is not a directory"]
    return []
