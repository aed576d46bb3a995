"""What a fleet run measured, as one frozen record (``--json``) and as a text table."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hw_sim.fleet.device import DeviceResult
from hw_sim.fleet.procstat import ProcMonitor
from hw_sim.fleet.stats import (
    SeqAccount,
    account_seqs,
    max_in_window,
    per_second,
    percentile,
    text_histogram,
)

if TYPE_CHECKING:
    from hw_sim.fleet.run import FleetOptions

__all__ = [
    "DrainFigures",
    "FleetReport",
    "RestartFigures",
    "RunTimes",
    "build_report",
    "format_report",
]

Record = tuple[str, int, float, float, int]  # device, seq, received at, sent at, bytes


@dataclass(frozen=True)
class RunTimes:
    t0: float  # traffic starts
    t_end: float  # traffic stops
    t_drained: float  # every worker drained (or gave up)
    t_kill: float | None = None
    t_up: float | None = None  # the broker accepts connections again


@dataclass(frozen=True)
class DrainFigures:
    """How the backlogs (messages stored while a device was cut off) went out."""

    backlog_msgs_median: float
    backlog_msgs_max: int
    drain_s_median: float  # reconnect → last backlog message sent
    drain_s_max: float
    device_peak_msgs_1s: int  # the most one device sent in any 1 s after its reconnect
    device_peak_first_s: int  # ... in the first second after it: a quantum + the rate at most
    device_peak_msgs_100ms: int  # ... in any 0.1 s: a burst shows here
    device_peak_bytes_1s: int
    paced_msgs_per_s: float  # the drain's token bucket
    paced_bytes_per_s: float
    fleet_peak_sent_per_s_after_restart: int  # all devices' PUBLISHes to the broker
    fleet_peak_received_per_s_after_restart: int  # at the collector
    live_msgs_per_s_before_kill: float


@dataclass(frozen=True)
class RestartFigures:
    kill_at_s: float
    down_s: float
    bound_s: float
    devices_back: int
    all_back_s: float  # after the broker came back: the last device's reconnect
    reconnect_p50_s: float
    reconnect_p99_s: float
    failed_attempts: int
    histogram: tuple[str, ...]
    drain: DrainFigures

    @property
    def within_bound(self) -> bool:
        return self.all_back_s <= self.bound_s


@dataclass(frozen=True)
class FleetReport:
    devices: int
    connected_at_start: int
    profile: str
    duration_s: float
    tls: bool
    processes: int
    sent: int
    received: int  # unique (device, seq)
    duplicates: int
    unexplained_duplicates: int
    lost_in_broker: int
    undelivered: int
    unexplained_missing: int
    devices_with_unexplained_gaps: int
    unexplained_detail: tuple[str, ...]  # the first 20: device, seq, when sent and acked
    msgs_per_s: float
    bytes_per_s: float
    latency_p50_ms: float  # undisturbed: neither stored while cut off nor queued behind that
    latency_p99_ms: float
    latency_max_ms: float
    broker_cpu_pct: float
    broker_cpu_peak_pct: float
    broker_rss_mb: float
    broker_peak_rss_mb: float
    tool_cpu_pct: float  # devices + collector, % of one core
    load_before: float
    load_after: float
    restart: RestartFigures | None


def _first_connect_after(result: DeviceResult, t: float) -> float | None:
    """The device's first CONNACK after ``t``. Pass the kill time, not the restart: a
    device may connect between the broker's listening and the run noting it is back."""
    return next((c for c in result.connected_at if c >= t), None)


def _disturbed(
    results: Sequence[DeviceResult], by_device: dict[str, list[Record]], times: RunTimes
) -> dict[str, tuple[float, float]]:
    """Per device: from the kill until its reconnect and its backlog delivered."""
    if times.t_kill is None or times.t_up is None:
        return {}
    windows = {}
    for r in results:
        back = _first_connect_after(r, times.t_kill) or math.inf
        backlog = {s for s, t in r.enqueued_at.items() if times.t_kill <= t < back}
        arrived = [rec[2] for rec in by_device.get(r.device_id, []) if rec[1] in backlog]
        windows[r.device_id] = (times.t_kill, max([back, *arrived]))
    return windows


def _restart_figures(
    options: FleetOptions,
    results: Sequence[DeviceResult],
    by_device: dict[str, list[Record]],
    records: Sequence[Record],
    times: RunTimes,
) -> RestartFigures:
    assert times.t_kill is not None and times.t_up is not None
    back = {r.device_id: _first_connect_after(r, times.t_kill) for r in results}
    delays = [max(0.0, t - times.t_up) for t in back.values() if t is not None]
    # The drain as the devices sent it (first PUBLISH of each seq): what the pacer
    # controls, unblurred by the collector's own delays.
    backlogs, drains, peaks, peaks_100ms, peak_bytes, first_s = [], [], [0], [0], [0], [0]
    sent_after_restart: list[float] = []
    for result in results:
        reconnect = back[result.device_id]
        if reconnect is None:
            continue
        backlog = {s for s, t in result.enqueued_at.items() if times.t_kill <= t < reconnect}
        backlogs.append(len(backlog))
        sent = {s: t for s, t in result.first_sent_at.items() if t >= reconnect}
        sent_after_restart.extend(sent.values())
        first_s.append(sum(t < reconnect + 1.0 for t in sent.values()))
        backlog_sent = [sent[s] for s in backlog if s in sent]
        if not backlog_sent:
            continue
        end = max(backlog_sent)
        drains.append(end - reconnect)
        size = {rec[1]: rec[4] for rec in by_device.get(result.device_id, [])}
        window = [(t, size.get(s, 0)) for s, t in sent.items() if t <= end + 1.0]
        at = [t for t, _ in window]
        peaks.append(int(max_in_window(at, 1.0)))
        peaks_100ms.append(int(max_in_window(at, 0.1)))
        peak_bytes.append(int(max_in_window(at, 1.0, [b for _, b in window])))
    received = per_second([rec[2] for rec in records], times.t0, times.t_kill)
    bin_s = max(1.0, math.ceil(max(delays, default=1.0) / 20))
    return RestartFigures(
        kill_at_s=times.t_kill - times.t0,
        down_s=times.t_up - times.t_kill,
        bound_s=options.reconnect_bound_s,
        devices_back=len(delays),
        all_back_s=max(delays, default=math.inf) if len(delays) == len(results) else math.inf,
        reconnect_p50_s=percentile(delays, 50),
        reconnect_p99_s=percentile(delays, 99),
        failed_attempts=sum(r.connect_failures for r in results),
        histogram=tuple(text_histogram(delays, bin_width=bin_s)),
        drain=DrainFigures(
            backlog_msgs_median=percentile(backlogs, 50),
            backlog_msgs_max=max(backlogs, default=0),
            drain_s_median=percentile(drains, 50),
            drain_s_max=max(drains, default=math.nan),
            device_peak_msgs_1s=max(peaks),
            device_peak_first_s=max(first_s),
            device_peak_msgs_100ms=max(peaks_100ms),
            device_peak_bytes_1s=max(peak_bytes),
            paced_msgs_per_s=options.drain.rate_msgs_per_s,
            paced_bytes_per_s=options.drain.rate_bytes_per_s,
            fleet_peak_sent_per_s_after_restart=max(
                per_second(sent_after_restart, times.t_up, times.t_drained), default=0
            ),
            fleet_peak_received_per_s_after_restart=max(
                per_second([rec[2] for rec in records], times.t_up, times.t_drained), default=0
            ),
            live_msgs_per_s_before_kill=sum(received[1:]) / max(1, len(received) - 1),
        ),
    )


def _detail(
    results: Sequence[DeviceResult], accounts: Sequence[SeqAccount], t_ref: float
) -> tuple[str, ...]:
    """What is known of each unexplained missing seq, times from ``t_ref`` (the kill)."""
    lines: list[str] = []
    for result, account in zip(results, accounts, strict=True):
        for seq in account.unexplained:
            sent = result.first_sent_at.get(seq, math.nan) - t_ref
            acked = result.acked_at.get(seq, math.nan) - t_ref
            back = [round(c - t_ref, 3) for c in result.connected_at]
            lines.append(
                f"{result.device_id} seq {seq}: sent {sent:+.3f} s, acked {acked:+.3f} s,"
                f" connections {back}"
            )
    return tuple(lines[:20])


def build_report(
    options: FleetOptions,
    results: Sequence[DeviceResult],
    records: Sequence[Record],
    monitor: ProcMonitor,
    times: RunTimes,
    *,
    tool_cpu_s: float,
    connected_at_start: int,
    load: tuple[float, float],
) -> FleetReport:
    by_device: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_device[record[0]].append(record)

    def switches(result: DeviceResult) -> list[float]:
        """When the device first reached the restarted broker (see account_seqs)."""
        if times.t_kill is None:
            return []
        return [_first_connect_after(result, times.t_kill) or math.inf]

    accounts = [
        account_seqs(
            r.last_seq,
            [rec[1] for rec in by_device.get(r.device_id, [])],
            acked_at=r.acked_at,
            first_sent_at=r.first_sent_at,
            broker_switches=switches(r),
        )
        for r in results
    ]
    # Latency of undisturbed traffic: not what a device stored while cut off, nor what
    # waited behind that backlog (the drain's figures say how that went).
    disturbed = _disturbed(results, by_device, times)
    latencies = []
    for device, _, received_s, sent_s, _ in records:
        low, high = disturbed.get(device, (math.inf, math.inf))
        if not (low <= sent_s <= high or sent_s < low <= received_s):  # nor in flight at it
            latencies.append((received_s - sent_s) * 1000.0)
    during = [rec for rec in records if times.t0 <= rec[2] < times.t_end]
    wall_s = max(1e-9, times.t_drained - times.t0)
    return FleetReport(
        devices=options.devices,
        connected_at_start=connected_at_start,
        profile=options.profile.name,
        duration_s=options.duration_s,
        tls=options.tls,
        processes=options.worker_count,
        sent=sum(a.expected for a in accounts),
        received=sum(a.received for a in accounts),
        duplicates=sum(a.duplicates for a in accounts),
        unexplained_duplicates=sum(a.unexplained_duplicates for a in accounts),
        lost_in_broker=sum(len(a.lost_in_broker) for a in accounts),
        undelivered=sum(len(a.undelivered) for a in accounts),
        unexplained_missing=sum(len(a.unexplained) for a in accounts),
        devices_with_unexplained_gaps=sum(bool(a.unexplained) for a in accounts),
        unexplained_detail=_detail(results, accounts, times.t_kill or times.t0),
        msgs_per_s=len(during) / options.duration_s,
        bytes_per_s=sum(rec[4] for rec in during) / options.duration_s,
        latency_p50_ms=percentile(latencies, 50),
        latency_p99_ms=percentile(latencies, 99),
        latency_max_ms=max(latencies, default=math.nan),
        broker_cpu_pct=100.0 * monitor.cpu_share(times.t0, times.t_end),
        broker_cpu_peak_pct=100.0 * monitor.peak_cpu_share(times.t0, times.t_drained),
        broker_rss_mb=monitor.rss_at_end() / 1e6,
        broker_peak_rss_mb=monitor.peak_rss_bytes / 1e6,
        tool_cpu_pct=100.0 * tool_cpu_s / wall_s,
        load_before=load[0],
        load_after=load[1],
        restart=(
            _restart_figures(options, results, by_device, records, times)
            if times.t_kill is not None and times.t_up is not None
            else None
        ),
    )


def format_report(report: FleetReport) -> str:
    r = report
    rows = [
        ("devices (connected at start)", f"{r.devices} ({r.connected_at_start})"),
        ("profile, duration, TLS", f"{r.profile}, {r.duration_s:g} s, {'on' if r.tls else 'off'}"),
        ("messages sent / received", f"{r.sent} / {r.received}"),
        ("msgs/s, bytes/s (delivered)", f"{r.msgs_per_s:.1f}, {r.bytes_per_s / 1e3:.1f} kB/s"),
        (
            "latency p50 / p99 / max",
            f"{r.latency_p50_ms:.1f} / {r.latency_p99_ms:.1f} / {r.latency_max_ms:.1f} ms",
        ),
        ("duplicates (unexplained)", f"{r.duplicates} ({r.unexplained_duplicates})"),
        ("missing: lost in killed broker", str(r.lost_in_broker)),
        ("missing: still in outboxes", str(r.undelivered)),
        (
            "missing: UNEXPLAINED (devices)",
            f"{r.unexplained_missing} ({r.devices_with_unexplained_gaps})",
        ),
        (
            "broker CPU mean / peak 1 s",
            f"{r.broker_cpu_pct:.1f} % / {r.broker_cpu_peak_pct:.1f} % of a core",
        ),
        ("broker RSS end / peak", f"{r.broker_rss_mb:.1f} / {r.broker_peak_rss_mb:.1f} MB"),
        (
            "tool CPU (devices + collector)",
            f"{r.tool_cpu_pct:.0f} % of a core ({r.processes} proc.)",
        ),
        ("load average before / after", f"{r.load_before:.2f} / {r.load_after:.2f}"),
    ]
    s = r.restart
    if s is not None:
        d = s.drain
        rows += [
            ("broker SIGKILL at, down for", f"{s.kill_at_s:.1f} s, {s.down_s:.1f} s"),
            (
                "devices back (bound)",
                f"{s.devices_back}/{r.devices} within {s.all_back_s:.1f} s"
                f" ({s.bound_s:g} s: {'met' if s.within_bound else 'MISSED'})",
            ),
            (
                "reconnect p50 / p99",
                f"{s.reconnect_p50_s:.1f} / {s.reconnect_p99_s:.1f} s after the broker was back",
            ),
            ("failed connect attempts", str(s.failed_attempts)),
            (
                "backlog per device med / max",
                f"{d.backlog_msgs_median:.0f} / {d.backlog_msgs_max} msgs",
            ),
            ("backlog sent in med / max", f"{d.drain_s_median:.2f} / {d.drain_s_max:.2f} s"),
            (
                "device peak sent in 1 s (paced)",
                f"{d.device_peak_msgs_1s} msgs, {d.device_peak_bytes_1s / 1e3:.0f} kB"
                f" ({d.paced_msgs_per_s:g} msgs/s, {d.paced_bytes_per_s / 1e3:.0f} kB/s)",
            ),
            ("device peak sent in 0.1 s", f"{d.device_peak_msgs_100ms} msgs"),
            ("device peak in its 1st s back", f"{d.device_peak_first_s} msgs"),
            (
                "fleet peak msgs/s after restart",
                f"{d.fleet_peak_sent_per_s_after_restart} sent,"
                f" {d.fleet_peak_received_per_s_after_restart} received"
                f" (live before the kill: {d.live_msgs_per_s_before_kill:.0f}/s)",
            ),
        ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    if s is not None:
        lines += ["", "reconnect times after the broker came back (devices per bin):", *s.histogram]
    if r.unexplained_detail:
        lines += ["", "unexplained missing seqs (times from the kill):", *r.unexplained_detail]
    return "\n".join(lines)
