"""Outbox and MQTT drain figures, in one process so they can be read as ratios.

    python bench/bench_outbox.py [--dir DIR] [--messages N] [--backlog N] [--skip-paced]

1. Durable enqueue rate: one row per commit vs 100 rows per commit (group commit),
   WAL + synchronous=FULL, on the disk holding --dir (use the device's real disk).
2. Drain rate to a local mosquitto: Outbox + Publisher (MQTT 5 and 3.1.1, drain pacing
   off) against bare paho QoS 1 publishing from RAM in the same run, same payloads,
   max_inflight 20. Target: drain >= 0.5 of bare paho.
3. Time to drain a --backlog (10 000) event backlog under the DEFAULT drain rate limit
   (OutboxConfig defaults), and the CPU it costs per message.
4. Bytes on the wire per event and per thumbnail, measured with a counting TCP proxy
   between the publisher and mosquitto (both directions), next to the estimate from
   MQTT framing (fixed header + topic + packet id + properties + payload).

Absolute figures depend on the machine (DESIGN.md §9: an fsync on an SD card costs
10-100x this disk's); report ratios. This file may import paho: it measures paho itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge_agent.broker import LocalBroker, free_loopback_port
from edge_agent.config import OutboxConfig
from edge_agent.encode import Topics, encode_event, encode_thumbnail
from edge_agent.mqtt import DrainSettings, MqttSettings, Publisher
from edge_agent.outbox import Outbox
from edge_agent.types import Box, Lifecycle, ObjectEvent, OutboundMessage, Thumbnail

TOPICS = Topics("city/site-0001/pole-17")
BOOT = "8a5aae99"


def realistic_event(i: int) -> OutboundMessage:
    """An event as the pipeline encodes it (encode.py), not a toy payload."""
    start_s = 1_764_448_000.123 + i
    event = ObjectEvent(
        event_id=f"{start_s:.3f}-a1b2c3",
        lifecycle=Lifecycle.UPDATE,
        camera_id="cam1",
        kind="object",
        label="person",
        score=0.8734,
        top_score=0.9121,
        box=Box(0.1234, 0.2345, 0.3456, 0.7567),
        zones=("entrance",),
        start_s=start_s,
        end_s=None,
        frame_time_s=start_s + 4.5,
        has_thumbnail=True,
    )
    return encode_event(TOPICS, event, BOOT)


def realistic_thumbnail(i: int) -> OutboundMessage:
    """A 320-px-wide JPEG at quality 70 (the defaults) of a real frame if one is found."""
    jpeg = _thumbnail_jpeg()
    event_id = f"{1_764_448_000.123 + i:.3f}-a1b2c3"
    return encode_thumbnail(TOPICS, Thumbnail(event_id, "cam1", jpeg, 0.91))


_JPEG: bytes | None = None


def _thumbnail_jpeg() -> bytes:
    global _JPEG
    if _JPEG is None:
        import cv2

        image = None
        try:
            from edge_agent.datafiles import resolve_media

            capture = cv2.VideoCapture(str(resolve_media("intel_one-by-one-person-detection.mp4")))
            for _ in range(300):
                ok, frame = capture.read()
                if ok:
                    image = frame
            capture.release()
        except Exception as error:  # no media: a synthetic picture, said so
            print(f"(no real frame for the thumbnail: {error}; using noise)")
        if image is None:
            image = np.random.default_rng(1).integers(0, 255, (432, 768, 3), dtype=np.uint8)
        crop = image[60:380, 200:440]  # a person-sized region with context
        scale = 320 / crop.shape[1]
        crop = cv2.resize(crop, (320, round(crop.shape[0] * scale)))
        ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 70])
        assert ok
        _JPEG = encoded.tobytes()
    return _JPEG


def bench_enqueue(directory: Path, rows: int, per_commit: int) -> tuple[float, float]:
    """(rows/s, CPU µs/row) for ``rows`` rows enqueued ``per_commit`` at a time."""
    box = Outbox(
        directory / f"enq-{per_commit}-{uuid.uuid4().hex}.db", max_bytes=1 << 30, max_rows=10**7
    )
    batch = [realistic_event(i) for i in range(per_commit)]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(rows // per_commit):
        box.enqueue_many(batch)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    box.close()
    return rows / wall, cpu / rows * 1e6


def filled_outbox(directory: Path, count: int) -> Outbox:
    box = Outbox(directory / f"drain-{uuid.uuid4().hex}.db", max_bytes=1 << 30, max_rows=10**7)
    for start in range(0, count, 1000):
        box.enqueue_many([realistic_event(i) for i in range(start, min(count, start + 1000))])
    return box


def wait_for(predicate: object, timeout_s: float, poll_s: float = 0.001) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark step timed out")
        time.sleep(poll_s)


def bench_publisher(
    host: str, port: int, box: Outbox, count: int, protocol: str, drain: DrainSettings
) -> tuple[float, float]:
    """(messages/s, CPU µs/message) draining ``count`` rows, from the first publish."""
    pub = Publisher(
        MqttSettings(host, port, f"bench-{uuid.uuid4().hex[:8]}", protocol=protocol),  # type: ignore[arg-type]
        box,
        TOPICS,
        birth_payload={"boot": "bench"},
        max_inflight=20,
        drain=drain,
    )
    # Hold the drain until connected so the clock starts at the first publish.
    pub.start()
    wait_for(lambda: pub.connected, 10)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    # Poll gently when paced: the poll's own CPU would otherwise show in the figure.
    paced = not math.isinf(drain.rate_msgs_per_s)
    wait_for(lambda: box.depth() == 0, 3600, poll_s=0.05 if paced else 0.002)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    pub.stop(5)
    return count / wall, cpu / count * 1e6


def bench_bare_paho(host: str, port: int, count: int, protocol: str) -> tuple[float, float]:
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
    client.connect(host, port)
    client.loop_start()
    payloads = [
        json.dumps(
            {**(realistic_event(i).json_body or {}), "seq": i + 1}, separators=(",", ":")
        ).encode()
        for i in range(count)
    ]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for payload in payloads:
        client.publish(TOPICS.events("cam1"), payload, qos=1)
    done.wait(120)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    return count / wall, cpu / count * 1e6


class CountingProxy:
    """A TCP relay to the broker that counts bytes each way (one client at a time)."""

    def __init__(self, target_port: int) -> None:
        self.port = free_loopback_port()
        self._target = ("127.0.0.1", target_port)
        self.up = 0  # client -> broker
        self.down = 0  # broker -> client
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.up, self.down

    def close(self) -> None:
        self._server.close()


def wire_bytes(
    broker: LocalBroker, directory: Path, make: object, count: int, protocol: str
) -> tuple[float, float, int, int]:
    """(bytes up per message, bytes down per message, payload bytes, topic bytes)."""
    proxy = CountingProxy(broker.port)
    box = Outbox(directory / f"wire-{uuid.uuid4().hex}.db", max_bytes=1 << 30, max_rows=10**7)
    pub = Publisher(
        MqttSettings("127.0.0.1", proxy.port, f"wire-{uuid.uuid4().hex[:6]}", protocol=protocol),  # type: ignore[arg-type]
        box,
        TOPICS,
        birth_payload={"boot": "bench"},
        drain=DrainSettings.unlimited(),
    )
    pub.start()
    wait_for(lambda: pub.connected and pub.stats().published_total == 0, 10)
    wait_for(lambda: pub.stats().inflight == 0, 10)
    time.sleep(0.2)  # let the birth's PUBACK settle in the counters (bench, not a test)
    up0, down0 = proxy.counts()
    stored = box.enqueue_many([make(i) for i in range(count)])  # type: ignore[operator]
    pub.wake()
    wait_for(lambda: box.depth() == 0, 60)
    time.sleep(0.2)
    up1, down1 = proxy.counts()
    pub.stop(5)
    box.close()
    proxy.close()
    payload = sum(len(m.payload) for m in stored) // count
    topic = len(stored[0].topic)
    return (up1 - up0) / count, (down1 - down0) / count, payload, topic


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the outbox files go")
    parser.add_argument("--messages", type=int, default=20_000, help="messages per drain run")
    parser.add_argument("--backlog", type=int, default=10_000, help="paced backlog size")
    parser.add_argument("--skip-paced", action="store_true", help="skip the rate-limited run")
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
            host, port = broker.host, broker.port
            for protocol in ("5", "3.1.1"):
                bare = bench_bare_paho(host, port, args.messages, protocol)
                box = filled_outbox(directory, args.messages)
                ours = bench_publisher(
                    host, port, box, args.messages, protocol, DrainSettings.unlimited()
                )
                box.close()
                for name, (rate, cpu) in (("bare paho QoS1", bare), ("outbox drain", ours)):
                    print(f"MQTT {protocol:5} {name:15}: {rate:10.0f} msg/s  {cpu:7.1f} CPU µs/msg")
                print(f"  drain / bare paho rate: {ours[0] / bare[0]:.2f}")

            for protocol in ("5", "3.1.1"):
                for name, make in (("event", realistic_event), ("thumbnail", realistic_thumbnail)):
                    up, down, payload, topic = wire_bytes(broker, directory, make, 500, protocol)
                    print(
                        f"wire MQTT {protocol:5} per {name:9}: {up:7.1f} B up, {down:4.1f} B"
                        f" down (payload {payload} B, topic {topic} B)"
                    )

            if not args.skip_paced:
                drain = DrainSettings.from_config(OutboxConfig())
                box = filled_outbox(directory, args.backlog)
                print(
                    f"draining {args.backlog} events at the default limit"
                    f" ({drain.rate_msgs_per_s:g} msg/s, {drain.rate_bytes_per_s:g} B/s) ..."
                )
                rate, cpu = bench_publisher(host, port, box, args.backlog, "5", drain)
                box.close()
                print(
                    f"paced drain: {args.backlog / rate:7.1f} s for {args.backlog} events"
                    f" ({rate:.1f} msg/s, {cpu:.1f} CPU µs/msg)"
                )


if __name__ == "__main__":
    main()
