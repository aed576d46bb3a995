"""The self-test's checks on what they saw: verdicts, what to do, exit codes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
from fakes.detect import StaticDetector

from edge_agent.config import AgentConfig, CameraConfig, parse_config
from edge_agent.datafiles import DataFileError
from edge_agent.detect.base import Detector
from edge_agent.mqtt.probe import BrokerProbe
from edge_agent.selftest import CheckResult, exit_code
from edge_agent.selftest.checks import (
    MIN_FREE_BYTES,
    PLAUSIBLE_AFTER_S,
    CameraSample,
    check_broker,
    check_camera,
    check_clock,
    check_model,
    check_outbox,
    outbox_space_result,
    sample_camera,
)
from edge_agent.selftest.clock import ClockState, kernel_clock_state, read_clock_state
from edge_agent.selftest.report import as_json, summary
from edge_agent.types import DetectionResult, Frame, ImageBGR

NOW_S = PLAUSIBLE_AFTER_S + 86400.0 * 400
MIB = 2**20


def result(name: str, status: str) -> CheckResult:
    return CheckResult(name, status, "seen")  # type: ignore[arg-type]


# -- exit codes and output ------------------------------------------------------------


def test_exit_codes_follow_the_readme() -> None:
    assert exit_code([result("config", "PASS"), result("clock", "WARN")]) == 0
    assert exit_code([result("config", "PASS"), result("centre", "SKIP")]) == 0
    assert exit_code([result("config", "PASS"), result("broker", "FAIL")]) == 1
    assert exit_code([result("config", "FAIL"), result("broker", "FAIL")]) == 2
    assert exit_code([result("model", "FAIL"), result("outbox", "PASS")]) == 2


def test_a_line_says_status_check_detail_and_what_to_do() -> None:
    line = CheckResult("broker", "FAIL", "cannot reach b:1", "check mqtt.host").line
    assert line.startswith("FAIL  broker")
    assert line.endswith("cannot reach b:1 -> check mqtt.host")
    assert "->" not in CheckResult("clock", "PASS", "synchronised").line


def test_json_and_summary() -> None:
    results = [result("config", "PASS"), result("broker", "FAIL"), result("clock", "WARN")]
    assert '"exit_code": 1' in as_json(results) and '"ok": false' in as_json(results)
    assert summary(results) == "selftest: FAILED: 1 of 3 checks failed"
    assert summary(results[:1] + results[2:]) == "selftest: OK: 2 checks (1 warning)"


# -- clock ------------------------------------------------------------------------------


def test_a_synchronised_clock_passes_with_its_error_bound() -> None:
    line = check_clock(ClockState(True, "kernel (adjtimex)", max_error_s=0.012), NOW_S)
    assert line.status == "PASS" and "max error 12 ms" in line.detail


def test_an_unsynchronised_clock_warns_and_says_how_to_fix_it() -> None:
    line = check_clock(ClockState(False, "kernel (adjtimex)"), NOW_S)
    assert line.status == "WARN" and "not synchronised" in line.detail
    assert "timedatectl" in line.fix


def test_a_clock_that_cannot_be_read_is_unknown_not_ok() -> None:
    line = check_clock(ClockState(None, "no adjtimex"), NOW_S)
    assert line.status == "WARN" and line.detail.startswith("unknown")


def test_a_clock_in_the_past_fails_even_if_synchronised() -> None:
    line = check_clock(ClockState(True, "kernel (adjtimex)"), 86400.0)
    assert line.status == "FAIL" and "1970-01-02" in line.detail and "TLS" in line.detail


def test_the_kernel_is_asked_without_root() -> None:
    state = read_clock_state()
    kernel = kernel_clock_state()
    if kernel is not None:  # Linux: adjtimex answers a read-only query for anyone
        assert state == kernel and isinstance(state.synchronised, bool)
    else:
        assert state.source


# -- outbox -----------------------------------------------------------------------------


def test_outbox_space_verdicts() -> None:
    path = Path("/var/lib/edge-agent/outbox.db")
    assert outbox_space_result(path, MIN_FREE_BYTES - 1, 0, MIB).status == "FAIL"
    assert outbox_space_result(path, 100 * MIB, 0, 256 * MIB).status == "WARN"
    # What the outbox already holds counts towards its bound.
    assert outbox_space_result(path, 200 * MIB, 60 * MIB, 256 * MIB).status == "PASS"


def test_an_outbox_in_a_directory_still_to_be_made_passes(tmp_path: Path) -> None:
    line = check_outbox(tmp_path / "new" / "dir" / "outbox.db", 64 * 1024)
    assert line.status == "PASS", line
    assert not (tmp_path / "new").exists()  # the check creates nothing


def test_an_outbox_that_is_not_a_file_fails(tmp_path: Path) -> None:
    fifo = tmp_path / "outbox.db"
    os.mkfifo(fifo)
    line = check_outbox(fifo, 64 * 1024)
    assert line.status == "FAIL" and "not a regular file" in line.detail
    assert check_outbox(tmp_path, 64 * 1024).status == "FAIL"  # a directory


def test_an_outbox_under_a_file_fails(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    line = check_outbox(tmp_path / "file" / "outbox.db", 64 * 1024)
    assert line.status == "FAIL" and "cannot write" in line.detail
    assert "writable" in line.fix


# -- cameras ----------------------------------------------------------------------------


def camera(**source: object) -> CameraConfig:
    return CameraConfig.model_validate(
        {"id": "gate", "fps": 5, "source": {"kind": "opencv", "uri": "/dev/video9", **source}}
    )


def test_a_camera_without_frames_fails_with_the_reason_and_a_fix() -> None:
    line = check_camera(camera(), CameraSample(error="cannot open /dev/video9"))
    assert line.status == "FAIL" and "cannot open /dev/video9" in line.detail
    assert "group video" in line.fix
    rtsp = check_camera(camera(uri="rtsp://cam/stream"), CameraSample(error="timeout"))
    assert "URL" in rtsp.fix


def test_a_camera_slower_than_configured_warns() -> None:
    frame = Frame("gate", 0, 0.0, 0.0, np.zeros((4, 4, 3), dtype=np.uint8))
    slow = check_camera(camera(), CameraSample(4, 3.0, 640, 480, frame))
    assert slow.status == "WARN" and "1.0 fps" in slow.detail
    good = check_camera(camera(), CameraSample(16, 3.0, 640, 480, frame))
    assert good.status == "PASS" and good.data["width_px"] == 640


def test_a_camera_that_cannot_be_opened_fails() -> None:
    sample = sample_camera(camera(uri=str(Path("/nonexistent/clip.mp4"))), 0.5)
    assert sample.error is not None and sample.last is None


# -- broker -----------------------------------------------------------------------------


def test_an_unreachable_broker_fails_and_skips_what_depends_on_it() -> None:
    lines = check_broker(BrokerProbe(False, connect_error="cannot reach b:1"), "b:1", "c")
    assert [(r.name, r.status) for r in lines] == [
        ("broker", "FAIL"),
        ("birth", "SKIP"),
        ("commands", "SKIP"),
        ("centre", "SKIP"),
    ]


@pytest.mark.parametrize(
    ("probe", "verdicts"),
    [
        (
            BrokerProbe(True, 5.0, birth_error="not authorised"),
            ["PASS", "FAIL", "SKIP", "SKIP"],
        ),
        (
            BrokerProbe(True, 5.0, birth_ms=1.0, loopback_error="no SUBACK"),
            ["PASS", "PASS", "FAIL", "SKIP"],
        ),
        (BrokerProbe(True, 5.0, birth_ms=1.0, loopback_ms=1.0), ["PASS", "PASS", "PASS", "SKIP"]),
        (
            BrokerProbe(True, 5.0, birth_ms=1.0, loopback_ms=1.0, centre_wait_s=5.0),
            ["PASS", "PASS", "PASS", "FAIL"],
        ),
        (
            BrokerProbe(
                True, 5.0, birth_ms=1.0, loopback_ms=1.0, centre_wait_s=5.0, centre_ms=900.0
            ),
            ["PASS", "PASS", "PASS", "PASS"],
        ),
    ],
)
def test_broker_lines(probe: BrokerProbe, verdicts: list[str]) -> None:
    lines = check_broker(probe, "b:8883", "site-dev-selftest")
    assert [r.status for r in lines] == verdicts
    assert "TLS" in lines[0].detail


# -- model ------------------------------------------------------------------------------


def agent_config() -> AgentConfig:
    return parse_config(
        {"site_id": "s", "device_id": "d", "cameras": [{"id": "c", "source": {"kind": "sim"}}]}
    )


def live_frame() -> Frame:
    return Frame("c", 0, 0.0, 0.0, np.zeros((90, 160, 3), dtype=np.uint8))


def test_the_model_runs_on_the_live_frame() -> None:
    detector = StaticDetector()
    line = check_model(agent_config(), live_frame(), lambda config: detector)
    assert line.status == "PASS" and "live 160x90 frame" in line.detail
    assert detector.calls == 3 and line.data["inference_ms"] is not None


def test_without_a_live_frame_the_model_runs_on_a_blank_picture_and_warns() -> None:
    line = check_model(agent_config(), None, lambda config: StaticDetector())
    assert line.status == "WARN" and "blank picture" in line.detail


def test_a_model_that_does_not_load_or_does_not_run_fails() -> None:
    def missing(config: AgentConfig) -> Detector:
        raise DataFileError("model 'ssd_mobilenet_v1' not found")

    line = check_model(agent_config(), live_frame(), missing)
    assert line.status == "FAIL" and "not found" in line.detail and "models fetch" in line.fix
    # The site's own model file: fetching cannot help, copying it again can.
    own = agent_config().model_copy(
        update={
            "detector": agent_config().detector.model_copy(
                update={"model": "/var/lib/edge-agent/models/piles.tflite"}
            )
        }
    )
    line = check_model(own, live_frame(), missing)
    assert line.status == "FAIL" and "copy the model file again" in line.fix
    assert "models fetch" not in line.fix

    class Broken(StaticDetector):
        def detect(self, image: ImageBGR) -> DetectionResult:
            raise ValueError("output tensor 3 missing")

    line = check_model(agent_config(), live_frame(), lambda config: Broken())
    assert line.status == "FAIL" and "does not run" in line.detail
    assert "output tensor 3 missing" in line.detail


# -- the technician's page ------------------------------------------------------------


def page_config(listen: str) -> AgentConfig:
    return parse_config(
        {
            "site_id": "s",
            "device_id": "d",
            "cameras": [{"id": "cam1", "source": {"kind": "opencv", "uri": "/dev/video0"}}],
            "web": {"enabled": True, "listen": listen},
        }
    )


def test_a_page_without_its_password_is_a_warning_with_the_command_that_sets_it(
    tmp_path: Path,
) -> None:
    """Without a password file the agent runs on without the page and only its log says
    so: the self-test tells the technician at the pole, with the command that fixes it."""
    from edge_agent.selftest.run import check_page
    from edge_agent.web.auth import write_password_file

    config = page_config("127.0.0.1:0")  # any free port: the address can be opened
    config_path = tmp_path / "config.yaml"
    missing = check_page(config, config_path)
    assert missing.status == "WARN"
    assert missing.detail.startswith("http://127.0.0.1:0/ will not start")
    assert f"edge-agent web-password --config {config_path}" in missing.fix
    write_password_file(tmp_path / "web-password", "ladder-pass")
    assert check_page(config, config_path).status == "PASS"


def test_a_page_address_the_device_cannot_open_is_a_warning_saying_why(tmp_path: Path) -> None:
    """A DHCP lease that moved the device, or another program on the port: the agent
    would run without the page. Not tried while the agent runs (it holds the address)."""
    from edge_agent.selftest.run import check_page
    from edge_agent.web.auth import write_password_file

    write_password_file(tmp_path / "web-password", "ladder-pass")
    config_path = tmp_path / "config.yaml"
    elsewhere = check_page(page_config("10.255.255.254:8080"), config_path)  # not this host's
    assert elsewhere.status == "WARN" and "cannot open" in elsewhere.detail
    assert "this device has no address 10.255.255.254" in elsewhere.fix
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        taken = page_config(f"127.0.0.1:{port}")
        held = check_page(taken, config_path)
        assert held.status == "WARN" and f"another program holds port {port}" in held.fix
        assert check_page(taken, config_path, agent_running=True).status == "PASS"


# -- the status LED -------------------------------------------------------------------


def test_the_led_is_lit_from_its_check_to_the_end_of_the_self_test() -> None:
    """Lit steadily while the rest of the checklist runs, so the technician can see it;
    off and released at the end."""
    from gpiozero.pins.mock import MockFactory

    from edge_agent.config import StatusLedConfig
    from edge_agent.selftest.device import LedCheck

    factory = MockFactory()
    try:
        led = LedCheck(StatusLedConfig(pin=17), pin_factory=factory)
        line = led.check(agent_running=False)
        assert line.status == "PASS" and line.detail.startswith("pin 17 lit steadily")
        pin = factory.pin(17)
        assert pin.state  # lit
        led.close()
        assert not pin.state  # off again at the end
    finally:
        factory.close()


def test_the_led_is_left_to_the_running_agent_and_a_pin_in_use_is_a_warning() -> None:
    from gpiozero import LED
    from gpiozero.pins.mock import MockFactory

    from edge_agent.config import StatusLedConfig
    from edge_agent.selftest.device import LedCheck

    factory = MockFactory()
    try:
        agents = LedCheck(StatusLedConfig(pin=17), pin_factory=factory)
        assert agents.check(agent_running=True).status == "SKIP"
        taken = LED(17, pin_factory=factory)  # another program holds the pin
        busy = LedCheck(StatusLedConfig(pin=17), pin_factory=factory).check(agent_running=False)
        assert busy.status == "WARN" and "status LED on pin 17" in busy.detail
        assert "the agent runs without its LED" in busy.fix
        taken.close()
    finally:
        factory.close()
