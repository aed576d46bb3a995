"""A clip fetched over a real mosquitto in chunks with the device's link cut mid-way
(hw-sim's fault proxy): the fetch resumes from the offset it had, and the file that
arrives has the clip's sha256. Holds and the listing go over the same commands."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
from fakes.centre import Centre
from helpers import sim_camera, wait_until
from hw_sim.netproxy import NetProxy
from realdata import require_media, require_model

from edge_agent.app import Agent
from edge_agent.broker import LocalBroker
from edge_agent.config import parse_config
from edge_agent.recording.encoder import H264Encoder, probe, write_mp4
from edge_agent.recording.store import ClipStore, RetentionCaps

CHUNK_BYTES = 16 * 1024
ROOT = "city/clip-site/dev-1"


def agent_config(tmp_path: Path, port: int) -> dict[str, object]:
    return {
        "site_id": "clip-site",
        "device_id": "dev-1",
        "cameras": [sim_camera()],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min_delay_s": 0.5},
        "outbox": {"path": str(tmp_path / "outbox.db")},
    }


def recorded_clip(directory: Path) -> tuple[str, bytes]:
    """A clip as the recorder leaves it: 80 noisy frames (large: many chunks), indexed."""
    rng = np.random.default_rng(7)
    encoder = H264Encoder(keyframe_interval_s=1.0, crf=20)
    packets = []
    for i in range(80):
        image = rng.integers(0, 255, (144, 192, 3), dtype=np.uint8)
        packets += encoder.encode(image, i * 200)
    store = ClipStore(directory, RetentionCaps(1 << 30, 0, None))
    assert encoder.format is not None
    write_mp4(store.part_path("cam1-1-beef"), encoder.format, packets)
    # Recorded a moment ago: the running agent's own recordings make room by age (7 days),
    # and a clip from 1970 would go in the middle of the fetch.
    now_s = time.time()
    store.add(
        clip_id="cam1-1-beef",
        camera="cam1",
        start_s=now_s - 20.0,
        end_s=now_s - 4.0,
        frames=80,
        events=(),
    )
    store.close()
    return "cam1-1-beef", (directory / "cam1-1-beef.mp4").read_bytes()


def props(message: paho.MQTTMessage) -> dict[str, str]:
    return dict(getattr(message.properties, "UserProperty", []) or [])


def test_a_clip_fetch_resumes_after_a_link_cut_and_arrives_whole(
    tmp_path: Path, broker: LocalBroker
) -> None:
    require_model("ssd_mobilenet_v1")
    require_media("intel_one-by-one-person-detection.mp4")
    clip_id, original = recorded_clip(tmp_path / "clips")
    assert len(original) > 6 * CHUNK_BYTES
    config = agent_config(tmp_path, 0)
    centre = Centre(broker.port, ROOT)
    with NetProxy("127.0.0.1", broker.port) as proxy:
        config["mqtt"] = {"host": "127.0.0.1", "port": proxy.port, "reconnect_min_delay_s": 0.5}
        config["recording"] = {
            "path": str(tmp_path / "clips"),
            "min_free_mb": 0,
            "fetch_rate_bytes_per_s": 50 * 1024 * 1024,  # pacing is the unit tests' business
            "fetch_chunk_max_bytes": CHUNK_BYTES,
        }
        agent = Agent(parse_config(config))
        agent.start()
        try:
            wait_until(lambda: agent.publisher.commands_ready, 30.0, "the agent listening")
            centre.send("clips", {"camera": "cam1"}, b"list")
            wait_until(lambda: centre.reply(b"list") is not None, 30.0, "the clips reply")
            listing = json.loads(centre.reply(b"list").payload)  # type: ignore[union-attr]
            assert [c["id"] for c in listing["clips"]] == [clip_id]
            whole_sha = listing["clips"][0]["sha256"]
            assert whole_sha == hashlib.sha256(original).hexdigest()

            received = bytearray()
            cut_done = False
            while len(received) < len(original):
                offset = len(received)
                if not cut_done and offset >= len(original) // 2:
                    proxy.set_mode("reset")  # the uplink drops mid-way through the fetch
                    wait_until(lambda: not agent.publisher.connected, 60.0, "the link cut")
                    cut_done = True
                    centre.send("clip_fetch", {"id": clip_id, "offset": offset}, b"resume")
                    proxy.set_mode("pass")
                    correlation = b"resume"
                else:
                    correlation = f"chunk-{offset}".encode()
                    centre.send("clip_fetch", {"id": clip_id, "offset": offset}, correlation)
                wait_until(lambda c=correlation: centre.reply(c) is not None, 60.0, "a chunk")
                message = centre.reply(correlation)
                assert message is not None
                assert message.properties.ContentType == "video/mp4", message.payload[:200]
                meta = props(message)
                chunk = bytes(message.payload)
                assert int(meta["offset"]) == offset
                assert meta["sha256"] == whole_sha
                assert meta["chunk_sha256"] == hashlib.sha256(chunk).hexdigest()
                assert int(meta["size"]) == len(original)
                received += chunk
            assert cut_done
            assert agent.publisher.stats()  # the agent is still fine
        finally:
            agent.stop()
            centre.close()
    assert hashlib.sha256(received).hexdigest() == whole_sha
    fetched = tmp_path / "fetched.mp4"
    fetched.write_bytes(received)
    assert probe(fetched).frames == 80


def test_hold_and_release_go_over_mqtt_and_survive_a_restart(
    tmp_path: Path, broker: LocalBroker
) -> None:
    require_model("ssd_mobilenet_v1")
    require_media("intel_one-by-one-person-detection.mp4")
    clip_id, _ = recorded_clip(tmp_path / "clips")
    config = agent_config(tmp_path, broker.port)
    config["recording"] = {"path": str(tmp_path / "clips"), "min_free_mb": 0}
    centre = Centre(broker.port, ROOT)
    agent = Agent(parse_config(config))
    agent.start()
    try:
        wait_until(lambda: agent.publisher.commands_ready, 30.0, "the agent listening")
        centre.send("clip_hold", {"id": clip_id}, b"hold")
        wait_until(lambda: centre.reply(b"hold") is not None, 30.0, "the hold reply")
        body = json.loads(centre.reply(b"hold").payload)  # type: ignore[union-attr]
        assert body["ok"] is True and body["clip"]["held"] is True
        centre.send("clip_hold", {"id": "cam1-0-none"}, b"unknown")
        wait_until(lambda: centre.reply(b"unknown") is not None, 30.0, "the refusal")
        assert json.loads(centre.reply(b"unknown").payload)["ok"] is False  # type: ignore[union-attr]
    finally:
        agent.stop()
    again = ClipStore(tmp_path / "clips", RetentionCaps(1 << 30, 0, None))
    clip = again.get(clip_id)
    assert clip is not None and clip.held
    again.close()
    centre.close()


def test_the_agent_records_an_event_and_its_end_names_the_clip_the_centre_can_fetch(
    tmp_path: Path, broker: LocalBroker
) -> None:
    """The live agent on the simulated street with the real model: the person's ``end``
    names a clip; ``clips`` lists it once its post-roll is over; fetched, it plays."""
    require_model("ssd_mobilenet_v1")
    require_media("intel_one-by-one-person-detection.mp4")
    config = agent_config(tmp_path, broker.port)
    config["recording"] = {
        "path": str(tmp_path / "clips"),
        "min_free_mb": 0,
        "pre_roll_s": 2,
        "post_roll_s": 1,
        "fetch_rate_bytes_per_s": 50 * 1024 * 1024,
    }
    centre = Centre(broker.port, ROOT)
    agent = Agent(parse_config(config))
    agent.start()

    def ends() -> list[dict[str, object]]:
        bodies = [json.loads(m.payload) for m in centre.inbox.at(f"{ROOT}/events/cam1")]
        return [b for b in bodies if b.get("type") == "end"]

    try:
        wait_until(ends, 120.0, "an event's end")
        end = ends()[0]
        assert isinstance(end["clip"], dict), end
        clip_id = end["clip"]["id"]

        def listed() -> dict[str, object] | None:
            correlation = f"list-{len(centre.inbox.all())}".encode()
            centre.send("clips", {"camera": "cam1"}, correlation)
            body = centre.reply_body(correlation)
            found = [c for c in body["clips"] if c["id"] == clip_id]  # type: ignore[attr-defined]
            return found[0] if found else None

        wait_until(listed, 60.0, "the clip listed once its post-roll is over")
        clip = listed()
        assert clip is not None and end["id"] in clip["events"]  # type: ignore[operator]
        received = bytearray()
        while len(received) < clip["bytes"]:  # type: ignore[operator]
            correlation = f"get-{len(received)}".encode()
            centre.send("clip_fetch", {"id": clip_id, "offset": len(received)}, correlation)
            wait_until(lambda c=correlation: centre.reply(c) is not None, 30.0, "a chunk")
            message = centre.reply(correlation)
            assert message is not None and message.properties.ContentType == "video/mp4"
            received += bytes(message.payload)
    finally:
        agent.stop()
        centre.close()
    assert hashlib.sha256(received).hexdigest() == clip["sha256"]
    fetched = tmp_path / "event.mp4"
    fetched.write_bytes(received)
    facts = probe(fetched)
    assert facts.frames == clip["frames"] and facts.frames > 0
    # pre_roll_s before the event, within one keyframe interval (1 s: the pre-roll is kept
    # in whole GOPs); the exact figure is the component test's (tests/component).
    lead_s = end["start"] - clip["start"]  # type: ignore[operator]
    assert 2.0 - 1.0 <= lead_s <= 2.0 + 1.0 + 0.2, lead_s
