"""Shared fixtures: a real mosquitto on a free loopback port (never 1883)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
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
    local = _new_broker()
    try:
        local.start()
        yield local
    finally:
        local.close()


@pytest.fixture
def private_broker() -> Iterator[LocalBroker]:
    """A mosquitto of this test's own, which it may stop, kill and restart."""
    local = _new_broker()
    try:
        local.start()
        yield local
    finally:
        local.close()
