"""MQTT 3.1.1 commands: the response topic travels in the request's JSON object."""

from __future__ import annotations

import json

import pytest

from edge_agent.encode import Topics
from edge_agent.mqtt.command_queue import reply_route, response_topic_in_payload


def test_the_key_is_taken_out_and_returned() -> None:
    payload = json.dumps({"camera": "cam1", "response_topic": "c/s/d/reply/x"}).encode()
    rest, requested = response_topic_in_payload(payload)
    assert json.loads(rest) == {"camera": "cam1"} and requested == "c/s/d/reply/x"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b'{"camera":"cam1"}',
        b'not json, but mentions "response_topic',
        b'["response_topic"]',
        b'{"response_topic":' + b"[" * 40 + b"]" * 40 + b"}",  # deeper than commands may nest
        b'{"response_topic":"x","pad":"' + b"y" * 70_000 + b'"}',  # over the payload cap
        # a key given twice: rewriting the object would hide it from the handler's refusal
        b'{"camera":"cam9","camera":"cam1","response_topic":"c/s/d/reply/x"}',
    ],
)
def test_anything_else_is_left_for_the_command_handler(payload: bytes) -> None:
    assert response_topic_in_payload(payload) == (payload, None)


def test_a_value_that_is_not_text_is_returned_for_reply_route_to_judge() -> None:
    rest, requested = response_topic_in_payload(b'{"response_topic":7}')
    assert (rest, requested) == (b"{}", 7)


@pytest.mark.parametrize(
    ("suffix", "reason"),
    [
        ("x\ud800", "U+D800"),  # a lone surrogate: paho could not even encode it
        ("x\u0000", "U+0000"),
        ("x\u007f", "U+007F"),
        ("x\U0010ffff", "U+10FFFF"),
        ("x/+", "wildcard"),
        ("\u0800" * 21_845, "longer than 65535 bytes"),
    ],
)
def test_a_response_topic_no_one_can_publish_to_is_refused_on_the_default_topic(
    suffix: str, reason: str
) -> None:
    """The command was run and its reply lost (paho raised on the topic) or published and
    the connection dropped by the broker for it (tests/integration/test_mqtt_brokers.py)."""
    topics = Topics("c/s/d")
    topic, refusal = reply_route(topics, "ping", f"c/s/d/reply/{suffix}")
    assert topic == "c/s/d/reply/ping"
    assert refusal is not None and reason in refusal and "not run" in refusal, refusal


def test_a_response_topic_in_any_script_is_used_as_it_is() -> None:
    topic = "c/s/d/reply/centre-\u00e9\u4e2d\U0001f600"
    assert reply_route(Topics("c/s/d"), "ping", topic) == (topic, None)
