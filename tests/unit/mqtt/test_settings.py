"""edge_agent.mqtt.settings: config → settings, and what settings refuse."""

from __future__ import annotations

import pytest

from edge_agent.config import OutboxConfig
from edge_agent.mqtt import DrainSettings, MqttSettings


def test_drain_settings_from_config_and_validation() -> None:
    config = OutboxConfig(
        drain_rate_msgs_per_s=5, drain_rate_bytes_per_s=2048, historical_after_s=9
    )
    assert DrainSettings.from_config(config) == DrainSettings(5.0, 2048.0, 9.0)
    with pytest.raises(ValueError):
        DrainSettings(rate_msgs_per_s=0)
    with pytest.raises(ValueError):
        DrainSettings(historical_after_s=-1)


def test_a_consumer_gets_a_clean_session_and_a_quick_reconnect_unless_asked() -> None:
    consumer = MqttSettings.consumer("h", 1883, "watch")
    assert (consumer.session_expiry_s, consumer.keeps_session) == (0, False)
    assert consumer.reconnect_max_delay_s == 5.0
    kept = MqttSettings.consumer("h", 1883, "cc", session_expiry_s=600, protocol="3.1.1")
    assert kept.keeps_session and kept.protocol == "3.1.1"
    assert MqttSettings("h", 1883, "device").keeps_session  # a device keeps its session
