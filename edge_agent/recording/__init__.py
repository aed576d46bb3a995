"""Event recording: an encoded pre-roll in memory, clips on events and alerts, retention
with holds, and the clip commands (docs/recording.md). Only ``encoder`` imports PyAV."""

from edge_agent.recording.recorder import CameraRecorder, RecordingSettings
from edge_agent.recording.ring import Packet, PreRoll
from edge_agent.recording.store import Clip, ClipStore, RetentionCaps

__all__ = [
    "CameraRecorder",
    "Clip",
    "ClipStore",
    "Packet",
    "PreRoll",
    "RecordingSettings",
    "RetentionCaps",
]
