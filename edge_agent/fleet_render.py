"""How ``edge-agent watch --fleet`` shows :class:`~edge_agent.fleet.DeviceRow` s: a table
that fits the terminal (refreshed in place on a TTY), or one plain line per device for a
log or a pipe. Pure functions of the rows and the time: tested with a fixed clock."""

from __future__ import annotations

import time
from collections.abc import Sequence

from edge_agent.fleet import DeviceRow, summary

__all__ = ["CLEAR_SCREEN", "age", "plain_line", "table_lines"]

CLEAR_SCREEN = "\x1b[H\x1b[2J"
"""Cursor home, clear: the table is redrawn in place (any ANSI/VT100 terminal)."""
COLUMNS: tuple[tuple[str, int], ...] = (  # header, widest it may get
    ("DEVICE", 32),
    ("STATE", 8),
    ("SINCE", 7),
    ("SEEN", 7),
    ("VERSION", 12),
    ("MODEL", 20),
    ("OUTBOX", 7),
    ("GAPS", 6),
    ("LED", 12),
    ("CAMERAS", 40),
)


def age(seconds: float | None) -> str:
    """A short, fixed-form duration: ``42s``, ``12m05s``, ``3h07m``, ``2d04h``; ``?``
    when unknown.

    >>> [age(s) for s in (None, 4.2, 725, 11_220, 187_200)]
    ['?', '4s', '12m05s', '3h07m', '2d04h']
    """
    if seconds is None:
        return "?"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86_400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86_400}d{s % 86_400 // 3600:02d}h"


def _since(row: DeviceRow, now_s: float) -> str:
    return age(None if row.since_s is None else now_s - row.since_s)


def _seen(row: DeviceRow, now_s: float) -> str:
    return "-" if row.last_seen_s is None else age(now_s - row.last_seen_s)


def _cameras(row: DeviceRow, separator: str = " ") -> str:
    if not row.cameras:
        return "-"
    bad = [f"{cam}:{problem.replace(' ', '_')}" for cam, problem in row.cameras if problem != "ok"]
    return separator.join(bad) if bad else f"{len(row.cameras)} ok"


def _cells(row: DeviceRow, now_s: float) -> list[str]:
    return [
        row.root,
        row.state,
        _since(row, now_s),
        _seen(row, now_s),
        row.version or "-",
        row.model or "-",
        "-" if row.outbox_rows is None else str(row.outbox_rows),
        str(row.gaps) if row.gaps else "0",
        row.condition or "-",
        _cameras(row),
    ]


def _fit(text: str, width: int) -> str:
    """``text`` in exactly ``width`` characters: padded, or cut with an ellipsis."""
    if len(text) <= width:
        return text.ljust(width)
    return text[: width - 1] + "…" if width > 0 else ""


def table_lines(
    rows: Sequence[DeviceRow], now_s: float, *, width: int = 200, height: int | None = None
) -> list[str]:
    """A title, a header and one line per device (worst first), no line wider than
    ``width``; with ``height``, at most that many lines, the last saying how many more."""
    counts = summary(list(rows))
    trouble = ", ".join(f"{n} {name}" for name, n in counts.items() if n and name != "ok")
    title = (
        f"{len(rows)} device(s) at {time.strftime('%H:%M:%S', time.localtime(now_s))}: "
        f"{trouble or 'all ok'}"
    )
    cells = [_cells(row, now_s) for row in rows]
    widths = [
        min(limit, max([len(header), *(len(c[i]) for c in cells)]))
        for i, (header, limit) in enumerate(COLUMNS)
    ]

    def line(values: Sequence[str]) -> str:
        text = "  ".join(_fit(v, w) for v, w in zip(values, widths, strict=True)).rstrip()
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = [_fit(title, width).rstrip(), line([h for h, _ in COLUMNS])]
    lines += [line(c) for c in cells]
    if height is not None and len(lines) > height:
        shown = max(0, height - 3)  # title, header, "more" line
        more = len(rows) - shown
        lines = [*lines[: 2 + shown], f"… {more} more device(s) (widen or use --json)"]
    return lines


def plain_line(row: DeviceRow, now_s: float) -> str:
    """One device as one self-contained line (non-TTY output: a log, a pipe)."""
    return (
        f"{time.strftime('%H:%M:%S', time.localtime(now_s))} {row.root} {row.state} "
        f"since={_since(row, now_s)} seen={_seen(row, now_s)} "
        f"version={row.version or '-'} model={row.model or '-'} "
        f"outbox={'-' if row.outbox_rows is None else row.outbox_rows} "
        f"gaps={row.gaps_lost}lost/{row.gaps_missing}missing led={row.condition or '-'} "
        f"cameras={_cameras(row, ',').replace(' ', '_')}"
        + (f" !! {row.trouble}" if row.trouble else "")
    )
