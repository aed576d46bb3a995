"""What a fleet run measured, as one frozen record (``--json``) and as a text table."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hw_sim.fleet.device import DeviceResult
from hw_sim.fleet.procstat import ProcMonitor
from hw_sim.fleet.stats import account_seqs, max_in_window, per_second, percentile, text_histogram

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
    drain_s_median: float  # reconnect → last backlog message received
    drain_s_max: float
    device_peak_msgs_1s: int  # the most one device delivered in any 1 s after its reconnect
    device_peak_bytes_1s: int
    paced_msgs_per_s: float  # the drain's token bucket
    paced_bytes_per_s: float
    broker_peak_msgs_per_s_after_restart: int
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
    return next((c for c in result.connected_at if c >= t), None)


def _disturbed(
    results: Sequence[DeviceResult], by_device: dict[str, list[Record]], times: RunTimes
) -> dict[str, tuple[float, float]]:
    """Per device: from the kill until its reconnect and its backlog delivered."""
    if times.t_kill is None or times.t_up is None:
        return {}
    windows = {}
    for r in results:
        back = _first_connect_after(r, times.t_up) or math.inf
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
    back = {r.device_id: _first_connect_after(r, times.t_up) for r in results}
    delays = [t - times.t_up for t in back.values() if t is not None]
    backlogs, drains, peaks, peak_bytes = [], [], [0], [0]
    for result in results:
        reconnect = back[result.device_id]
        if reconnect is None:
            continue
        backlog = {s for s, t in result.enqueued_at.items() if times.t_kill <= t < reconnect}
        backlogs.append(len(backlog))
        mine = by_device.get(result.device_id, [])
        arrived = [rec[2] for rec in mine if rec[1] in backlog]
        if not arrived:
            continue
        end = max(arrived)
        drains.append(end - reconnect)
        window = [rec for rec in mine if reconnect <= rec[2] <= end + 1.0]
        peaks.append(int(max_in_window([rec[2] for rec in window], 1.0)))
        peak_bytes.append(int(max_in_window([r[2] for r in window], 1.0, [r[4] for r in window])))
    arrivals = [rec[2] for rec in records]
    before = per_second(arrivals, times.t0, times.t_kill)
    after = per_second(arrivals, times.t_up, times.t_drained)
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
            device_peak_bytes_1s=max(peak_bytes),
            paced_msgs_per_s=options.drain.rate_msgs_per_s,
            paced_bytes_per_s=options.drain.rate_bytes_per_s,
            broker_peak_msgs_per_s_after_restart=max(after, default=0),
            live_msgs_per_s_before_kill=sum(before[1:]) / max(1, len(before) - 1),
        ),
    )


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
    kills = [times.t_kill] if times.t_kill is not None else []
    accounts = [
        account_seqs(
            r.last_seq,
            [rec[1] for rec in by_device.get(r.device_id, [])],
            acked_at=r.acked_at,
            first_sent_at=r.first_sent_at,
            kill_times=kills,
        )
        for r in results
    ]
    # Latency of undisturbed traffic: not what a device stored while cut off, nor what
    # waited behind that backlog (the drain's figures say how that went).
    disturbed = _disturbed(results, by_device, times)
    latencies = []
    for device, _, received_s, sent_s, _ in records:
        low, high = disturbed.get(device, (math.inf, math.inf))
        if not low <= sent_s <= high:
            latencies.append((received_s - sent_s) * 1000.0)
    during = [rec for rec in records if times.t0 <= rec[2] < times.t_end]
    wall_s = max(1e-9, times.t_drained - times.t0)
    return FleetReport(
        devices=options.devices,
        connected_at_start=connected_at_start,
        profile=options.profile.name,
        duration_s=options.duration_s,
        tls=options.tls,
        processes=options.processes,
        sent=sum(a.expected for a in accounts),
        received=sum(a.received for a in accounts),
        duplicates=sum(a.duplicates for a in accounts),
        unexplained_duplicates=sum(a.unexplained_duplicates for a in accounts),
        lost_in_broker=sum(len(a.lost_in_broker) for a in accounts),
        undelivered=sum(len(a.undelivered) for a in accounts),
        unexplained_missing=sum(len(a.unexplained) for a in accounts),
        devices_with_unexplained_gaps=sum(bool(a.unexplained) for a in accounts),
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
            ("drain time med / max", f"{d.drain_s_median:.2f} / {d.drain_s_max:.2f} s"),
            (
                "device peak in 1 s (paced)",
                f"{d.device_peak_msgs_1s} msgs, {d.device_peak_bytes_1s / 1e3:.0f} kB"
                f" ({d.paced_msgs_per_s:g} msgs/s, {d.paced_bytes_per_s / 1e3:.0f} kB/s)",
            ),
            (
                "broker peak msgs/s after restart",
                f"{d.broker_peak_msgs_per_s_after_restart}"
                f" (live before the kill: {d.live_msgs_per_s_before_kill:.0f}/s)",
            ),
        ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    if s is not None:
        lines += ["", "reconnect times after the broker came back (devices per bin):", *s.histogram]
    return "\n".join(lines)
