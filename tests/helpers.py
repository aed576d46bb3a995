"""Small test helpers shared by every test layer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

_POLL_S = 0.01

# hw-sim evaluations in tests spread their independent runs over two worker processes
# (hw_sim.eval.parallel): the same runs and figures, on the core the serial test run
# leaves idle (the market soak alone took 160 s of the suite's 20-minute budget).
EVAL_PROCESSES = max(1, min(2, os.cpu_count() or 1))


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` until it is truthy; fail the test saying ``what`` never happened.

    This is how tests synchronise with threads and brokers: on a condition, never on a
    fixed sleep. ``timeout_s`` is a generous upper bound, not a performance threshold.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(_POLL_S)


def sim_camera(**source: object) -> dict[str, object]:
    """The agent tests' camera config: cam1 at 5 fps on the simulated ``person_walks_in``
    scene at 480x270; ``source`` adds or overrides keys of its source."""
    return {
        "id": "cam1",
        "fps": 5,
        "source": {
            "kind": "sim",
            "scenario": "person_walks_in",
            "width": 480,
            "height": 270,
            **source,
        },
    }


EDGE_AGENT = [sys.executable, "-m", "edge_agent.cli"]
"""``edge-agent`` as the tests run it: this interpreter, so this checkout's code."""


def edge_agent(
    *args: str, timeout_s: float = 120.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``edge-agent ARGS`` as a process, its output captured; ``env`` adds to the
    environment."""
    return subprocess.run(
        [*EDGE_AGENT, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )
