"""Outbox and MQTT drain throughput, printed as figures (not part of the test run).

    python bench/bench_outbox.py [--dir DIR] [--messages N]

1. Durable enqueue rate: one row per commit vs 100 rows per commit (group commit),
   WAL + synchronous=FULL, on the disk holding --dir (use the device's real disk).
2. Drain rate to a local mosquitto: Outbox + Publisher (MQTT 5 and 3.1.1) against
   bare paho QoS 1 publishing from RAM in the same run, with the same payloads and
   max_inflight 20. Report ratios: absolute figures depend on the machine
   (DESIGN.md §9: an fsync on an SD card costs 10-100x this disk's).

This file may import paho directly: it measures paho itself.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge_agent.broker import LocalBroker
from edge_agent.mqtt import MqttSettings, Publisher
from edge_agent.outbox import Outbox
from edge_agent.types import MessageClass, OutboundMessage

BODY: dict[str, object] = {
    "v": 1,
    "id": "3f2a9c1e-cam1-000042",
    "lifecycle": "update",
    "kind": "object",
    "label": "person",
    "score": 0.87,
    "box": [0.1234, 0.2345, 0.3456, 0.4567],
    "zones": ["entrance"],
    "start": 1700000000.123,
    "frame_time": 1700000012.456,
}


def message(i: int) -> OutboundMessage:
    return OutboundMessage(
        topic="city/site1/dev1/events/cam1",
        message_class=MessageClass.EVENT,
        json_body={**BODY, "n": i},
    )


def bench_enqueue(directory: Path, rows: int, per_commit: int) -> tuple[float, float]:
    """(rows/s, CPU µs/row) for ``rows`` rows enqueued ``per_commit`` at a time."""
    box = Outbox(
        directory / f"enq-{per_commit}-{uuid.uuid4().hex}.db", max_bytes=1 << 30, max_rows=10**7
    )
    batch = [message(i) for i in range(per_commit)]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(rows // per_commit):
        box.enqueue_many(batch)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    box.close()
    return rows / wall, cpu / rows * 1e6


def bench_publisher(
    broker: LocalBroker, directory: Path, count: int, protocol: str
) -> tuple[float, float]:
    box = Outbox(directory / f"drain-{uuid.uuid4().hex}.db", max_bytes=1 << 30, max_rows=10**7)
    for start in range(0, count, 1000):
        box.enqueue_many([message(i) for i in range(start, min(count, start + 1000))])
    pub = Publisher(
        MqttSettings(broker.host, broker.port, f"bench-{uuid.uuid4().hex[:8]}", protocol=protocol),  # type: ignore[arg-type]
        box,
        status_topic="city/site1/dev1/status",
        birth_payload={"boot": "bench"},
        max_inflight=20,
    )
    # Time from the first publish: wait for the connection outside the measurement.
    wall0 = cpu0 = 0.0
    pub.start()
    deadline = time.monotonic() + 10
    while not pub.connected:
        if time.monotonic() > deadline:
            raise RuntimeError("publisher did not connect")
        time.sleep(0.001)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while box.depth():
        time.sleep(0.001)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    pub.stop(5)
    box.close()
    return count / wall, cpu / count * 1e6


def bench_bare_paho(broker: LocalBroker, count: int, protocol: str) -> tuple[float, float]:
    """QoS 1 from RAM with paho alone: the ceiling the publisher is measured against."""
    version = MQTTProtocolVersion.MQTTv5 if protocol == "5" else MQTTProtocolVersion.MQTTv311
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bare-{uuid.uuid4().hex[:8]}", protocol=version
    )
    client.max_inflight_messages_set(20)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acked = 0

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1
        if acked >= count:
            done.set()

    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    payloads = [encode_like_outbox(message(i), i + 1) for i in range(count)]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for payload in payloads:
        client.publish("city/site1/dev1/events/cam1", payload, qos=1)
    done.wait(60)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    return count / wall, cpu / count * 1e6


def encode_like_outbox(msg: OutboundMessage, seq: int) -> bytes:
    assert msg.json_body is not None
    return json.dumps({**msg.json_body, "seq": seq}, separators=(",", ":")).encode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the outbox files go")
    parser.add_argument("--messages", type=int, default=20_000, help="messages per drain run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        print(f"outbox files in {directory}")
        single = bench_enqueue(directory, 3_000, 1)
        grouped = bench_enqueue(directory, 100_000, 100)
        print(f"enqueue   1 row/commit : {single[0]:10.0f} rows/s  {single[1]:7.1f} CPU µs/row")
        print(f"enqueue 100 rows/commit: {grouped[0]:10.0f} rows/s  {grouped[1]:7.1f} CPU µs/row")
        print(f"  group commit speed-up: {grouped[0] / single[0]:.1f}x")
        with LocalBroker() as broker:
            for protocol in ("5", "3.1.1"):
                bare = bench_bare_paho(broker, args.messages, protocol)
                ours = bench_publisher(broker, directory, args.messages, protocol)
                for name, (rate, cpu) in (("bare paho QoS1", bare), ("outbox drain", ours)):
                    print(f"MQTT {protocol:5} {name:15}: {rate:10.0f} msg/s  {cpu:7.1f} CPU µs/msg")
                print(f"  drain / bare paho rate: {ours[0] / bare[0]:.2f}")


if __name__ == "__main__":
    main()
