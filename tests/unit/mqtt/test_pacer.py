"""edge_agent.mqtt.pacer: the drain's token bucket, on a fake clock."""

from __future__ import annotations

import math

import pytest
from fakes.clock import FakeClock

from edge_agent.mqtt import DrainPacer


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


def test_trim_spends_no_credit_saved_while_offline() -> None:
    clock = FakeClock(100.0)
    pacer = DrainPacer(100.0, 1_000_000.0, burst_s=1.0, quantum_s=0.1, clock=clock)
    clock.now_s += 3600  # offline for an hour: the bucket is full
    pacer.trim()  # the link is back
    assert sendable_now(pacer, 300) == 10  # one quantum, not a second's worth (100)
    assert pacer.delay_s() == pytest.approx(0.1)
    clock.now_s += 1.0
    assert sendable_now(pacer, 300) == 100  # then the steady rate and its burst as before


def test_trim_caps_the_byte_credit_too_and_never_adds_any() -> None:
    clock = FakeClock(100.0)
    pacer = DrainPacer(math.inf, 10_000.0, burst_s=1.0, quantum_s=0.1, clock=clock)
    clock.now_s += 60
    pacer.trim()
    assert sendable_now(pacer, 400) == 3  # 1,000 bytes of credit (a quantum): 3 x 400
    pacer.trim()  # nothing refilled meanwhile: still held, no credit given
    assert pacer.delay_s() > 0.0


def test_trim_of_an_unlimited_pacer_changes_nothing() -> None:
    pacer = DrainPacer(math.inf, math.inf)
    pacer.trim()
    assert pacer.delay_s() == 0.0
