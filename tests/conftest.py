"""Shared fixtures: a real mosquitto on a free loopback port (never 1883), a real
RabbitMQ with its MQTT plugin (the second broker implementation), and the child
processes a test starts."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from rabbitmq_broker import RabbitMQBroker
from realdata import skip_or_fail

from edge_agent.broker import BrokerNotAvailable, LocalBroker

pytest_plugins = ("fakes.outbox",)  # the `outbox` fixture, for every test


def _new_broker() -> LocalBroker:
    try:
        return LocalBroker()
    except BrokerNotAvailable as error:
        skip_or_fail(f"mosquitto is missing: {error}")


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    """One mosquitto for the whole session. Tests must not stop or restart it."""
    with _new_broker() as local:
        yield local


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQBroker]:
    """One RabbitMQ (MQTT 3.1.1) for the whole session: Erlang takes ~12 s to boot.
    Missing where CI is set: a failure, as for mosquitto. Tests must not stop it."""
    try:
        local = RabbitMQBroker()
    except BrokerNotAvailable as error:
        skip_or_fail(f"RabbitMQ is missing: {error}")
    with local:
        yield local


@pytest.fixture
def private_broker() -> Iterator[LocalBroker]:
    """A mosquitto of this test's own, which it may stop, kill and restart."""
    with _new_broker() as local:
        yield local


@pytest.fixture
def child_processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts (it appends them): killed if still running, and reaped."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
