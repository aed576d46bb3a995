"""An IP camera recorded by remux: an H.264 stream (with B-frames) served as MPEG-TS over
HTTP on loopback, read by the PyAV capture backend, recorded by the real recorder. The
clip holds the camera's own coded pictures (the same slice bytes: no re-encode), plays
(PyAV reads its frames and duration), starts pre_roll_s (within one keyframe interval)
before the event's first frame, and a clip over a reconnect ends there and goes on in a
new one from the new connection's first keyframe."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")  # the `recording` extra; CI installs it

from fakes.recording import person_event  # noqa: E402

from edge_agent.capture.pyav_source import PyAVSource  # noqa: E402
from edge_agent.recording.recorder import CameraRecorder, RecordingSettings  # noqa: E402
from edge_agent.recording.store import ClipStore, RetentionCaps  # noqa: E402
from edge_agent.types import Frame, Lifecycle, ObjectEvent  # noqa: E402
from edge_agent.video import probe  # noqa: E402

FPS, GOP, FRAMES = 10, 10, 90  # a keyframe every second, 9 s a connection
PRE_ROLL_S, POST_ROLL_S = 2.0, 1.0


def camera_stream() -> bytes:
    """What the test camera sends: H.264 High with B-frames (pts != dts), a keyframe
    every GOP frames, in MPEG-TS (Annex B, as RTSP gives it)."""
    out = io.BytesIO()
    with av.open(out, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "veryfast", "g": str(GOP), "keyint_min": str(GOP),
                          "sc_threshold": "0", "bf": "2"}  # fmt: skip
        for i in range(FRAMES):
            image = np.full((240, 320, 3), 40, np.uint8)
            image[100:140, (i * 7) % 280 : (i * 7) % 280 + 40] = (0, 200, 255)
            image[:20, : 3 * i + 1] = 255  # a different picture every frame
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of one packet, Annex B (start codes) or MP4 (4-byte lengths)."""
    if data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        parts = data.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01")
        return [p for p in parts if p]
    units, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        units.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return units


def slices(data: bytes) -> list[str]:
    """Hashes of the coded slices (NAL types 1 and 5): what a re-encode could not keep."""
    return [hashlib.sha256(n).hexdigest() for n in nal_units(data) if n[0] & 0x1F in (1, 5)]


def packets_of(source: bytes | Path) -> list[tuple[bool, list[str]]]:
    """(keyframe, slice hashes) of every packet, in decode order."""
    with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as c:
        return [(p.is_keyframe, slices(bytes(p))) for p in c.demux(video=0) if p.size]


@pytest.fixture
def camera_url() -> Iterator[tuple[str, bytes, list[int]]]:
    """The stream over HTTP on loopback; each GET gets it whole, then the connection
    closes (a camera that drops: the source reconnects)."""
    body = camera_stream()
    connections: list[int] = []

    class Camera(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            connections.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/stream.ts", body, connections
    finally:
        server.shutdown()
        server.server_close()


def event(event_id: str, lifecycle: Lifecycle, start: Frame, at: Frame) -> ObjectEvent:
    return person_event(event_id, lifecycle, start.captured_at_s, at.captured_at_s)


def test_an_ip_camera_is_recorded_by_remux_across_a_reconnect(
    camera_url: tuple[str, bytes, list[int]], tmp_path: Path
) -> None:
    url, body, connections = camera_url
    source = PyAVSource(
        "cam1", url, realtime=False, reconnect_min_delay_s=0.01, stream_timeout_s=5.0
    )
    store = ClipStore(tmp_path / "clips", RetentionCaps(1 << 30, 0, None))
    settings = RecordingSettings(pre_roll_s=PRE_ROLL_S, post_roll_s=POST_ROLL_S)
    recorder = CameraRecorder("cam1", store, settings, packets=source.packet_feed(1 << 24))
    # e1 within the first connection; e2 from its last second into the second one.
    script = {45: ("e1", Lifecycle.NEW), 55: ("e1", Lifecycle.END),
              85: ("e2", Lifecycle.NEW), 105: ("e2", Lifecycle.END)}  # fmt: skip
    frames: list[Frame] = []
    starts: dict[str, Frame] = {}
    ends: dict[str, ObjectEvent] = {}
    for _ in range(10 * FRAMES):  # reads, not time: a read returns a frame or None
        if len(frames) >= FRAMES + 30:
            break
        frame = source.read(1.0)
        if frame is None:
            continue
        frames.append(frame)
        events: tuple[ObjectEvent, ...] = ()
        if frame.index in script:
            event_id, lifecycle = script[frame.index]
            starts.setdefault(event_id, frame)
            events = (event(event_id, lifecycle, starts[event_id], frame),)
        done, _, _ = recorder.observe(frame, events, ())
        ends.update({e.event_id: e for e in done if e.lifecycle is Lifecycle.END})
    recorder.finish((), ())
    source.close()
    assert store.wait_finished(30.0)  # the finisher's thread indexes closed clips
    assert len(frames) >= FRAMES + 30, source.health()
    assert len(connections) == 2 and source.health().reconnects == 1
    assert recorder.stats()["mode"] == "remux"

    camera = packets_of(body)
    clips = {c.id: c for c in store.clips()}
    assert len(clips) == 3, clips  # e1's; e2's up to the reconnect, and after it
    first, before, after = sorted(clips.values(), key=lambda c: c.start_s)
    assert ends["e1"].clip is not None and ends["e1"].clip.id == first.id
    assert ends["e2"].clip is not None and ends["e2"].clip.id == before.id
    assert "e2" in before.events and "e2" in after.events

    for clip in (first, before, after):
        path = store.path(clip.id)
        recorded = packets_of(path)
        # No re-encode: the clip's coded slices are the camera's, a run of its packets
        # from one of its keyframes.
        assert recorded[0][0], "a clip starts at a keyframe"
        at = camera.index(recorded[0])
        assert camera[at : at + len(recorded)] == recorded
        facts = probe(path)
        assert facts.frames == clip.frames == len(recorded)
        assert facts.duration_s == pytest.approx(len(recorded) / FPS, abs=1.5 / FPS)
        assert (facts.width_px, facts.height_px) == (320, 240)

    # e1's first frame (display index 45) is in its clip, which starts pre_roll_s
    # before it, within one keyframe interval.
    first_index = camera.index(packets_of(store.path(first.id))[0]) // GOP * GOP
    lead_s = (45 - first_index) / FPS
    assert PRE_ROLL_S <= lead_s <= PRE_ROLL_S + GOP / FPS
    # The clip over the reconnect ends with the first connection, the next starts at
    # the second connection's first keyframe.
    assert len(packets_of(store.path(before.id))) + camera.index(
        packets_of(store.path(before.id))[0]
    ) == len(camera)
    assert camera.index(packets_of(store.path(after.id))[0]) == 0
