"""Full-jitter reconnect delays: bounds, growth, reset, and a fleet that is not in step."""

from __future__ import annotations

import random
import statistics

import pytest

from edge_agent.mqtt import MqttSettings
from edge_agent.mqtt.backoff import FullJitterBackoff
from edge_agent.mqtt.client import JitteredClient, new_client


class Recorder:
    """A random source that returns ``fraction`` of the window and records each window."""

    def __init__(self, fraction: float = 1.0) -> None:
        self.fraction = fraction
        self.windows: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.windows.append((low, high))
        return low + self.fraction * (high - low)


def test_windows_double_from_base_up_to_the_cap() -> None:
    recorder = Recorder()
    backoff = FullJitterBackoff(0.5, 6.0, uniform=recorder)
    delays = [backoff.next_delay_s() for _ in range(7)]
    assert [high for _, high in recorder.windows] == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0, 6.0]
    assert all(low == 0.0 for low, _ in recorder.windows)
    assert delays == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0, 6.0]


def test_reset_starts_again_at_the_base() -> None:
    recorder = Recorder()
    backoff = FullJitterBackoff(1.0, 60.0, uniform=recorder)
    for _ in range(5):
        backoff.next_delay_s()
    backoff.reset()
    assert backoff.attempt == 0
    backoff.next_delay_s()
    assert recorder.windows[-1] == (0.0, 1.0)


def test_a_random_source_out_of_bounds_is_clamped_to_the_window() -> None:
    too_high = FullJitterBackoff(1.0, 8.0, uniform=lambda low, high: high * 3)
    too_low = FullJitterBackoff(1.0, 8.0, uniform=lambda low, high: -1.0)
    assert too_high.next_delay_s() == 1.0
    assert too_low.next_delay_s() == 0.0


def test_many_attempts_stay_at_the_cap_without_overflow() -> None:
    backoff = FullJitterBackoff(1.0, 30.0, uniform=lambda low, high: high)
    assert [backoff.next_delay_s() for _ in range(2000)][-1] == 30.0


@pytest.mark.parametrize(("base_s", "cap_s"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 5.0)])
def test_delays_must_be_positive(base_s: float, cap_s: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        FullJitterBackoff(base_s, cap_s)


def test_every_real_delay_lies_inside_its_window() -> None:
    backoff = FullJitterBackoff(1.0, 60.0, uniform=random.Random(7).uniform)
    for attempt in range(12):
        delay_s = backoff.next_delay_s()
        assert 0.0 <= delay_s <= min(60.0, 2.0**attempt)


def test_a_fleet_of_500_devices_does_not_retry_in_step() -> None:
    """After a broker restart 500 devices draw their first delay: spread over the whole
    window, not 500 at the same instant (paho's own back-off: every one at exactly 1 s)."""
    rng = random.Random(2024)
    first_s = [FullJitterBackoff(1.0, 60.0, uniform=rng.uniform).next_delay_s() for _ in range(500)]
    assert all(0.0 <= d <= 1.0 for d in first_s)
    # Per tenth of the window, the count a uniform spread gives (50) within wide bounds.
    buckets = [0] * 10
    for delay_s in first_s:
        buckets[min(9, int(delay_s * 10))] += 1
    assert min(buckets) >= 25 and max(buckets) <= 75, buckets
    # In step, all 500 would land in one 10 ms slot; spread, about 5 do (the busiest ~12).
    per_slot = [0] * 101
    for delay_s in first_s:
        per_slot[int(delay_s * 100)] += 1
    assert max(per_slot) <= 25, max(per_slot)
    assert statistics.pstdev(first_s) > 0.2  # uniform on [0, 1]: 0.29


def test_new_client_reconnects_through_the_jittered_wait() -> None:
    """The hook paho calls before each automatic reconnect is ours (fails loudly if a paho
    upgrade renames it), and it asks the backoff for the delay."""
    assert "_reconnect_wait" in vars(JitteredClient)
    recorder = Recorder(fraction=0.0)  # no actual wait
    settings = MqttSettings(
        "127.0.0.1", 1, "c", reconnect_min_delay_s=0.25, reconnect_max_delay_s=1.0
    )
    client = new_client(settings, clean_session=True, uniform=recorder)
    assert isinstance(client, JitteredClient)
    client._reconnect_wait()
    client._reconnect_wait()
    client._reconnect_wait()
    assert [high for _, high in recorder.windows] == [0.25, 0.5, 1.0]
    client._reconnect_delay = None  # what paho does on a successful CONNACK
    client._reconnect_wait()
    assert recorder.windows[-1] == (0.0, 0.25)


def test_a_reconnect_after_our_own_disconnect_waits_the_hold_off_once() -> None:
    """After a TLS reload's DISCONNECT the same client id must not come back before the
    broker closed the old connection (a takeover would publish our Last Will)."""
    recorder = Recorder(fraction=0.0)  # the jitter alone would reconnect at once
    settings = MqttSettings("127.0.0.1", 1, "c", reconnect_min_delay_s=0.25)
    client = new_client(settings, clean_session=True, uniform=recorder)
    assert isinstance(client, JitteredClient)
    client.hold_off_s = 0.05
    client._reconnect_wait()
    assert client._reconnect_min_delay == 0.05 and client.hold_off_s == 0.0
    client._reconnect_wait()
    assert client._reconnect_min_delay == 0.0  # once only
