"""Which model each camera looks through: a crowd camera's default beyond SSD's 10 boxes."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from api_contract import validator
from fakes.detect import StaticDetector

from edge_agent.assemble import CROWD_MODEL, birth_payload, build_detectors, camera_models
from edge_agent.config import AgentConfig, ConfigError, parse_config
from edge_agent.datafiles import DataFileNotFound
from edge_agent.detect.base import Detector

CROWD_RULE = {"kind": "crowd", "zone": "plaza"}
PLAZA = {"name": "plaza", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}


def agent(*cameras: dict[str, Any], model: str = "ssd_mobilenet_v1") -> AgentConfig:
    return parse_config(
        {
            "site_id": "s",
            "device_id": "d",
            "detector": {"model": model},
            "cameras": [
                {"id": f"cam{i}", "source": {"kind": "sim", "scenario": "street"}, **camera}
                for i, camera in enumerate(cameras, start=1)
            ],
        }
    )


def crowd_camera(**extra: Any) -> dict[str, Any]:
    return {"zones": [PLAZA], "rules": [CROWD_RULE], **extra}


def test_a_crowd_camera_looks_through_the_crowd_model_when_the_device_has_ssd() -> None:
    config = agent({}, crowd_camera(), crowd_camera(model="ssd_mobilenet_v1"))
    assert camera_models(config) == {
        "cam1": "ssd_mobilenet_v1",
        "cam2": CROWD_MODEL,
        "cam3": "ssd_mobilenet_v1",  # named by the camera: kept
    }


def test_a_device_model_without_a_box_cap_serves_crowds_itself() -> None:
    assert camera_models(agent(crowd_camera(), model="yolo11n_int8_416")) == {
        "cam1": "yolo11n_int8_416"
    }


def test_a_camera_model_is_a_manifest_name() -> None:
    with pytest.raises(ConfigError, match="manifest name"):
        agent({"model": "/opt/models/mine.tflite"})


class Loader:
    """Builds a fake detector per model, or fails for the models it lacks."""

    def __init__(self, missing: frozenset[str] = frozenset()) -> None:
        self.missing = missing
        self.built: list[str] = []

    def __call__(self, config: AgentConfig) -> Detector:
        model = config.detector.model
        if model in self.missing:
            raise DataFileNotFound(f"{model} is not on the search path")
        self.built.append(model)
        detector = StaticDetector()
        detector.model_name = model
        return detector


def test_each_model_is_loaded_once_and_shared() -> None:
    loader = Loader()
    detectors = build_detectors(agent({}, crowd_camera(), {}, crowd_camera()), build=loader)
    assert sorted(loader.built) == sorted(["ssd_mobilenet_v1", CROWD_MODEL])
    assert detectors.for_camera("cam1") is detectors.for_camera("cam3")
    assert detectors.for_camera("cam2") is detectors.for_camera("cam4")
    assert detectors.for_camera("cam2").model_name == CROWD_MODEL


class ThreadsLoader(Loader):
    def __init__(self) -> None:
        super().__init__()
        self.threads: dict[str, int] = {}

    def __call__(self, config: AgentConfig) -> Detector:
        self.threads[config.detector.model] = config.detector.threads
        return super().__call__(config)


def test_two_models_share_the_default_threads_and_a_set_value_stands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 4-core device: the default is 3 threads (the cores but one). Two models, each
    invoked by its own cameras at the same time, had 3 each: 6 threads on 4 cores, and no
    core left for decoding. One model keeps the 3; a value in the config is used as set."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    one = ThreadsLoader()
    build_detectors(agent({}, {}), build=one)
    assert one.threads == {"ssd_mobilenet_v1": 3}
    two = ThreadsLoader()
    build_detectors(agent({}, crowd_camera()), build=two)
    assert two.threads == {"ssd_mobilenet_v1": 1, CROWD_MODEL: 1}
    config = agent({}, crowd_camera())
    set_threads = config.model_copy(
        update={"detector": config.detector.model_copy(update={"threads": 2})}
    )
    chosen = ThreadsLoader()
    build_detectors(set_threads, build=chosen)
    assert chosen.threads == {"ssd_mobilenet_v1": 2, CROWD_MODEL: 2}


def test_a_missing_crowd_model_falls_back_to_the_device_model_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loader = Loader(missing=frozenset({CROWD_MODEL}))
    with caplog.at_level(logging.WARNING, logger="edge_agent.assemble"):
        detectors = build_detectors(agent(crowd_camera()), build=loader)
    assert detectors.camera_models == {"cam1": "ssd_mobilenet_v1"}
    assert detectors.for_camera("cam1").model_name == "ssd_mobilenet_v1"
    assert "at most 10 boxes" in caplog.text


def test_a_model_a_camera_names_must_load() -> None:
    loader = Loader(missing=frozenset({CROWD_MODEL}))
    with pytest.raises(DataFileNotFound):
        build_detectors(agent(crowd_camera(model=CROWD_MODEL)), build=loader)


def test_a_reload_loads_only_the_models_no_camera_used_yet() -> None:
    first = Loader()
    running = build_detectors(agent({}), build=first)
    assert first.built == ["ssd_mobilenet_v1"]
    again = Loader()
    detectors = build_detectors(agent({}, crowd_camera()), build=again, loaded=running.by_model)
    assert again.built == [CROWD_MODEL]  # a crowd camera was added
    assert detectors.for_camera("cam1") is running.for_camera("cam1")


def test_the_birth_names_a_camera_s_own_model_only_when_one_differs() -> None:
    mixed = agent({}, crowd_camera())
    birth = birth_payload(mixed, "0badcafe", camera_models=camera_models(mixed))
    assert birth["model"] == "ssd_mobilenet_v1"
    assert birth["camera_models"] == {"cam1": "ssd_mobilenet_v1", "cam2": CROWD_MODEL}
    validator("status").validate({**birth, "state": "online", "ts": 1.0})
    plain = agent({}, {})
    assert "camera_models" not in birth_payload(
        plain, "0badcafe", camera_models=camera_models(plain)
    )
