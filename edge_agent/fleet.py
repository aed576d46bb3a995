"""``edge-agent watch --fleet``: one line per device, the ones in trouble first.

What an operator of a few hundred posts needs at a glance, kept from the messages the
devices publish anyway (docs/mqtt-api.md): the retained ``status`` (online / offline /
stopped, version, model), ``stats`` (outbox depth, the LED's ``condition``, each camera's
source), retained ``state/{camera}/tamper`` levels and ``gaps`` notices; with every stored
topic subscribed too (the default), a :class:`~edge_agent.watch.SeqLedger` per device counts
the ``seq`` gaps the view itself sees, exactly as ``edge-agent watch`` does.

One :class:`FleetTable` holds a dict of devices updated by the MQTT callback under one
lock: no thread per device, and :meth:`FleetTable.rows` (sorted by trouble) is what a
renderer reads, at most once a second. Rendering is in :mod:`edge_agent.fleet_render`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.mqtt import ReceivedMessage
from edge_agent.watch import SeqLedger, gap_seqs, json_object, seq_of

__all__ = [
    "ANNOUNCE_CORRELATION",
    "DEEP_OUTBOX_ROWS",
    "DeviceRow",
    "FleetTable",
    "fleet_topics",
]

DEEP_OUTBOX_ROWS = 100
"""An outbox this deep is trouble: 100 rows is a second of paced replay, never the
steady state of a device whose uplink keeps up."""
SILENT_AFTER_INTERVALS = 3
"""``online`` but nothing for this many stats intervals: up but stuck (docs/mqtt-api.md)."""
ANNOUNCE_CORRELATION = b"fleet-announce"

# Trouble ranks, worst first: the sort key's first part.
RANK_OFFLINE, RANK_STOPPED, RANK_SILENT, RANK_CAMERA, RANK_OUTBOX, RANK_GAPS, RANK_OK = range(7)
TAMPER_OK = "ok"


def fleet_topics(
    prefix: str, site: str | None, reply_to: str, *, with_events: bool = True
) -> list[str]:
    """The subscriptions of a fleet view of one site (or every site). ``with_events``:
    every stored topic too (events, thumbnails, counts), so that seq gaps are exact."""
    root = f"{prefix}/{site or '+'}/+"
    kinds = ["status", "stats", "state/+/+", "gaps", f"reply/{reply_to}", "reply/announce"]
    if with_events:
        kinds += ["events/+", "thumbs/+/+", "counts/+/+"]
    return [f"{root}/{kind}" for kind in kinds]


@dataclass(frozen=True)
class DeviceRow:
    """One device as the view shows it; times in seconds since the epoch (None: unknown)."""

    site: str
    device: str
    state: str  # online | offline | stopped | unknown (seen, but no status yet)
    since_s: float | None  # when it went into that state (offline seen retained: unknown)
    last_seen_s: float | None  # the last live message from it (retained ones do not count)
    version: str | None
    model: str | None
    boot: str | None
    outbox_rows: int | None  # from its last stats
    gaps_missing: int  # seqs the view has not received (late or lost, not yet known)
    gaps_lost: int  # seqs the device reported dropped in gap notices the view saw
    condition: str | None  # what its status LED shows (stats, docs/mqtt-api.md)
    cameras: tuple[tuple[str, str], ...]  # (camera id, "ok" or what is wrong)
    rank: int  # RANK_*: smaller is worse
    trouble: str  # the reason for the rank, "" when none
    announced: bool  # it answered this view's ``announce``

    @property
    def root(self) -> str:
        return f"{self.site}/{self.device}"

    @property
    def gaps(self) -> int:
        return self.gaps_missing + self.gaps_lost

    def as_dict(self) -> dict[str, object]:
        return {
            "site": self.site,
            "device": self.device,
            "state": self.state,
            "since": self.since_s,
            "last_seen": self.last_seen_s,
            "version": self.version,
            "model": self.model,
            "boot": self.boot,
            "outbox_rows": self.outbox_rows,
            "gaps": {"missing": self.gaps_missing, "lost": self.gaps_lost},
            "condition": self.condition,
            "cameras": dict(self.cameras),
            "trouble": self.trouble or None,
            "announced": self.announced,
        }


@dataclass
class _Device:
    """What the view knows of one device; written only under the table's lock."""

    site: str
    device: str
    state: str = "unknown"
    since_s: float | None = None
    last_seen_s: float | None = None
    version: str | None = None
    model: str | None = None
    boot: str | None = None
    outbox_rows: int | None = None
    condition: str | None = None
    sources: dict[str, str] = field(default_factory=dict)  # camera -> "ok" / what is wrong
    tamper: dict[str, str] = field(default_factory=dict)  # camera -> tamper level
    stats_interval_s: float | None = None
    ledger: SeqLedger = field(default_factory=SeqLedger)
    lost: int = 0
    announced: bool = False


def _source_problem(camera: dict[str, object]) -> str:
    """What a camera's stats say is wrong with it ("ok" when nothing)."""
    source = camera.get("source")
    if isinstance(source, dict):
        if source.get("connected") is False:
            return "disconnected"
        if source.get("ended") is True:
            return "ended"
    if camera.get("fps") == 0:
        return "no frames"
    return "ok"


class FleetTable:
    """Every device of the view, updated by :meth:`on_message` (paho's thread).

    ``clock``: wall clock, for receive times and ages; ``reply_to``: this view's reply
    topic level (its ``announce`` replies); ``exact_gaps``: every stored topic is
    subscribed, so the seq ledger may count what it does not receive as missing.
    """

    def __init__(
        self,
        prefix: str,
        *,
        clock: Callable[[], float] = time.time,
        reply_to: str = "fleet",
        exact_gaps: bool = True,
        deep_outbox_rows: int = DEEP_OUTBOX_ROWS,
    ) -> None:
        self._prefix_levels = len(prefix.split("/"))
        self._clock = clock
        self._reply_to = reply_to
        self._exact_gaps = exact_gaps
        self.deep_outbox_rows = deep_outbox_rows
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, str], _Device] = {}
        self._dirty = False

    # -- updates (paho's network thread) ------------------------------------------

    def on_message(self, message: ReceivedMessage) -> None:
        levels = message.topic.split("/")[self._prefix_levels :]
        if len(levels) < 3:
            return
        site, device, kind = levels[0], levels[1], levels[2]
        body = _json_body(message)
        now_s = self._clock()
        with self._lock:
            entry = self._devices.get((site, device))
            if entry is None:
                if kind == "reply":
                    return  # a reply alone does not make a device
                entry = self._devices[(site, device)] = _Device(site, device)
            self._dirty = True
            will = kind == "status" and body is not None and body.get("state") == "offline"
            if not message.retain and not will:  # the broker sends the will, not the device
                entry.last_seen_s = now_s
            if kind == "status" and body is not None:
                self._on_status(entry, body, message.retain, now_s)
            elif kind == "stats" and body is not None:
                self._on_stats(entry, body, message.message_expiry_s)
            elif kind == "reply":
                entry.announced |= levels[3:] in ([self._reply_to], ["announce"])
            if kind == "state" and len(levels) == 5 and levels[4] == "tamper" and body:
                entry.tamper[levels[3]] = str(body.get("state"))
            self._count_seq(entry, kind, message, body)

    def _on_status(
        self, entry: _Device, body: dict[str, object], retained: bool, now_s: float
    ) -> None:
        if body.get("selftest") is True:
            return  # a technician's self-test at the pole, not the running agent
        state = str(body.get("state", "unknown"))
        boot = _text(body.get("boot"))
        if body.get("outbox_reset") and boot != entry.boot and state == "online":
            entry.ledger = SeqLedger()  # its seq restarted at 1 (docs/mqtt-api.md)
        ts = body.get("ts")
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            entry.since_s = float(ts)  # online: the connect; stopped: the goodbye
        elif state != entry.state:  # offline (the Last Will has no ts)
            entry.since_s = None if retained else now_s
        if boot != entry.boot and state == "online":
            entry.outbox_rows = entry.condition = None  # a new run: its stats are to come
            entry.sources, entry.announced = {}, False
        entry.state = state
        entry.boot = boot
        entry.version = _text(body.get("version"))
        entry.model = _text(body.get("model"))
        cameras = body.get("cameras")
        if isinstance(cameras, list):
            entry.sources = {str(c): entry.sources.get(str(c), "ok") for c in cameras}

    def _on_stats(self, entry: _Device, body: dict[str, object], expiry_s: int | None) -> None:
        outbox = body.get("outbox")
        if isinstance(outbox, dict) and isinstance(outbox.get("depth_rows"), int):
            entry.outbox_rows = outbox["depth_rows"]
        entry.condition = _text(body.get("condition"))
        cameras = body.get("cameras")
        if isinstance(cameras, dict):
            entry.sources = {
                str(cam): _source_problem(figures) if isinstance(figures, dict) else "ok"
                for cam, figures in cameras.items()
            }
        if expiry_s:  # stats expire after two intervals (docs/mqtt-api.md)
            interval_s = expiry_s / 2
            entry.stats_interval_s = max(entry.stats_interval_s or 0.0, interval_s)

    def _count_seq(
        self,
        entry: _Device,
        kind: str,
        message: ReceivedMessage,
        body: dict[str, object] | None,
    ) -> None:
        if kind == "gaps" and body is not None and not message.retain:
            reported = gap_seqs(body)
            if self._exact_gaps:  # one received stays received (docs/mqtt-api.md)
                reported = [s for s in reported if s not in entry.ledger.seen_recent]
            entry.lost += len(reported)
            entry.ledger.lost(reported)
        if not self._exact_gaps or message.retain:
            return  # a retained state is the current level, not news
        if kind in ("events", "thumbs", "state", "counts", "gaps"):
            seq = seq_of(message, body)
            if seq is not None:
                entry.ledger.record(seq)

    # -- reading (the renderer's thread) ---------------------------------------------

    def take_dirty(self) -> bool:
        """Whether anything changed since the last call."""
        with self._lock:
            dirty, self._dirty = self._dirty, False
            return dirty

    def __len__(self) -> int:
        with self._lock:
            return len(self._devices)

    def online_roots(self) -> list[tuple[str, str]]:
        """(site, device) of every device whose status says ``online`` now."""
        with self._lock:
            return [key for key, d in self._devices.items() if d.state == "online"]

    def waiting_for(self, asked: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Those of ``asked`` still online that have not answered ``announce``, or whose
        stats have not come yet."""
        with self._lock:
            return [
                key
                for key in asked
                if (d := self._devices.get(key)) is not None
                and d.state == "online"
                and (not d.announced or d.outbox_rows is None)
            ]

    def rows(self) -> list[DeviceRow]:
        """Every device, worst trouble first (then by site and device)."""
        now_s = self._clock()
        with self._lock:
            rows = [self._row(d, now_s) for d in self._devices.values()]
        return sorted(rows, key=_trouble_order)

    def snapshot(self) -> dict[str, object]:
        """The JSON document of ``--json``: when, a count per trouble, every row."""
        rows = self.rows()
        return {
            "ts": round(self._clock(), 3),
            "devices": len(rows),
            "summary": summary(rows),
            "rows": [row.as_dict() for row in rows],
        }

    def _row(self, d: _Device, now_s: float) -> DeviceRow:
        cameras = {cam: problem for cam, problem in d.sources.items()}
        if d.condition == "starting":  # no frame yet is not a fault while it starts
            cameras = {cam: "ok" for cam in cameras}
        for cam, level in d.tamper.items():
            if level != TAMPER_OK and cameras.get(cam, "ok") == "ok":
                cameras[cam] = level
        bad = [f"{cam} {problem}" for cam, problem in sorted(cameras.items()) if problem != "ok"]
        if d.condition == "camera_fault" and not bad:
            bad = ["camera fault"]
        missing, lost = len(d.ledger.missing), d.lost
        rank, trouble = RANK_OK, ""
        if d.state == "offline":
            rank, trouble = RANK_OFFLINE, "offline"
        elif d.state == "stopped":
            rank, trouble = RANK_STOPPED, "stopped"
        elif self._silent(d, now_s):
            rank, trouble = RANK_SILENT, "silent"
        elif bad:
            rank, trouble = RANK_CAMERA, "camera: " + ", ".join(bad)
        elif d.outbox_rows is not None and d.outbox_rows >= self.deep_outbox_rows:
            rank, trouble = RANK_OUTBOX, f"outbox {d.outbox_rows} rows"
        elif missing or lost:
            rank, trouble = RANK_GAPS, f"gaps: {lost} lost, {missing} missing"
        return DeviceRow(
            site=d.site,
            device=d.device,
            state=d.state,
            since_s=d.since_s,
            last_seen_s=d.last_seen_s,
            version=d.version,
            model=d.model,
            boot=d.boot,
            outbox_rows=d.outbox_rows,
            gaps_missing=missing,
            gaps_lost=lost,
            condition=d.condition,
            cameras=tuple(sorted(cameras.items())),
            rank=rank,
            trouble=trouble,
            announced=d.announced,
        )

    @staticmethod
    def _silent(d: _Device, now_s: float) -> bool:
        """``online``, but nothing from it for three stats intervals (unknown until its
        first stats: the interval comes from their message expiry)."""
        if d.state != "online" or d.stats_interval_s is None or d.last_seen_s is None:
            return False
        return now_s - d.last_seen_s > SILENT_AFTER_INTERVALS * d.stats_interval_s


def _trouble_order(row: DeviceRow) -> tuple[object, ...]:
    """Worst first; within a rank: longest offline, most broken cameras, deepest outbox,
    most gaps; then by name."""
    if row.rank in (RANK_OFFLINE, RANK_STOPPED):
        within: float = row.since_s if row.since_s is not None else float("-inf")
    elif row.rank == RANK_SILENT:
        within = row.last_seen_s or 0.0
    elif row.rank == RANK_CAMERA:
        within = -sum(1 for _, problem in row.cameras if problem != "ok")
    elif row.rank == RANK_OUTBOX:
        within = -(row.outbox_rows or 0)
    elif row.rank == RANK_GAPS:
        within = -row.gaps
    else:
        within = 0.0
    return (row.rank, within, row.site, row.device)


def summary(rows: list[DeviceRow]) -> dict[str, int]:
    """How many devices are online, offline, and in each kind of trouble."""
    names = {
        RANK_OFFLINE: "offline",
        RANK_STOPPED: "stopped",
        RANK_SILENT: "silent",
        RANK_CAMERA: "camera",
        RANK_OUTBOX: "outbox",
        RANK_GAPS: "gaps",
        RANK_OK: "ok",
    }
    counts = dict.fromkeys(names.values(), 0)
    for row in rows:
        counts[names[row.rank]] += 1
    return counts


def _json_body(message: ReceivedMessage) -> dict[str, object] | None:
    if (message.content_type or "application/json") != "application/json":
        return None
    return json_object(message.payload)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
