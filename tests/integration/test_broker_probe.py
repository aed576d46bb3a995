"""The self-test's broker probe against a real mosquitto: both protocols, and an ACL that
refuses the birth or the command topics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.broker import LocalBroker, free_loopback_port
from edge_agent.encode import Topics
from edge_agent.mqtt import MqttSettings
from edge_agent.mqtt.probe import BrokerProbe, probe_broker

TIMEOUT_S = 10.0
ROOT = "city/probe-site/dev-1"


def probe(port: int, protocol: str = "5", timeout_s: float = TIMEOUT_S) -> BrokerProbe:
    settings = MqttSettings(
        "127.0.0.1",
        port,
        f"dev-1-selftest-{uuid.uuid4().hex[:6]}",
        protocol=protocol,  # type: ignore[arg-type]
        session_expiry_s=0,
    )
    return probe_broker(settings, Topics(ROOT), birth={"version": "t"}, timeout_s=timeout_s)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_every_step_passes_on_an_open_broker(broker: LocalBroker, protocol: str) -> None:
    result = probe(broker.port, protocol)
    assert result.connect_error is None and result.connect_ms is not None
    assert result.birth_error is None and result.birth_ms is not None
    assert result.loopback_error is None and result.loopback_ms is not None
    assert not result.tls and result.centre_ms is None  # no centre asked for


def test_nothing_listening_is_a_connect_error() -> None:
    result = probe(free_loopback_port())
    assert result.connect_ms is None
    assert result.connect_error is not None and "cannot reach 127.0.0.1" in result.connect_error


@pytest.fixture
def acl_broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalBroker]:
    acl = tmp_path / "acl"
    acl.write_text(str(request.param))
    with LocalBroker(extra_config=f"acl_file {acl}") as local:
        yield local


@pytest.mark.parametrize("acl_broker", [f"topic read {ROOT}/cmd/#\n"], indirect=True)
def test_a_birth_the_acl_refuses_fails_with_the_reason(acl_broker: LocalBroker) -> None:
    result = probe(acl_broker.port)
    assert result.connect_ms is not None
    assert result.birth_error is not None and "Not authorized" in result.birth_error
    assert result.loopback_ms is None


@pytest.mark.parametrize("acl_broker", [f"topic write {ROOT}/#\n"], indirect=True)
def test_command_topics_the_device_cannot_read_fail_the_loopback(
    acl_broker: LocalBroker,
) -> None:
    # The bound is what the test waits for a ping that mosquitto will never deliver.
    result = probe(acl_broker.port, timeout_s=2.0)
    assert result.birth_ms is not None
    assert result.loopback_error is not None and "did not come back" in result.loopback_error
