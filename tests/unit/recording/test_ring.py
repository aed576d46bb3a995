"""The pre-roll ring: keeps whole GOPs covering at least ``pre_roll_s``, and no more."""

from __future__ import annotations

from edge_agent.recording.ring import Packet, PreRoll


def feed(ring: PreRoll, seconds: float, fps: int = 10, keyframe_every: int = 10) -> None:
    for i in range(round(seconds * fps)):
        ring.add(Packet(pts_ms=i * 1000 // fps, keyframe=i % keyframe_every == 0, data=b"x" * 10))


def test_the_oldest_keyframe_kept_lies_at_least_pre_roll_back() -> None:
    ring = PreRoll(pre_roll_s=3.0)
    feed(ring, seconds=20)
    now_ms = 19_900
    first = ring.first_ms
    assert first is not None
    assert now_ms - first >= 3000  # enough for a clip starting pre_roll_s back
    assert now_ms - first < 3000 + 1000 + 100  # and no more than one GOP beyond that
    assert ring.gops == 4


def test_since_starts_at_the_keyframe_at_or_before_the_time() -> None:
    ring = PreRoll(pre_roll_s=3.0)
    feed(ring, seconds=20)
    packets = list(ring.since(17_500))
    assert packets[0].keyframe and packets[0].pts_ms == 17_000
    assert packets[-1].pts_ms == 19_900
    assert [p.pts_ms for p in packets] == sorted(p.pts_ms for p in packets)


def test_packets_before_the_first_keyframe_are_not_kept() -> None:
    ring = PreRoll(pre_roll_s=3.0)
    ring.add(Packet(0, False, b"abc"))
    assert ring.gops == 0 and ring.bytes == 0
    ring.add(Packet(100, True, b"abcd"))
    assert ring.gops == 1 and ring.bytes == 4


def test_bytes_follow_what_is_kept() -> None:
    ring = PreRoll(pre_roll_s=1.0)
    feed(ring, seconds=30)
    assert ring.bytes == sum(len(p.data) for p in ring.since(0))
    ring.clear()
    assert ring.bytes == 0 and ring.first_ms is None


def test_past_max_bytes_the_oldest_gops_go_whole() -> None:
    ring = PreRoll(pre_roll_s=10.0, max_bytes=250)  # time alone would keep 11 GOPs
    feed(ring, seconds=20)  # 100 bytes a GOP
    assert ring.bytes <= 250 and ring.gops == 2
    packets = list(ring.since(0))
    assert packets[0].keyframe and len(packets) == 20  # whole GOPs, the newest ones
    assert packets[-1].pts_ms == 19_900


def test_the_newest_gop_stays_even_when_alone_it_is_over_max_bytes() -> None:
    ring = PreRoll(pre_roll_s=3.0, max_bytes=50)
    feed(ring, seconds=3)
    assert ring.gops == 1 and ring.bytes == 100  # a clip still has its keyframe
    assert next(ring.since(0)).keyframe
