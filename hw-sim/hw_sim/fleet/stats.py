"""The fleet tool's arithmetic, pure (no MQTT, no clock): percentiles, ``seq`` accounting
per device, reconnect histograms, and rates over sliding windows."""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "SeqAccount",
    "account_seqs",
    "gap_ranges",
    "max_in_window",
    "per_second",
    "percentile",
    "text_histogram",
]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks
    (numpy's default); NaN for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def gap_ranges(missing: Iterable[int]) -> list[tuple[int, int]]:
    """Missing seqs as inclusive ranges: ``[3, 4, 5, 9]`` → ``[(3, 5), (9, 9)]``."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(missing)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


@dataclass(frozen=True)
class SeqAccount:
    """One device's delivery, by ``seq``: what arrived, twice, or never, and why.

    A missing seq is *explained* when the broker that acknowledged it was then killed
    (``lost_in_broker``: QoS 1 ends at the PUBACK; a SIGKILLed broker loses what it had
    not yet handed on) or when the device never got a PUBACK for it (``undelivered``: it
    is still in the device's outbox). Anything else is ``unexplained``: a real loss.
    A duplicate is explained when the device first sent it to a broker that was then
    killed (paho resends in-flight messages after the reconnect: at-least-once).
    """

    expected: int
    received: int  # unique seqs
    duplicates: int  # deliveries beyond the first
    unexplained_duplicates: int
    lost_in_broker: tuple[int, ...]
    undelivered: tuple[int, ...]
    unexplained: tuple[int, ...]

    @property
    def missing(self) -> int:
        return len(self.lost_in_broker) + len(self.undelivered) + len(self.unexplained)


def account_seqs(
    last_seq: int,
    received: Iterable[int],
    *,
    acked_at: Mapping[int, float],
    first_sent_at: Mapping[int, float],
    broker_switches: Sequence[float] = (),
) -> SeqAccount:
    """Account for seqs ``1..last_seq`` of one device (see :class:`SeqAccount`).

    ``acked_at``: seq → when the device got its PUBACK; ``first_sent_at``: seq → when the
    device first published it; ``broker_switches``: when the device's first connection to
    a restarted broker came up. Every PUBACK the device handled before that came over the
    connection the kill cut, so from the killed broker, however late the device's thread
    got to it.
    """
    counts = Counter(received)
    out_of_range = [seq for seq in counts if not 1 <= seq <= last_seq]
    if out_of_range:
        raise ValueError(f"received seqs never sent: {sorted(out_of_range)[:5]}")
    lost: list[int] = []
    undelivered: list[int] = []
    unexplained: list[int] = []
    for seq in range(1, last_seq + 1):
        if seq in counts:
            continue
        acked = acked_at.get(seq)
        if acked is None:
            undelivered.append(seq)
        elif any(acked <= kill for kill in broker_switches):
            lost.append(seq)
        else:
            unexplained.append(seq)
    duplicates = sum(n - 1 for n in counts.values())
    unexplained_dups = sum(
        n - 1
        for seq, n in counts.items()
        if n > 1 and not any(first_sent_at.get(seq, math.inf) <= kill for kill in broker_switches)
    )
    return SeqAccount(
        expected=last_seq,
        received=len(counts),
        duplicates=duplicates,
        unexplained_duplicates=unexplained_dups,
        lost_in_broker=tuple(lost),
        undelivered=tuple(undelivered),
        unexplained=tuple(unexplained),
    )


def text_histogram(
    values: Sequence[float], *, bin_width: float, unit: str = "s", width: int = 40
) -> list[str]:
    """Lines of a text histogram, bins ``[k*bin_width, (k+1)*bin_width)`` from 0 to the
    largest value (empty bins included, so a gap in time shows as a gap)."""
    if bin_width <= 0:
        raise ValueError("bin_width must be positive")
    if not values:
        return ["(no values)"]
    if min(values) < 0:
        raise ValueError("histogram values must not be negative")
    counts = Counter(int(v // bin_width) for v in values)
    top = max(counts.values())
    digits = len(f"{(max(counts) + 1) * bin_width:g}")
    lines = []
    for k in range(max(counts) + 1):
        n = counts.get(k, 0)
        bar = "#" * (math.ceil(n * width / top) if n else 0)
        low, high = f"{k * bin_width:g}", f"{(k + 1) * bin_width:g}"
        lines.append(f"{low:>{digits}}-{high:<{digits}} {unit} |{bar:<{width}}| {n}")
    return lines


def max_in_window(times: Sequence[float], window_s: float, weights: Sequence[float] = ()) -> float:
    """The largest count (or sum of ``weights``) of events in any window of ``window_s``
    (half-open ``[t, t + window_s)``); ``times`` need not be sorted."""
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    if weights and len(weights) != len(times):
        raise ValueError("weights must match times")
    pairs = sorted(zip(times, weights or [1.0] * len(times), strict=True))
    best = total = 0.0
    start = 0
    for t, weight in pairs:
        total += weight
        while pairs[start][0] <= t - window_s:
            total -= pairs[start][1]
            start += 1
        best = max(best, total)
    return best


def per_second(times: Sequence[float], t0: float, t1: float) -> list[int]:
    """How many of ``times`` fall in each whole second ``[t0 + k, t0 + k + 1)`` up to t1."""
    ordered = sorted(times)
    seconds = max(0, math.ceil(t1 - t0))
    edges = [bisect.bisect_left(ordered, t0 + k) for k in range(seconds + 1)]
    return [edges[k + 1] - edges[k] for k in range(seconds)]
