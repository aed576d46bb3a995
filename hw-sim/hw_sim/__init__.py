"""hw_sim: the hardware simulator edge_agent is developed and tested against.

Camera scenes with ground truth (``load_scenario``), cut from real footage at run time,
and replay of any video file (``VideoReplay``).
"""

from hw_sim.media import MediaNotFound, resolve_media
from hw_sim.replay import VideoReplay
from hw_sim.scenes import SCENARIO_NAMES, Scenario, TruthObject, load_scenario

__all__ = [
    "SCENARIO_NAMES",
    "MediaNotFound",
    "Scenario",
    "TruthObject",
    "VideoReplay",
    "load_scenario",
    "resolve_media",
]
