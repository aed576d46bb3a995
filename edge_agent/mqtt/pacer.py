"""The drain's token bucket: how fast the non-urgent backlog may go (pure, clock injected)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["DrainPacer"]


class DrainPacer:
    """Two token buckets (messages, bytes) for the non-urgent stream.

    A message may go when at least one message token and a positive byte balance are
    left; the byte balance may then go negative, so a message larger than the bucket
    still passes (and the bucket pays it back). Once held back, the pacer waits until
    ``quantum_s`` worth has refilled, so a paced drain wakes ~10 times a second and
    sends small batches instead of waking per message (measured: wake-ups cost more
    CPU than the publishing).

    The full bucket is for live traffic after a quiet spell. :meth:`trim` leaves one
    quantum of credit; the drain calls it on each new connection (what refilled while the
    link was down is not spent in one burst when it comes back: after a broker restart
    every device reconnects within seconds of the others) and whenever a backlog resumes
    after a wait (for PUBACKs, or a paced wait the drain thread woke late from): what
    refilled meanwhile is not spent in a burst. So a backlog never goes faster than the
    rate plus one quantum in any window (issue 13).
    """

    def __init__(
        self,
        msgs_per_s: float,
        bytes_per_s: float,
        *,
        burst_s: float = 1.0,
        quantum_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._msg_rate = msgs_per_s
        self._byte_rate = bytes_per_s
        self._unlimited = math.isinf(msgs_per_s) and math.isinf(bytes_per_s)
        self._msg_cap = max(1.0, msgs_per_s * burst_s)
        self._byte_cap = max(1.0, bytes_per_s * burst_s)
        self._msg_resume = min(self._msg_cap, max(1.0, msgs_per_s * quantum_s))
        self._byte_resume = min(self._byte_cap, bytes_per_s * quantum_s)
        self._msgs = self._msg_cap
        self._bytes = self._byte_cap
        self._held = False
        self._last_s = clock()

    def _refill(self) -> None:
        now_s = self._clock()
        elapsed_s = max(0.0, now_s - self._last_s)
        self._last_s = now_s
        if not math.isinf(self._msg_rate):
            self._msgs = min(self._msg_cap, self._msgs + elapsed_s * self._msg_rate)
        if not math.isinf(self._byte_rate):
            self._bytes = min(self._byte_cap, self._bytes + elapsed_s * self._byte_rate)

    def trim(self) -> None:
        """Keep at most one quantum of credit (never adds any)."""
        if self._unlimited:
            return
        self._refill()
        self._msgs = min(self._msgs, self._msg_resume)
        if not math.isinf(self._byte_rate):
            self._bytes = min(self._bytes, max(self._byte_resume, 2e-9))

    def delay_s(self) -> float:
        """0 if one more message may go now, else how long to wait before asking again."""
        if self._unlimited:
            return 0.0
        self._refill()
        msg_need = self._msg_resume if self._held else 1.0
        byte_need = self._byte_resume if self._held else 2e-9
        wait_s = 0.0
        if not math.isinf(self._msg_rate) and self._msgs < msg_need - 1e-9:
            wait_s = max(wait_s, (msg_need - self._msgs) / self._msg_rate)
        if not math.isinf(self._byte_rate) and self._bytes < byte_need - 1e-9:
            wait_s = max(wait_s, (byte_need - self._bytes) / self._byte_rate)
        self._held = wait_s > 0.0
        return wait_s

    def spend(self, size_bytes: int) -> None:
        if self._unlimited:
            return
        if not math.isinf(self._msg_rate):
            self._msgs -= 1.0
        if not math.isinf(self._byte_rate):
            self._bytes -= size_bytes
