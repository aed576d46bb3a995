"""The self-test from the page: ``edge-agent selftest``'s checks (edge_agent/selftest), one
run at a time in a thread of its own, its lines shown as they come.

Run inside ``edge-agent run``, the self-test sees the agent's run lock and leaves its
cameras and broker session alone (those lines say SKIP); the config, the model (loaded
once more, for a moment), the outbox's disk and the clock are checked as at the pole.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge_agent.selftest import CheckResult, exit_code, run_selftest

__all__ = ["SelftestRunner"]

log = logging.getLogger(__name__)

Runner = Callable[..., list[CheckResult]]


class SelftestRunner:
    """Starts the self-test on request and keeps its latest run's lines. Thread-safe."""

    def __init__(self, config_path: Path | None, run: Runner = run_selftest) -> None:
        self.config_path = config_path
        self._run = run
        self._lock = threading.Lock()
        self._results: list[CheckResult] = []
        self._running = False
        self._started_s: float | None = None
        self._finished_s: float | None = None
        self._error: str | None = None

    def start(self) -> bool:
        """False when a run is going on already, or there is no config file to test."""
        if self.config_path is None:
            return False
        with self._lock:
            if self._running:
                return False
            self._running, self._results, self._error = True, [], None
            self._started_s, self._finished_s = time.time(), None
        threading.Thread(target=self._run_once, name="web-selftest", daemon=True).start()
        return True

    def _add(self, result: CheckResult) -> None:
        with self._lock:
            self._results.append(result)

    def _run_once(self) -> None:
        assert self.config_path is not None
        error = None
        try:
            self._run(self.config_path, report=self._add)
        except Exception as problem:  # a check's bug: said on the page, the agent goes on
            log.exception("the self-test from the page failed")
            error = f"the self-test stopped: {problem}"
        with self._lock:
            self._running, self._finished_s, self._error = False, time.time(), error

    def state(self) -> dict[str, object]:
        with self._lock:
            results = list(self._results)
            finished = not self._running and self._started_s is not None
            return {
                "running": self._running,
                "started": self._started_s,
                "finished": self._finished_s,
                "error": self._error,
                "exit_code": exit_code(results) if finished and not self._error else None,
                "results": [{**r.as_dict(), "line": r.line} for r in results],
            }
