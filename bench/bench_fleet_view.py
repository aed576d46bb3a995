"""What the fleet view (``edge-agent watch --fleet``) costs for a city's fleet.

    python bench/bench_fleet_view.py [--devices 500] [--events 20]

In one process, no broker (the MQTT callback is timed by itself): every device's
retained status and state, a stats message, ``--events`` event steps and thumbnails and a
gap notice are fed to one ``FleetTable`` as paho would hand them over; then the
table is sorted and drawn as it is every second on a terminal (200 x 50) and as the
``--json`` snapshot. Prints the cost of one message (mean, in microseconds) and of one
refresh (mean of 20, in ms), so the budget "a dict updated by the callback, rendering at
most once a second" can be judged: a refresh must cost a small part of that second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from edge_agent.fleet import FleetTable
from edge_agent.fleet_render import table_lines
from edge_agent.mqtt import ReceivedMessage


def _json(topic: str, body: object, *, retain: bool = False, expiry_s: int | None = None):
    payload = json.dumps(body, separators=(",", ":")).encode()
    return ReceivedMessage(topic, payload, 1, retain, (), "application/json", expiry_s)


def messages(devices: int, events: int) -> list[ReceivedMessage]:
    out: list[ReceivedMessage] = []
    now = time.time()
    for n in range(devices):
        root = f"city/site-{n // 50:02d}/post-{n:03d}"
        birth = {"v": 1, "state": "online", "ts": now - 3600, "version": "0.1.0"}
        birth.update(boot="8a5aae99", model="ssd_mobilenet_v1", cameras=["cam1", "cam2"])
        out.append(_json(f"{root}/status", birth, retain=True))
        out.append(_json(f"{root}/state/cam1/tamper", {"state": "ok", "seq": 1}, retain=True))
        cameras = {c: {"fps": 5.0, "source": {"connected": True, "ended": False}}
                   for c in ("cam1", "cam2")}  # fmt: skip
        stats = {"v": 1, "outbox": {"depth_rows": n % 7}, "cameras": cameras, "condition": "ok"}
        out.append(_json(f"{root}/stats", stats, expiry_s=120))
        seq = 1
        for _ in range(events):
            out.append(_json(f"{root}/events/cam1", {"v": 1, "type": "new", "id": "e", "seq": seq}))
            seq += 1
            out.append(
                ReceivedMessage(
                    f"{root}/thumbs/cam1/e",
                    b"\xff\xd8" + b"\0" * 4000,
                    1,
                    False,
                    (("v", "1"), ("seq", str(seq))),
                    "image/jpeg",
                )
            )
            seq += 2 if n % 10 == 0 else 1  # every tenth device drops one
        if n % 10 == 0:
            notice = {"v": 1, "gaps": [{"from": 3, "to": 3, "evicted": {"event": 1}}], "seq": seq}
            out.append(_json(f"{root}/gaps", notice))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    feed = messages(args.devices, args.events)
    table = FleetTable("city")
    start = time.perf_counter()
    for message in feed:
        table.on_message(message)
    per_message_us = (time.perf_counter() - start) / len(feed) * 1e6
    draws, snapshots = [], []
    for _ in range(20):
        start = time.perf_counter()
        table_lines(table.rows(), time.time(), width=200, height=50)
        draws.append(time.perf_counter() - start)
        start = time.perf_counter()
        json.dumps(table.snapshot())
        snapshots.append(time.perf_counter() - start)
    rows = table.rows()
    print(f"devices {len(rows)}, messages fed {len(feed)}")
    print(f"on_message: {per_message_us:.1f} us per message (mean)")
    print(f"terminal refresh (sort + 50 lines): {statistics.mean(draws) * 1e3:.1f} ms (mean of 20)")
    print(f"--json snapshot: {statistics.mean(snapshots) * 1e3:.1f} ms (mean of 20)")
    print(f"first row: {rows[0].root} {rows[0].trouble!r}; summary {table.snapshot()['summary']}")


if __name__ == "__main__":
    main()
