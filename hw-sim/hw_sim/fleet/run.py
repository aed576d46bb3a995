"""``hw-sim fleet``: N simulated devices against one broker, measured end to end.

The devices (:mod:`hw_sim.fleet.worker`) run in ``processes`` worker processes (0: in
this process, as threads; for tests). This process runs the collector (one MQTT 5
subscriber with a kept session on every device's events and thumbnails), samples the
broker's CPU and memory from ``/proc``, and, when it owns the broker, SIGKILLs and
restarts it on cue. :mod:`hw_sim.fleet.report` turns what everyone saw into figures.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from edge_agent.broker import LocalBroker
from edge_agent.mqtt import DrainSettings, MqttSettings, ReceivedMessage, Subscriber
from hw_sim.fleet.broker import TlsFiles, make_tls_files, save_sessions, tls_listener_config
from hw_sim.fleet.device import DeviceResult
from hw_sim.fleet.procstat import ProcMonitor
from hw_sim.fleet.profiles import SENT_AT_PROPERTY, SiteProfile
from hw_sim.fleet.report import FleetReport, RunTimes, build_report
from hw_sim.fleet.worker import (
    TOPIC_PREFIX,
    WorkerPlan,
    device_id,
    run_worker,
    run_worker_process,
)

__all__ = ["Collector", "FleetOptions", "run_fleet"]

COLLECTOR_ID = "fleet-collector"
# paho's network loop is select(), which cannot watch a descriptor >= 1024 (FD_SETSIZE):
# a client whose socket lands above it connects and drops, over and over. A device holds
# ~6 (its socket, paho's wake-up socket pair, SQLite's db, wal and shm files), so one
# process carries at most this many; more devices get more processes.
DEVICES_PER_PROCESS = 120


@dataclass(frozen=True)
class FleetOptions:
    devices: int
    duration_s: float
    profile: SiteProfile
    processes: int = 2
    tls: bool = False
    host: str = "127.0.0.1"
    port: int | None = None  # an external broker (with broker None)
    broker_pid: int | None = None  # an external broker's pid, for its CPU and memory
    kill_broker_at_s: float | None = None  # after the start of traffic
    broker_down_s: float = 5.0
    drain: DrainSettings = field(default_factory=DrainSettings)
    ramp_s: float = 5.0
    settle_s: float = 180.0  # after the run, at most this long for backlogs to drain
    reconnect_bound_s: float = 120.0
    outbox_dir: Path | None = None  # default: a temp dir on /dev/shm when there is one
    seed: int = 1

    def __post_init__(self) -> None:
        if self.devices < 1 or self.duration_s <= 0 or self.processes < 0:
            raise ValueError("devices >= 1, duration_s > 0 and processes >= 0")
        if self.kill_broker_at_s is not None and not 0 <= self.kill_broker_at_s < self.duration_s:
            raise ValueError("kill_broker_at_s must fall within the run")
        if self.processes == 0 and self.devices > DEVICES_PER_PROCESS:
            raise ValueError(f"more than {DEVICES_PER_PROCESS} devices need worker processes")

    @property
    def worker_count(self) -> int:
        """Worker processes (0: one group of threads here), at least one per
        DEVICES_PER_PROCESS devices."""
        if self.processes == 0:
            return 0
        return max(self.processes, -(-self.devices // DEVICES_PER_PROCESS))


class Collector:
    """The consumer: every event and thumbnail as (device, seq, received, sent, bytes)."""

    def __init__(self, settings: MqttSettings) -> None:
        self.records: list[tuple[str, int, float, float, int]] = []
        self._lock = threading.Lock()
        self._subscriber = Subscriber(
            settings,
            [f"{TOPIC_PREFIX}/+/events/#", f"{TOPIC_PREFIX}/+/thumbs/#"],
            self._on_message,
        )

    def _on_message(self, message: ReceivedMessage) -> None:
        received_s = time.time()
        seq = message.user_property("seq")
        sent = message.user_property(SENT_AT_PROPERTY)
        if seq is None or sent is None:
            return
        record = (
            message.topic.split("/")[2],
            int(seq),
            received_s,
            float(sent),
            len(message.payload),
        )
        with self._lock:
            self.records.append(record)

    def count(self) -> int:
        with self._lock:
            return len(self.records)

    def start(self) -> None:
        self._subscriber.start()

    def stop(self) -> None:
        self._subscriber.stop()


@dataclass
class _Broker:
    """The broker under test: one we started (``local``) or someone else's (``pid``)."""

    local: LocalBroker | None
    pid: int | None

    def current_pid(self) -> int | None:
        return self.local.pid if self.local is not None else self.pid


def _outbox_root(options: FleetOptions) -> Path:
    if options.outbox_dir is not None:
        options.outbox_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="fleet-", dir=options.outbox_dir))
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="hw-sim-fleet-", dir=shm if shm.is_dir() else None))


def _plans(
    options: FleetOptions, host: str, port: int, outboxes: Path, tls: TlsFiles | None
) -> list[WorkerPlan]:
    groups = max(1, options.worker_count)
    sizes = [options.devices // groups + (g < options.devices % groups) for g in range(groups)]
    plans, first = [], 0
    for g, size in enumerate(sizes):
        if size:
            plans.append(
                WorkerPlan(
                    first_index=first,
                    count=size,
                    host=host,
                    port=port,
                    profile=options.profile,
                    drain=options.drain,
                    outbox_dir=outboxes,
                    seed=options.seed * 1000 + g,
                    ramp_s=options.ramp_s,
                    connect_timeout_s=60.0 + options.ramp_s,
                    tls_ca_file=tls.ca_file if tls else None,
                    tls_cert_dir=tls.client_dir if tls else None,
                )
            )
        first += size
    return plans


def _spawn(plans: list[WorkerPlan], in_process: bool) -> tuple[list[Connection], list[Any]]:
    context = multiprocessing.get_context("spawn")
    conns, runners = [], []
    for plan in plans:
        ours, theirs = context.Pipe()
        runner: Any
        if in_process:
            runner = threading.Thread(target=run_worker, args=(plan, theirs), daemon=True)
        else:
            runner = context.Process(target=run_worker_process, args=(plan, theirs), daemon=True)
        runner.start()
        conns.append(ours)
        runners.append(runner)
    return conns, runners


def _loadavg() -> float:
    with contextlib.suppress(OSError, ValueError):
        return float(Path("/proc/loadavg").read_text().split()[0])
    return float("nan")


def run_fleet(
    options: FleetOptions,
    *,
    broker: LocalBroker | None = None,
    log: Callable[[str], None] = print,
) -> FleetReport:
    """One run. ``broker``: a mosquitto the caller started and lets us kill and restart;
    without it and without ``options.port`` the run starts its own."""
    work = Path(tempfile.mkdtemp(prefix="hw-sim-fleet-run-"))
    outboxes = _outbox_root(options)
    owned: LocalBroker | None = None
    runners: list[Any] = []
    try:
        tls: TlsFiles | None = None
        if broker is None and options.port is None:
            if options.tls:
                log(f"making a test CA and {options.devices + 1} client certificates")
                names = [device_id(i) for i in range(options.devices)] + [COLLECTOR_ID]
                tls = make_tls_files(work / "pki", names)
            extra = tls_listener_config(tls) if tls else ""
            owned = broker = LocalBroker(extra_config=extra)
            broker.start()
            log(
                f"started mosquitto on {broker.host}:{broker.port}"
                f" (pid {broker.pid}, TLS {bool(tls)})"
            )
        elif options.tls:
            raise ValueError("TLS with a broker of your own: not supported; let the tool start it")
        if options.kill_broker_at_s is not None and broker is None:
            raise ValueError("--kill-broker-at-s needs a broker the tool started")
        host = broker.host if broker is not None else options.host
        port = broker.port if broker is not None else options.port
        assert port is not None
        target = _Broker(broker, options.broker_pid)
        monitor = ProcMonitor(target.current_pid)
        monitor.start()

        cert, key = tls.client(COLLECTOR_ID) if tls else (None, None)
        collector = Collector(
            MqttSettings.consumer(
                host,
                port,
                COLLECTOR_ID,
                session_expiry_s=3600,  # kept over a broker restart (see save_sessions)
                reconnect_max_delay_s=0.5,
                reconnect_min_delay_s=0.05,
                tls_ca_file=tls.ca_file if tls else None,
                tls_cert_file=cert,
                tls_key_file=key,
            )
        )
        collector.start()

        plans = _plans(options, host, port, outboxes, tls)
        load_before = _loadavg()
        log(f"starting {options.devices} devices in {len(plans)} worker(s) over {options.ramp_s} s")
        conns, runners = _spawn(plans, in_process=options.processes == 0)
        connected = sum(conn.recv()[1] for conn in conns)
        log(f"{connected} of {options.devices} devices connected")
        if (
            broker is not None
            and options.kill_broker_at_s is not None
            and not save_sessions(broker)
        ):
            log("warning: mosquitto did not save its sessions; the collector may miss messages")

        t0 = time.time() + 0.5
        t_end = t0 + options.duration_s
        for conn in conns:
            conn.send(("go", t0, t_end, t_end + options.settle_s))
        t_kill = t_up = None
        if options.kill_broker_at_s is not None and broker is not None:
            time.sleep(max(0.0, t0 + options.kill_broker_at_s - time.time()))
            broker.kill()
            t_kill = time.time()
            log(
                f"SIGKILLed the broker at {t_kill - t0:.1f} s;"
                f" restarting in {options.broker_down_s} s"
            )
            time.sleep(options.broker_down_s)
            broker.start()
            t_up = time.time()
            log(f"broker back (pid {broker.pid})")
        results: list[DeviceResult] = []
        worker_cpu_s = 0.0
        for conn in conns:
            _, batch, cpu_s = conn.recv()
            results.extend(batch)
            worker_cpu_s += cpu_s
        t_drained = time.time()
        _wait_quiet(collector, sum(r.last_seq for r in results), timeout_s=30.0)
        collector.stop()
        monitor.stop()
        load_after = _loadavg()
        times = RunTimes(t0=t0, t_end=t_end, t_drained=t_drained, t_kill=t_kill, t_up=t_up)
        main_cpu_s = time.process_time()
        return build_report(
            options,
            results,
            collector.records,
            monitor,
            times,
            tool_cpu_s=worker_cpu_s + (main_cpu_s if options.processes else 0.0),
            connected_at_start=connected,
            load=(load_before, load_after),
        )
    finally:
        for runner in runners:
            if isinstance(runner, multiprocessing.process.BaseProcess):
                runner.join(timeout=30)
                if runner.is_alive():
                    runner.kill()
        if owned is not None:
            owned.close()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(outboxes, ignore_errors=True)


def _wait_quiet(collector: Collector, expected: int, timeout_s: float) -> None:
    """Until the collector has ``expected`` messages or none came for 2 s."""
    deadline = time.monotonic() + timeout_s
    last, last_change = collector.count(), time.monotonic()
    while time.monotonic() < deadline and collector.count() < expected:
        time.sleep(0.1)
        now = collector.count()
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > 2.0:
            return
