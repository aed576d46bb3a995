"""`edge-agent watch` as an engineer runs it, against a real broker and a real publisher."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import wait_until

from edge_agent.broker import LocalBroker
from edge_agent.encode import Topics
from edge_agent.mqtt import MqttSettings, Publisher
from edge_agent.outbox import Outbox
from edge_agent.types import MessageClass, OutboundMessage


def test_watch_prints_one_line_per_event_of_the_chosen_site(
    tmp_path: Path, broker: LocalBroker
) -> None:
    out_path, err_path = tmp_path / "watch.out", tmp_path / "watch.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        watch = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", "watch", "--port", str(broker.port),
             "--site", "watch-site", "--seconds", "60"],
            stdout=out, stderr=err, text=True,
        )  # fmt: skip
    try:
        wait_until(lambda: "watching" in err_path.read_text(), 30.0, "watch to subscribe")
        outbox = Outbox(tmp_path / "outbox.db", max_bytes=1 << 20, max_rows=1000)
        publisher = Publisher(
            MqttSettings(host="127.0.0.1", port=broker.port, client_id="watch-test-device"),
            outbox,
            Topics("city/watch-site/dev-1"),
            birth_payload={"version": "test"},
        )
        publisher.start()
        # Another site's traffic first: were it not filtered out, it would arrive before e2.
        outbox.enqueue(
            OutboundMessage(
                "city/elsewhere/dev-9/events/cam1", MessageClass.EVENT, json_body={"id": "x"}
            )
        )
        for index in range(3):
            body: dict[str, object] = {"v": 1, "type": "new", "id": f"e{index}", "label": "car"}
            outbox.enqueue(
                OutboundMessage(
                    "city/watch-site/dev-1/events/cam1", MessageClass.EVENT, json_body=body
                )
            )
        publisher.wake()
        wait_until(lambda: out_path.read_text().count(" NEW ") == 3, 30.0, "three event lines")
        publisher.stop(timeout_s=5.0)
        outbox.close()
    finally:
        watch.terminate()
        watch.wait(timeout=30)
    text = out_path.read_text()
    assert "status online" in text
    assert all(f"id=e{i}" in text for i in range(3))
    assert "elsewhere" not in text and "id=x" not in text
