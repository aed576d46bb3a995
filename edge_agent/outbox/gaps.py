"""The gap ledger: which seqs were dropped, and why, until a notice reports them.

Sequence numbers: every message gets the next per-device ``seq`` from the ``meta``
table, in the same transaction as the insert, so ``seq`` is never reused. Every ``seq``
ends in exactly one of: delivered (acknowledged by the broker), or *reported*: listed in
a gap notice with the reason it was dropped (``evicted``, ``expired``, ``refused`` by
the broker, or ``unstored`` because the disk could not take it). That is what lets a
consumer tell "lost" from "late".

Gap notices: dropped seqs are recorded as merged ranges in the ``gaps`` table in the
transaction that drops them. When the publisher is connected it asks for a notice
(:meth:`Outbox.issue_gap_notice`): one transaction turns the pending ranges into an
ordinary outbox row with a ``seq`` of its own, so the notice is as durable as any event.
Notice rows jump the queue and are never evicted or expired; at most one exists at a
time, so they cannot fill the disk. The notice's body is
:func:`edge_agent.encode.encode_gap_notice`'s.

Every function here runs inside the caller's transaction, with its lock held, and
returns how many seqs it added to (or took from) the ledger.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

GAP_REASONS = ("evicted", "expired", "refused", "unstored")

MAX_RANGES_PER_NOTICE = 500  # keeps one notice well under 64 KiB

# seq, class name, reason
GapEntry = tuple[int, str, str]
# reason -> class name -> count
Detail = dict[str, dict[str, int]]
# first seq, last seq, detail
GapRange = tuple[int, int, Detail]


def merge_detail(into: Detail, other: Mapping[str, Mapping[str, int]]) -> None:
    for reason, by_class in other.items():
        slot = into.setdefault(reason, {})
        for cls, count in by_class.items():
            slot[cls] = slot.get(cls, 0) + int(count)


def add_gaps(conn: sqlite3.Connection, entries: Sequence[GapEntry]) -> int:
    """Record dropped seqs as ranges, merged with adjacent pending ranges."""
    added = 0
    ordered = sorted(entries)
    index = 0
    while index < len(ordered):
        first = ordered[index][0]
        detail: Detail = {}
        last = first - 1
        while index < len(ordered) and ordered[index][0] == last + 1:
            seq, cls, reason = ordered[index]
            merge_detail(detail, {reason: {cls: 1}})
            last = seq
            index += 1
        added += add_gap_range(conn, first, last, detail)
    return added


def add_gap_range(conn: sqlite3.Connection, first: int, last: int, detail: Detail) -> int:
    """Record ``first..last`` as dropped, merged with the ranges either side of it."""
    merged: Detail = {}
    merge_detail(merged, detail)
    new_first, new_last = first, last
    left = conn.execute(
        "SELECT seq_from, detail FROM gaps WHERE seq_to = ?", (first - 1,)
    ).fetchone()
    if left is not None:
        new_first = int(left[0])
        merge_detail(merged, json.loads(left[1]))
        conn.execute("DELETE FROM gaps WHERE seq_from = ?", (new_first,))
    right = conn.execute(
        "SELECT seq_to, detail FROM gaps WHERE seq_from = ?", (last + 1,)
    ).fetchone()
    if right is not None:
        new_last = int(right[0])
        merge_detail(merged, json.loads(right[1]))
        conn.execute("DELETE FROM gaps WHERE seq_from = ?", (last + 1,))
    conn.execute(
        "INSERT INTO gaps (seq_from, seq_to, detail) VALUES (?, ?, ?)",
        (new_first, new_last, json.dumps(merged, sort_keys=True, separators=(",", ":"))),
    )
    return last - first + 1


def restore_notice_ranges(conn: sqlite3.Connection, payload: bytes) -> int:
    """Put the ranges of a notice that was never delivered back into the ledger."""
    added = 0
    for item in json.loads(payload).get("gaps", []):
        first, last = int(item["from"]), int(item["to"])
        detail = {k: v for k, v in item.items() if k in GAP_REASONS}
        added += add_gap_range(conn, first, last, detail)
    return added


def pending_seqs(conn: sqlite3.Connection) -> int:
    """How many seqs the ledger holds (counted once, at open)."""
    (count,) = conn.execute("SELECT COALESCE(SUM(seq_to - seq_from + 1), 0) FROM gaps").fetchone()
    return int(count)


def ranges(conn: sqlite3.Connection, limit: int | None = None) -> list[GapRange]:
    """The ledger's ranges, oldest first (at most ``limit``)."""
    if limit is None:
        rows = conn.execute("SELECT seq_from, seq_to, detail FROM gaps ORDER BY seq_from")
    else:
        rows = conn.execute(
            "SELECT seq_from, seq_to, detail FROM gaps ORDER BY seq_from LIMIT ?", (limit,)
        )
    return [(int(a), int(b), json.loads(d)) for a, b, d in rows.fetchall()]


def forget_through(conn: sqlite3.Connection, seq_from: int) -> None:
    """Drop the ranges starting at or before ``seq_from``: a notice now reports them."""
    conn.execute("DELETE FROM gaps WHERE seq_from <= ?", (seq_from,))
