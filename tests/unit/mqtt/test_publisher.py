"""edge_agent.mqtt.Publisher on the wire, through a fake paho client (fakes.mqtt): what it
sends validates and carries the documented QoS, retain flags and MQTT 5 properties; status
messages; commands run off the network thread; stop() reports a thread it could not stop."""

from __future__ import annotations

import json
import logging
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from api_contract import (
    ROOT,
    TIMEOUT_S,
    TOPICS,
    agent_birth,
    alert_mutations,
    asyncapi,
    check_wrong,
    counts_mutations,
    drain,
    durable_messages,
    gap_notice_scenario,
    mutations,
    new_publisher,
    running,
    schema_of,
    state_mutations,
    status_payloads,
    validator,
)
from fakes.mqtt import NETWORK_THREAD, FakeClient, command_message
from helpers import wait_until

from edge_agent.app import PREVIEW_EXPIRY_S
from edge_agent.mqtt import MqttSettings, Publisher
from edge_agent.outbox import Outbox
from edge_agent.remote import COMMANDS, Reply
from edge_agent.update.host import UPDATE_EXPIRY_S


@pytest.mark.parametrize("age_s", [0.0, 3600.0], ids=["live", "historical"])
def test_every_durable_message_validates_as_sent(outbox: Outbox, age_s: float) -> None:
    outbox.enqueue_many(durable_messages())
    sent = drain(outbox, age_s=age_s)
    assert len(sent) == len(durable_messages())
    kinds = set()
    for message in sent:
        kind = schema_of(message)
        kinds.add(kind)
        seq = message.prop("seq")
        assert seq is not None
        if kind == "thumbnail":
            assert message.payload.startswith(b"\xff\xd8")
            assert message.prop("event_id") == message.topic.rsplit("/", 1)[1]
            continue
        body = message.json()
        validator(kind).validate(body)
        assert body["seq"] == int(seq)
        if age_s:
            assert body["historical"] is True and message.prop("historical") == "true"
        else:
            assert "historical" not in body and message.prop("historical") is None
    assert kinds == {"event", "thumbnail", "alert", "state", "counts"}


def test_alerts_are_sent_before_the_backlog_and_share_the_events_topic(outbox: Outbox) -> None:
    outbox.enqueue_many(durable_messages())
    sent = drain(outbox)
    kinds = [schema_of(m) for m in sent]
    first_other = next(i for i, k in enumerate(kinds) if k != "alert")
    assert set(kinds[:first_other]) == {"alert"} and "alert" not in kinds[first_other:]
    for message in sent[:first_other]:
        assert message.topic == TOPICS.events(message.json()["camera"])
        assert message.json()["kind"] != "object"


def test_mqtt5_properties_are_as_documented(outbox: Outbox) -> None:
    """content type; user properties v, seq, historical (only when true), then the message's own."""
    outbox.enqueue_many(durable_messages())
    for age_s in (0.0, 3600.0):
        for message in drain(outbox, age_s=age_s):
            kind = schema_of(message)
            own = [("event_id", message.topic.rsplit("/", 1)[1])]
            if kind != "thumbnail":
                own = [("schema", f"edge-agent/{kind}/1")]
            historical = [("historical", "true")] if age_s else []
            seq = [("seq", message.prop("seq") or "")]
            assert message.user_properties == [("v", "1"), *seq, *historical, *own]
            expected_type = "image/jpeg" if kind == "thumbnail" else "application/json"
            assert message.content_type == expected_type
            assert message.expiry_s is None  # durable messages never expire at the broker
        outbox.enqueue_many(durable_messages())


def test_mqtt_3_1_1_carries_no_properties_but_the_same_payloads(outbox: Outbox) -> None:
    outbox.enqueue_many(durable_messages())
    for message in drain(outbox, age_s=3600.0, protocol="3.1.1"):
        assert message.user_properties == [] and message.content_type is None
        if not message.topic.startswith(f"{ROOT}/thumbs/"):
            body = message.json()
            assert body["historical"] is True and body["seq"] >= 1


def test_a_gap_notice_after_expiry_eviction_and_refusal_validates(tmp_path: Path) -> None:
    box = gap_notice_scenario(tmp_path)
    try:
        publisher, _ = new_publisher(box)
        notice = box.issue_gap_notice(publisher.topics.gaps)
        assert notice is not None and notice.topic == f"{ROOT}/gaps"
        assert publisher.topics.gaps == f"{ROOT}/gaps"
        body = json.loads(notice.payload)
        validator("gaps").validate(body)
        reasons = {r for item in body["gaps"] for r in item if r not in ("from", "to")}
        assert reasons == {"expired", "evicted", "refused"}
        previous_to = 0
        for item in body["gaps"]:
            assert previous_to < item["from"] <= item["to"] < body["seq"]
            lost = sum(n for r in reasons & set(item) for n in item[r].values())
            assert lost == item["to"] - item["from"] + 1
            previous_to = item["to"]
        (sent, *rest) = drain(box, age_s=120.0)  # 100 s after the notice: historical
        assert sent.topic == notice.topic and sent.qos == 1 and not sent.retain
        assert sent.user_properties[-1] == ("schema", "edge-agent/gaps/1")
        validator("gaps").validate(sent.json())
        assert sent.json()["historical"] is True
        assert rest  # the events that were kept follow the notice
    finally:
        box.close()


def test_every_status_the_publisher_composes_validates(outbox: Outbox) -> None:
    payloads = status_payloads(outbox, agent_birth())
    check = validator("status")
    for state, body in payloads.items():
        check.validate(body)
        assert body["state"] == state and "outbox_reset" not in body
    assert "ts" not in payloads["offline"] and "ts" in payloads["online"]
    assert payloads["online"]["cameras"] == ["cam1", "cam2"]


def test_status_is_retained_qos1_with_properties(outbox: Outbox) -> None:
    publisher, fake = new_publisher(outbox, fake=FakeClient(session_present=False))
    with running(publisher, fake):
        (birth,) = fake.sent
    assert (birth.topic, birth.qos, birth.retain) == (TOPICS.status, 1, True)
    assert birth.content_type == "application/json" and birth.user_properties == [("v", "1")]
    validator("status").validate(birth.json())


def test_the_device_listens_on_cmd_plus_at_qos1(outbox: Outbox) -> None:
    publisher, fake = new_publisher(
        outbox, on_command=lambda *_: None, fake=FakeClient(session_present=True)
    )
    with running(publisher, fake):
        wait_until(lambda: publisher.commands_ready, TIMEOUT_S, "the SUBACK")
    assert fake.subscriptions == [(f"{ROOT}/cmd/+", 1)]


def test_wrong_alerts_states_and_counts_fail(outbox: Outbox) -> None:
    outbox.enqueue_many(durable_messages())
    checked = set()
    for message in drain(outbox, age_s=3600.0):
        kind = schema_of(message)
        if kind in ("event", "thumbnail"):
            continue
        body = message.json()
        extra = {"alert": alert_mutations, "state": state_mutations, "counts": counts_mutations}
        check_wrong(kind, body, iter([*mutations(body), *extra[kind](body)]))
        checked.add(kind)
    assert checked == {"alert", "state", "counts"}


@pytest.mark.parametrize("state", ["online", "stopped", "offline"])
def test_wrong_statuses_fail(outbox: Outbox, state: str) -> None:
    body = status_payloads(outbox, agent_birth())[state]
    wrongs = list(mutations(body))
    wrongs += [
        ("unknown state", {**body, "state": "sleeping"}),
        ("cameras not a list", {**body, "cameras": "cam1"}),
        ("no cameras", {**body, "cameras": []}),
        ("started is a string", {**body, "started": "yesterday"}),
        ("outbox_reset empty", {**body, "outbox_reset": ""}),
        ("outbox_reset true", {**body, "outbox_reset": True}),
    ]
    if state == "offline":
        wrongs.append(("offline with a time", {**body, "ts": 1764448000.0}))
    check_wrong("status", body, iter(wrongs))


def test_asyncapi_qos_retain_and_properties_match_the_wire(outbox: Outbox) -> None:
    document = asyncapi()
    operations = document["operations"]
    schemas = document["components"]["schemas"]
    outbox.enqueue_many(durable_messages())
    operation_of = {
        "event": "publishEvent",
        "alert": "publishAlert",
        "thumbnail": "publishThumbnail",
        "state": "publishState",
        "counts": "publishCounts",
    }
    for message in drain(outbox):
        kind = schema_of(message)
        binding = operations[operation_of[kind]]["bindings"]["mqtt"]
        assert (binding["qos"], binding["retain"]) == (message.qos, message.retain), kind
        headers = schemas[f"{kind}Properties"]
        sent = {k for k, _ in message.user_properties}
        assert set(headers["required"]) == sent, kind
        assert set(headers["properties"]) == sent | {"historical"}, kind
        if "schema" in headers["properties"]:
            assert headers["properties"]["schema"]["const"] == message.prop("schema")
        channel_messages = document["channels"][
            {"event": "events", "alert": "events", "thumbnail": "thumbnails"}.get(kind, kind)
        ]["messages"]
        assert kind in channel_messages
        assert document["components"]["messages"][kind]["contentType"] == message.content_type
    for name, qos, retain in (
        ("publishStatus", 1, True),
        ("publishGaps", 1, False),
        ("publishStats", 0, False),
        ("publishPreview", 0, False),
        ("publishUpdate", 1, True),
    ):
        binding = operations[name]["bindings"]["mqtt"]
        assert (binding["qos"], binding["retain"]) == (qos, retain), name
    # MQTT binding 0.2.0 puts the expiry on the operation, not the message.
    preview = operations["publishPreview"]["bindings"]["mqtt"]
    assert preview["messageExpiryInterval"] == PREVIEW_EXPIRY_S
    update = operations["publishUpdate"]["bindings"]["mqtt"]
    assert update["messageExpiryInterval"] == UPDATE_EXPIRY_S
    reply = operations["sendReply"]["bindings"]["mqtt"]
    assert (reply["qos"], reply["retain"], reply["messageExpiryInterval"]) == (1, False, 60)
    # one per command: clip_fetch -> replyClipFetch
    replies = {"reply" + "".join(p.capitalize() for p in c.split("_")) for c in COMMANDS}
    sent = {m["$ref"].rsplit("/", 1)[-1] for m in operations["sendReply"]["messages"]}
    assert sent == {*replies, "replyError"}
    for message in document["components"]["messages"].values():
        assert "messageExpiryInterval" not in message.get("bindings", {}).get("mqtt", {})


# -- commands: off the network thread, bounded, and a stop that says what it left ---------------


class BlockingCommands:
    """A command callback that records its thread and holds each command until released."""

    def __init__(self, *, block: bool) -> None:
        self.threads: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not block:
            self.release.set()

    def __call__(self, name: str, payload: bytes, retained: bool) -> Reply | None:
        self.threads.append(threading.current_thread().name)
        self.started.set()
        self.release.wait(timeout=TIMEOUT_S)
        return Reply.json({"ok": True, "ts": 1.0})


def ping(reply_to: str = f"{ROOT}/reply/ping") -> SimpleNamespace:
    return command_message(f"{ROOT}/cmd/ping", {}, ResponseTopic=reply_to)


def test_a_command_runs_on_the_command_thread_not_the_network_thread(outbox: Outbox) -> None:
    commands = BlockingCommands(block=False)
    publisher, fake = new_publisher(outbox, on_command=commands)
    with running(publisher, fake):
        fake.deliver(ping())
        wait_until(lambda: fake.published_on(f"{ROOT}/reply/ping"), TIMEOUT_S, "the reply")
    assert commands.threads == ["mqtt-commands"]
    assert NETWORK_THREAD not in commands.threads
    (reply,) = fake.published_on(f"{ROOT}/reply/ping")
    assert reply.json() == {"ok": True, "ts": 1.0} and (reply.qos, reply.retain) == (1, False)


def test_a_full_command_queue_refuses_at_once_with_an_error_reply(outbox: Outbox) -> None:
    commands = BlockingCommands(block=True)
    publisher, fake = new_publisher(outbox, on_command=commands, command_queue_size=1)
    with running(publisher, fake):
        try:
            fake.deliver(ping(f"{ROOT}/reply/first"))  # taken by the command thread, held
            wait_until(commands.started.is_set, TIMEOUT_S, "the first command running")
            fake.deliver(ping(f"{ROOT}/reply/second"))  # queued: the queue is full
            fake.deliver(ping(f"{ROOT}/reply/third"))  # refused
            wait_until(lambda: fake.published_on(f"{ROOT}/reply/third"), TIMEOUT_S, "refusal")
            assert not fake.published_on(f"{ROOT}/reply/first")  # still held
        finally:
            commands.release.set()
        wait_until(lambda: fake.published_on(f"{ROOT}/reply/second"), TIMEOUT_S, "second")
    (refusal,) = fake.published_on(f"{ROOT}/reply/third")
    body = refusal.json()
    assert body["ok"] is False and body["error"].startswith("busy")
    validator("reply-error").validate(body)
    assert refusal.content_type == "application/json" and refusal.expiry_s == 60
    assert len(commands.threads) == 2  # the refused one never ran
    assert fake.published_on(f"{ROOT}/reply/first")[0].json()["ok"] is True


@pytest.mark.parametrize("wildcard", ["+", "#", "centre/+/x"])
def test_a_response_topic_with_a_wildcard_is_refused_on_the_default_reply_topic(
    outbox: Outbox, wildcard: str
) -> None:
    commands = BlockingCommands(block=False)
    publisher, fake = new_publisher(outbox, on_command=commands)
    with running(publisher, fake):
        fake.deliver(ping(f"{ROOT}/reply/{wildcard}"))
        wait_until(lambda: fake.published_on(f"{ROOT}/reply/ping"), TIMEOUT_S, "the refusal")
    (refusal,) = fake.published_on(f"{ROOT}/reply/ping")
    body = refusal.json()
    assert body["ok"] is False and "response topic" in body["error"], body
    assert "wildcard" in body["error"] and f"reply/{wildcard}" in body["error"]
    validator("reply-error").validate(body)
    assert commands.threads == []  # the command never ran
    assert not [m for m in fake.sent if "+" in m.topic or "#" in m.topic]


def test_stop_reports_a_thread_that_did_not_stop(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    commands = BlockingCommands(block=True)
    publisher, fake = new_publisher(outbox, on_command=commands)
    publisher.start()
    try:
        wait_until(lambda: publisher.connected, TIMEOUT_S, "connected")
        fake.deliver(ping())
        wait_until(commands.started.is_set, TIMEOUT_S, "the command running")
        with caplog.at_level(logging.ERROR, logger="edge_agent.mqtt"):
            left = publisher.stop(timeout_s=0.5)
    finally:
        commands.release.set()
    assert left == ("mqtt-commands",)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "mqtt-commands" in errors[0].getMessage()


def test_commands_waiting_or_arriving_at_stop_are_refused_not_dropped(outbox: Outbox) -> None:
    """paho acknowledges a command as it arrives, so the broker never sends it again: one
    still queued when the agent stopped was dropped without a word (the centre waited for
    a reply that never came), and one arriving during the stop was told 'busy: 8 commands
    waiting'. Both now get a refusal saying the agent is stopping; none runs."""
    commands = BlockingCommands(block=True)
    publisher, fake = new_publisher(outbox, on_command=commands)
    publisher.start()
    stopper = threading.Thread(target=publisher.stop, kwargs={"timeout_s": TIMEOUT_S})
    try:
        wait_until(lambda: publisher.connected, TIMEOUT_S, "connected")
        fake.deliver(ping(f"{ROOT}/reply/first"))  # taken by the command thread, held
        wait_until(commands.started.is_set, TIMEOUT_S, "the first command running")
        fake.deliver(ping(f"{ROOT}/reply/queued"))
        stopper.start()
        port = publisher._commands
        assert port is not None
        wait_until(lambda: port.stopping, TIMEOUT_S, "the stop under way")
        fake.deliver(ping(f"{ROOT}/reply/late"))
        wait_until(lambda: fake.published_on(f"{ROOT}/reply/late"), TIMEOUT_S, "late refusal")
    finally:
        commands.release.set()
        if stopper.ident is not None:
            stopper.join(TIMEOUT_S)
        else:
            publisher.stop()
    assert fake.published_on(f"{ROOT}/reply/first")[0].json()["ok"] is True
    for name in ("queued", "late"):
        (refusal,) = fake.published_on(f"{ROOT}/reply/{name}")
        body = refusal.json()
        assert body["ok"] is False and "stopping" in body["error"], (name, body)
        validator("reply-error").validate(body)
    assert commands.threads == ["mqtt-commands"]  # only the first ran
    status = fake.published_on(TOPICS.status)[-1]
    assert status.json()["state"] == "stopped"


def test_stop_reports_nothing_when_every_thread_stopped(outbox: Outbox) -> None:
    publisher, fake = new_publisher(outbox, on_command=BlockingCommands(block=False))
    publisher.start()
    wait_until(lambda: publisher.connected, TIMEOUT_S, "connected")
    assert publisher.stop() == ()
    assert not publisher.connected and fake.published_on(TOPICS.status)[-1].json()["state"] == (
        "stopped"
    )


def test_a_drain_that_uses_the_whole_stop_budget_leaves_an_idle_command_thread_none_stuck(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that takes messages but never acknowledges them (or none at all): the drain
    waits for acks until its deadline. The idle command thread was told to stop only after
    that, with no time left, and every stop logged 'thread mqtt-commands did not stop'."""
    publisher, _ = new_publisher(
        outbox, on_command=BlockingCommands(block=False), fake=FakeClient(auto_ack=False)
    )
    outbox.enqueue_many(durable_messages())
    publisher.start()
    wait_until(lambda: publisher.connected, TIMEOUT_S, "connected")
    with caplog.at_level(logging.ERROR, logger="edge_agent.mqtt"):
        assert publisher.stop(timeout_s=0.5) == ()
    assert not [r for r in caplog.records if "did not stop" in r.getMessage()]
    assert outbox.stats().depth_rows == len(durable_messages())  # unacknowledged: all kept


def test_a_link_lost_while_the_drain_holds_for_a_move_is_still_a_lost_link(
    outbox: Outbox,
) -> None:
    # The failback holds new rows for up to its drain timeout before its own DISCONNECT:
    # a real drop in that window must be counted and said like any other.
    publisher, fake = new_publisher(outbox, fake=FakeClient(session_present=False))
    with running(publisher, fake):
        wait_until(lambda: publisher.stats().connected, TIMEOUT_S, "connected")
        with publisher._link.lock:
            publisher._link.hold = True
        fake.drop_connection()
        wait_until(lambda: not publisher.stats().connected, TIMEOUT_S, "the drop")
        assert publisher.stats().last_error == "disconnected: Unspecified error"


def test_a_broker_that_cannot_be_reached_is_said_once_in_words_not_as_paho_errors(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A real paho client dialling a loopback port nothing listens on: the agent's log said
    nothing of its own, only paho's 'Client is not connected. Socket: None)' as an ERROR at
    every attempt. Now: one warning naming the broker, paho's line at DEBUG."""
    with socket.socket() as probe:  # a free port, closed again: the connect is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = MqttSettings(
        host="127.0.0.1",
        port=port,
        client_id="unreachable-test",
        reconnect_min_delay_s=0.01,
        reconnect_max_delay_s=0.05,
    )
    publisher = Publisher(settings, outbox, TOPICS, birth_payload=agent_birth())
    with caplog.at_level(logging.DEBUG, logger="edge_agent.mqtt"):
        publisher.start()
        try:

            def attempts() -> int:  # the link's own count (paho's logger may be set
                # quieter by an earlier test; its lines are checked below by level only)
                return sum("reconnecting in" in r.getMessage() for r in caplog.records)

            wait_until(lambda: attempts() >= 3, TIMEOUT_S, "three connection attempts")
        finally:
            publisher.stop(timeout_s=0.5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    said = [m for m in warnings if m.startswith(f"cannot connect to 127.0.0.1:{port}")]
    assert len(said) == 1 and "kept in the outbox" in said[0], warnings
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert (
        publisher.stats().last_error
        == f"cannot connect to 127.0.0.1:{port} (unreachable, or TLS refused)"
    )
