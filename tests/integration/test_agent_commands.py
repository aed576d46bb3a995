"""The running agent as the command centre sees it: stats, commands and previews over a real
broker. The commanding client is plain paho (a command-centre tool, not the agent)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes.centre import Centre
from helpers import sim_camera, wait_until
from hw_sim.netproxy import NetProxy
from realdata import require_media, require_model

from edge_agent.analyzers import ReferenceStore
from edge_agent.app import Agent
from edge_agent.broker import LocalBroker
from edge_agent.config import parse_config
from edge_agent.pipeline import FrameOutput
from edge_agent.remote import COMMANDS
from edge_agent.types import Frame

ROOT = "city/cmd-site/dev-1"


def agent_config(tmp_path: Path, port: int) -> dict[str, object]:
    return {
        "site_id": "cmd-site",
        "device_id": "dev-1",
        "stats_interval_s": 1.0,
        "cameras": [sim_camera()],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min_delay_s": 0.5},
        "outbox": {"path": str(tmp_path / "outbox.db")},
    }


@pytest.fixture
def running_agent(tmp_path: Path, broker: LocalBroker) -> Iterator[tuple[Agent, Centre]]:
    require_model("ssd_mobilenet_v1")
    require_media("intel_one-by-one-person-detection.mp4")
    centre = Centre(broker.port, ROOT)
    agent = Agent(parse_config(agent_config(tmp_path, broker.port)))
    agent.start()
    try:
        wait_until(lambda: agent.publisher.commands_ready, 30.0, "the agent listening")
        yield agent, centre
    finally:
        agent.stop()
        centre.close()


def reply_body(centre: Centre, correlation: bytes) -> dict[str, object]:
    wait_until(lambda: centre.reply(correlation) is not None, 30.0, f"reply {correlation!r}")
    message = centre.reply(correlation)
    assert message is not None
    assert message.properties.ContentType == "application/json"
    body = json.loads(message.payload)
    assert isinstance(body, dict)
    return body


def test_stats_arrive_periodically_with_health_and_outbox_figures(
    running_agent: tuple[Agent, Centre],
) -> None:
    _, centre = running_agent
    wait_until(lambda: len(centre.inbox.at(f"{ROOT}/stats")) >= 2, 30.0, "two stats messages")
    message = centre.inbox.at(f"{ROOT}/stats")[-1]
    assert message.qos == 0 and not message.retain
    assert message.properties.MessageExpiryInterval >= 1
    assert ("schema", "edge-agent/stats/1") in message.properties.UserProperty
    assert message.properties.UserProperty[0] == ("v", "1")
    stats = json.loads(message.payload)
    assert stats["v"] == 1 and stats["uptime_s"] > 0
    assert {"depth_rows", "evicted", "expired", "disk_free_bytes"} <= set(stats["outbox"])
    camera = stats["cameras"]["cam1"]
    assert camera["fps"] > 0 and camera["source"]["connected"] is True
    assert stats["publisher"]["connected"] is True


def test_a_frame_whose_analysis_fails_is_counted_in_stats_and_the_camera_goes_on(
    running_agent: tuple[Agent, Centre],
) -> None:
    agent, centre = running_agent
    worker = agent.workers[0]
    real_process = worker.pipeline.process
    failures = iter([RuntimeError("a bug in a rule")])

    def process_failing_once(frame: Frame, **options: bool) -> FrameOutput:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_process(frame, **options)

    worker.pipeline.process = process_failing_once  # type: ignore[method-assign]
    frames_before = worker.pipeline.clock.frames

    def stats_with_the_failure() -> list[dict[str, object]]:
        bodies = [json.loads(m.payload) for m in centre.inbox.at(f"{ROOT}/stats")]
        return [b for b in bodies if b["cameras"]["cam1"]["failed_frames"] == 1]

    wait_until(stats_with_the_failure, 30.0, "stats counting the failed frame")
    camera = stats_with_the_failure()[-1]["cameras"]["cam1"]
    assert camera["last_error"] == "analysis failed: a bug in a rule"
    assert camera["stage_errors"] == {}
    wait_until(lambda: worker.pipeline.clock.frames > frames_before + 5, 30.0, "more frames")


def test_ping_snapshot_and_bad_commands_get_replies(running_agent: tuple[Agent, Centre]) -> None:
    _, centre = running_agent
    centre.send("ping", {}, b"c-ping")
    assert reply_body(centre, b"c-ping")["ok"] is True

    wait_until(lambda: running_agent[0].workers[0].latest is not None, 30.0, "a first frame")
    centre.send("snapshot", {"camera": "cam1", "width_px": 320}, b"c-snap")
    wait_until(lambda: centre.reply(b"c-snap") is not None, 30.0, "the snapshot")
    snapshot = centre.reply(b"c-snap")
    assert snapshot is not None and snapshot.properties.ContentType == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(snapshot.payload, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] == 320

    centre.send("snapshot", {"camera": "nope"}, b"c-bad")
    bad = reply_body(centre, b"c-bad")
    assert bad["ok"] is False and "unknown camera" in str(bad["error"])
    centre.send("format-disk", {}, b"c-unknown")
    assert "unknown command" in str(reply_body(centre, b"c-unknown")["error"])


def test_hostile_commands_get_a_short_clear_refusal_and_the_agent_goes_on(
    running_agent: tuple[Agent, Centre], caplog: pytest.LogCaptureFixture
) -> None:
    """What an independent test found: a 100,000-deep JSON payload, a wildcard response
    topic under reply/, a 60,000-character command name."""
    agent, centre = running_agent
    with caplog.at_level(logging.INFO):  # paho's DEBUG lines quote every topic whole
        centre.send("ping", b"[" * 100_000 + b"]" * 100_000, b"c-deep")
        centre.send("ping", b"[" * 5_000 + b"]" * 5_000, b"c-deep-small")
        centre.send("ping", {}, b"c-wild", response_topic=f"{ROOT}/reply/centre/+")
        centre.send("n" * 60_000, {}, b"c-long")
        for correlation in (b"c-deep", b"c-deep-small"):
            deep = reply_body(centre, correlation)
            assert deep["ok"] is False and str(deep["error"]).startswith("bad request"), deep
        # Refused on the default reply topic, with the correlation data: it says why.
        default = f"{ROOT}/reply/ping"
        wait_until(lambda: centre.reply(b"c-wild", default), 30.0, "the wildcard refusal")
        wild = centre.reply(b"c-wild", default)
        assert wild is not None
        error = str(json.loads(wild.payload)["error"])
        assert "response topic" in error and "wildcard" in error
        wait_until(lambda: centre.reply(b"c-long"), 30.0, "the unknown-command reply")
        long_reply = centre.reply(b"c-long")
        # The echo is cut; the rest of the reply is the list of known commands.
        assert long_reply is not None
        assert len(long_reply.payload) < len(", ".join(COMMANDS)) + 200
        error = str(json.loads(long_reply.payload)["error"])
        assert error.startswith("unknown command 'nnnn") and "(60000 characters)" in error
        centre.send("ping", {}, b"c-after")
        assert reply_body(centre, b"c-after")["ok"] is True  # the agent goes on
    assert "internal error" not in caplog.text
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"
    assert not [r for r in caplog.records if "n" * 100 in r.getMessage()]  # logs cut it too
    assert agent.commands.refused == 3  # the wildcard one never reached the handler


def test_preview_runs_at_low_rate_and_stops_by_itself(running_agent: tuple[Agent, Centre]) -> None:
    agent, centre = running_agent
    centre.send("preview", {"camera": "cam1", "seconds": 2, "fps": 2}, b"c-prev")
    assert reply_body(centre, b"c-prev")["preview"] == "on"
    # One frame at least: a still scene (the person has not walked in yet) sends one frame
    # every 5 s (edge_agent/preview.py); the rate within the budget is tested on its own.
    wait_until(lambda: centre.inbox.at(f"{ROOT}/preview/cam1"), 30.0, "a preview frame")
    frame = centre.inbox.at(f"{ROOT}/preview/cam1")[0]
    assert frame.qos == 0 and frame.properties.ContentType == "image/jpeg"
    assert frame.properties.MessageExpiryInterval <= 10
    wait_until(lambda: agent.workers[0].preview is None, 30.0, "the preview to time out")


def test_preview_within_a_small_budget_as_the_centre_receives_it(
    running_agent: tuple[Agent, Centre],
) -> None:
    """Bytes counted at the subscriber: a preview of at most 10 s lies in one 10 s window,
    so all it sent must fit the budget's window (the 1.1x of the acceptance line)."""
    agent, centre = running_agent
    topic = f"{ROOT}/preview/cam1"
    ask = {"camera": "cam1", "seconds": 8, "fps": 5, "width_px": 1280, "budget_bps": 16_000}
    centre.send("preview", ask, b"c-budget")
    reply = reply_body(centre, b"c-budget")
    assert (reply["preview"], reply["budget_bps"]) == ("on", 16_000)
    wait_until(lambda: agent.workers[0].preview is None, 30.0, "the preview to end")
    frames = centre.inbox.at(topic)
    assert frames, "no preview frame arrived"
    received = sum(len(m.payload) for m in frames)
    assert received <= 1.1 * 16_000 * 10 / 8
    for message in frames:
        picture = cv2.imdecode(np.frombuffer(message.payload, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and picture.shape[1] <= 480  # never wider than the camera

    def stats_counting_them() -> bool:
        bodies = [json.loads(m.payload) for m in centre.inbox.at(f"{ROOT}/stats")]
        return any(b["cameras"]["cam1"].get("preview_bytes") == received for b in bodies)

    wait_until(stats_counting_them, 30.0, "stats with the preview bytes")


def test_retained_commands_are_never_executed(tmp_path: Path, private_broker: LocalBroker) -> None:
    # A broker of its own: no session of an earlier test's agent holds the command queued
    # (a queued command is delivered as a live one, rightly).
    require_model("ssd_mobilenet_v1")
    require_media("intel_one-by-one-person-detection.mp4")
    broker = private_broker
    centre = Centre(broker.port, ROOT)
    centre.send("preview", {"camera": "cam1"}, b"c-retained", retain=True)
    agent = Agent(parse_config(agent_config(tmp_path, broker.port)))
    agent.start()
    try:
        wait_until(lambda: agent.publisher.commands_ready, 30.0, "the agent listening")
        centre.send("ping", {}, b"c-after")  # arrives after the retained one
        reply_body(centre, b"c-after")
        assert centre.reply(b"c-retained") is None
        assert agent.workers[0].preview is None and agent.commands.refused == 1
    finally:
        agent.stop()
        centre.clear_retained("preview")
        centre.close()


def test_a_command_sent_while_the_device_is_cut_off_arrives_when_it_returns(
    tmp_path: Path, broker: LocalBroker
) -> None:
    require_model("ssd_mobilenet_v1")
    require_media("intel_one-by-one-person-detection.mp4")
    centre = Centre(broker.port, ROOT)
    with NetProxy("127.0.0.1", broker.port) as proxy:
        config = agent_config(tmp_path, proxy.port)
        agent = Agent(parse_config(config))
        agent.start()
        try:
            wait_until(lambda: agent.publisher.commands_ready, 30.0, "the agent listening")
            proxy.set_mode("reset")  # the uplink drops; the broker keeps the device's session
            wait_until(lambda: not agent.publisher.connected, 60.0, "the agent to notice")
            centre.send("ping", {}, b"c-queued")
            proxy.set_mode("pass")
            assert reply_body(centre, b"c-queued")["ok"] is True
        finally:
            agent.stop()
            centre.close()


def test_reference_command_sets_and_keeps_the_clear_scene(
    tmp_path: Path, broker: LocalBroker
) -> None:
    """The technician's install step: ``cmd/reference`` for a camera with a flood analyzer;
    the reference is taken at the next analysed frame and written to the camera's own
    references directory (the camera's setting wins over the agent's)."""
    require_model("ssd_mobilenet_v1")
    require_media("intel_one-by-one-person-detection.mp4")
    config = agent_config(tmp_path, broker.port)
    config["references"] = {"directory": str(tmp_path / "agent-refs")}
    cameras = config["cameras"]
    assert isinstance(cameras, list)
    camera = cameras[0]
    camera["analyzers"] = [{"kind": "flood", "region": {"box": [0.0, 0.5, 1.0, 1.0]}}]
    camera["references"] = {"directory": str(tmp_path / "camera-refs")}
    centre = Centre(broker.port, ROOT)
    agent = Agent(parse_config(config))
    agent.start()
    try:
        wait_until(lambda: agent.publisher.commands_ready, 30.0, "the agent listening")
        centre.send("reference", {"camera": "cam1", "analyzers": ["tide"]}, b"c-ref-bad")
        bad = reply_body(centre, b"c-ref-bad")
        assert bad["ok"] is False and "no analyzer tide" in str(bad["error"])

        centre.send("reference", {"camera": "cam1", "mode": "frame"}, b"c-ref")
        assert reply_body(centre, b"c-ref") == {
            "ok": True,
            "camera": "cam1",
            "mode": "frame",
            "analyzers": ["flood"],
        }
        path = tmp_path / "camera-refs" / "cam1" / "flood.npz"
        wait_until(path.exists, 30.0, "the reference file")
        stored = ReferenceStore(tmp_path / "camera-refs").load("cam1", "flood")
        assert stored is not None and stored.kind == "flood"
        assert not (tmp_path / "agent-refs").exists()
    finally:
        agent.stop()
        centre.close()
