"""Drain pacing and the hand-packed MQTT 5 properties (no broker needed)."""

from __future__ import annotations

import math

import pytest
from fakes.clock import FakeClock
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config import OutboxConfig
from edge_agent.mqtt import DrainPacer, DrainSettings, _plain_properties, _publish_packet_bytes


def sendable_now(pacer: DrainPacer, size_bytes: int) -> int:
    """How many messages of ``size_bytes`` the pacer lets through without time passing."""
    sent = 0
    while pacer.delay_s() == 0.0:
        pacer.spend(size_bytes)
        sent += 1
        assert sent < 100_000, "pacer never held back"
    return sent


def test_message_rate_allows_a_burst_then_paces_in_quanta() -> None:
    clock = FakeClock(100.0)
    pacer = DrainPacer(100.0, math.inf, burst_s=1.0, quantum_s=0.1, clock=clock)
    assert sendable_now(pacer, 300) == 100  # one second's worth
    wait_s = pacer.delay_s()
    assert wait_s == pytest.approx(0.1)  # held until a quantum (10 messages) refilled
    clock.now_s += 0.05
    assert pacer.delay_s() == pytest.approx(0.05)  # still held: no wake-up per message
    clock.now_s += 0.05
    assert sendable_now(pacer, 300) == 10
    clock.now_s += 3600
    assert sendable_now(pacer, 300) == 100  # the bucket never holds more than the burst


def test_byte_rate_paces_big_messages_and_lets_an_oversized_one_through() -> None:
    clock = FakeClock(100.0)
    pacer = DrainPacer(math.inf, 10_000.0, burst_s=1.0, quantum_s=0.1, clock=clock)
    assert sendable_now(pacer, 4_000) == 3  # 10 000 bytes of credit: 3 messages
    assert pacer.delay_s() == pytest.approx((2_000 + 1_000) / 10_000)
    clock.now_s += 10.0
    assert sendable_now(pacer, 50_000) == 1  # bigger than the bucket: passes, then pays
    assert pacer.delay_s() == pytest.approx(4.1)


def test_unlimited_pacer_never_waits() -> None:
    pacer = DrainPacer(math.inf, math.inf)
    for _ in range(10_000):
        assert pacer.delay_s() == 0.0
        pacer.spend(1 << 20)


def test_drain_settings_from_config_and_validation() -> None:
    config = OutboxConfig(
        drain_rate_msgs_per_s=5, drain_rate_bytes_per_s=2048, historical_after_s=9
    )
    assert DrainSettings.from_config(config) == DrainSettings(5.0, 2048.0, 9.0)
    with pytest.raises(ValueError):
        DrainSettings(rate_msgs_per_s=0)
    with pytest.raises(ValueError):
        DrainSettings(historical_after_s=-1)


def paho_properties(
    content_type: str, user: list[tuple[str, str]], expiry_s: int | None = None
) -> bytes:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = content_type
    props.UserProperty = user
    if expiry_s is not None:
        props.MessageExpiryInterval = expiry_s
    packed: bytes = props.pack()  # type: ignore[no-untyped-call]
    return packed


def decode(packed: bytes) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.unpack(packed)  # type: ignore[no-untyped-call]
    return props


@pytest.mark.parametrize("expiry_s", [None, 120])
def test_hand_packed_properties_decode_like_pahos(expiry_s: int | None) -> None:
    ours = _plain_properties("application/json", (("schema", "é/1"),), expiry_s=expiry_s).pack()
    theirs = paho_properties("application/json", [("v", "1"), ("schema", "é/1")], expiry_s)
    assert len(ours) == len(theirs)
    mine, reference = decode(ours), decode(theirs)
    assert mine.ContentType == reference.ContentType == "application/json"
    assert mine.UserProperty == reference.UserProperty == [("v", "1"), ("schema", "é/1")]
    assert getattr(mine, "MessageExpiryInterval", None) == expiry_s


def test_long_properties_use_a_multi_byte_length() -> None:
    long_value = "x" * 300
    packed = _plain_properties("text/plain", (("k", long_value),)).pack()
    assert decode(packed).UserProperty[-1] == ("k", long_value)
    assert packed[0] & 0x80  # variable byte integer continues


def test_publish_packet_size() -> None:
    # fixed header 1 + remaining length 1; topic 2+5; packet id 2; properties 1; payload 10
    assert _publish_packet_bytes("a/b/c", 10, 1) == 1 + 1 + 7 + 2 + 1 + 10
    assert _publish_packet_bytes("t", 200, 1) == 1 + 2 + 3 + 2 + 1 + 200
