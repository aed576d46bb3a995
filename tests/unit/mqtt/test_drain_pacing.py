"""The drain's pacing on a new connection (issue 13): a device that comes back with a
backlog sends it at the paced rate from the first moment, not a bucket's worth at once.
Through a fake paho client (fakes.mqtt), so only the publisher's own pacing shows."""

from __future__ import annotations

import math

from api_contract import TIMEOUT_S, TOPICS
from fakes.mqtt import FakeClient
from helpers import wait_until

from edge_agent.mqtt import DrainSettings, MqttSettings, Publisher
from edge_agent.outbox import Outbox
from edge_agent.types import MessageClass, OutboundMessage


def test_a_backlog_is_paced_from_the_first_message_of_a_connection(outbox: Outbox) -> None:
    backlog = 500
    outbox.enqueue_many(
        [
            OutboundMessage(TOPICS.events("cam1"), MessageClass.EVENT, json_body={"i": i})
            for i in range(backlog)
        ]
    )
    fake = FakeClient()
    # A bucket of 1,000 messages (100 s at 10/s): before the fix all 500 went at once.
    publisher = Publisher(
        MqttSettings(host="127.0.0.1", port=1, client_id="pacing-test"),
        outbox,
        TOPICS,
        birth_payload={},
        max_inflight=1000,
        drain=DrainSettings(rate_msgs_per_s=10.0, rate_bytes_per_s=math.inf, burst_s=100.0),
        client_factory=fake.factory,
    )
    publisher.start()
    try:
        wait_until(lambda: publisher.stats().paced, TIMEOUT_S, "the drain to be held back")
        sent = len(fake.published_on(TOPICS.events("cam1")))
    finally:
        publisher.stop(timeout_s=1.0)
    assert 1 <= sent < backlog
