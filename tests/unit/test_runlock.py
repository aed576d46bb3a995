"""One agent per outbox: the run lock (edge_agent/runlock.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_agent.runlock import AlreadyRunning, RunLock, lock_path, running_pid


def test_a_second_agent_on_one_outbox_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    outbox = tmp_path / "state" / "outbox.db"
    first = RunLock(outbox)
    first.acquire()
    try:
        assert running_pid(outbox) == os.getpid()
        with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}.*systemctl stop"):
            RunLock(outbox).acquire()
        assert lock_path(outbox).stat().st_mode & 0o777 == 0o600
    finally:
        first.release()
    assert running_pid(outbox) is None  # released: the next agent may start
    second = RunLock(outbox)
    second.acquire()
    second.release()


def test_no_agent_and_no_lock_file_means_none_runs(tmp_path: Path) -> None:
    assert running_pid(tmp_path / "outbox.db") is None
    assert not lock_path(tmp_path / "outbox.db").exists()  # asking never creates it
