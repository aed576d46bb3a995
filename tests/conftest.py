"""Shared fixtures: a real mosquitto on a free loopback port (never 1883)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from edge_agent.broker import BrokerNotAvailable, LocalBroker


def _new_broker() -> LocalBroker:
    try:
        return LocalBroker()
    except BrokerNotAvailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but mosquitto is missing: {error}")
        pytest.skip(str(error))


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
