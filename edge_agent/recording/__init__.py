"""Event recording: a compressed pre-roll in memory (encoded here, or an IP camera's own
packets), clips on events and alerts, retention with holds, and the clip commands
(docs/recording.md).

Only ``edge_agent.video`` imports PyAV (the optional ``recording`` extra), and nothing here
imports it at package import: ``recorder`` is imported where a config asks for recording
(``edge_agent.assemble``)."""

from edge_agent.recording.config import RecordingConfig
from edge_agent.recording.ring import Packet, PreRoll
from edge_agent.recording.store import Clip, ClipStore, RetentionCaps

__all__ = ["Clip", "ClipStore", "Packet", "PreRoll", "RecordingConfig", "RetentionCaps"]
