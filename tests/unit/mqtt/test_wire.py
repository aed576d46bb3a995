"""edge_agent.mqtt.wire: the hand-packed MQTT 5 properties read like paho's own."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.mqtt.wire import plain_properties_body, properties_block, publish_packet_bytes


def paho_properties(
    content_type: str, user: list[tuple[str, str]], expiry_s: int | None = None
) -> bytes:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = content_type
    props.UserProperty = user
    if expiry_s is not None:
        props.MessageExpiryInterval = expiry_s
    packed: bytes = props.pack()  # type: ignore[no-untyped-call]
    return packed


def decode(packed: bytes) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.unpack(packed)  # type: ignore[no-untyped-call]
    return props


@pytest.mark.parametrize("expiry_s", [None, 120])
def test_hand_packed_properties_decode_like_pahos(expiry_s: int | None) -> None:
    ours = properties_block(
        plain_properties_body("application/json", (("schema", "é/1"),), expiry_s=expiry_s)
    )
    theirs = paho_properties("application/json", [("v", "1"), ("schema", "é/1")], expiry_s)
    assert len(ours) == len(theirs)
    mine, reference = decode(ours), decode(theirs)
    assert mine.ContentType == reference.ContentType == "application/json"
    assert mine.UserProperty == reference.UserProperty == [("v", "1"), ("schema", "é/1")]
    assert getattr(mine, "MessageExpiryInterval", None) == expiry_s


def test_long_properties_use_a_multi_byte_length() -> None:
    long_value = "x" * 300
    packed = properties_block(plain_properties_body("text/plain", (("k", long_value),)))
    assert decode(packed).UserProperty[-1] == ("k", long_value)
    assert packed[0] & 0x80  # variable byte integer continues


def test_publish_packet_size() -> None:
    # fixed header 1 + remaining length 1; topic 2+5; packet id 2; properties 1; payload 10
    assert publish_packet_bytes("a/b/c", 10, 1) == 1 + 1 + 7 + 2 + 1 + 10
    assert publish_packet_bytes("t", 200, 1) == 1 + 2 + 3 + 2 + 1 + 200
