"""Where a camera pipeline's output goes (``pipeline.FrameSink``).

- ``OutboxSink``: the running agent's; the only one that encodes (``encode.Encoder``).
- ``PrintSink``: ``edge-agent replay``'s; one line (or JSON payload) per event on stdout.
- ``CollectingSink``: keeps every output in lists, for ``hw-sim eval`` and tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from edge_agent.analytics import Alert, CountReport, SceneState
from edge_agent.encode import Encoder, alert_body, counts_body, event_body, state_body
from edge_agent.outbox import Outbox, OutboxError
from edge_agent.pipeline import FrameOutput
from edge_agent.types import ObjectEvent, Thumbnail


class OutboxSink:
    """The running agent's sink: durable first, then a nudge to the publisher.

    When the outbox cannot write (a full disk), the messages of that frame are lost
    *and counted*: the outbox burns their seq numbers and reports them in the next
    gap notice and in ``stats``; analysis goes on (docs/delivery.md).
    """

    def __init__(self, outbox: Outbox, encoder: Encoder, wake: Callable[[], None]) -> None:
        self._outbox = outbox
        self._encoder = encoder
        self._wake = wake
        self.write_failures = 0

    def emit(self, output: FrameOutput) -> None:
        try:
            self._outbox.enqueue_many(self._encoder.messages(output))
        except OutboxError:
            self.write_failures += 1  # the outbox has logged it (rate-limited)
            return
        self._wake()


class PrintSink:
    """Replay's sink: each event as one line on stdout (no broker, no outbox); with
    ``as_json``, every payload body as one JSON line."""

    def __init__(self, as_json: bool, boot_id: str) -> None:
        self._as_json = as_json
        self._boot_id = boot_id
        self.count = 0

    def emit(self, output: FrameOutput) -> None:
        if self._as_json:
            bodies = [alert_body(a, self._boot_id) for a in output.alerts]
            bodies += [state_body(s, self._boot_id) for s in output.states]
            bodies += [counts_body(c, self._boot_id) for c in output.counts]
            for body in bodies:
                print(json.dumps(body, separators=(",", ":")), flush=True)
        for event in output.events:
            self.count += 1
            body = event_body(event, self._boot_id)
            if self._as_json:
                print(json.dumps(body, separators=(",", ":")), flush=True)
            else:
                zones = ",".join(event.zones) or "-"
                print(
                    f"{event.frame_time_s:10.2f}s {event.lifecycle.value.upper():6} "
                    f"{event.label:10} score={event.score:.2f} zones={zones} id={event.event_id}",
                    flush=True,
                )


class CollectingSink:
    """Keeps what the pipeline emitted, decoded (nothing is encoded)."""

    def __init__(self) -> None:
        self.outputs: list[FrameOutput] = []
        self.alerts: list[Alert] = []
        self.states: list[SceneState] = []
        self.counts: list[CountReport] = []
        self.events: list[ObjectEvent] = []
        self.thumbnails: list[Thumbnail] = []

    def emit(self, output: FrameOutput) -> None:
        self.outputs.append(output)
        self.alerts.extend(output.alerts)
        self.states.extend(output.states)
        self.counts.extend(output.counts)
        self.events.extend(output.events)
        self.thumbnails.extend(output.thumbnails)
