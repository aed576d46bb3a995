"""A simulated camera: a scripted scene from ``hw_sim`` with ground truth.

hw_sim is a separate (development) package, imported only when a camera of kind
``sim`` is opened.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from edge_agent.capture.base import CaptureError, EndOfStream
from edge_agent.types import Frame, SourceHealth

if TYPE_CHECKING:
    from hw_sim.scenes import Scenario

SIMULATOR_MISSING = (
    "kind 'sim' needs the simulator package hw_sim, which is not installed: install the "
    "hw-sim wheel built beside edge-agent's (pip install hw_sim-*.whl), or from a clone "
    "pip install ./hw-sim"
)


class SimSource:
    def __init__(
        self,
        camera_id: str,
        *,
        scenario: str,
        width: int,
        height: int,
        fps: float,
        loop: bool = True,
        realtime: bool = True,
        clock_start_s: float | None = None,
    ) -> None:
        try:
            from hw_sim.scenes import load_scenario
        except ImportError as error:
            raise CaptureError(f"camera {camera_id}: {SIMULATOR_MISSING} ({error})") from None
        try:
            self._scenario: Scenario = load_scenario(scenario, width=width, height=height, fps=fps)
        except (KeyError, ValueError, OSError) as error:
            # A KeyError's str() is the repr of its message: quoted, as if it were code.
            why = error.args[0] if isinstance(error, KeyError) and error.args else error
            raise CaptureError(f"camera {camera_id}: simulator scene {scenario!r}: {why}") from None
        self.camera_id = camera_id
        self._fps = fps
        self._loop = loop
        self._realtime = realtime
        self._index = 0
        self._next_due_s = time.monotonic()
        self._stop = threading.Event()
        self._ended = False
        self._clock_start_s = clock_start_s if clock_start_s is not None else time.time()

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    @property
    def nominal_fps(self) -> float:
        return self._fps

    @property
    def live(self) -> bool:
        return self._realtime

    def read(self, timeout_s: float) -> Frame | None:
        if self._index >= self._scenario.n_frames and not self._loop:
            self._ended = True
            raise EndOfStream(self.camera_id)
        if self._realtime:
            pause_s = self._next_due_s - time.monotonic()
            if pause_s > timeout_s:
                self._stop.wait(timeout_s)
                return None
            if pause_s > 0 and self._stop.wait(pause_s):
                return None
            self._next_due_s = max(self._next_due_s + 1.0 / self._fps, time.monotonic() - 1.0)
        scene_index = self._index % self._scenario.n_frames
        image = self._scenario.render(scene_index)
        if self._realtime:
            captured_at_s, monotonic_s = time.time(), time.monotonic()
        else:  # offline: the scene's own clock, from the scenario's wall-clock start if it has one
            monotonic_s = self._index / self._fps
            captured_at_s = self._clock_start_s + monotonic_s
        frame = Frame(
            camera_id=self.camera_id,
            index=self._index,
            captured_at_s=captured_at_s,
            monotonic_s=monotonic_s,
            image=image,
        )
        self._index += 1
        return frame

    def health(self) -> SourceHealth:
        return SourceHealth(
            connected=True, frames_read=self._index, reconnects=0, ended=self._ended
        )

    def close(self) -> None:
        self._stop.set()
