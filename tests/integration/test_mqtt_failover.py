"""A list of two real mosquittos: the first killed (SIGKILL), the publisher fails over to
the second with nothing lost; the first back, it returns (``prefer_first``) with nothing
lost or sent twice. A consumer on each broker; together they see every seq once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fakes.centre import Centre
from fakes.delivery import events, first_arrivals, persistent_consumer
from fakes.mqtt import Inbox
from helpers import wait_until

from edge_agent.broker import LocalBroker
from edge_agent.encode import Topics
from edge_agent.mqtt import DrainSettings, MqttSettings, Publisher
from edge_agent.mqtt.failover import Broker, FailoverSettings
from edge_agent.outbox import Outbox
from edge_agent.remote import Reply

TIMEOUT_S = 30.0
FAILOVER_BOUND_S = 30.0  # the acceptance bound (issue 13): on the second broker within it

# Saved at every change: a consumer's persistent session (its subscription, and what is
# queued for it) survives the SIGKILL, as with a short autosave_interval in production.
PERSIST_EVERY_CHANGE = "autosave_interval 1\nautosave_on_changes true"


@pytest.fixture
def two_brokers() -> Iterator[tuple[LocalBroker, LocalBroker]]:
    with (
        LocalBroker(extra_config=PERSIST_EVERY_CHANGE) as first,
        LocalBroker(extra_config=PERSIST_EVERY_CHANGE) as second,
    ):
        yield first, second


def test_failover_to_the_second_broker_and_back_loses_nothing(
    two_brokers: tuple[LocalBroker, LocalBroker], outbox: Outbox
) -> None:
    first, second = two_brokers
    root = f"city/site{uuid.uuid4().hex[:8]}/dev1"
    inbox_first, inbox_second = Inbox(), Inbox()
    sub_first = persistent_consumer(first, root, inbox_first, session_expiry_s=300)
    sub_second = persistent_consumer(second, root, inbox_second, session_expiry_s=300)
    sub_first.start(TIMEOUT_S)
    sub_second.start(TIMEOUT_S)
    settings = MqttSettings(
        host=first.host,
        port=first.port,
        client_id=f"pub-{uuid.uuid4().hex[:8]}",
        brokers=(Broker(first.host, first.port), Broker(second.host, second.port)),
        failover=FailoverSettings(
            after_attempts=2, after_s=10, probe_interval_s=0.3, probes_to_return=2
        ),
        reconnect_min_delay_s=0.2,
        reconnect_max_delay_s=1.0,
    )
    pub = Publisher(
        settings,
        outbox,
        Topics(root),
        birth_payload={"boot": "b1"},
        # Paced, so a backlog is still draining while the publisher moves back.
        drain=DrainSettings(rate_msgs_per_s=100, rate_bytes_per_s=1e9),
        on_command=lambda name, payload, retained: Reply.json({"ok": True, "name": name}),
    )
    pub.start()
    centre: Centre | None = None
    try:
        outbox.enqueue_many(events(root, 0, 20))
        pub.wake()
        wait_until(lambda: len(inbox_first.event_seqs()) >= 20, TIMEOUT_S, "20 events on the first")
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "the outbox to empty")
        assert pub.stats().broker == f"127.0.0.1:{first.port}"

        first.kill()  # SIGKILL: no goodbye, the publisher learns by the broken socket
        outbox.enqueue_many(events(root, 20, 20))  # produced during the outage
        pub.wake()
        wait_until(
            lambda: pub.connected and pub.stats().broker == f"127.0.0.1:{second.port}",
            FAILOVER_BOUND_S,
            "the publisher on the second broker",
        )
        wait_until(lambda: len(inbox_second.event_seqs()) >= 20, TIMEOUT_S, "20 on the second")
        # Birth, will and the command subscription are made again on the second broker.
        assert inbox_second.states() == ["online"]
        wait_until(lambda: pub.commands_ready, TIMEOUT_S, "the command subscription")
        centre = Centre(second.port, root)
        centre.send("ping", {}, b"c1")
        assert centre.reply_body(b"c1") == {"ok": True, "name": "ping"}

        first.start()  # same port, same persistence: the consumer's session is back
        outbox.enqueue_many(events(root, 40, 400))  # a backlog that drains across the move
        pub.wake()
        wait_until(
            lambda: pub.connected and pub.stats().broker == f"127.0.0.1:{first.port}",
            TIMEOUT_S,
            "the publisher back on the first broker",
        )
        wait_until(lambda: outbox.depth() == 0, TIMEOUT_S, "the backlog to drain")
        wait_until(
            lambda: len(set(inbox_first.event_seqs()) | set(inbox_second.event_seqs())) >= 440,
            TIMEOUT_S,
            "every seq at one consumer or the other",
        )
        stats = pub.stats()
    finally:
        if centre is not None:
            centre.close()
        pub.stop(5)
        sub_first.stop()
        sub_second.stop()
    # Each broker may deliver a message to its consumer twice (QoS 1: the first broker,
    # killed, had not saved every PUBACK from its consumer); the publisher sends none twice.
    on_first = first_arrivals(inbox_first.event_seqs())
    on_second = first_arrivals(inbox_second.event_seqs())
    # Nothing lost, and nothing sent to both: the failover had nothing in flight, the
    # return waited for every PUBACK before leaving the second broker.
    assert sorted(on_first + on_second) == list(range(1, 441))
    assert on_first == sorted(on_first) and on_second == sorted(on_second)
    moved_at = on_second[-1]  # the last seq the second broker took
    assert 40 <= moved_at < 440  # some of the backlog went to each: the move was mid-drain
    assert on_first == [*range(1, 21), *range(moved_at + 1, 441)]
    # The second broker was told we left (retained), and no will was sent anywhere.
    assert inbox_second.states() == ["online", "offline"]
    assert inbox_first.states()[-2:] == ["online", "stopped"]  # back, then our clean stop
    assert "offline" not in inbox_first.states()
    assert stats.broker_moves == 2 and stats.reconnects == 2
    assert stats.last_error is not None and "127.0.0.1:" + str(first.port) in stats.last_error
