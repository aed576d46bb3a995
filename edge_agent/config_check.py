"""What the config schema cannot see: files that must exist, names that must be known.

``edge-agent check-config`` and ``run`` print these beside the schema's own problems
(edge_agent/config.py), in the same "path: problem" form.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import AgentConfig, OpenCVSourceConfig
from edge_agent.datafiles import DataFileError
from edge_agent.security import TlsConfigError, check_secret_file, tls_problems


def semantic_problems(config: AgentConfig, config_path: Path | None = None) -> list[str]:
    """What the schema cannot see: files that must exist, names that must be known."""
    from edge_agent.datafiles import load_manifest
    from edge_agent.detect.filters import unknown_filter_labels
    from edge_agent.detect.tflite import ModelLoadError, model_labels

    problems: list[str] = []
    try:
        manifest = load_manifest()
        try:
            detector = config.detector
            labels = model_labels(
                detector.model,
                layout=detector.layout,
                labels_file=detector.labels_file,
                manifest=manifest,
            )
            problems.extend(_label_problems(config, frozenset(labels)))
            problems.extend(
                f"cameras[{c}].detection_filters: {label!r} is not a label of model "
                f"{detector.model}"
                for c, camera in enumerate(config.cameras)
                for label in unknown_filter_labels(camera.detection_filters, labels)
            )
        except ModelLoadError as error:
            problems.append(f"detector: {error}")
        except (KeyError, DataFileError):
            known = ", ".join(e.name for e in manifest.entries if e.kind == "model")
            problems.append(
                f"detector.model: unknown model {config.detector.model!r} (known: {known})"
            )
    except DataFileError as error:
        problems.append(f"detector.model: cannot read the model manifest: {error}")
    tls = config.mqtt.tls
    if tls is not None:
        problems.extend(
            f"mqtt.tls: {problem}"
            for problem in tls_problems(
                ca_file=tls.ca_file, cert_file=tls.cert_file, key_file=tls.key_file
            )
        )
    if config.mqtt.password is not None and config_path is not None:
        try:
            check_secret_file(config_path, "config file holding mqtt.password")
        except TlsConfigError as error:
            problems.append(f"mqtt.password: {error}")
    for index, camera in enumerate(config.cameras):
        source = camera.source
        if isinstance(source, OpenCVSourceConfig) and "://" not in source.uri:
            is_device = source.uri.isdigit() or source.uri.startswith("/dev/video")
            if not is_device and not Path(source.uri).is_file():
                problems.append(f"cameras[{index}].source.uri: video file not found: {source.uri}")
    return problems


def _label_problems(config: AgentConfig, model_labels: frozenset[str]) -> list[str]:
    """Labels the model cannot produce: a typo here means a rule that silently never fires.
    (A rule label the detector is not asked for is fine: the rule is narrower.)"""
    problems = [
        f"detector.labels: {label!r} is not a label of model {config.detector.model}"
        for label in config.detector.labels
        if label not in model_labels
    ]
    for c, camera in enumerate(config.cameras):
        places = [
            (f"cameras[{c}].zones[{z}].labels", zone.labels) for z, zone in enumerate(camera.zones)
        ]
        places += [
            (f"cameras[{c}].rules[{r}].labels", getattr(rule, "labels", None))
            for r, rule in enumerate(camera.rules)
        ]
        for where, labels in places:
            problems.extend(
                f"{where}: {label!r} is not a label of model {config.detector.model}"
                for label in labels or ()
                if label not in model_labels
            )
    return problems
