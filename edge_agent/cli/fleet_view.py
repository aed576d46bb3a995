"""``edge-agent watch --fleet``: the operator's view of every device of a site (or city).

An option of ``watch`` rather than a command of its own: it is the same audience, the
same broker connection and TLS options, the same ``--site``, ``--json`` and ``--seconds``.
The table is :class:`edge_agent.fleet.FleetTable` (filled by the MQTT callback); this
module only connects, optionally sends ``announce`` to every device that is online, and
shows the rows: refreshed in place at most once a second on a terminal, one plain line per
changed device otherwise, or JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from edge_agent.cli.common import EXIT_OK, error, positive_int
from edge_agent.fleet import ANNOUNCE_CORRELATION, DEEP_OUTBOX_ROWS, DeviceRow, FleetTable

if TYPE_CHECKING:
    from edge_agent.mqtt import ReceivedMessage, Subscriber

    StartSubscriber = Callable[
        [argparse.Namespace, list[str], Callable[[ReceivedMessage], None]], Subscriber | str
    ]

REFRESH_S = 1.0  # the table is drawn at most this often: 500 devices cost nothing
SETTLE_S = 0.5  # the retained statuses are in once no new device came for this long
SETTLE_MAX_S = 5.0
POLL_S = 0.05
COMMAND_EXPIRY_S = 30  # an announce a device gets later than this is of no use


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fleet view")
    group.add_argument(
        "--fleet",
        action="store_true",
        help="one line per device (state and since when, last seen, version, model, outbox, "
        "gaps, LED, cameras), the ones in trouble first",
    )
    group.add_argument("--once", action="store_true", help="--fleet: one snapshot, then exit")
    group.add_argument(
        "--announce",
        action="store_true",
        help="--fleet: ask every online device to publish its birth and stats now",
    )
    group.add_argument(
        "--light",
        action="store_true",
        help="--fleet: status, stats, states and gap notices only (no events or thumbnails); "
        "gaps are then only those the devices report",
    )
    group.add_argument(
        "--deep-outbox",
        type=positive_int,
        default=DEEP_OUTBOX_ROWS,
        help=f"--fleet: outbox rows that count as trouble (default {DEEP_OUTBOX_ROWS})",
    )
    group.add_argument(
        "--wait-s",
        type=float,
        default=10.0,
        help="--fleet --once --announce: how long to wait for the devices' answers (default 10)",
    )


def run_fleet(
    args: argparse.Namespace, start_subscriber: StartSubscriber, stop: threading.Event
) -> int:
    """``start_subscriber``: ``watch``'s own, with its connection and TLS options."""
    from edge_agent.fleet import fleet_topics

    if args.device is not None:
        return error("--fleet shows every device of --site (or of every site): drop --device")
    reply_to = f"fleet-{os.getpid()}"
    table = FleetTable(
        args.prefix,
        reply_to=reply_to,
        exact_gaps=not args.light,
        deep_outbox_rows=args.deep_outbox,
    )
    topics = fleet_topics(args.prefix, args.site, reply_to, with_events=not args.light)
    subscriber = start_subscriber(args, topics, table.on_message)
    if isinstance(subscriber, str):
        return error(subscriber)
    where = f"{args.prefix}/{args.site or '+'}"
    print(f"fleet view of {where} on {args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        _settle(table, stop)
        asked = _announce(subscriber, table, args.prefix, reply_to) if args.announce else []
        if args.once:
            _await_answers(table, asked, args.wait_s, stop)
            _print_once(table, as_json=args.json)
        else:
            _follow(table, stop, as_json=args.json, seconds=args.seconds)
    finally:
        subscriber.stop()
    return EXIT_OK


def _settle(table: FleetTable, stop: threading.Event) -> None:
    """Wait for the retained statuses: until no new device came for ``SETTLE_S``. MQTT
    has no end-of-retained marker; they come right after the SUBACK, within milliseconds."""
    deadline = time.monotonic() + SETTLE_MAX_S
    count, quiet_since = len(table), time.monotonic()
    while time.monotonic() < deadline and not stop.is_set():
        if len(table) != count:
            count, quiet_since = len(table), time.monotonic()
        elif time.monotonic() - quiet_since >= SETTLE_S:
            return
        stop.wait(POLL_S)


def _announce(
    subscriber: Subscriber, table: FleetTable, prefix: str, reply_to: str
) -> list[tuple[str, str]]:
    """Send ``announce`` to every device that is online; the ones asked."""
    asked = table.online_roots()
    for site, device in asked:
        root = f"{prefix}/{site}/{device}"
        subscriber.publish(
            f"{root}/cmd/announce",
            b"{}",
            response_topic=f"{root}/reply/{reply_to}",
            correlation=ANNOUNCE_CORRELATION,
            expiry_s=COMMAND_EXPIRY_S,
        )
    print(f"announce sent to {len(asked)} device(s)", file=sys.stderr, flush=True)
    return asked


def _await_answers(
    table: FleetTable, asked: list[tuple[str, str]], wait_s: float, stop: threading.Event
) -> None:
    deadline = time.monotonic() + wait_s
    while asked and time.monotonic() < deadline and not stop.is_set():
        asked = table.waiting_for(asked)
        stop.wait(POLL_S)
    if asked:
        names = ", ".join(f"{site}/{device}" for site, device in asked[:10])
        print(f"no answer within {wait_s:g} s from: {names}", file=sys.stderr, flush=True)


def _print_once(table: FleetTable, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(table.snapshot(), separators=(",", ":")), flush=True)
        return
    from edge_agent.fleet_render import table_lines

    width = shutil.get_terminal_size((200, 50)).columns if sys.stdout.isatty() else 200
    print("\n".join(table_lines(table.rows(), time.time(), width=width)), flush=True)


def _follow(
    table: FleetTable, stop: threading.Event, *, as_json: bool, seconds: float | None
) -> None:
    """Until ``stop`` or ``seconds``: on a terminal the table in place, once a second;
    otherwise one plain line per device whose row changed (JSON: a snapshot per change)."""
    from edge_agent.fleet_render import CLEAR_SCREEN, plain_line, table_lines

    deadline = None if seconds is None else time.monotonic() + seconds
    tty = sys.stdout.isatty() and not as_json
    shown: dict[str, DeviceRow] = {}
    while True:
        now_s = time.time()
        if tty:
            size = shutil.get_terminal_size()
            lines = table_lines(table.rows(), now_s, width=size.columns, height=size.lines - 1)
            sys.stdout.write(CLEAR_SCREEN + "\n".join(lines) + "\n")
            sys.stdout.flush()
        elif as_json:
            if table.take_dirty():
                print(json.dumps(table.snapshot(), separators=(",", ":")), flush=True)
        else:
            for row in table.rows():
                unchanged = replace(row, last_seen_s=None)  # seen ticks on: not news
                if shown.get(row.root) != unchanged:
                    shown[row.root] = unchanged
                    print(plain_line(row, now_s), flush=True)
        wait_s = REFRESH_S if deadline is None else min(REFRESH_S, deadline - time.monotonic())
        if wait_s <= 0 or stop.wait(wait_s):
            return
