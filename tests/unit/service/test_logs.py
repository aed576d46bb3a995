"""Log lines for journald: a syslog priority on every line, no timestamp; plain elsewhere."""

from __future__ import annotations

import logging
import os
import sys
import tempfile

import pytest

from edge_agent.service.logs import JournalFormatter, stderr_is_journal, syslog_priority


def record(level: int, message: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("edge_agent.app", level, __file__, 1, message, None, exc_info)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
    ],
)
def test_each_level_gets_its_syslog_priority(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority
    assert JournalFormatter().format(record(level, "hello")) == f"<{priority}>edge_agent.app: hello"


def test_every_line_of_a_traceback_keeps_the_priority() -> None:
    lines = JournalFormatter().format(record(logging.ERROR, "failed", exc=True)).splitlines()
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: boom"


def test_stderr_is_the_journal_only_when_journal_stream_names_it() -> None:
    with tempfile.TemporaryFile("w") as stream:
        info = os.fstat(stream.fileno())
        assert stderr_is_journal(stream, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
        assert not stderr_is_journal(stream, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"})
        assert not stderr_is_journal(stream, {"JOURNAL_STREAM": "junk"})
        assert not stderr_is_journal(stream, {})
