import json

from edge_agent.mqtt import ReceivedMessage
from edge_agent.watch import SeqLedger, Watcher, describe, topic_filter

ROOT = "city/plaza/pi-1"


def event(
    seq: int, *, event_id: str = "e1", kind: str = "events/cam1", retain: bool = False
) -> ReceivedMessage:
    body = {
        "v": 1,
        "type": "new",
        "id": event_id,
        "label": "person",
        "score": 0.8,
        "zones": ["z"],
        "ts": 0,
        "seq": seq,
    }
    return ReceivedMessage(f"{ROOT}/{kind}", json.dumps(body).encode(), 1, retain)


def watch(*messages: ReceivedMessage, as_json: bool = False) -> tuple[Watcher, list[str]]:
    lines: list[str] = []
    watcher = Watcher(lines.append, as_json=as_json)
    for message in messages:
        watcher.on_message(message)
    return watcher, lines


def test_topic_filters() -> None:
    assert topic_filter("city") == "city/#"
    assert topic_filter("city", "plaza") == "city/plaza/#"
    assert topic_filter("city", "plaza", "pi-1") == "city/plaza/pi-1/#"
    assert topic_filter("city", None, "pi-1") == "city/+/pi-1/#"


def test_ledger_classifies_duplicates_gaps_and_late_arrivals() -> None:
    ledger = SeqLedger()
    assert ledger.record(1) == ("ok", [])
    assert ledger.record(2) == ("ok", [])
    assert ledger.record(2) == ("duplicate", [])
    assert ledger.record(5) == ("gap", [3, 4])
    assert ledger.record(3) == ("late", [])
    assert ledger.lost([4]) == [4]
    assert ledger.missing == set()


def test_a_watch_started_mid_backlog_keeps_older_messages() -> None:
    ledger = SeqLedger()
    assert ledger.record(50) == ("ok", [])  # an alert that jumped the queue
    assert [ledger.record(s)[0] for s in (41, 42, 42)] == ["late", "late", "duplicate"]


def test_first_seq_seen_is_not_a_gap() -> None:
    assert SeqLedger().record(4711) == ("ok", [])


def test_duplicates_are_dropped_and_counted() -> None:
    watcher, lines = watch(event(1), event(1), event(2))
    assert len(lines) == 2 and watcher.duplicates == 1
    assert "NEW" in lines[0] and "person" in lines[0] and "seq=1" in lines[0]


def test_gap_is_reported_then_explained_by_the_gaps_notice() -> None:
    notice = ReceivedMessage(
        f"{ROOT}/gaps",
        json.dumps(
            {"v": 1, "seq": 9, "gaps": [{"from": 3, "to": 4, "evicted": {"event": 2}}]}
        ).encode(),
        1,
        False,
    )
    _, lines = watch(event(1), event(2), event(5), notice)
    assert any("missing seq 3-4" in line for line in lines)
    assert any("seq 3-4 dropped: lost" in line for line in lines)


def test_retained_messages_do_not_enter_the_ledger() -> None:
    watcher, lines = watch(event(40, kind="state/cam1/flood", retain=True), event(1))
    assert len(lines) == 2 and watcher.ledgers[ROOT].highest == 1


def test_devices_have_separate_ledgers() -> None:
    other = ReceivedMessage("city/plaza/pi-2/events/cam1", event(1).payload, 1, False)
    watcher, lines = watch(event(1), other)
    assert len(lines) == 2 and set(watcher.ledgers) == {ROOT, "city/plaza/pi-2"}


def test_json_output_carries_notes() -> None:
    _, lines = watch(event(1), event(3), as_json=True)
    records = [json.loads(line) for line in lines]
    assert records[1]["payload"]["seq"] == 3
    assert records[1]["notes"] == ["missing seq 2 (late or lost)"]


def test_describe_thumbnail_state_and_status() -> None:
    assert "thumbnail cam1 event=abc 3 bytes" in describe(
        f"{ROOT}/thumbs/cam1/abc", b"\xff\xd8\xff", "image/jpeg"
    )
    state = json.dumps({"state": "puddle", "ts": 0, "seq": 4}).encode()
    assert "flood=puddle" in describe(f"{ROOT}/state/cam1/flood", state)
    status = json.dumps({"state": "online", "version": "0.1.0", "boot": "b1"}).encode()
    assert "status online" in describe(f"{ROOT}/status", status)
    assert "not JSON" in describe(f"{ROOT}/events/cam1", b"\x00\x01")


HOSTILE_PAYLOADS = [
    b"",
    b"\xff\xfe",
    b"[]",
    b"null",
    b"{",
    b"[" * 50_000 + b"]" * 50_000,  # json.loads raised RecursionError: a traceback each
    b'{"seq": "x", "ts": 1e300}',  # time.localtime(1e300) raised OverflowError
    b'{"seq": -1, "ts": NaN, "state": 5}',
    json.dumps({"seq": 7, "ts": True, "label": [], "score": "x", "zones": 7, "id": {}}).encode(),
    json.dumps({"state": ["online"], "cameras": 5, "version": {"a": 1}, "outbox": []}).encode(),
]
HOSTILE_TOPICS = [
    f"{ROOT}/{kind}"
    for kind in (
        "events/cam1",
        "status",
        "stats",
        "gaps",
        "state/cam1/flood",
        "counts/cam1/kerb",
        "thumbs/cam1/e1",
        "reply/ping",
    )
] + ["city", f"{ROOT}/status/extra"]


def test_what_a_broken_or_hostile_device_publishes_never_breaks_the_operator_s_view() -> None:
    """Every kind of topic with payloads no device of ours sends: a line (or nothing) for
    each, never an exception (the watch printed a traceback for each, and went on)."""
    from edge_agent.fleet import FleetTable
    from edge_agent.fleet_render import plain_line, table_lines

    table = FleetTable("city")
    for as_json in (False, True):
        watcher = Watcher(lambda line: None, as_json=as_json)
        for topic in HOSTILE_TOPICS:
            for payload in HOSTILE_PAYLOADS:
                for retain in (False, True):
                    message = ReceivedMessage(topic, payload, 1, retain)
                    watcher.on_message(message)
                    table.on_message(message)
                    describe(topic, payload)
    for item in table.rows():
        plain_line(item, now_s=0.0)
    table_lines(table.rows(), now_s=0.0, width=80)
