"""A clock a test sets by hand: ``clock.now_s += 5.0``."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now_s: float = 1_700_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s
