"""An outbox on a temporary path, and what outbox tests need around it.

The ``outbox`` fixture is registered for the whole suite by ``tests/conftest.py``
(``pytest_plugins``); the helpers are imported: ``from fakes.outbox import open_outbox``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.outbox import Outbox
from edge_agent.types import MessageClass, OutboundMessage


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    """A roomy outbox (16 MiB, 100,000 rows) that nothing in a test fills by accident."""
    box = Outbox(tmp_path / "outbox.db", max_bytes=1 << 24, max_rows=100_000)
    yield box
    box.close()


def open_outbox(path: Path, clock: Callable[[], float] | None = None, **caps: Any) -> Outbox:
    """An outbox at ``path`` with roomy caps unless given (``max_rows=5``, ``ttl_s=...``)."""
    return Outbox(
        path,
        max_bytes=caps.pop("max_bytes", 1 << 24),
        max_rows=caps.pop("max_rows", 10_000),
        **({"clock": clock} if clock else {}),
        **caps,
    )


def event(n: int, cls: MessageClass = MessageClass.EVENT) -> OutboundMessage:
    """The ``n``-th small JSON message of class ``cls``."""
    return OutboundMessage(
        topic=f"city/s/d/events/cam{n % 3}",
        message_class=cls,
        json_body={"v": 1, "n": n},
        user_properties=(("schema", "event"),),
    )


def seqs(box: Outbox) -> list[int]:
    """The seqs stored now, in order."""
    return [m.seq for m in box.pending(100_000)]


def assert_accounts_balance(box: Outbox) -> None:
    """Every seq is stored, delivered or counted as dropped: nothing silent."""
    s = box.stats()
    assert s.enqueued_total == (
        s.acked_total + s.depth_rows + s.evicted_total + s.expired_total + s.dead_lettered_total
    )
    assert s.last_seq == s.enqueued_total + s.unstored_total


class FaultyConnection:
    """Wraps the outbox's SQLite connection; fails writes while ``failing`` is set."""

    def __init__(self, conn: sqlite3.Connection, message: str) -> None:
        self._conn = conn
        self.message = message
        self.failing = False

    def execute(self, sql: str, *args: Any) -> Any:
        if self.failing and sql.lstrip().upper().startswith(("INSERT", "DELETE", "COMMIT")):
            raise sqlite3.OperationalError(self.message)
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def make_faulty(box: Outbox, message: str = "database or disk is full") -> FaultyConnection:
    """Put a :class:`FaultyConnection` (not failing yet) under ``box``."""
    faulty = FaultyConnection(box._conn, message)
    box._conn = faulty  # type: ignore[assignment]
    return faulty
