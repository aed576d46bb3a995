"""The docs keep up with the code: every config key is documented."""

from pathlib import Path

import pytest
from pydantic import BaseModel

from edge_agent import config

DOCS = Path(__file__).parents[2] / "docs"

CORE_MODELS: list[type[BaseModel]] = [
    config.AgentConfig,
    config.CameraConfig,
    config.SimSourceConfig,
    config.OpenCVSourceConfig,
    config.PyAVSourceConfig,
    config.Picamera2SourceConfig,
    config.ZoneConfig,
    config.DetectorConfig,
    config.MotionConfig,
    config.TrackerConfig,
    config.EventsConfig,
    config.MqttConfig,
    config.BrokerConfig,
    config.FailoverConfig,
    config.TlsConfig,
    config.OutboxConfig,
    config.OutboxTtlConfig,
    config.PreviewConfig,
]


@pytest.mark.parametrize("model", CORE_MODELS, ids=lambda m: m.__name__)
def test_every_core_config_key_is_in_the_configuration_reference(model: type[BaseModel]) -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [
        name
        for name in model.model_fields
        if name != "kind" and f"`{name}" not in text and f".{name}`" not in text
    ]
    assert not missing, f"{model.__name__}: undocumented keys {missing} in docs/configuration.md"
