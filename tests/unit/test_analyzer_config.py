"""Analyzer config: the discriminated union on ``kind``, validation, and its documentation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from edge_agent.analyzers import (
    FloodAnalyzer,
    GarbageAnalyzer,
    PausedWhileTampered,
    TamperAnalyzer,
    build_analyzers,
)
from edge_agent.analyzers.config import (
    AnalyzerConfig,
    ClassifierConfig,
    FloodAnalyzerConfig,
    GarbageAnalyzerConfig,
    ReferenceStoreConfig,
    RegionConfig,
    TamperAnalyzerConfig,
)
from edge_agent.config import ConfigError, parse_config

DOCS = Path(__file__).parents[2] / "docs"
ADAPTER: TypeAdapter[Any] = TypeAdapter(AnalyzerConfig)


def _agent(analyzers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "site_id": "s1",
        "device_id": "d1",
        "cameras": [{"id": "cam1", "source": {"kind": "sim"}, "analyzers": analyzers}],
    }


def test_kind_picks_the_model_and_defaults_name_the_topic() -> None:
    config = parse_config(
        _agent([{"kind": "flood", "region": {"box": [0, 0.4, 1, 0.8]}}, {"kind": "tamper"}])
    )
    flood, tamper = config.cameras[0].analyzers
    assert isinstance(flood, FloodAnalyzerConfig) and flood.name == "flood"
    assert isinstance(tamper, TamperAnalyzerConfig) and tamper.name == "tamper"
    assert flood.region.points() == [(0, 0.4), (1, 0.4), (1, 0.8), (0, 0.8)]


def test_an_unknown_kind_or_key_is_an_error_with_its_path() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(_agent([{"kind": "smoke"}]))
    assert "cameras[0].analyzers[0]" in str(error.value)
    with pytest.raises(ConfigError) as error:
        parse_config(_agent([{"kind": "garbage", "persistance_s": 60}]))
    assert "persistance_s" in str(error.value)
    assert "unknown key" in str(error.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "flood", "puddle_exit": 0.2, "puddle_enter": 0.1}, "hysteresis"),
        ({"kind": "flood", "puddle_enter": 0.5, "flooded_enter": 0.4}, "above the level"),
        ({"kind": "garbage", "present_exit": 0.5}, "hysteresis"),
        ({"kind": "garbage", "stable_threshold": 50}, "stable_threshold"),
        ({"kind": "tamper", "method": "classifier"}, "needs a classifier"),
        (
            {"kind": "tamper", "classifier": {"model": "m", "labels": ["ok", "covered"]}},
            "only used with method",
        ),
        ({"kind": "tamper", "region": {"box": [0, 0, 1, 1], "polygon": [[0, 0]] * 3}}, "not both"),
        ({"kind": "tamper", "region": {"box": [0.5, 0.5, 0.2, 0.9]}}, "max > min"),
        (
            {"kind": "tamper", "region": {"polygon": [[0.1, 0.1], [0.1, 0.5], [0.1, 0.9]]}},
            "no area",
        ),
        ({"kind": "tamper", "region": {"box": [0, 0, 1.5, 1]}}, "less than or equal to 1"),
        ({"kind": "tamper", "name": "a/b"}, "pattern"),
    ],
)
def test_bad_analyzer_configs_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ADAPTER.validate_python(data)


def test_classifier_config_checks_scores_and_labels() -> None:
    with pytest.raises(ValidationError, match="exit_score"):
        ClassifierConfig(model="m", labels=["a", "b"], enter_score=0.3, exit_score=0.5)
    with pytest.raises(ValidationError, match="unique"):
        ClassifierConfig(model="m", labels=["a", "a"])
    with pytest.raises(ValidationError):
        ClassifierConfig(model="m", labels=["only"])


def test_build_analyzers_makes_one_of_each_and_refuses_duplicate_names() -> None:
    configs = [
        FloodAnalyzerConfig(),
        GarbageAnalyzerConfig(),
        TamperAnalyzerConfig(),
        TamperAnalyzerConfig(name="tamper-2"),
    ]
    built = build_analyzers(configs, camera_id="cam1")
    # Tamper first (the others ask it whether the view is fine), the others paused by it.
    assert [type(a) for a in built] == [
        TamperAnalyzer,
        TamperAnalyzer,
        PausedWhileTampered,
        PausedWhileTampered,
    ]
    assert [a.name for a in built] == ["tamper-2", "tamper", "flood", "garbage"]
    inner = [a.inner for a in built if isinstance(a, PausedWhileTampered)]
    assert [type(a) for a in inner] == [FloodAnalyzer, GarbageAnalyzer]
    unpaused = build_analyzers([FloodAnalyzerConfig(pause_when_tampered=False)])
    assert [type(a) for a in unpaused] == [FloodAnalyzer]
    assert [type(a) for a in build_analyzers([GarbageAnalyzerConfig()])] == [GarbageAnalyzer]
    with pytest.raises(ValueError, match="unique"):
        build_analyzers([TamperAnalyzerConfig(), TamperAnalyzerConfig()])


def test_region_defaults_to_the_whole_frame() -> None:
    assert RegionConfig().points() == [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


ANALYZER_MODELS: list[type[BaseModel]] = [
    ReferenceStoreConfig,
    RegionConfig,
    ClassifierConfig,
    FloodAnalyzerConfig,
    GarbageAnalyzerConfig,
    TamperAnalyzerConfig,
]


@pytest.mark.parametrize("model", ANALYZER_MODELS, ids=lambda m: m.__name__)
def test_every_analyzer_knob_is_documented(model: type[BaseModel]) -> None:
    text = (DOCS / "analyzers.md").read_text()
    missing = [name for name in model.model_fields if f"`{name}`" not in text]
    assert not missing, f"{model.__name__}: undocumented keys {missing} in docs/analyzers.md"


def test_the_reference_store_config_refuses_unknown_keys() -> None:
    assert ReferenceStoreConfig().learn_at_start
    assert ReferenceStoreConfig.model_validate({"directory": None}).directory is None
    with pytest.raises(ValidationError, match="extra"):
        ReferenceStoreConfig.model_validate({"dir": "/tmp"})
