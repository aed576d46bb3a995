"""Real-footage evaluation: by-eye truth for the clips in the media path, a scorer, a runner.

``python -m hw_sim.footage`` replays every clip that has a truth file through the agent with
default settings and prints, per clip and label, expected vs observed objects, misses,
fragments, id switches, false events and time to first event.
"""

from hw_sim.footage.score import (
    DEFAULT_SLACK_S,
    ClipScore,
    CountScore,
    LabelScore,
    ObservedEvent,
    format_clip,
    score_clip,
)
from hw_sim.footage.truth import (
    TRUTH_DIR,
    ClipTruth,
    FrameCounts,
    TruthObject,
    all_truths,
    label_family,
    load_truth,
    truth_files,
)

__all__ = [
    "DEFAULT_SLACK_S",
    "TRUTH_DIR",
    "ClipScore",
    "ClipTruth",
    "CountScore",
    "FrameCounts",
    "LabelScore",
    "ObservedEvent",
    "TruthObject",
    "all_truths",
    "format_clip",
    "label_family",
    "load_truth",
    "score_clip",
    "truth_files",
]
