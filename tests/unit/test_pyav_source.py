"""Choosing the PyAV backend: the config's ``kind: pyav`` opens it, a missing PyAV is a
clear error, a recorder takes its packets (remux) unless the camera hides something; and
the packet feed between capture and recorder drops only whole GOPs."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from edge_agent.assemble import build_recorder
from edge_agent.capture import CaptureError, PacketFeed, open_source
from edge_agent.config import AgentConfig, PyAVSourceConfig, parse_config
from edge_agent.recording import ClipStore, RetentionCaps
from edge_agent.types import VideoPacket

DEAD_CAMERA = "http://127.0.0.1:9/stream.ts"  # the discard port: refused at once


def config(tmp_path: Path, **camera: object) -> AgentConfig:
    return parse_config(
        {
            "site_id": "s",
            "device_id": "d",
            "cameras": [{"id": "cam1", "source": {"kind": "pyav", "uri": DEAD_CAMERA}, **camera}],
            "recording": {"path": str(tmp_path / "clips")},
        }
    )


def test_kind_pyav_opens_the_pyav_backend(tmp_path: Path) -> None:
    pytest.importorskip("av")
    agent = config(tmp_path)
    camera = agent.cameras[0]
    assert isinstance(camera.source, PyAVSourceConfig)
    source = open_source(camera)
    try:
        assert type(source).__name__ == "PyAVSource"
        health = source.health()  # a stream that is down is retried, not an error
        assert not health.connected and "cannot open" in (health.last_error or "")
    finally:
        source.close()


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_a_camera_password_never_reaches_the_error_log_or_stats(
    scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    """FFmpeg's error names the URL it was given: 'cannot open rtsp://admin:***@...:
    [Errno 111] Connection refused: 'rtsp://admin:s3cret@...'' went to the log and to
    last_error, which stats and the status reply publish."""
    pytest.importorskip("av")
    uri = f"{scheme}://admin:s3cret@127.0.0.1:9/stream"  # the discard port: refused
    camera = parse_config(
        {
            "site_id": "s",
            "device_id": "d",
            "cameras": [{"id": "cam1", "source": {"kind": "pyav", "uri": uri}}],
        }
    ).cameras[0]
    with caplog.at_level(logging.DEBUG):
        source = open_source(camera)
        try:
            health = source.health()
        finally:
            source.close()
    assert "cannot open" in (health.last_error or "") and "refused" in (health.last_error or "")
    assert "s3cret" not in (health.last_error or "")
    assert "s3cret" not in caplog.text


def test_without_pyav_the_error_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    monkeypatch.delitem(sys.modules, "edge_agent.video", raising=False)
    camera = config(tmp_path).cameras[0]
    with pytest.raises(CaptureError, match=r"pip install 'edge-agent\[recording\]'"):
        open_source(camera)


class PacketCamera:
    """A source that offers its packets (the ``PacketSource`` shape)."""

    def __init__(self) -> None:
        self.feeds: list[PacketFeed] = []

    def packet_feed(self, max_bytes: int) -> PacketFeed:
        self.feeds.append(PacketFeed(max_bytes))
        return self.feeds[-1]


def test_a_recorder_remuxes_a_packet_source_unless_the_camera_hides_something(
    tmp_path: Path,
) -> None:
    pytest.importorskip("av")
    from edge_agent.recording.recorder import CameraRecorder

    store = ClipStore(tmp_path / "clips", RetentionCaps(1 << 30, 0, None))
    plain = config(tmp_path)
    camera = PacketCamera()
    recorder = build_recorder(plain, plain.cameras[0], store, source=camera)
    assert isinstance(recorder, CameraRecorder) and recorder.packets is camera.feeds[0]
    masked = config(tmp_path, privacy={"masks": [[(0, 0), (0.5, 0), (0.5, 0.5)]]})
    recorder = build_recorder(masked, masked.cameras[0], store, source=PacketCamera())
    assert isinstance(recorder, CameraRecorder) and recorder.packets is None


def test_the_feed_drops_whole_gops_when_nobody_takes_them() -> None:
    feed = PacketFeed(max_bytes=250)
    for i in range(30):
        feed.put(VideoPacket(i * 100, i % 10 == 0, b"x" * 10))
    packets = feed.drain()
    assert packets[0].keyframe and len(packets) == 20  # the two newest GOPs
    assert feed.dropped == 10
    assert feed.drain() == []
