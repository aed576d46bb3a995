"""What ``hw_sim.eval.run`` derives from a scenario before running it (no video)."""

from __future__ import annotations

from hw_sim.eval.run import clock_start_s
from hw_sim.scenes import Expectations


def test_clock_start() -> None:
    jakarta_night = Expectations(clock_start="21:59:40", timezone="Asia/Jakarta")
    assert clock_start_s(jakarta_night) == 1750258780.0  # 2025-06-18 21:59:40 +07:00
    iso = Expectations(clock_start="2025-01-03T08:00", timezone="Europe/Berlin")
    assert clock_start_s(iso) == 1735887600.0  # 07:00 UTC
