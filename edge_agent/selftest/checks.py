"""The checks of ``edge-agent selftest``, each turning what it saw into a
:class:`CheckResult` with what to do. Every check is bounded in time and never raises
for a problem of the device: that is its FAIL line."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_agent.capture import CaptureError, EndOfStream, FrameSource, open_source
from edge_agent.capture.live import camera_fix, first_frame_timeout_s
from edge_agent.config import AgentConfig, CameraConfig, brokers_text
from edge_agent.config_check import ConfigCheck, config_file_hint
from edge_agent.datafiles import DataFileError, is_model_path
from edge_agent.detect.base import Detector
from edge_agent.detect.runtime import RuntimeUnavailable
from edge_agent.mqtt.probe import BrokerProbe
from edge_agent.selftest.clock import ClockState
from edge_agent.selftest.report import CheckResult
from edge_agent.types import Frame, ImageBGR

SourceOpener = Callable[[CameraConfig], FrameSource]
# Before this the clock is plainly wrong (a Pi without RTC or NTP): certificates fail.
PLAUSIBLE_AFTER_S = datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
MIN_FREE_BYTES = 64 * 1024 * 1024  # below this the device itself is in trouble


def check_config(path: Path, check: ConfigCheck) -> CheckResult:
    if check.ok and check.config is not None:
        config = check.config
        tls = "TLS" if config.mqtt.tls is not None else "plain MQTT"
        return CheckResult(
            "config",
            "PASS",
            f"{path} is valid: {config.site_id}/{config.device_id}, "
            f"{len(config.cameras)} camera(s), model {config.detector.model}, "
            f"broker {brokers_text(config.mqtt)} ({tls})",
        )
    problems = list(check.problems) or ["the config cannot be used"]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    fix = config_file_hint(path) or (  # none yet (not enrolled), or not this user's
        f"run `edge-agent check-config {path}` for every problem, fix them, run selftest again"
    )
    return CheckResult("config", "FAIL", f"{problems[0]}{more}", fix, {"problems": problems})


# -- cameras ------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraSample:
    """What a few seconds of a camera gave: frame count and span, the picture size and
    the last frame (for the model check); ``error`` when it gave nothing."""

    frames: int = 0
    span_s: float = 0.0
    width_px: int = 0
    height_px: int = 0
    last: Frame | None = None
    error: str | None = None

    @property
    def fps(self) -> float | None:
        return (self.frames - 1) / self.span_s if self.frames > 1 and self.span_s > 0 else None


def sample_camera(
    camera: CameraConfig, seconds: float, opener: SourceOpener = open_source
) -> CameraSample:
    """Frames for ``seconds`` after the first one; at most ``seconds`` plus the source's
    first-frame timeout in all, even when opening the source hangs (a dead RTSP server)."""
    budget_s = seconds + first_frame_timeout_s(camera) + 5.0
    outcome: list[CameraSample] = []
    stop = threading.Event()

    def read() -> None:
        outcome.append(_read_frames(camera, seconds, opener, stop))

    thread = threading.Thread(target=read, name=f"selftest-{camera.id}", daemon=True)
    thread.start()
    thread.join(budget_s)
    stop.set()
    if outcome:
        return outcome[0]
    return CameraSample(error=f"the camera did not answer within {budget_s:.0f} s")


def _read_frames(
    camera: CameraConfig, seconds: float, opener: SourceOpener, stop: threading.Event
) -> CameraSample:
    try:
        source = opener(camera)
    except CaptureError as error:
        return CameraSample(error=str(error))
    try:
        timeout_s = first_frame_timeout_s(camera)
        frames: list[Frame] = []
        deadline_s = time.monotonic() + timeout_s
        while not stop.is_set() and time.monotonic() < deadline_s:
            try:
                frame = source.read(min(1.0, max(0.01, deadline_s - time.monotonic())))
            except EndOfStream:
                break
            if frame is None:
                continue
            if not frames:
                deadline_s = time.monotonic() + seconds
            frames.append(frame)
        if not frames:
            reason = source.health().last_error or f"no frame within {timeout_s:g} s"
            return CameraSample(error=reason)
        height_px, width_px = frames[-1].image.shape[:2]
        span_s = frames[-1].monotonic_s - frames[0].monotonic_s
        return CameraSample(len(frames), span_s, int(width_px), int(height_px), frames[-1])
    finally:
        source.close()


def check_camera(camera: CameraConfig, sample: CameraSample) -> CheckResult:
    name = f"camera {camera.id}"
    if sample.error is not None or sample.last is None:
        return CheckResult(
            name,
            "FAIL",
            f"no frames: {sample.error}",
            camera_fix(camera),
        )
    fps = sample.fps
    data = {
        "width_px": sample.width_px,
        "height_px": sample.height_px,
        "frames": sample.frames,
        "span_s": round(sample.span_s, 2),
        "fps": round(fps, 2) if fps is not None else None,
        "configured_fps": camera.fps,
    }
    rate = f"{fps:.1f} fps" if fps is not None else "a single frame"
    detail = (
        f"{sample.width_px}x{sample.height_px} at {rate} "
        f"({sample.frames} frames in {sample.span_s:.1f} s; configured {camera.fps:g} fps)"
    )
    if fps is None or fps < camera.fps / 2:
        return CheckResult(
            name,
            "WARN",
            detail,
            "fewer frames than configured: check the camera's own frame rate and bitrate, "
            "the network to it, or lower the camera's fps in the config",
            data,
        )
    return CheckResult(name, "PASS", detail, data=data)


# -- model --------------------------------------------------------------------------


def check_model(
    config: AgentConfig,
    frame: Frame | None,
    build: Callable[[AgentConfig], Detector],
    *,
    runs: int = 3,
    cameras_in_use: bool = False,
) -> CheckResult:
    model = config.detector.model
    start_s = time.monotonic()
    try:
        detector = build(config)
    except (DataFileError, RuntimeUnavailable, ValueError, OSError, RuntimeError) as error:
        fix = (
            "copy the model file again (and check detector.layout and labels_file: "
            "docs/models.md, Your own model)"
            if is_model_path(model)  # the site's own file: nothing to fetch
            else "run `edge-agent models list` and `edge-agent models fetch`, or set "
            "EDGE_AGENT_MODEL_PATH to the directory holding the model"
        )
        return CheckResult("model", "FAIL", f"{model} does not load: {error}", fix)
    load_ms = (time.monotonic() - start_s) * 1000.0
    image: ImageBGR = (
        frame.for_analysis if frame is not None else np.zeros((270, 480, 3), dtype=np.uint8)
    )
    timings_ms: list[float] = []
    found = 0
    try:
        for _ in range(runs):
            run_start_s = time.monotonic()
            result = detector.detect(image)
            timings_ms.append((time.monotonic() - run_start_s) * 1000.0)
            found = len(result.detections)
    except Exception as error:  # a self-test reports what broke; it must not end in a traceback
        return CheckResult(
            "model",
            "FAIL",
            f"{model} loads but does not run: {type(error).__name__}: {error}",
            "check detector.layout and the model file (edge-agent models verify)",
        )
    height_px, width_px = image.shape[:2]
    inference_ms = statistics.median(timings_ms)
    data = {
        "model": model,
        "load_ms": round(load_ms, 1),
        "inference_ms": round(inference_ms, 1),
        "detections": found,
        "frame": f"{width_px}x{height_px}",
    }
    where = f"a live {width_px}x{height_px} frame" if frame is not None else "a blank picture"
    detail = (
        f"{model} loaded in {load_ms:.0f} ms; {inference_ms:.0f} ms per inference on "
        f"{where} ({found} detection(s))"
    )
    if frame is None and cameras_in_use:  # the running agent runs it on live frames
        return CheckResult("model", "PASS", detail, "", data)
    if frame is None:
        return CheckResult(
            "model", "WARN", detail, "no camera gave a frame: fix the camera line first", data
        )
    return CheckResult("model", "PASS", detail, data=data)


# -- outbox -------------------------------------------------------------------------


def check_outbox(path: Path, max_bytes: int) -> CheckResult:
    """The agent can create or write the outbox, and the disk has room for it to grow to
    its bound (``outbox.max_bytes``) — past that it drops messages by policy, not by
    failing writes."""
    directory = _existing_ancestor(path.parent)
    fix_perm = (
        f"make {path.parent} writable by the agent's user "
        f"(`chown` it, or set outbox.path to a writable place)"
    )
    if path.exists() and not path.is_file():
        return CheckResult(
            "outbox",
            "FAIL",
            f"{path} exists but is not a regular file",
            "move it away or set outbox.path to a database file's path",
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return CheckResult("outbox", "FAIL", f"{path} cannot be written by this user", fix_perm)
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        return CheckResult("outbox", "FAIL", f"cannot write in {directory}", fix_perm)
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".selftest-"):
            pass
    except OSError as error:
        return CheckResult(
            "outbox", "FAIL", f"cannot write in {directory}: {error.strerror}", fix_perm
        )
    free_bytes = shutil.disk_usage(directory).free
    used_bytes = sum(
        p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.is_file()
    )
    return outbox_space_result(path, free_bytes, used_bytes, max_bytes)


def outbox_space_result(
    path: Path, free_bytes: int, used_bytes: int, max_bytes: int
) -> CheckResult:
    data = {"free_bytes": free_bytes, "used_bytes": used_bytes, "max_bytes": max_bytes}
    room = f"{_mb(free_bytes)} free; the outbox holds {_mb(used_bytes)} of at most {_mb(max_bytes)}"
    if free_bytes < MIN_FREE_BYTES:
        return CheckResult(
            "outbox",
            "FAIL",
            f"{path}: only {room}",
            f"free space on the disk holding {path.parent} (at least {_mb(MIN_FREE_BYTES)})",
            data,
        )
    if free_bytes + used_bytes < max_bytes:
        return CheckResult(
            "outbox",
            "WARN",
            f"{path}: {room}: it cannot grow to its bound",
            "free space, or lower outbox.max_bytes below the free space",
            data,
        )
    return CheckResult("outbox", "PASS", f"{path} writable; {room}", data=data)


def _existing_ancestor(directory: Path) -> Path:
    """The agent creates missing directories: what matters is the first one that exists."""
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory


def _mb(size_bytes: int) -> str:
    return f"{size_bytes / 2**20:.0f} MiB"


# -- clock --------------------------------------------------------------------------


def check_clock(state: ClockState, now_s: float) -> CheckResult:
    when = datetime.fromtimestamp(now_s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    data: dict[str, object] = {
        "synchronised": state.synchronised,
        "source": state.source,
        "now": when,
    }
    if state.max_error_s is not None:
        data["max_error_s"] = state.max_error_s
    ntp_fix = (
        "check NTP: `timedatectl timesync-status` (or `chronyc tracking`), and that UDP 123 "
        "to the time server passes the firewall"
    )
    if now_s < PLAUSIBLE_AFTER_S:
        return CheckResult(
            "clock",
            "FAIL",
            f"the clock says {when}: TLS certificates will be refused and event times are wrong",
            ntp_fix,
            data,
        )
    if state.synchronised is None:
        return CheckResult(
            "clock",
            "WARN",
            f"unknown: cannot tell whether the clock is synchronised ({state.source}); "
            f"it says {when}",
            "compare with a phone's time; " + ntp_fix,
            data,
        )
    if not state.synchronised:
        return CheckResult(
            "clock",
            "WARN",
            f"not synchronised ({state.source}); it says {when}: event times may drift",
            ntp_fix,
            data,
        )
    bound = f", max error {state.max_error_s * 1000:.0f} ms" if state.max_error_s else ""
    return CheckResult("clock", "PASS", f"synchronised ({state.source}{bound}); {when}", data=data)


# -- broker -------------------------------------------------------------------------


def check_standby_broker(probe: BrokerProbe, where: str) -> CheckResult:
    """One line for a later broker of ``mqtt.brokers``: the device runs on the first, so
    a standby that does not take it is a warning (failover would not work), not a fault."""
    name = f"broker {where}"
    fix = (
        "the device would fail over to this broker and not get in: check that it runs, "
        "the uplink to it, its certificate's host name and its ACL (deploy/mosquitto)"
    )
    if probe.connect_ms is None:
        return CheckResult(name, "WARN", probe.connect_error or f"cannot connect to {where}", fix)
    if probe.birth_ms is None:
        return CheckResult(name, "WARN", probe.birth_error or "the birth was not accepted", fix)
    if probe.loopback_ms is None:
        return CheckResult(name, "WARN", probe.loopback_error or "commands do not loop back", fix)
    return CheckResult(
        name,
        "PASS",
        f"standby: connected in {probe.connect_ms:.0f} ms, birth and commands loop back",
        data={"connect_ms": probe.connect_ms, "tls": probe.tls},
    )


def check_broker(probe: BrokerProbe, where: str, client_id: str) -> list[CheckResult]:
    """Three or four lines: the connection, the birth, the command loop-back, the centre."""
    link = "TLS" if probe.tls else "plain MQTT (not encrypted: only on a private network)"
    if probe.connect_ms is None:
        skipped = "skipped: the broker was not reached"
        return [
            CheckResult(
                "broker",
                "FAIL",
                probe.connect_error or f"cannot connect to {where}",
                "check mqtt.host and mqtt.port, the uplink (ping the broker), that the "
                "broker runs, and for TLS the CA, the device certificate and the clock",
            ),
            CheckResult("birth", "SKIP", skipped),
            CheckResult("commands", "SKIP", skipped),
            CheckResult("centre", "SKIP", skipped),
        ]
    results = [
        CheckResult(
            "broker",
            "PASS",
            f"connected to {where} over {link} in {probe.connect_ms:.0f} ms as {client_id}",
            data={"connect_ms": probe.connect_ms, "tls": probe.tls},
        )
    ]
    acl_fix = "the broker's ACL must let this device write under its topic root (deploy/mosquitto)"
    if probe.birth_ms is None:
        results.append(CheckResult("birth", "FAIL", probe.birth_error or "not sent", acl_fix))
        results.append(CheckResult("commands", "SKIP", "skipped: the birth was refused"))
        results.append(CheckResult("centre", "SKIP", "skipped: the birth was refused"))
        return results
    results.append(
        CheckResult(
            "birth",
            "PASS",
            f"status 'online' accepted by the broker in {probe.birth_ms:.0f} ms "
            "(not retained: the device's retained status is unchanged)",
            data={"birth_ms": probe.birth_ms},
        )
    )
    if probe.loopback_ms is None:
        results.append(
            CheckResult(
                "commands",
                "FAIL",
                probe.loopback_error or "the command loop-back failed",
                "the broker's ACL must let this device read and write {root}/cmd/#",
            )
        )
        results.append(CheckResult("centre", "SKIP", "skipped: the command path failed"))
        return results
    results.append(
        CheckResult(
            "commands",
            "PASS",
            f"a ping on the device's command topic came back in {probe.loopback_ms:.0f} ms",
            data={"loopback_ms": probe.loopback_ms},
        )
    )
    results.append(_centre(probe))
    return results


def _centre(probe: BrokerProbe) -> CheckResult:
    if probe.centre_wait_s <= 0:
        return CheckResult(
            "centre",
            "SKIP",
            "skipped: no centre (to test the round trip, run with --centre-wait-s 120 and "
            "have the centre send `ping` to this device)",
        )
    if probe.centre_ms is None:
        return CheckResult(
            "centre",
            "FAIL",
            probe.centre_error or "no ping from the centre",
            "ask the centre to send `ping` to this device's cmd/ping while selftest waits; "
            "check the centre's subscription and the device ids",
        )
    return CheckResult(
        "centre",
        "PASS",
        f"the centre's ping came after {probe.centre_ms / 1000:.1f} s and was answered",
        data={"centre_ms": probe.centre_ms},
    )
