"""Log lines for a terminal or for journald.

Under systemd, stderr is a stream into the journal (``$JOURNAL_STREAM`` names its device
and inode). journald stamps every line itself and reads a ``<N>`` syslog priority prefix
(SyslogLevelPrefix=yes, the default), so there each line is ``<N>logger: message``: no
doubled timestamp, and ``journalctl -p warning`` works. Every line of a traceback gets
the prefix too, or journald would file them at the default priority.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Literal, TextIO

__all__ = [
    "PLAIN_FORMAT",
    "JournalFormatter",
    "LogFormat",
    "setup_logging",
    "stderr_is_journal",
    "worth_saying",
]

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LogFormat = Literal["auto", "journal", "plain"]

_PRIORITIES = (  # logging level (at least) → syslog priority
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG = 7


def worth_saying(count: int) -> bool:
    """Whether the ``count``-th repetition of a failure is logged: the 1st, 10th, 100th and
    every 1000th. Loud, but not 5 times a second for a camera whose every frame fails (the
    count and the last error are in stats). Counting failures in a row (reset when the
    thing works again) says a new run of them at its first."""
    return count in (1, 10, 100) or count % 1000 == 0


def syslog_priority(levelno: int) -> int:
    return next((p for level, p in _PRIORITIES if levelno >= level), _DEBUG)


class JournalFormatter(logging.Formatter):
    """``<N>logger: message``, the prefix on every line; no timestamp."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def stderr_is_journal(
    stream: TextIO | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether ``stream`` (stderr) is the journal stream systemd set up for this service:
    ``$JOURNAL_STREAM`` is ``device:inode`` of it. A redirected stderr (``2>file``) in a
    unit does not match, and keeps the plain format."""
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    try:
        stat = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (stat.st_dev, stat.st_ino) == (int(device), int(inode))


def setup_logging(level: str, log_format: LogFormat = "auto") -> None:
    """The root logger to stderr, in the journal's format when stderr is the journal (or
    ``log_format`` says so), else with a timestamp and level name."""
    root = logging.getLogger()
    if root.handlers:  # as logging.basicConfig: a caller's own handlers win (pytest's)
        return
    journal = log_format == "journal" or (log_format == "auto" and stderr_is_journal())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter() if journal else logging.Formatter(PLAIN_FORMAT))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
