"""encode.py unit by unit (test_schemas checks every payload against docs/schemas)."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from edge_agent.encode import SCHEMA_VERSION, encode_gap_notice
from edge_agent.types import MessageClass

GAPS_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "gaps.schema.json"


def test_a_gap_notice_lists_each_range_with_its_counts_and_is_urgent() -> None:
    ranges = [
        (2, 4, {"evicted": {"thumbnail": 2}, "expired": {"event": 1}}),
        (9, 9, {"refused": {"gaps": 1}}),
    ]
    notice = encode_gap_notice("city/s/d/gaps", ranges, 1_700_000_000.12345)
    assert notice.json_body == {
        "v": SCHEMA_VERSION,
        "ts": 1_700_000_000.123,
        "gaps": [
            {"from": 2, "to": 4, "evicted": {"thumbnail": 2}, "expired": {"event": 1}},
            {"from": 9, "to": 9, "refused": {"gaps": 1}},
        ],
    }
    assert (notice.topic, notice.message_class, notice.qos, notice.retain) == (
        "city/s/d/gaps",
        MessageClass.ALERT,
        1,
        False,
    )
    assert notice.user_properties == (("schema", "edge-agent/gaps/1"),)
    # What the outbox stores: the same body with the notice's own seq appended.
    schema = json.loads(GAPS_SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator(schema).validate({**notice.json_body, "seq": 10})
