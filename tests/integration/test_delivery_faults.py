"""Fault tests for store-and-forward (issue 3), against a real mosquitto.

Each test states exactly which seqs and event ids must arrive. The consumer's rule,
which every test checks: every seq from 1 to the last one is either received or listed
in a received gap notice (``{root}/gaps``), never both, and first arrivals are never out
of order within a stream. Duplicates are allowed only for what was in flight.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.delivery import first_arrivals, persistent_consumer
from fakes.lifecycle import event_step
from helpers import wait_until
from realdata import skip_or_fail

from edge_agent.broker import LocalBroker
from edge_agent.encode import Encoder, Topics
from edge_agent.mqtt import DrainSettings, MqttSettings, Publisher, ReceivedMessage, Subscriber
from edge_agent.outbox import EVICTION_PRIORITY, Outbox, OutboxFull
from edge_agent.pipeline import FrameOutput
from edge_agent.sinks import OutboxSink
from edge_agent.stats import build_stats, encode_stats
from edge_agent.types import Lifecycle, MessageClass, OutboundMessage, Thumbnail

TIMEOUT_S = 30.0

pytestmark = pytest.mark.slow


class Consumer:
    """What a command-centre consumer sees of one device: messages with their seq."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[tuple[int, str, ReceivedMessage]] = []  # (seq, topic, message)

    def __call__(self, message: ReceivedMessage) -> None:
        seq_text = message.user_property("seq")
        if seq_text is None and message.content_type == "application/json":
            body = message.json()
            seq_text = str(body["seq"]) if isinstance(body, dict) and "seq" in body else None
        if seq_text is None:
            return  # status: not part of the sequence
        with self._lock:
            self.messages.append((int(seq_text), message.topic, message))

    def seqs(self, part: str = "/") -> list[int]:
        with self._lock:
            return [seq for seq, topic, _ in self.messages if part in topic]

    def event_ids(self) -> dict[int, str]:
        with self._lock:
            return {
                seq: str(m.json()["id"]) for seq, topic, m in self.messages if "/events/" in topic
            }

    def notices(self) -> list[dict[str, object]]:
        with self._lock:
            return [m.json() for _, topic, m in self.messages if topic.endswith("/gaps")]

    def reported(self) -> dict[int, tuple[str, str]]:
        """seq -> (reason, classes) for every seq listed in a gap notice."""
        lost: dict[int, tuple[str, str]] = {}
        for notice in self.notices():
            for gap in notice["gaps"]:  # type: ignore[attr-defined]
                reasons = {k: v for k, v in gap.items() if k not in ("from", "to")}
                label = ",".join(f"{r}:{'+'.join(sorted(c))}" for r, c in sorted(reasons.items()))
                for seq in range(gap["from"], gap["to"] + 1):
                    lost[seq] = (label, "")
        return lost


def duplicates(seqs: list[int]) -> set[int]:
    seen: set[int] = set()
    twice = set()
    for seq in seqs:
        (twice if seq in seen else seen).add(seq)
    return twice


def assert_every_seq_accounted_for(consumer: Consumer, last_seq: int) -> None:
    received = set(consumer.seqs())
    reported = set(consumer.reported())
    assert received | reported == set(range(1, last_seq + 1))
    assert not received & reported, f"received and reported lost: {received & reported}"


def event(root: str, i: int, cls: MessageClass = MessageClass.EVENT) -> OutboundMessage:
    return OutboundMessage(
        topic=f"{root}/events/cam1",
        message_class=cls,
        json_body={"v": 1, "id": f"e{i}", "type": "new"},
    )


def thumbnail(root: str, i: int, size: int = 200) -> OutboundMessage:
    return OutboundMessage(
        topic=f"{root}/thumbs/cam1/e{i}",
        message_class=MessageClass.THUMBNAIL,
        binary_body=bytes([i % 256]) * size,
        content_type="image/jpeg",
    )


def state(root: str, i: int) -> OutboundMessage:
    return OutboundMessage(
        topic=f"{root}/state/cam1/flood",
        message_class=MessageClass.STATE,
        json_body={"v": 1, "id": f"s{i}", "state": "level"},
        retain=True,
    )


@pytest.fixture
def root() -> str:
    return f"city/site{uuid.uuid4().hex[:8]}/dev1"


def consumer_on(broker: LocalBroker, root: str, consumer: Consumer) -> Subscriber:
    """A persistent consumer: its queued messages survive its own reconnects."""
    return persistent_consumer(broker, root, consumer, reconnect_delay_s=(1, 1))


def drain_after_the_outage(
    broker: LocalBroker, box: Outbox, consumer: Consumer, expected_seqs: int
) -> None:
    """Bring the uplink back; return once ``box`` drained, the gap notice arrived and the
    consumer holds ``expected_seqs`` distinct seqs."""
    broker.start()
    wait_until(lambda: box.depth() == 0, TIMEOUT_S, "the outbox to drain")
    wait_until(lambda: consumer.notices(), TIMEOUT_S, "the gap notice")
    wait_until(
        lambda: len(set(consumer.seqs())) >= expected_seqs, TIMEOUT_S, f"{expected_seqs} seqs"
    )


def publisher_for(
    broker: LocalBroker, outbox: Outbox, root: str, drain: DrainSettings | None = None
) -> Publisher:
    return Publisher(
        MqttSettings(
            broker.host,
            broker.port,
            f"agent-{uuid.uuid4().hex[:8]}",
            reconnect_min_delay_s=1,
            reconnect_max_delay_s=1,
        ),
        outbox,
        Topics(root),
        birth_payload={"boot": "test"},
        drain=drain or DrainSettings.unlimited(),
    )


# -- broker SIGKILL in the middle of a burst -------------------------------------------


def test_broker_sigkill_and_restart_in_the_middle_of_a_burst(
    private_broker: LocalBroker, tmp_path: Path, root: str
) -> None:
    """Everything the broker had not acknowledged when it died arrives after its restart,
    in order, with duplicates only of what was in flight.

    What the broker *had* acknowledged was its responsibility: a SIGKILLed mosquitto loses
    what it had queued in RAM for a lagging consumer (docs/delivery.md, broker settings).
    """
    box = Outbox(tmp_path / "o.db", max_bytes=1 << 26, max_rows=100_000)
    consumer = Consumer()
    sub = consumer_on(private_broker, root, consumer)
    sub.start(TIMEOUT_S)
    # A clean restart makes mosquitto save the consumer's session, so the one that
    # restarts after the SIGKILL still knows the subscription (as a production broker
    # with persistence would); otherwise what is sent before the consumer is back is
    # dropped by the broker, which is not what this test is about.
    private_broker.restart()
    wait_until(lambda: sub.connects >= 2, TIMEOUT_S, "the consumer to reconnect")
    box.enqueue_many([event(root, i) for i in range(3000)])  # the burst: seq 1..3000
    # Paced so that the consumer keeps up and the kill lands in the middle of the burst.
    pub = publisher_for(private_broker, box, root, DrainSettings(1000.0, 1e9))
    pub.start()
    try:
        # Flowing, with most of the burst still to send: the kill lands in the middle.
        wait_until(
            lambda: len(consumer.seqs()) >= 300 and box.depth() >= 1000,
            TIMEOUT_S,
            "the burst to flow",
        )
        private_broker.kill()
        wait_until(lambda: not pub.connected, TIMEOUT_S, "the publisher to notice")
        # Once the acks that did arrive are settled, what is still stored is exactly what
        # the broker had not acknowledged when it died.
        wait_until(
            lambda: box.depth() == 3000 - pub.stats().acked_total, TIMEOUT_S, "acks to settle"
        )
        unacknowledged = {m.seq for m in box.pending(10_000)}
        in_flight = set(pub.inflight_seqs())
        # (In flight may be empty: the pacer sends in short bursts. Then no duplicate at all
        # is allowed below.)
        assert 1000 <= len(unacknowledged) < 3000, "the kill did not land mid-burst"
        # The burst goes on during the outage: seq 3001..3500.
        for start in range(3000, 3500, 50):
            box.enqueue_many([event(root, i) for i in range(start, start + 50)])
            pub.wake()
        private_broker.start()
        acked_before_kill = set(range(1, 3001)) - unacknowledged
        must_arrive = set(range(1, 3501)) - acked_before_kill
        wait_until(
            lambda: must_arrive <= set(consumer.seqs()), TIMEOUT_S, "every unacknowledged seq"
        )
        wait_until(lambda: box.depth() == 0, TIMEOUT_S, "the outbox to empty")
    finally:
        pub.stop(5)
        sub.stop()
        box.close()
    seqs = consumer.seqs()
    assert set(seqs) <= set(range(1, 3501))
    assert first_arrivals(seqs) == sorted(set(seqs))  # never out of order
    # Sent twice: only what was in flight (sent, unacknowledged) when the broker died.
    assert duplicates(seqs) <= in_flight <= unacknowledged
    assert all(event_id == f"e{seq - 1}" for seq, event_id in consumer.event_ids().items())
    assert not consumer.notices()  # nothing was dropped by the agent
    lost_by_broker = acked_before_kill - set(seqs)
    print(f"broker lost {len(lost_by_broker)} acknowledged message(s) it had queued")


# -- agent SIGKILL in the middle of a drain --------------------------------------------

CHILD_AGENT = textwrap.dedent(
    """
    import json, logging, signal, sys, threading
    from pathlib import Path
    from edge_agent.encode import Encoder, Topics
    from edge_agent.mqtt import DrainSettings, MqttSettings, Publisher
    from edge_agent.outbox import Outbox
    from edge_agent.types import MessageClass, OutboundMessage

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    args = json.loads(sys.argv[1])
    box = Outbox(Path(args["outbox"]), max_bytes=1 << 26, max_rows=100_000)
    print(json.dumps({"recovered_from": box.stats().recovered_from}), flush=True)
    root = args["root"]
    box.enqueue_many([
        OutboundMessage(f"{root}/events/cam1", MessageClass.EVENT,
                        json_body={"v": 1, "id": f"e{i}", "type": "new"})
        for i in range(args.get("enqueue", 0))
    ])
    pub = Publisher(
        MqttSettings("127.0.0.1", args["port"], args["client_id"],
                     reconnect_min_delay_s=1, reconnect_max_delay_s=1),
        box, Topics(root), birth_payload={"boot": "child"},
        drain=DrainSettings(rate_msgs_per_s=args["rate"], rate_bytes_per_s=1e9),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pub.start()
    stop.wait()
    pub.stop(5)
    box.close()
    """
)


def start_child(
    child_processes: list[subprocess.Popen[str]], **args: object
) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_AGENT, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child_processes.append(child)
    return child


def stored_seqs(path: Path) -> set[int]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {int(seq) for (seq,) in db.execute("SELECT seq FROM messages")}


def test_agent_sigkill_in_the_middle_of_a_drain_loses_nothing(
    broker: LocalBroker, tmp_path: Path, root: str, child_processes: list[subprocess.Popen[str]]
) -> None:
    outbox_path = tmp_path / "outbox.db"
    with Outbox(outbox_path, max_bytes=1 << 26, max_rows=100_000) as box:
        box.enqueue_many([event(root, i) for i in range(3000)])  # an outage's backlog
    consumer = Consumer()
    sub = consumer_on(broker, root, consumer)
    sub.start(TIMEOUT_S)
    common = {"port": broker.port, "outbox": str(outbox_path), "root": root, "rate": 1000}
    try:
        first = start_child(child_processes, client_id=f"agent-{root[10:18]}", **common)
        wait_until(lambda: len(consumer.seqs()) >= 600, TIMEOUT_S, "the drain to be under way")
        first.send_signal(signal.SIGKILL)
        first.wait(TIMEOUT_S)
        left = stored_seqs(outbox_path)  # what the next run will send
        assert 0 < len(left) < 3000, "the kill did not land mid-drain"

        second = start_child(child_processes, client_id=f"agent-{root[10:18]}", **common)
        wait_until(lambda: set(consumer.seqs()) >= set(range(1, 3001)), TIMEOUT_S, "all 3000")
        second.send_signal(signal.SIGTERM)
        _out, err = second.communicate(timeout=TIMEOUT_S)
        assert second.returncode == 0, err
    finally:
        sub.stop()
    seqs = consumer.seqs()
    assert set(seqs) == set(range(1, 3001))
    assert consumer.event_ids() == {seq: f"e{seq - 1}" for seq in range(1, 3001)}
    assert first_arrivals(seqs) == list(range(1, 3001))
    # Sent again: only rows still stored at the kill, i.e. in flight or acknowledged but
    # not yet deleted (deletes are batched): at most max_inflight + batch of them.
    assert duplicates(seqs) <= left
    assert len(duplicates(seqs)) <= 20 + 100
    assert stored_seqs(outbox_path) == set()


# -- outbox cap reached during a long outage ----------------------------------------


def expected_after_cap(classes: list[MessageClass], max_rows: int) -> tuple[list[int], list[int]]:
    """The documented policy, written independently: (kept seqs, evicted seqs)."""
    kept: list[tuple[int, MessageClass]] = []
    evicted: list[int] = []
    for seq, cls in enumerate(classes, start=1):
        kept.append((seq, cls))
        while len(kept) > max_rows:
            victim = min(kept, key=lambda item: (-EVICTION_PRIORITY[item[1]], item[0]))
            kept.remove(victim)
            evicted.append(victim[0])
    return [seq for seq, _ in kept], sorted(evicted)


def test_cap_reached_during_a_long_outage_evicts_as_documented_and_reports_it(
    private_broker: LocalBroker, tmp_path: Path, root: str
) -> None:
    max_rows = 40
    box = Outbox(tmp_path / "o.db", max_bytes=1 << 26, max_rows=max_rows)
    consumer = Consumer()
    sub = consumer_on(private_broker, root, consumer)
    sub.start(TIMEOUT_S)
    private_broker.stop()  # the uplink goes down for a long time
    pub = publisher_for(private_broker, box, root)
    pub.start()
    # A busy scene: each step an event and its thumbnail; every 5th a state change,
    # every 10th an alert. One enqueue per step, as the pipeline does.
    batches: list[list[OutboundMessage]] = []
    classes: list[MessageClass] = []
    for i in range(60):
        batch = [event(root, i), thumbnail(root, i)]
        if i % 5 == 0:
            batch.append(state(root, i))
        if i % 10 == 0:
            batch.append(event(root, 1000 + i, MessageClass.ALERT))
        batches.append(batch)
        classes.extend(m.message_class for m in batch)
    by_seq = {seq: m for seq, m in enumerate((m for b in batches for m in b), start=1)}
    for batch in batches:
        box.enqueue_many(batch)  # never raises: the outbox makes room
        pub.wake()
    kept, evicted = expected_after_cap(classes, max_rows)
    last_seq = len(classes)
    try:
        assert [m.seq for m in box.pending(1000)] == kept
        stats = box.stats()
        evicted_classes: dict[str, int] = {}
        for seq in evicted:
            name = by_seq[seq].message_class.value
            evicted_classes[name] = evicted_classes.get(name, 0) + 1
        assert stats.evicted_by_class == evicted_classes
        # Thumbnails and states all went before the first event did; alerts all stayed.
        assert evicted_classes == {"thumbnail": 60, "state": 12, "event": 26}
        # The stats message says so while the outage lasts.
        body = json.loads(
            encode_stats(
                build_stats(
                    boot_id="b",
                    uptime_s=1.0,
                    outbox=stats,
                    publisher=pub.stats(),
                    cameras={},
                )
            )
        )
        assert body["outbox"]["evicted"] == evicted_classes
        assert body["outbox"]["gaps_unreported"] == len(evicted)
        assert body["publisher"]["connected"] is False

        drain_after_the_outage(private_broker, box, consumer, len(kept) + 1)  # kept + notice
    finally:
        pub.stop(5)
        sub.stop()
        box.close()
    (notice,) = consumer.notices()
    notice_seq = last_seq + 1
    assert notice["seq"] == notice_seq
    assert set(consumer.seqs()) == {*kept, notice_seq}
    assert sorted(consumer.reported()) == evicted
    assert_every_seq_accounted_for(consumer, notice_seq)
    # Per range, the counts by class add up to the range's length, all 'evicted'.
    for gap in notice["gaps"]:  # type: ignore[attr-defined]
        assert set(gap) <= {"from", "to", "evicted"}
        assert sum(gap["evicted"].values()) == gap["to"] - gap["from"] + 1
    # Delivery order: the notice, then the alerts, then the rest in seq order.
    alerts = [s for s in kept if by_seq[s].message_class is MessageClass.ALERT]
    rest = [s for s in kept if by_seq[s].message_class is not MessageClass.ALERT]
    assert first_arrivals(consumer.seqs()) == [notice_seq, *alerts, *rest]
    assert all(
        event_id == str(by_seq[seq].json_body["id"])  # type: ignore[index]
        for seq, event_id in consumer.event_ids().items()
    )


# -- a corrupt outbox file at start --------------------------------------------------


def test_corrupt_outbox_at_start_is_kept_aside_and_the_agent_starts_fresh(
    broker: LocalBroker, tmp_path: Path, root: str, child_processes: list[subprocess.Popen[str]]
) -> None:
    outbox_path = tmp_path / "outbox.db"
    garbage = b"SQLite format 3\x00" + os.urandom(8192)
    outbox_path.write_bytes(garbage)
    consumer = Consumer()
    sub = consumer_on(broker, root, consumer)
    sub.start(TIMEOUT_S)
    try:
        child = start_child(
            child_processes,
            port=broker.port,
            outbox=str(outbox_path),
            root=root,
            rate=1000,
            client_id=f"agent-{root[10:18]}",
            enqueue=5,
        )
        assert child.stdout is not None
        report = json.loads(child.stdout.readline())  # what the agent exposes for status
        wait_until(lambda: len(consumer.seqs()) >= 5, TIMEOUT_S, "5 events from a fresh start")
        child.send_signal(signal.SIGTERM)
        _out, err = child.communicate(timeout=TIMEOUT_S)
    finally:
        sub.stop()
    kept = Path(report["recovered_from"])
    assert kept.parent == tmp_path and kept.name.startswith("outbox.db.corrupt-")
    assert kept.read_bytes() == garbage  # kept for inspection, untouched
    assert "ERROR" in err and "OUTBOX RESET" in err and str(kept) in err  # said loudly
    assert consumer.event_ids() == {1: "e0", 2: "e1", 3: "e2", 4: "e3", 5: "e4"}
    assert child.returncode == 0


# -- a full disk -----------------------------------------------------------------------


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs: a disk that really fills up."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        reason = f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode})"
        skip_or_fail(
            f"{reason}; the injected-error unit tests still cover the logic",
            ci_reason=f"CI is set but {reason}; run the tests as root or with CAP_SYS_ADMIN",
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_disk_degrades_as_documented_and_recovers(
    private_broker: LocalBroker, small_filesystem: Path, root: str
) -> None:
    ballast = small_filesystem / "ballast"
    ballast.write_bytes(b"\0" * 300_000)  # someone else's logs filling the card
    box = Outbox(small_filesystem / "outbox.db", max_bytes=64 << 20, max_rows=100_000)
    consumer = Consumer()
    sub = consumer_on(private_broker, root, consumer)
    sub.start(TIMEOUT_S)
    private_broker.stop()  # an outage, so the backlog grows until the disk is full
    pub = publisher_for(private_broker, box, root)
    pub.start()
    stored: dict[int, bytes] = {}
    failures = 0
    step = 0
    # The pipeline's loop: it counts the failures and keeps going (docs/delivery.md).
    while failures < 5:
        try:
            for message in box.enqueue_many([event(root, step), thumbnail(root, step, 3000)]):
                stored[message.seq] = message.payload
        except OutboxFull:
            failures += 1
        step += 1
        assert step < 1000, "the disk never filled"
    try:
        stats = box.stats()
        assert stats.write_failures == 5 and "disk full" in str(stats.last_error)
        assert stats.unstored_by_class == {"event": 5, "thumbnail": 5}
        # Nothing already stored was touched.
        assert {m.seq: m.payload for m in box.pending(10_000)} == stored
        ballast.unlink()  # space comes back
        after = box.enqueue_many([event(root, 9000), thumbnail(root, 9000)])
        last_seq = after[-1].seq
        assert last_seq == len(stored) + 10 + 2  # the 10 unstored seqs were not reused
        drain_after_the_outage(private_broker, box, consumer, len(stored) + 3)
    finally:
        pub.stop(5)
        sub.stop()
        box.close()
    received = set(consumer.seqs())
    assert received == {*stored, after[0].seq, after[1].seq, last_seq + 1}
    unstored = set(range(1, last_seq + 1)) - set(stored) - {after[0].seq, after[1].seq}
    assert set(consumer.reported()) == unstored and len(unstored) == 10
    assert all(reason.startswith("unstored:") for reason, _ in consumer.reported().values())
    assert_every_seq_accounted_for(consumer, last_seq + 1)
    with contextlib.closing(sqlite3.connect(small_filesystem / "outbox.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_an_end_the_full_disk_refused_arrives_once_there_is_room_and_nothing_stays_open(
    private_broker: LocalBroker, small_filesystem: Path, root: str
) -> None:
    """What an independent test found: the ``end`` of an event, refused by a full disk, was
    never sent, and the next start sent a false ``end_reason: "restart"`` for it."""
    ballast = small_filesystem / "ballast"
    ballast.write_bytes(b"\0" * 300_000)
    box = Outbox(small_filesystem / "outbox.db", max_bytes=64 << 20, max_rows=100_000)
    consumer = Consumer()
    sub = consumer_on(private_broker, root, consumer)
    sub.start(TIMEOUT_S)
    private_broker.stop()  # an outage: the backlog fills the disk
    pub = publisher_for(private_broker, box, root)
    pub.start()
    sink = OutboxSink(box, Encoder(Topics(root), "boot1"), pub.wake, retry_interval_s=0.0)
    try:
        sink.emit(event_step("e1", Lifecycle.NEW))
        step = 0
        while sink.held == 0:  # the pipeline goes on while the disk fills up
            thumb = Thumbnail("e1", "cam1", bytes([step % 256]) * 3000, 0.9)
            sink.emit(FrameOutput(thumbnails=(thumb,)))
            step += 1
            assert step < 1000, "the disk never filled"
        sink.emit(event_step("e1", Lifecycle.END))  # refused too: held
        assert sink.held == 2
        assert [(m.json_body or {})["id"] for m in box.open_lifecycles()] == ["e1"]
        ballast.unlink()  # space comes back
        sink.retry()  # the agent's housekeeping tick
        assert sink.held == 0 and box.open_lifecycles() == []
        last_seq = box.stats().last_seq
        private_broker.start()
        wait_until(lambda: box.depth() == 0, TIMEOUT_S, "the outbox to drain")
        wait_until(lambda: len(set(consumer.seqs())) >= last_seq, TIMEOUT_S, f"{last_seq} seqs")
        sink.close()  # a clean stop: nothing left to say
    finally:
        pub.stop(5)
        sub.stop()
        box.close()
    # Every seq arrived, none was lost: the end came last, after what the full disk held.
    assert set(consumer.seqs()) == set(range(1, last_seq + 1)) and consumer.notices() == []
    assert consumer.event_ids() == {1: "e1", last_seq: "e1"}
    (end,) = [m.json() for seq, _, m in consumer.messages if seq == last_seq]
    assert end["type"] == "end" and "end_reason" not in end  # a true end, not "restart"
    reopened = Outbox(small_filesystem / "outbox.db", max_bytes=64 << 20, max_rows=100_000)
    assert reopened.open_lifecycles() == []  # the next start ends nothing as "restart"
    reopened.close()
