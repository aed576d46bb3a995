"""The technician page's cost: the agent's CPU with the page disabled, enabled with nobody
looking, and with one viewer on the live view (the live picture with zones and boxes drawn,
fetched once a second, as the page's live view does).

Each mode runs ``edge-agent run`` in a child process on a simulator scene (a person walking
in, looping; 960x540 at 5 fps; ssd_mobilenet_v1 on 1 thread; a local mosquitto), and its
CPU is read from /proc/<pid>/stat (every thread) over a window after a warm-up. Modes
rotate through ``--rounds`` rounds so a busy neighbour colours them alike. No thresholds:
it prints figures (bench/README.md).

    python bench/bench_web.py                    # ~5 min: 2 rounds x 3 modes x (15 + 30) s
    python bench/bench_web.py --rounds 1 --seconds 20
    python bench/bench_web.py --before /work/main   # adds that tree's agent (no page code)
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from edge_agent.broker import LocalBroker, free_loopback_port
from edge_agent.web.auth import write_password_file

PASSWORD = "bench-password"
MODES = ("disabled", "enabled, closed", "one viewer")
TICKS_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_S  # utime + stime


def write_config(directory: Path, broker_port: int, web_port: int | None) -> Path:
    data: dict[str, object] = {
        "site_id": "bench",
        "device_id": "web",
        "cameras": [
            {"id": "cam1", "fps": 5, "source": {"kind": "sim", "scenario": "person_walks_in"}}
        ],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "mqtt": {"host": "127.0.0.1", "port": broker_port},
        "outbox": {"path": str(directory / "outbox.db")},
        "references": {"directory": None},
    }
    if web_port is not None:
        data["web"] = {"enabled": True, "listen": f"127.0.0.1:{web_port}"}
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Viewer(threading.Thread):
    """One browser's worth of requests: log in, then the live picture once a second."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.latencies_s: list[float] = []
        self.bytes = 0
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def login(self) -> None:
        request = urllib.request.Request(
            self.url + "/login",
            data=f"password={PASSWORD}".encode(),
            headers={"Origin": self.url},
        )
        self.opener.open(request, timeout=10).read()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                url = f"{self.url}/api/cameras/cam1/latest.jpg?draw=1&width=640&t={started}"
                self.bytes += len(self.opener.open(url, timeout=10).read())
                self.latencies_s.append(time.perf_counter() - started)
            except OSError:
                pass  # no frame yet (503)
            self.stop.wait(1.0)


def wait_for_page(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/login", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the page at {url} did not answer")


def measure(
    mode: str, broker_port: int, warmup_s: float, seconds: float, before: Path | None
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        web_port = None if mode in ("disabled", "before") else free_loopback_port()
        env = dict(os.environ)
        if mode == "before" and before is not None:  # the same agent without this work
            env["PYTHONPATH"] = f"{before}{os.pathsep}{before / 'hw-sim'}"
        config = write_config(directory, broker_port, web_port)
        write_password_file(directory / "web-password", PASSWORD)
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge_agent.cli",
                "--log-level",
                "WARNING",
                "run",
                "--config",
                str(config),
            ],
            stdout=subprocess.DEVNULL,
            env=env,
        )
        viewer = None
        try:
            if web_port is not None:
                url = f"http://127.0.0.1:{web_port}"
                wait_for_page(url, 60.0)
                if mode == "one viewer":
                    viewer = Viewer(url)
                    viewer.login()
                    viewer.start()
            time.sleep(warmup_s)
            start_cpu, start_wall = cpu_s(child.pid), time.monotonic()
            requests_before = len(viewer.latencies_s) if viewer else 0
            time.sleep(seconds)
            used_s, wall_s = cpu_s(child.pid) - start_cpu, time.monotonic() - start_wall
            figures = {"cpu_pct": 100.0 * used_s / wall_s}
            if viewer is not None:
                window = viewer.latencies_s[requests_before:]
                figures["requests"] = len(window)
                figures["latency_ms"] = 1000 * statistics.median(window) if window else float("nan")
                figures["kib_per_picture"] = viewer.bytes / max(1, len(viewer.latencies_s)) / 1024
            return figures
        finally:
            if viewer is not None:
                viewer.stop.set()
            child.terminate()
            child.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring")
    parser.add_argument(
        "--before", type=Path, help="a source tree without the page (main) measured alike"
    )
    args = parser.parse_args()
    modes = MODES + (("before",) if args.before else ())
    print(f"load before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    with LocalBroker() as broker:
        for round_index in range(args.rounds):
            shift = round_index % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                figures = measure(mode, broker.port, args.warmup, args.seconds, args.before)
                results[mode].append(figures)
                print(
                    f"round {round_index + 1}: {mode:16s} "
                    + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()),
                    flush=True,
                )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print()
    print("| page | agent CPU (% of one core), mean of rounds | per round |")
    print("|---|---|---|")
    for mode in modes:
        cpus = [r["cpu_pct"] for r in results[mode]]
        print(f"| {mode} | {statistics.mean(cpus):.1f} | {', '.join(f'{c:.1f}' for c in cpus)} |")
    viewers = results["one viewer"]
    if viewers:
        latency = statistics.mean(r["latency_ms"] for r in viewers)
        size = statistics.mean(r["kib_per_picture"] for r in viewers)
        print(f"\none viewer: median request {latency:.1f} ms, {size:.0f} KiB a picture (640 px)")


if __name__ == "__main__":
    main()
