"""The simulator scene through the whole chain with a recorder: the person's event yields
a clip that PyAV reads back, holding the event's first frame and starting pre_roll_s
(within one keyframe interval) before it; every ``end`` names its clip."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.detect import TruthDetector
from fakes.sinks import ListSink
from helpers import sim_camera
from realdata import skip_or_fail

from edge_agent.capture import CaptureError
from edge_agent.capture.sim_source import SimSource
from edge_agent.detect.frame import FrameDetector
from edge_agent.detect.regions import RegionSettings
from edge_agent.events import EventEngine
from edge_agent.motion import MotionGate
from edge_agent.pipeline import CameraPipeline, run_offline
from edge_agent.recording.encoder import probe
from edge_agent.recording.recorder import CameraRecorder, RecordingSettings
from edge_agent.recording.store import ClipStore, RetentionCaps
from edge_agent.track import IouTracker
from edge_agent.types import Lifecycle

PRE_ROLL_S, POST_ROLL_S, KEYFRAME_S = 3.0, 2.0, 1.0


def test_an_event_in_the_simulator_scene_yields_a_playable_clip(tmp_path: Path) -> None:
    try:
        source = SimSource(
            "cam1", scenario="person_walks_in", width=480, height=270, fps=5.0, loop=False,
            realtime=False,
        )  # fmt: skip
    except CaptureError as error:
        skip_or_fail(str(error))
    detector = TruthDetector(source.scenario)
    sink = ListSink()
    store = ClipStore(tmp_path / "clips", RetentionCaps(1 << 30, 0, None))
    recorder = CameraRecorder(
        "cam1",
        store,
        RecordingSettings(
            pre_roll_s=PRE_ROLL_S, post_roll_s=POST_ROLL_S, keyframe_interval_s=KEYFRAME_S
        ),
    )
    pipeline = CameraPipeline(
        camera_id="cam1",
        motion=MotionGate(),
        detector=FrameDetector(detector, regions=RegionSettings()),
        tracker=IouTracker(),
        engine=EventEngine("cam1", labels_of_interest=["person", "car"]),
        sink=sink,
        recorder=recorder,
    )
    first_frame_wall: dict[str, float] = {}
    run_offline(source, pipeline, on_frame=detector.on_frame, read_timeout_s=1.0)
    assert store.wait_finished(30.0)  # the finisher's thread indexes closed clips
    store_clips = store.clips()
    ends = [e for e in sink.events if e.lifecycle is Lifecycle.END]
    news = [e for e in sink.events if e.lifecycle is Lifecycle.NEW]
    assert news and len(ends) == len(news)
    assert store_clips, "an event and no clip"
    by_id = {c.id: c for c in store_clips}
    for new in news:
        first_frame_wall[new.event_id] = new.start_s
    for end in ends:
        assert end.clip is not None and end.clip.id in by_id, end.clip
        clip = by_id[end.clip.id]
        assert end.event_id in clip.events
        lead_s = first_frame_wall[end.event_id] - clip.start_s
        assert PRE_ROLL_S - 1e-3 <= lead_s <= PRE_ROLL_S + KEYFRAME_S + 0.2 + 1e-3  # + 1 frame
        assert clip.end_s >= end.end_s  # type: ignore[operator]
        facts = probe(store.path(clip.id))
        assert facts.frames == clip.frames
        assert facts.duration_s == pytest.approx(clip.end_s - clip.start_s, abs=0.25)
        assert (facts.width_px, facts.height_px) == (480, 270)
    # On the wire: each end names its clip.
    wire_ends = [
        m.json_body for m in sink.messages if m.json_body and m.json_body.get("type") == "end"
    ]
    assert len(wire_ends) == len(ends)
    assert all(body["clip"]["id"] in by_id for body in wire_ends)  # type: ignore[index]


def test_a_clip_never_shows_what_a_privacy_mask_covers(tmp_path: Path) -> None:
    """Clips leave the device (clip_fetch): the camera's masks are black in every frame,
    with the recorder the agent assembles from its config."""
    import av  # the test reads the clip back as a player would

    from edge_agent.assemble import build_recorder
    from edge_agent.config import parse_config

    mask = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]  # the top-left quarter
    camera = {**sim_camera(), "privacy": {"masks": [mask]}}
    config = parse_config(
        {
            "site_id": "s",
            "device_id": "d",
            "cameras": [camera],
            "recording": {"path": str(tmp_path / "clips"), "pre_roll_s": 2, "post_roll_s": 1},
        }
    )
    try:
        source = SimSource(
            "cam1", scenario="person_walks_in", width=480, height=270, fps=5.0, loop=False,
            realtime=False,
        )  # fmt: skip
    except CaptureError as error:
        skip_or_fail(str(error))
    store = ClipStore(tmp_path / "clips", RetentionCaps(1 << 30, 0, None))
    recorder = build_recorder(config, config.cameras[0], store)
    detector = TruthDetector(source.scenario)
    pipeline = CameraPipeline(
        camera_id="cam1",
        motion=MotionGate(),
        detector=FrameDetector(detector, regions=RegionSettings()),
        tracker=IouTracker(),
        engine=EventEngine("cam1", labels_of_interest=["person", "car"]),
        sink=ListSink(),
        recorder=recorder,
    )
    run_offline(source, pipeline, on_frame=detector.on_frame, read_timeout_s=1.0)
    assert store.wait_finished(30.0)
    clips = store.clips()
    assert clips, "an event and no clip"
    frames = 0
    for clip in clips:
        with av.open(str(store.path(clip.id))) as container:
            for frame in container.decode(video=0):
                image = frame.to_ndarray(format="bgr24")
                inside = image[8:127, 8:232]  # the mask's quarter, off its compressed edge
                assert float(inside.mean()) < 4.0 and int(inside.max()) < 40, clip.id
                assert float(image[150:, 250:].mean()) > 20.0  # the rest is the scene
                frames += 1
    assert frames > 0
