"""`hw-sim serve` as a developer runs it: the agent's OpenCV source reads the stream."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import wait_until

from edge_agent.capture.opencv_source import OpenCVSource


def test_a_served_scenario_is_readable_as_an_ip_camera(tmp_path: Path) -> None:
    out_path = tmp_path / "serve.out"
    with out_path.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "hw_sim.cli", "serve", "--scenario", "empty_street",
             "--width", "320", "--height", "180", "--fps", "10", "--max-seconds", "120"],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        wait_until(lambda: "serving" in out_path.read_text(), 30.0, "the server to listen")
        match = re.search(r"(http://\S+)", out_path.read_text())
        assert match is not None
        source = OpenCVSource("cam1", match.group(1), stream_timeout_s=5.0)
        try:
            frames = []
            wait_until(
                lambda: frames.append(source.read(timeout_s=1.0)) or any(frames), 30.0, "a frame"
            )
            frame = next(f for f in frames if f is not None)
            assert frame.image.shape == (180, 320, 3) and source.live
        finally:
            source.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
