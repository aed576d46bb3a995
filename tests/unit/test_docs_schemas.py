"""The documented MQTT API is consistent in itself: the JSON schemas (docs/schemas), their
examples, docs/asyncapi.yaml and the JSON examples in the prose (docs/*.md). Whether the
code produces what they say: test_encode.py, mqtt/test_publisher.py, test_app_messages.py."""

from __future__ import annotations

import pytest
from api_contract import (
    DOC_BLOCK,
    DOCS,
    MESSAGE_SCHEMAS,
    PAYLOAD_SCHEMAS,
    REPLY_SCHEMAS,
    SCHEMA_NAMES,
    asyncapi,
    classify,
    json_documents,
    load_schema,
    validator,
)
from jsonschema import Draft7Validator, Draft202012Validator

from edge_agent import encode, mqtt, stats
from edge_agent.outbox import DURABLE_CLASSES, GAP_REASONS, NOTICE_CLASS


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_json_schema_2020_12_and_draft_07(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:edge-agent:schema:{name}:1"
    Draft202012Validator.check_schema(schema)
    # Written with keywords that mean the same in draft-07, for tools that know only that.
    Draft7Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_examples_validate_under_both_drafts(name: str) -> None:
    schema = load_schema(name)
    assert schema["examples"]
    for example in schema["examples"]:
        Draft202012Validator(schema).validate(example)
        Draft7Validator(schema).validate(example)


@pytest.mark.parametrize("name", PAYLOAD_SCHEMAS)
def test_schema_version_matches_the_code(name: str) -> None:
    assert encode.SCHEMA_VERSION == mqtt.SCHEMA_VERSION == stats.STATS_VERSION == 1
    assert load_schema(name)["properties"]["v"]["const"] == encode.SCHEMA_VERSION


def test_durable_schemas_know_seq_and_historical_and_nothing_else_does() -> None:
    for name in ("event", "alert", "state", "counts", "gaps"):
        properties = load_schema(name)["properties"]
        assert "seq" in load_schema(name)["required"], name
        assert properties["historical"] == {
            "description": properties["historical"]["description"],
            "const": True,
        }, name
        assert "historical" not in load_schema(name)["required"], name
    for name in ("status", "stats", *REPLY_SCHEMAS):
        assert not {"seq", "historical"} & set(load_schema(name)["properties"]), name


def test_reply_status_shares_the_stats_shapes() -> None:
    stats_defs = load_schema("stats")["$defs"]
    reply_defs = load_schema("reply-status")["$defs"]
    for name in ("outbox", "camera", "source", "byClass"):
        assert reply_defs[name] == stats_defs[name], name


def test_drop_reasons_and_classes_in_the_schemas_are_the_outbox_s() -> None:
    classes = {c.value for c in DURABLE_CLASSES} | {NOTICE_CLASS}
    gaps = load_schema("gaps")["$defs"]
    reasons = set(gaps["range"]["properties"]) - {"from", "to"}
    assert reasons == set(GAP_REASONS)
    assert set(gaps["byClass"]["propertyNames"]["enum"]) == classes
    assert set(load_schema("stats")["$defs"]["byClass"]["propertyNames"]["enum"]) == classes


def test_stats_schema_lists_every_key_as_required() -> None:
    """So a key the code stops sending, or starts sending, fails validation."""
    schema = load_schema("stats")
    parts = [schema, *(schema["$defs"][d] for d in ("outbox", "camera", "source", "publisher"))]
    for part in parts:
        assert set(part["required"]) == set(part["properties"]), part.get("description")


def test_asyncapi_refers_to_the_schema_files_that_exist() -> None:
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    refs = {
        name: message["payload"]["schema"]["$ref"]
        for name, message in document["components"]["messages"].items()
        if "schema" in message["payload"]
    }
    assert refs == {m: f"./schemas/{s}.schema.json" for m, s in MESSAGE_SCHEMAS.items()}
    assert set(MESSAGE_SCHEMAS.values()) == set(SCHEMA_NAMES)
    for ref in refs.values():
        assert (DOCS / ref).is_file(), ref


def test_asyncapi_examples_validate() -> None:
    messages = asyncapi()["components"]["messages"]
    validated: dict[str, int] = {}
    for name, schema in MESSAGE_SCHEMAS.items():
        for example in messages[name].get("examples", []):
            validator(schema).validate(example["payload"])
            validated[name] = validated.get(name, 0) + 1
    # The document has examples for these payloads; losing one must fail, not pass quietly.
    assert validated == {"status": 1, "event": 1, "alert": 1}


def test_every_json_example_in_the_api_reference_validates() -> None:
    """Each ```json block in docs/mqtt-api.md names its schema in a comment above it."""
    text = (DOCS / "mqtt-api.md").read_text(encoding="utf-8")
    seen = set()
    blocks = DOC_BLOCK.findall(text)
    assert blocks
    for schema, block in blocks:
        assert schema, f"a json block without <!-- schema: ... --> above it: {block[:80]}"
        for example in json_documents(block):
            validator(schema).validate(example)
        seen.add(schema)
    assert seen == set(SCHEMA_NAMES)


@pytest.mark.parametrize("page", ["analytics.md", "analyzers.md", "delivery.md"])
def test_payload_examples_in_the_other_pages_validate(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = [block for _, block in DOC_BLOCK.findall(text)]
    assert blocks
    for block in blocks:
        for example in json_documents(block):
            validator(classify(example)).validate(example)
