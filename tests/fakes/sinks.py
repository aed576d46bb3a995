"""A ``FrameSink`` that keeps everything, encoded too, for tests that read messages."""

from __future__ import annotations

from edge_agent.encode import Encoder, Topics
from edge_agent.pipeline import FrameOutput
from edge_agent.sinks import CollectingSink
from edge_agent.types import OutboundMessage


class ListSink(CollectingSink):
    """Keeps each output (``CollectingSink``) and the messages the agent's outbox sink
    would store for it, encoded under topic root ``root``."""

    def __init__(self, root: str = "city/test/dev1", boot_id: str = "boot1") -> None:
        super().__init__()
        self.encoder = Encoder(Topics(root), boot_id)
        self.messages: list[OutboundMessage] = []

    def emit(self, output: FrameOutput) -> None:
        super().emit(output)
        self.messages.extend(self.encoder.messages(output))
