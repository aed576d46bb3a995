"""hw_sim.fleet.stats: percentiles, seq accounting per device, histograms, windows."""

from __future__ import annotations

import math

import pytest
from hw_sim.fleet.device import seq_of
from hw_sim.fleet.stats import (
    account_seqs,
    gap_ranges,
    max_in_window,
    per_second,
    percentile,
    text_histogram,
)

from edge_agent.mqtt.client import PackedProperties
from edge_agent.mqtt.wire import row_properties_body
from edge_agent.outbox import StoredMessage
from edge_agent.types import MessageClass


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [10.0, 1.0, 4.0, 2.0, 3.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 10.0
    assert percentile(values, 90) == pytest.approx(7.6)  # numpy.percentile(..., 90)
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_gap_ranges_joins_consecutive_seqs() -> None:
    assert gap_ranges([9, 3, 5, 4, 4]) == [(3, 5), (9, 9)]
    assert gap_ranges([]) == []


def test_every_missing_seq_is_explained_or_counted_as_a_loss() -> None:
    kill = 100.0
    account = account_seqs(
        8,
        [1, 2, 2, 3, 6, 8, 8, 8],
        acked_at={1: 90.0, 2: 99.0, 3: 99.5, 4: 99.9, 5: 120.0, 6: 121.0, 8: 130.0},
        first_sent_at={1: 89.0, 2: 98.0, 3: 99.0, 4: 99.8, 5: 119.0, 6: 120.0, 7: 125.0, 8: 129.0},
        broker_switches=[kill],
    )
    assert account.expected == 8
    assert account.received == 5  # 1, 2, 3, 6, 8
    assert account.lost_in_broker == (4,)  # acknowledged before the kill, never delivered
    assert account.undelivered == (7,)  # never acknowledged: still in the outbox
    assert account.unexplained == (5,)  # acknowledged after the restart and lost: a real loss
    assert account.missing == 3
    assert account.duplicates == 3  # 2 once more, 8 twice more
    assert account.unexplained_duplicates == 2  # 8 was first sent after the kill


def test_without_a_kill_an_acknowledged_missing_seq_is_unexplained() -> None:
    account = account_seqs(3, [1, 3], acked_at={1: 1.0, 2: 2.0, 3: 3.0}, first_sent_at={})
    assert account.unexplained == (2,)
    assert account.lost_in_broker == ()


def test_a_seq_the_device_never_sent_is_refused() -> None:
    with pytest.raises(ValueError, match="never sent"):
        account_seqs(2, [1, 3], acked_at={}, first_sent_at={})


def test_text_histogram_shows_empty_bins_and_scales_bars() -> None:
    lines = text_histogram([0.2, 0.7, 1.1, 3.5], bin_width=1.0, width=10)
    assert lines == [
        "0-1 s |##########| 2",
        "1-2 s |#####     | 1",
        "2-3 s |          | 0",
        "3-4 s |#####     | 1",
    ]
    assert text_histogram([], bin_width=1.0) == ["(no values)"]
    with pytest.raises(ValueError):
        text_histogram([-1.0], bin_width=1.0)


def test_max_in_window_counts_and_sums_over_half_open_windows() -> None:
    times = [0.0, 0.5, 0.99, 1.0, 1.2, 5.0]
    assert max_in_window(times, 1.0) == 4  # 0.5, 0.99, 1.0, 1.2 (0.0 is out at 1.0)
    assert max_in_window(times, 1.0, [1, 1, 1, 1, 100, 1]) == 103
    assert max_in_window([], 1.0) == 0
    assert max_in_window(times, 10.0) == 6


def test_per_second_bins_whole_seconds_from_t0() -> None:
    assert per_second([10.1, 10.9, 11.0, 12.5, 13.2], 10.0, 13.0) == [2, 1, 1]


def test_seq_of_reads_the_user_property_from_a_packed_property_block() -> None:
    message = StoredMessage(
        row_id=7,
        seq=4321,
        topic="t",
        payload=b"{}",
        qos=1,
        retain=False,
        message_class=MessageClass.EVENT,
        created_at_s=0.0,
        content_type="application/json",
        user_properties=(("t", "1.5"),),
    )
    assert seq_of(PackedProperties(row_properties_body(message, historical=True))) == 4321
    assert seq_of(PackedProperties(b"")) is None  # a status message: no seq
    assert seq_of(None) is None  # MQTT 3.1.1
