"""The agent as the user runs it, beside a naive loop: CPU per second of video, and memory.

    python bench/bench_pipeline.py cpu [--scenes S ...] [--video-s 30] [--repeats 3]
    python bench/bench_pipeline.py memory         # its last rows come from here

**CPU**: per scene, two processes at the same time, each reading the same source as fast
as it can (``realtime: false``, looped), so the work is fixed whatever the machine's load:

- the agent: ``edge_agent.app.Agent`` from a default config (SSD, detector threads the
  machine's cores - 1 unless ``--threads``, the gate, region detection, 5 fps), started as
  ``edge-agent run`` starts it: its capture, analysis, drain and housekeeping threads; its
  broker a port nobody listens on (the outbox keeps what it would send);
- the naive loop (``naive_loop`` below): decode every frame, keep one per 1/fps, resize,
  invoke, read the outputs (on as many detector threads as the agent).

After ``WARM_UP_VIDEO_S`` of video each process reads its CPU time (all threads,
``time.process_time``) and the source's frame count, and again after ``video_s`` more:
CPU seconds per second of video, 1.0 being one core busy in real time. The median of
``repeats`` runs is printed, with the ratio agent / naive of each run.

**Memory**: ``edge-agent run`` itself, in real time on the traffic clip (a file source), its
``VmHWM`` from ``/proc/<pid>/status`` after a while: what ``ps`` and systemd see; and how its
``VmRSS`` splits into ``RssAnon`` (its own memory) and ``RssFile`` (clean pages of the
libraries and files it maps, which the kernel can drop and read again).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULT = "RESULT "
WARM_UP_VIDEO_S = 5.0  # the first full-frame passes, the gate's background, first tracks
WARM_UP_S = 8.0  # imports, model load, the first frames and the first full-frame passes


def scene_sources(media: Path, *, realtime: bool = False) -> dict[str, dict[str, Any]]:
    """Issue 14's scenes: static, room, traffic, crowd; and a real road (looped, real time)."""
    from hw_sim.scenes import scenario_names

    crowd = "crowd" if "crowd" in scenario_names() else "busy_market"

    def sim(name: str) -> dict[str, Any]:
        return {
            "kind": "sim",
            "scenario": name,
            "width": 960,
            "height": 540,
            "loop": True,
            "realtime": realtime,
        }

    def clip(name: str) -> dict[str, Any]:
        return {"kind": "opencv", "uri": str(media / name), "loop": True, "realtime": realtime}

    return {
        "static": sim("empty_street"),
        "room": clip("intel_one-by-one-person-detection.mp4"),
        "traffic": clip("automl_traffic_frames.mp4"),  # 20 frames: a jump every 0.67 s
        "cars": clip("intel_car-detection.mp4"),  # 30 s of a real road, for comparison
        f"crowd ({crowd})": sim(crowd),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(
    directory: Path,
    source: dict[str, Any],
    model: str,
    fps: float = 5.0,
    threads: int | None = None,
) -> Path:
    """A one-camera agent config with the defaults, its broker a port nobody listens on
    (``threads``: the detector's, for the agent and the naive loop alike; None: the default)."""
    directory.mkdir(parents=True, exist_ok=True)
    detector: dict[str, Any] = {"model": model}
    if threads is not None:
        detector["threads"] = threads
    config = {
        "site_id": "bench",
        "device_id": "bench",
        "cameras": [{"id": "cam1", "fps": fps, "source": source}],
        "detector": detector,
        "mqtt": {"host": "127.0.0.1", "port": free_port()},
        "outbox": {"path": str(directory / "outbox.db")},
    }
    path = directory / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    raise KeyError(key)


def child(kind: str, config: Path, video_s: float) -> subprocess.Popen[str]:
    command = [sys.executable, str(Path(__file__).resolve()), kind, str(config), str(video_s)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def result_of(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=1800)
    for line in out.splitlines():
        if line.startswith(RESULT):
            return dict(json.loads(line[len(RESULT) :]))
    raise SystemExit(f"{process.args} printed no result (exit {process.returncode})")


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def cpu_bench(
    media: Path,
    scenes: Sequence[str] | None,
    video_s: float,
    repeats: int,
    model: str,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    sources = scene_sources(media)
    chosen = [s for s in sources if scenes is None or s.split()[0] in scenes]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        for scene in chosen:
            runs = []
            for repeat in range(repeats):
                directory = Path(tmp) / f"{scene.split()[0]}-{repeat}"
                config = write_config(directory, sources[scene], model, threads=threads)
                agent, naive = child("agent", config, video_s), child("naive", config, video_s)
                runs.append((result_of(agent), result_of(naive)))
            ratios = [a["share"] / n["share"] for a, n in runs]
            row = {
                "scene": scene,
                "agent": median([a["share"] for a, _ in runs]),
                "naive": median([n["share"] for _, n in runs]),
                "ratio": median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
                "invokes_per_frame": median([a["invokes"] / max(1, a["frames"]) for a, _ in runs]),
                "stage_ms": {
                    k: median([a["stage_ms"][k] for a, _ in runs]) for k in runs[0][0]["stage_ms"]
                },
                "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
            }
            results.append(row)
            print(
                f"{scene:<22} agent {100 * row['agent']:5.1f} % of a core, naive "
                f"{100 * row['naive']:5.1f} %: {row['ratio']:.2f}x (runs {min(ratios):.2f}.."
                f"{max(ratios):.2f}); invokes/frame {row['invokes_per_frame']:.2f}; "
                f"loadavg {row['load']}",
                flush=True,
            )
            stages = "  ".join(f"{k} {v:.2f}" for k, v in row["stage_ms"].items() if v >= 0.005)
            print(f"{'':22} agent ms per analysed frame: {stages}", flush=True)
    print(
        "\n| scene | agent % of a core | naive loop % | agent / naive (median, range) | "
        "invokes per analysed frame |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        low, high = r["ratio_range"]
        print(
            f"| {r['scene']} | {100 * r['agent']:.1f} | {100 * r['naive']:.1f} | "
            f"{r['ratio']:.2f} ({low:.2f}-{high:.2f}) | {r['invokes_per_frame']:.2f} |"
        )
    return results


class VideoClock:
    """CPU time against video time read by a source: a window after the warm-up."""

    def __init__(self, fps: float, video_s: float, frames_read: Callable[[], int]) -> None:
        self._fps, self._video_s, self._frames_read = fps, video_s, frames_read

    def wait_video(self, seconds: float) -> tuple[float, int]:
        target = self._frames_read() + round(seconds * self._fps)
        while self._frames_read() < target:
            time.sleep(0.05)
        return time.process_time(), self._frames_read()

    def measure(self, on_start: Callable[[], None] = lambda: None) -> dict[str, float]:
        self.wait_video(WARM_UP_VIDEO_S)
        on_start()
        cpu_start, frames_start = time.process_time(), self._frames_read()
        cpu_end, frames_end = self.wait_video(self._video_s)
        video_s = (frames_end - frames_start) / self._fps
        return {"share": (cpu_end - cpu_start) / video_s, "video_s": video_s}


def agent_child(config_path: Path, video_s: float) -> None:
    """The agent's threads on the config, as ``edge-agent run`` starts them."""
    from edge_agent.app import Agent
    from edge_agent.config import AgentConfig

    config = AgentConfig.model_validate(json.loads(config_path.read_text()))
    agent = Agent(config)
    worker = agent.workers[0]
    clock = VideoClock(
        worker.source.nominal_fps, video_s, lambda: worker.source.health().frames_read
    )
    agent.start()
    try:
        pipeline = worker.pipeline
        before: tuple[int, int, dict[str, float]] = (0, 0, {})

        def window_starts() -> None:
            nonlocal before
            before = (pipeline.clock.frames, pipeline.clock.invokes, dict(pipeline.clock.seconds))

        figures: dict[str, Any] = dict(clock.measure(window_starts))
        frames = pipeline.clock.frames - before[0]
        figures["frames"] = frames
        figures["invokes"] = pipeline.clock.invokes - before[1]
        figures["stage_ms"] = {
            k: 1000.0 * (v - before[2][k]) / max(1, frames)
            for k, v in pipeline.clock.seconds.items()
        }
    finally:
        agent.stop()
    print(RESULT + json.dumps(figures), flush=True)


def running_memory(media: Path, models: Sequence[str], seconds: float) -> list[dict[str, Any]]:
    """VmHWM of ``edge-agent run`` on the traffic clip in real time (a file source), one
    process per model, after ``seconds``."""
    source = scene_sources(media, realtime=True)["traffic"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        for model in models:
            config = write_config(Path(tmp) / model, source, model)
            command = [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)]
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                time.sleep(seconds)
                if process.poll() is not None:
                    raise SystemExit(f"edge-agent run exited with {process.returncode}")
                hwm_mb, rss_mb = status_mb(process.pid, "VmHWM"), status_mb(process.pid, "VmRSS")
                anon_mb = status_mb(process.pid, "RssAnon")
                file_mb = status_mb(process.pid, "RssFile")
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
            rows.append(
                {
                    "model": model,
                    "hwm_mb": hwm_mb,
                    "rss_mb": rss_mb,
                    "anon_mb": anon_mb,  # the process's own memory
                    "file_mb": file_mb,  # pages of libraries and files it maps: clean
                }
            )
    return rows


def naive_loop(config_path: Path, video_s: float) -> None:
    """Decode every frame, keep one per 1/fps, resize, invoke: what a first attempt does."""
    import threading

    import cv2
    import numpy as np

    from edge_agent import datafiles
    from edge_agent.capture import open_source
    from edge_agent.config import AgentConfig
    from edge_agent.detect.runtime import load_interpreter

    cv2.setNumThreads(1)
    config = AgentConfig.model_validate(json.loads(config_path.read_text()))
    camera = config.cameras[0]
    source = open_source(camera)
    model = datafiles.resolve_model_file(config.detector.model)
    interpreter = load_interpreter(model, config.detector.threads)
    given = interpreter.get_input_details()[0]
    height, width = int(given["shape"][1]), int(given["shape"][2])
    done, gap_s = threading.Event(), 0.9 / camera.fps

    def loop() -> None:
        last_s: float | None = None
        while not done.is_set():
            frame = source.read(1.0)
            if frame is None or (last_s is not None and frame.monotonic_s - last_s < gap_s):
                continue
            last_s = frame.monotonic_s
            rgb = cv2.cvtColor(cv2.resize(frame.image, (width, height)), cv2.COLOR_BGR2RGB)
            interpreter.set_tensor(given["index"], rgb[np.newaxis].astype(given["dtype"]))
            interpreter.invoke()
            outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
            _ = [o for o in outputs if o.size > 1]

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    figures = VideoClock(source.nominal_fps, video_s, lambda: source.health().frames_read).measure()
    done.set()
    thread.join()
    print(RESULT + json.dumps(figures), flush=True)


if __name__ == "__main__" and len(sys.argv) == 4:
    {"agent": agent_child, "naive": naive_loop}[sys.argv[1]](Path(sys.argv[2]), float(sys.argv[3]))
