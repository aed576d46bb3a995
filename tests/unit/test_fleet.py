"""The fleet view's table (edge_agent.fleet, edge_agent.fleet_render) with a fixed clock:
what each message tells, the order by trouble, gap counting and the rendered widths."""

from __future__ import annotations

import json

import pytest
from fakes.clock import FakeClock

from edge_agent.fleet import (
    RANK_CAMERA,
    RANK_GAPS,
    RANK_OFFLINE,
    RANK_OK,
    RANK_OUTBOX,
    RANK_SILENT,
    RANK_STOPPED,
    FleetTable,
    fleet_topics,
)
from edge_agent.fleet_render import age, plain_line, table_lines
from edge_agent.mqtt import ReceivedMessage

T0 = 1_764_448_000.0


def status(device: str, state: str = "online", *, retain: bool = True, **fields: object):
    body: dict[str, object] = {"v": 1, "state": state, "version": "0.1.0", "boot": "8a5aae99"}
    body.update(model="ssd_mobilenet_v1", cameras=["cam1", "cam2"])
    if state != "offline":
        body["ts"] = T0 - 3600
    body.update(fields)
    return message(f"city/plaza/{device}/status", body, retain=retain)


def stats(device: str, depth_rows: int = 0, condition: str = "ok", **cameras: object):
    figures = {"cam1": {"fps": 5.0, "source": {"connected": True, "ended": False}},
               "cam2": {"fps": 5.0, "source": {"connected": True, "ended": False}}}  # fmt: skip
    figures.update(cameras)  # type: ignore[arg-type]
    body = {"v": 1, "outbox": {"depth_rows": depth_rows}, "cameras": figures,
            "condition": condition}  # fmt: skip
    return message(f"city/plaza/{device}/stats", body, expiry_s=120)


def event(device: str, seq: int) -> ReceivedMessage:
    return message(f"city/plaza/{device}/events/cam1", {"v": 1, "type": "new", "seq": seq})


def message(
    topic: str, body: object, *, retain: bool = False, expiry_s: int | None = None
) -> ReceivedMessage:
    return ReceivedMessage(
        topic, json.dumps(body).encode(), 1, retain, (), "application/json", expiry_s
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def feed(table: FleetTable, *messages: ReceivedMessage) -> None:
    for item in messages:
        table.on_message(item)


def row(table: FleetTable, device: str):
    (found,) = [r for r in table.rows() if r.device == device]
    return found


def test_a_retained_birth_and_stats_fill_a_row(clock: FakeClock) -> None:
    table = FleetTable("city", clock=clock)
    feed(table, status("pi-001"))
    first = row(table, "pi-001")
    assert (first.state, first.since_s, first.last_seen_s) == ("online", T0 - 3600, None)
    assert (first.version, first.model, first.outbox_rows, first.condition) == (
        "0.1.0", "ssd_mobilenet_v1", None, None)  # fmt: skip
    assert first.cameras == (("cam1", "ok"), ("cam2", "ok")) and first.rank == RANK_OK
    clock.now_s += 2
    feed(table, stats("pi-001", depth_rows=3))
    second = row(table, "pi-001")
    assert (second.outbox_rows, second.condition, second.last_seen_s) == (3, "ok", T0 + 2)
    assert table.snapshot()["rows"] == [second.as_dict()]


def test_offline_since_is_when_the_will_came_or_unknown_when_it_was_retained(
    clock: FakeClock,
) -> None:
    table = FleetTable("city", clock=clock)
    feed(table, status("pi-001"), status("pi-002", "offline"))
    clock.now_s += 30
    feed(table, status("pi-001", "offline", retain=False))
    assert (row(table, "pi-001").state, row(table, "pi-001").since_s) == ("offline", T0 + 30)
    assert row(table, "pi-001").last_seen_s is None  # the broker sent the will, not the device
    assert (row(table, "pi-002").state, row(table, "pi-002").since_s) == ("offline", None)
    # The same retained will again (a reconnect of the view) does not move "since".
    clock.now_s += 30
    feed(table, status("pi-001", "offline", retain=True))
    assert row(table, "pi-001").since_s == T0 + 30


def test_rows_are_sorted_by_trouble_then_by_name(clock: FakeClock) -> None:
    table = FleetTable("city", clock=clock, deep_outbox_rows=100)
    down_long = [status("a-down-early"), status("a-down-early", "offline", retain=True)]
    feed(table, *down_long)
    feed(table, status("b-ok"), stats("b-ok"))
    feed(table, status("c-gaps"), stats("c-gaps"), event("c-gaps", 1), event("c-gaps", 4))
    feed(table, status("d-outbox"), stats("d-outbox", depth_rows=500))
    feed(table, status("d-outbox-deeper"), stats("d-outbox-deeper", depth_rows=5000))
    covered = message("city/plaza/e-covered/state/cam2/tamper", {"state": "covered"}, retain=True)
    feed(table, status("e-covered"), stats("e-covered"), covered)
    unplugged = {"fps": 0.0, "source": {"connected": False, "ended": False}}
    feed(table, status("f-camera"), stats("f-camera", condition="camera_fault", cam1=unplugged))
    feed(table, status("g-stopped", "stopped"))
    feed(table, status("h-down"))
    clock.now_s += 10
    feed(table, status("h-down", "offline", retain=False))
    order = [(r.device, r.rank) for r in table.rows()]
    assert order == [
        ("a-down-early", RANK_OFFLINE),  # since unknown: before the view began, so longest
        ("h-down", RANK_OFFLINE),
        ("g-stopped", RANK_STOPPED),
        ("e-covered", RANK_CAMERA),
        ("f-camera", RANK_CAMERA),
        ("d-outbox-deeper", RANK_OUTBOX),
        ("d-outbox", RANK_OUTBOX),
        ("c-gaps", RANK_GAPS),
        ("b-ok", RANK_OK),
    ]
    assert row(table, "f-camera").cameras == (("cam1", "disconnected"), ("cam2", "ok"))
    assert row(table, "e-covered").trouble == "camera: cam2 covered"
    assert table.snapshot()["summary"] == {
        "offline": 2, "stopped": 1, "silent": 0, "camera": 2, "outbox": 2, "gaps": 1, "ok": 1,
    }  # fmt: skip


def test_a_starting_device_without_frames_yet_is_not_a_camera_fault(clock: FakeClock) -> None:
    table = FleetTable("city", clock=clock)
    none_yet = {"fps": 0.0, "source": {"connected": True, "ended": False}}
    feed(table, status("pi-001"), stats("pi-001", condition="starting", cam1=none_yet))
    assert row(table, "pi-001").rank == RANK_OK
    feed(table, stats("pi-001", condition="camera_fault", cam1=none_yet))
    assert row(table, "pi-001").trouble == "camera: cam1 no frames"


def test_an_online_device_silent_for_three_stats_intervals_is_trouble(clock: FakeClock) -> None:
    table = FleetTable("city", clock=clock)
    feed(table, status("pi-001"), stats("pi-001"))  # expiry 120 s: a 60 s interval
    clock.now_s += 180
    assert row(table, "pi-001").rank == RANK_OK
    clock.now_s += 1
    assert (row(table, "pi-001").rank, row(table, "pi-001").trouble) == (RANK_SILENT, "silent")
    feed(table, stats("pi-001"))
    assert row(table, "pi-001").rank == RANK_OK


def test_gaps_are_counted_missing_then_late_or_reported_lost(clock: FakeClock) -> None:
    table = FleetTable("city", clock=clock)
    feed(table, status("pi-001"), event("pi-001", 10), event("pi-001", 15))
    assert (row(table, "pi-001").gaps_missing, row(table, "pi-001").gaps_lost) == (4, 0)
    feed(table, event("pi-001", 12), event("pi-001", 12))  # late, then a duplicate
    assert row(table, "pi-001").gaps_missing == 3
    # 12 was received: the device may report it later all the same (a copy in flight at
    # a crash); it stays received.
    notice = {"v": 1, "gaps": [{"from": 12, "to": 14, "evicted": {"event": 3}}], "seq": 16}
    feed(table, message("city/plaza/pi-001/gaps", notice))
    found = row(table, "pi-001")
    assert (found.gaps_missing, found.gaps_lost, found.rank) == (1, 2, RANK_GAPS)
    assert found.trouble == "gaps: 2 lost, 1 missing"
    # A retained state replayed on subscribe is not news: no gap from its old seq.
    feed(table, message("city/plaza/pi-001/state/cam1/flood", {"seq": 90}, retain=True))
    assert row(table, "pi-001").gaps_missing == 1
    # A counter restart (corrupt outbox, new boot) starts the ledger afresh.
    feed(table, status("pi-001", retain=False, boot="3f9c01aa", outbox_reset="/x"))
    feed(table, event("pi-001", 1))
    assert row(table, "pi-001").gaps_missing == 0


def test_without_events_only_reported_gaps_count(clock: FakeClock) -> None:
    table = FleetTable("city", clock=clock, exact_gaps=False)
    feed(table, status("pi-001"))
    feed(table, message("city/plaza/pi-001/state/cam1/flood", {"state": "none", "seq": 3}))
    feed(table, message("city/plaza/pi-001/state/cam1/flood", {"state": "puddle", "seq": 9}))
    assert row(table, "pi-001").gaps == 0  # seqs 4-8 went to topics the view does not read
    assert fleet_topics("city", None, "fleet-1", with_events=False) == [
        "city/+/+/status", "city/+/+/stats", "city/+/+/state/+/+", "city/+/+/gaps",
        "city/+/+/reply/fleet-1", "city/+/+/reply/announce",
    ]  # fmt: skip
    assert "city/plaza/+/thumbs/+/+" in fleet_topics("city", "plaza", "fleet-1")


def test_announce_answers_and_a_self_test_birth(clock: FakeClock) -> None:
    table = FleetTable("city", clock=clock, reply_to="fleet-7")
    feed(table, status("pi-001"), status("pi-002"), status("pi-003", "offline"))
    asked = table.online_roots()
    assert sorted(asked) == [("plaza", "pi-001"), ("plaza", "pi-002")]
    feed(table, message("city/plaza/pi-001/reply/fleet-7", {"ok": True}), stats("pi-001"))
    feed(table, message("city/plaza/pi-009/reply/fleet-7", {"ok": True}))  # no such device
    assert table.waiting_for(asked) == [("plaza", "pi-002")] and len(table) == 3
    selftest = status("pi-003", retain=False, selftest=True)
    feed(table, selftest)
    assert row(table, "pi-003").state == "offline"


def test_a_longer_prefix_is_understood(clock: FakeClock) -> None:
    table = FleetTable("city/north", clock=clock)
    table.on_message(message("city/north/plaza/pi-001/status", {"state": "online", "ts": T0}))
    assert [(r.site, r.device, r.state) for r in table.rows()] == [("plaza", "pi-001", "online")]


def test_the_table_fits_its_width_and_height(clock: FakeClock) -> None:
    table = FleetTable("city", clock=clock)
    feed(table, status("pi-001"), stats("pi-001", depth_rows=12))
    feed(table, status("a-very-long-device-name-that-will-not-fit-anywhere-at-all"))
    for index in range(30):
        feed(table, status(f"post-{index:03d}"))
    clock.now_s += 5
    feed(table, status("pi-001", "offline", retain=False))
    clock.now_s += 725
    lines = table_lines(table.rows(), clock.now_s, width=100)
    assert all(len(line) <= 100 for line in lines)
    header, first = lines[1], lines[2]
    assert header.split()[:4] == ["DEVICE", "STATE", "SINCE", "SEEN"]
    # Columns line up: every row's STATE starts where the header's does.
    assert all(line.index(" online ") == header.index("STATE") - 1 for line in lines[3:])
    assert first.startswith("plaza/pi-001") and "offline  12m05s" in first
    long_name = next(line for line in lines if line.startswith("plaza/a-very"))
    assert long_name[31] == "…" and long_name[32:34] == "  "  # cut to the column's 32
    assert lines[0].startswith("32 device(s) at ") and lines[0].endswith(": 1 offline")
    short = table_lines(table.rows(), clock.now_s, width=60, height=10)
    assert len(short) == 10 and short[-1] == "… 25 more device(s) (widen or use --json)"
    assert all(len(line) <= 60 for line in short)


def test_plain_lines_and_ages() -> None:
    assert [age(s) for s in (None, -3, 0, 59.9, 60, 3599, 3600, 86_399, 86_400)] == [
        "?", "0s", "0s", "59s", "1m00s", "59m59s", "1h00m", "23h59m", "1d00h",
    ]  # fmt: skip
    table = FleetTable("city", clock=FakeClock(T0))
    feed(table, status("pi-001", "offline"))
    (line,) = [plain_line(r, T0) for r in table.rows()]
    assert " plaza/pi-001 offline since=? seen=- version=0.1.0 " in line
    assert line.endswith("cameras=2_ok !! offline")
