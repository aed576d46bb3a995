"""Failover time with the default settings (docs/high-availability.md): two real mosquittos,
a publisher with both in ``mqtt.brokers``, the first SIGKILLed; seconds until the publisher
is connected to the second, over ``--runs`` runs (the full-jitter back-off makes each run
different: 3 failed attempts, windows of 1, 2 and 4 s, then the second broker).

Also how long the tests' RabbitMQ (tests/rabbitmq_broker.py) takes to start, with
``--rabbitmq`` (needs rabbitmq-server).

    python bench/bench_failover.py [--runs 8] [--rabbitmq]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from edge_agent.broker import LocalBroker
from edge_agent.encode import Topics
from edge_agent.mqtt import Broker, MqttSettings, Publisher
from edge_agent.outbox import Outbox

_POLL_S = 0.01


def one_failover(scratch: Path) -> float:
    with LocalBroker() as first, LocalBroker() as second:
        outbox = Outbox(scratch / f"{uuid.uuid4().hex}.db", max_bytes=1 << 22, max_rows=1000)
        brokers = (Broker(first.host, first.port), Broker(second.host, second.port))
        settings = MqttSettings(
            first.host, first.port, f"bench-{uuid.uuid4().hex[:6]}", brokers=brokers
        )
        publisher = Publisher(settings, outbox, Topics("city/bench/dev1"), birth_payload={})
        publisher.start()
        try:
            while not publisher.connected:
                time.sleep(_POLL_S)
            began = time.monotonic()
            first.kill()
            while not (publisher.connected and publisher.stats().broker == str(brokers[1])):
                time.sleep(_POLL_S)
            return time.monotonic() - began
        finally:
            publisher.stop(2)
            outbox.close()


def rabbitmq_start_s() -> float:
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from rabbitmq_broker import RabbitMQBroker

    with RabbitMQBroker() as rabbitmq:
        assert rabbitmq.startup_s is not None
        return rabbitmq.startup_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--rabbitmq", action="store_true", help="also time a RabbitMQ start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        times = [one_failover(Path(scratch)) for _ in range(args.runs)]
    print(
        f"failover to the second broker, defaults, {args.runs} runs: "
        f"median {statistics.median(times):.1f} s, max {max(times):.1f} s "
        f"({', '.join(f'{t:.1f}' for t in times)})"
    )
    if args.rabbitmq:
        print(f"RabbitMQ with the MQTT plugin started in {rabbitmq_start_s():.1f} s")


if __name__ == "__main__":
    main()
