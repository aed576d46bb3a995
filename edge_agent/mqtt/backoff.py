"""Reconnect delays with full jitter, so a fleet does not reconnect in step.

paho's own back-off doubles a fixed delay: after a broker restart every device that lost
it at the same moment retries at the same moments (1 s, 2 s, 4 s ...) and the broker
takes 500 TLS handshakes at once, again and again. Full jitter ("Exponential Backoff
And Jitter", AWS Architecture Blog, 2015) draws each delay uniformly from
``[0, min(cap, base * 2**attempt)]``: the same expected growth, spread over the window.
Pure (no paho, no clock): the random source is injectable for tests.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

__all__ = ["FullJitterBackoff", "Uniform"]

Uniform = Callable[[float, float], float]  # random.uniform's shape: (low, high) -> value


class FullJitterBackoff:
    """``next_delay_s()`` for attempt n (0 first) is uniform in ``[0, min(cap, base*2**n)]``;
    ``reset()`` after a connection that worked starts again at attempt 0.

    Thread-safe: paho's network thread asks for delays, a callback may reset."""

    def __init__(self, base_s: float, cap_s: float, *, uniform: Uniform | None = None) -> None:
        if not (base_s > 0 and cap_s > 0):
            raise ValueError("base_s and cap_s must be positive")
        self.base_s = base_s
        self.cap_s = max(cap_s, base_s)
        self._uniform: Uniform = uniform or random.SystemRandom().uniform
        self._attempt = 0
        self._lock = threading.Lock()

    @property
    def attempt(self) -> int:
        """How many delays were drawn since the last reset."""
        with self._lock:
            return self._attempt

    def window_s(self, attempt: int) -> float:
        """The upper bound of the delay for ``attempt`` (0 first)."""
        # 2**attempt overflows floats past ~1000 attempts; the cap is reached long before.
        return self.cap_s if attempt >= 64 else min(self.cap_s, self.base_s * 2.0**attempt)

    def next_delay_s(self) -> float:
        with self._lock:
            high = self.window_s(self._attempt)
            self._attempt += 1
        return min(high, max(0.0, self._uniform(0.0, high)))

    def reset(self) -> None:
        with self._lock:
            self._attempt = 0
