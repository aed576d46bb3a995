"""Kept for its import path: the encoder, the MP4 remux and ``probe`` live in
``edge_agent.video``, the one module that imports PyAV (capture reads streams with it too)."""

from edge_agent.types import StreamFormat
from edge_agent.video import (
    CODEC,
    TIME_BASE,
    ClipFacts,
    FrameFilter,
    H264Encoder,
    Mp4Writer,
    identity,
    probe,
    write_mp4,
)

__all__ = [
    "CODEC",
    "TIME_BASE",
    "ClipFacts",
    "FrameFilter",
    "H264Encoder",
    "Mp4Writer",
    "StreamFormat",
    "identity",
    "probe",
    "write_mp4",
]
