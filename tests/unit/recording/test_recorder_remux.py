"""The recorder fed a camera's own packets (remux): it never encodes, and a stream that
changes under an open clip (a reconnect) ends that clip and goes on in a new one from the
new stream's first keyframe, even when the new stream starts mid-GOP."""

from __future__ import annotations

from pathlib import Path

from fakes.recording import FPS, event, frame

from edge_agent.recording.recorder import CameraRecorder, RecordingSettings
from edge_agent.recording.store import ClipStore, RetentionCaps
from edge_agent.types import Frame, Lifecycle, VideoPacket
from edge_agent.video import H264Encoder, probe


class Feed:
    """What the PyAV capture backend hands over: the camera's packets."""

    remuxing = True

    def __init__(self) -> None:
        self.packets: list[VideoPacket] = []

    def drain(self) -> list[VideoPacket]:
        packets, self.packets = self.packets, []
        return packets


class Camera:
    """An IP camera's encoder; ``reconnect`` starts a new stream (a new connection)."""

    def __init__(self) -> None:
        self.encoder = H264Encoder(keyframe_interval_s=1.0)

    def reconnect(self) -> None:
        self.encoder = H264Encoder(keyframe_interval_s=1.0)

    def packets(self, shot: Frame) -> list[VideoPacket]:
        return self.encoder.encode(shot.image, round(1000 * shot.monotonic_s))


def test_a_reconnect_mid_clip_ends_it_and_the_next_clip_starts_at_a_keyframe(
    tmp_path: Path,
) -> None:
    store = ClipStore(tmp_path, RetentionCaps(1 << 30, 0, None))
    feed = Feed()
    recorder = CameraRecorder(
        "cam1", store, RecordingSettings(pre_roll_s=2.0, post_roll_s=1.0), packets=feed
    )
    camera = Camera()
    script = {40: [event("e1", Lifecycle.NEW, 40, 40)], 90: [event("e1", Lifecycle.END, 40, 90)]}
    ends = []
    for i in range(120):
        shot = frame(i)
        packets = camera.packets(shot)
        if i == 60:  # the camera drops and comes back, joined mid-GOP: no keyframe yet
            camera.reconnect()
            packets = [p for p in camera.packets(shot) if not p.keyframe]
        feed.packets += packets
        events, _, _ = recorder.observe(shot, tuple(script.get(i, ())), ())
        ends += [e for e in events if e.lifecycle is Lifecycle.END]
    assert recorder.encoder.format is None  # nothing was encoded here
    assert recorder.stats()["mode"] == "remux"
    assert store.wait_finished(30.0)  # the finisher's thread indexes closed clips
    before, after = sorted(store.clips(), key=lambda c: c.start_s)
    assert ends[0].clip is not None and ends[0].clip.id == before.id
    assert before.events == after.events == ("e1",)
    # The first clip: from the keyframe at 2 s before the event up to the drop.
    assert before.start_s == frame(20).captured_at_s and before.frames == 40
    # The second: from the new stream's first keyframe (1 s after the drop: frame 70)
    # to post_roll_s after the end.
    assert after.start_s == frame(70).captured_at_s
    assert after.end_s >= frame(90).captured_at_s + 1.0
    for clip in (before, after):
        facts = probe(store.path(clip.id))
        assert facts.frames == clip.frames
        assert abs(facts.duration_s - clip.frames / FPS) <= 1.0 / FPS
