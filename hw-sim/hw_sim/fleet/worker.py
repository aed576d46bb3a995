"""A group of simulated devices in one process (or thread): started over a ramp, fed
synthetic events on a Poisson schedule until the run ends, then given time to drain.

It talks to the fleet's main process over a :class:`multiprocessing.connection.Connection`:
``("ready", connected)`` → ``("go", t0, t_end, drain_until)`` → ``("done", results, cpu_s)``.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import random
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from edge_agent.encode import Topics
from edge_agent.mqtt import DrainSettings, MqttSettings
from hw_sim.fleet.device import DeviceResult, SimDevice
from hw_sim.fleet.profiles import SiteProfile

__all__ = ["WorkerPlan", "device_id", "quiet_logs", "run_worker", "run_worker_process"]

_POLL_S = 0.05
TOPIC_PREFIX = "city/fleet-sim"


def device_id(index: int) -> str:
    return f"sim-{index:04d}"


@dataclass(frozen=True)
class WorkerPlan:
    first_index: int
    count: int
    host: str
    port: int
    profile: SiteProfile
    drain: DrainSettings
    outbox_dir: Path
    seed: int
    ramp_s: float
    connect_timeout_s: float
    tls_ca_file: Path | None = None
    tls_cert_dir: Path | None = None  # <device_id>.crt and .key for each device


def quiet_logs() -> None:
    """Hundreds of devices losing the broker at once: count it, do not log it 500 times."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("edge_agent.mqtt").setLevel(logging.ERROR)
    logging.getLogger("edge_agent.mqtt.paho").setLevel(logging.CRITICAL)  # its loop's chatter


def run_worker_process(plan: WorkerPlan, conn: Connection) -> None:
    """The target of a worker process: its logs as quiet as the command line's."""
    quiet_logs()
    run_worker(plan, conn)


def _raise_fd_limit() -> None:
    """Each device holds a socket and three SQLite files: 250 devices pass 1,024."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _settings(plan: WorkerPlan, name: str) -> MqttSettings:
    cert_dir = plan.tls_cert_dir
    return MqttSettings(
        host=plan.host,
        port=plan.port,
        client_id=name,
        tls_ca_file=plan.tls_ca_file,
        tls_cert_file=cert_dir / f"{name}.crt" if cert_dir else None,
        tls_key_file=cert_dir / f"{name}.key" if cert_dir else None,
    )


def _build(plan: WorkerPlan) -> list[SimDevice]:
    devices = []
    for index in range(plan.first_index, plan.first_index + plan.count):
        name = device_id(index)
        devices.append(
            SimDevice(
                name,
                _settings(plan, name),
                Topics(f"{TOPIC_PREFIX}/{name}"),
                plan.outbox_dir / f"{name}.db",
                plan.drain,
                plan.profile,
                seed=plan.seed * 100_003 + index,
            )
        )
    return devices


def _start(devices: list[SimDevice], ramp_s: float, timeout_s: float) -> int:
    """Start every device, spread over ``ramp_s``; wait until all are connected."""
    began = time.monotonic()
    for i, device in enumerate(devices):
        due = began + ramp_s * i / max(1, len(devices))
        time.sleep(max(0.0, due - time.monotonic()))
        device.start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(d.connected for d in devices):
        time.sleep(_POLL_S)
    return sum(d.connected for d in devices)


def _generate(
    devices: list[SimDevice], rate_per_s: float, t0: float, t_end: float, seed: int
) -> None:
    """Poisson arrivals per device, in wall time, from t0 until t_end."""
    rng = random.Random(seed)
    due = [(t0 + rng.expovariate(rate_per_s), i) for i in range(len(devices))]
    heapq.heapify(due)
    while due:
        at, i = due[0]
        if at >= t_end:
            return
        time.sleep(max(0.0, at - time.time()))
        heapq.heapreplace(due, (at + rng.expovariate(rate_per_s), i))
        devices[i].emit(time.time())


def run_worker(plan: WorkerPlan, conn: Connection) -> None:
    """The worker's whole life (the target of its process or thread)."""
    _raise_fd_limit()
    cpu_start_s = time.process_time()
    devices = _build(plan)
    results: list[DeviceResult] = []
    try:
        conn.send(("ready", _start(devices, plan.ramp_s, plan.connect_timeout_s)))
        message = conn.recv()
        if message[0] != "go":
            return
        _, t0, t_end, drain_until = message
        _generate(devices, plan.profile.events_per_s, t0, t_end, plan.seed)
        while time.time() < drain_until and not all(d.drained() for d in devices):
            time.sleep(_POLL_S)
    finally:
        results = [device.stop(timeout_s=1.0) for device in devices]
        conn.send(("done", results, time.process_time() - cpu_start_s))
