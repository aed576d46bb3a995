"""A process's CPU time and memory from ``/proc/<pid>`` (Linux), sampled in a thread;
the broker's figures in the fleet report. A broker restarted under a new pid keeps
adding to the same CPU total."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcMonitor", "ProcSample", "read_proc"]

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # user + system since the process started
    rss_bytes: int
    peak_rss_bytes: int  # VmHWM: the process's high-water mark


def read_proc(pid: int) -> ProcSample | None:
    """None when the process is gone (or not ours to read)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime, stime
    memory = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0]) * 1024
    return ProcSample(cpu_s, memory.get("VmRSS", 0), memory.get("VmHWM", 0))


class ProcMonitor:
    """Samples ``pid()`` every ``interval_s``: (wall time, cumulative CPU s, RSS bytes)."""

    def __init__(self, pid: Callable[[], int | None], interval_s: float = 0.5) -> None:
        self._pid = pid
        self._interval_s = interval_s
        self.samples: list[tuple[float, float, int]] = []
        self.peak_rss_bytes = 0
        self._banked_cpu_s = 0.0  # CPU of earlier incarnations (before a restart)
        self._last: tuple[int, float] | None = None  # (pid, its cpu_s at the last sample)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-procmon", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        pid = self._pid()
        sample = read_proc(pid) if pid is not None else None
        if pid is None or sample is None:
            return
        if self._last is not None and self._last[0] != pid:
            self._banked_cpu_s += self._last[1]
        self._last = (pid, sample.cpu_s)
        self.peak_rss_bytes = max(self.peak_rss_bytes, sample.peak_rss_bytes)
        self.samples.append((time.time(), self._banked_cpu_s + sample.cpu_s, sample.rss_bytes))

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

    def cpu_share(self, t0: float, t1: float) -> float:
        """Mean share of one core used between t0 and t1 (nearest samples); NaN if unknown."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return float("nan")
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def peak_cpu_share(self, t0: float, t1: float, window_s: float = 1.0) -> float:
        """The largest share of a core over any ~``window_s`` between t0 and t1."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        best = float("nan")
        start = 0
        for end in range(len(inside)):
            while inside[end][0] - inside[start][0] > window_s + 1e-6 and start < end - 1:
                start += 1
            span = inside[end][0] - inside[start][0]
            if span >= window_s * 0.5:
                share = (inside[end][1] - inside[start][1]) / span
                best = share if best != best else max(best, share)
        return best

    def rss_at_end(self) -> int:
        return self.samples[-1][2] if self.samples else 0
