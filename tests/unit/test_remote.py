import errno
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest
from api_contract import asyncapi, validator

from edge_agent.analyzers import build_analyzers
from edge_agent.analyzers.config import (
    FloodAnalyzerConfig,
    ReferenceStoreConfig,
    TamperAnalyzerConfig,
)
from edge_agent.app import Agent
from edge_agent.remote import (
    COMMAND_MODELS,
    COMMANDS,
    MAX_ECHO_CHARS,
    MAX_ERROR_CHARS,
    MAX_JSON_DEPTH,
    MAX_PREVIEW_FPS,
    MAX_PREVIEW_S,
    CommandHandler,
    EmptyCommand,
    PreviewCommand,
    ReferenceCommand,
    Reply,
    SnapshotCommand,
    UpdateBeginCommand,
    UpdateCommitCommand,
    UpdateFetchCommand,
    nests_deeper_than,
    shown,
)


class FakeAgent:
    """cam1 has a tamper and a flood analyzer (real ones), cam2 none; reference requests
    go through the real ``Agent.set_references``."""

    set_references = Agent.set_references
    _worker = Agent._worker

    def __init__(self, references: Path | None = None) -> None:
        self.previews: list[tuple[str, bool, float, float]] = []
        analyzers = build_analyzers(
            [TamperAnalyzerConfig(), FloodAnalyzerConfig(region={"box": (0.0, 0.5, 1.0, 1.0)})],
            camera_id="cam1",
            references=ReferenceStoreConfig(directory=references),
        )
        self.workers = [
            SimpleNamespace(
                config=SimpleNamespace(id="cam1"), pipeline=SimpleNamespace(analyzers=analyzers)
            ),
            SimpleNamespace(
                config=SimpleNamespace(id="cam2"), pipeline=SimpleNamespace(analyzers=())
            ),
        ]

    def pending(self) -> list[str]:
        return [a.name for a in self.workers[0].pipeline.analyzers if a.reference_pending]

    def status_report(self) -> Mapping[str, object]:
        return {"boot": "b1", "outbox_depth": 3}

    def snapshot_jpeg(self, camera_id: str, width_px: int) -> bytes | None:
        return b"\xff\xd8jpeg" if camera_id == "cam1" else None

    def set_preview(
        self,
        camera_id: str,
        *,
        on: bool,
        seconds: float,
        fps: float,
        width_px: int,
        budget_bps: int | None = None,
    ) -> int:
        self.previews.append((camera_id, on, seconds, fps))
        return 64_000 if budget_bps is None else min(budget_bps, 64_000)

    def camera_ids(self) -> tuple[str, ...]:
        return ("cam1", "cam2")


def handle(
    name: str, body: object = None, **kwargs: bool
) -> tuple[Reply | None, FakeAgent, CommandHandler]:
    agent = FakeAgent()
    handler = CommandHandler(agent, clock=lambda: 100.0)
    payload = b"" if body is None else json.dumps(body).encode()
    return handler.handle(name, payload, **kwargs), agent, handler


def body(reply: Reply | None) -> dict[str, object]:
    assert reply is not None and reply.content_type == "application/json"
    parsed = json.loads(reply.payload)
    assert isinstance(parsed, dict)
    return parsed


def test_ping_and_status() -> None:
    assert body(handle("ping")[0]) == {"ok": True, "ts": 100.0}
    assert body(handle("status", {})[0]) == {"ok": True, "boot": "b1", "outbox_depth": 3}


def test_snapshot_returns_a_jpeg() -> None:
    reply, _, handler = handle("snapshot", {"camera": "cam1"})
    assert (
        reply is not None
        and reply.content_type == "image/jpeg"
        and reply.payload.startswith(b"\xff\xd8")
    )
    assert handler.handled == 1


def test_snapshot_of_a_camera_without_frames_is_explained() -> None:
    assert "has not delivered a frame" in str(
        body(handle("snapshot", {"camera": "cam2"})[0])["error"]
    )


def test_preview_on_is_bounded_and_acknowledged() -> None:
    reply, agent, _ = handle("preview", {"camera": "cam1", "seconds": 30, "fps": 2})
    assert body(reply) == {
        "ok": True,
        "camera": "cam1",
        "preview": "on",
        "until": 130.0,
        "budget_bps": 64_000,
    }
    assert agent.previews == [("cam1", True, 30.0, 2.0)]
    # A lower budget may be asked for; a higher one gets the camera's own.
    reply, _, _ = handle("preview", {"camera": "cam1", "budget_bps": 16_000})
    assert body(reply)["budget_bps"] == 16_000
    reply, _, _ = handle("preview", {"camera": "cam1", "budget_bps": 1_000_000})
    assert body(reply)["budget_bps"] == 64_000


def test_reference_asks_the_camera_s_analyzers_and_says_which(tmp_path: Path) -> None:
    agent = FakeAgent(tmp_path / "refs")
    handler = CommandHandler(agent, clock=lambda: 100.0)
    reply = handler.handle("reference", b'{"camera": "cam1"}')
    assert body(reply) == {
        "ok": True,
        "camera": "cam1",
        "mode": "learn",
        "analyzers": ["tamper", "flood"],
    }
    assert agent.pending() == ["tamper", "flood"]  # queued for the analysis thread
    assert (tmp_path / "refs" / "cam1").is_dir()  # checked writable at once
    reply = handler.handle(
        "reference", b'{"camera": "cam1", "mode": "frame", "analyzers": ["flood"]}'
    )
    assert body(reply) == {"ok": True, "camera": "cam1", "mode": "frame", "analyzers": ["flood"]}
    assert handler.handled == 2


def test_a_reference_that_cannot_be_set_is_refused_and_nothing_is_asked(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases = [
        (None, {"camera": "cam9"}, "unknown camera 'cam9'"),
        (
            None,
            {"camera": "cam1", "analyzers": ["flod"]},
            "no analyzer flod; it has: tamper, flood",
        ),
        (None, {"camera": "cam2"}, "no analyzer that holds a reference"),
        # An empty list asked nothing and was told "no analyzer that holds a reference".
        (None, {"camera": "cam1", "analyzers": []}, "analyzers: the list is empty, so no"),
        (None, {"camera": "cam1", "mode": "now"}, "mode"),
        (None, {"camera": "cam1", "analyzer": ["flood"]}, "analyzer: unknown key"),
        (blocker / "refs", {"camera": "cam1"}, "cannot create"),
    ]
    for directory, payload, expected in cases:
        agent = FakeAgent(directory)
        handler = CommandHandler(agent)
        parsed = body(handler.handle("reference", json.dumps(payload).encode()))
        assert parsed["ok"] is False and expected in str(parsed["error"]), (payload, parsed)
        assert agent.pending() == [] and handler.refused == 1, payload


def test_bad_commands_change_nothing_and_say_why() -> None:
    cases = [
        ("reboot", {}, "unknown command 'reboot'"),
        ("preview", {"camera": "cam9"}, "unknown camera 'cam9'"),
        ("preview", {"camera": "cam1", "seconds": 100000}, "seconds"),
        ("preview", {"camera": "cam1", "fsp": 2}, "fsp: unknown key"),
        ("snapshot", ["cam1"], "JSON object"),
        ("ping", {"x": 1}, "x: unknown key"),
    ]
    for name, payload, expected in cases:
        reply, agent, handler = handle(name, payload)
        parsed = body(reply)
        assert parsed["ok"] is False and expected in str(parsed["error"]), (name, parsed)
        assert agent.previews == [] and handler.refused == 1


def test_a_payload_that_is_not_json_is_refused() -> None:
    handler = CommandHandler(FakeAgent())
    parsed = body(handler.handle("ping", b"\xff{not json"))
    assert parsed["ok"] is False and "not JSON" in str(parsed["error"])


@pytest.mark.parametrize(
    ("name", "payload", "key"),
    [
        ("preview", b'{"camera":"cam1","on":true,"on":false}', "on"),
        ("snapshot", b'{"camera":"cam9","camera":"cam1"}', "camera"),
        ("preview", b'{"camera":"cam1","fps":1,"fps":2}', "fps"),
    ],
)
def test_a_key_given_twice_is_refused_not_guessed(name: str, payload: bytes, key: str) -> None:
    """Python's JSON parser keeps the last of two equal keys; a centre's schema validator
    or log may read the first. {"on":true,"on":false} switched the preview off and
    {"camera":"cam9","camera":"cam1"} snapshotted cam1: the device must not pick one."""
    agent = FakeAgent()
    handler = CommandHandler(agent)
    parsed = body(handler.handle(name, payload))
    assert parsed["ok"] is False, parsed
    assert f"key {key!r} given twice" in str(parsed["error"]), parsed
    assert agent.previews == [] and handler.refused == 1


def test_a_key_that_is_no_text_is_named_as_such() -> None:
    """A lone UTF-16 surrogate as a key was '(top level): Input should be a valid string,
    unable to parse raw data as a unicode string'."""
    parsed = body(CommandHandler(FakeAgent()).handle("ping", b'{"\\ud800x":1}'))
    assert parsed["ok"] is False and "not valid Unicode" in str(parsed["error"]), parsed


def test_retained_commands_are_ignored() -> None:
    reply, agent, handler = handle("preview", {"camera": "cam1"}, retained=True)
    assert reply is None and agent.previews == [] and handler.refused == 1
    reply, agent, handler = handle("reference", {"camera": "cam1"}, retained=True)
    assert reply is None and agent.pending() == [] and handler.refused == 1


def test_asyncapi_command_payloads_are_the_device_s_models() -> None:
    schemas = asyncapi()["components"]["schemas"]
    for name, model in (
        ("emptyCommand", EmptyCommand),
        ("snapshotCommand", SnapshotCommand),
        ("previewCommand", PreviewCommand),
        ("referenceCommand", ReferenceCommand),
        ("updateBeginCommand", UpdateBeginCommand),
        ("updateCommitCommand", UpdateCommitCommand),
        ("updateFetchCommand", UpdateFetchCommand),
    ):
        documented = schemas[name]
        actual = model.model_json_schema()
        assert documented["additionalProperties"] is False
        assert set(documented["properties"]) == set(actual.get("properties", {})), name
        assert set(documented.get("required", [])) == set(actual.get("required", [])), name
        for key, spec in documented["properties"].items():
            real = actual["properties"][key]
            for keyword in ("minimum", "maximum", "exclusiveMinimum", "default", "pattern"):
                assert spec.get(keyword) == real.get(keyword), (name, key, keyword)
    assert schemas["previewCommand"]["properties"]["seconds"]["maximum"] == MAX_PREVIEW_S
    assert schemas["previewCommand"]["properties"]["fps"]["maximum"] == MAX_PREVIEW_FPS


def test_a_reply_says_whether_the_command_was_refused() -> None:
    assert Reply.json({"ok": True}).ok and not Reply.error("no").ok
    assert Reply(b"\xff\xd8", "image/jpeg").ok

    class Reporting(FakeAgent):
        def status_report(self) -> Mapping[str, object]:
            return {"last_upload": {"ok": False}}  # a nested "ok":false is not a refusal

    handler = CommandHandler(Reporting(), clock=lambda: 100.0)
    reply = handler.handle("status", b"")
    assert reply is not None and reply.ok and b'"ok":false' in reply.payload
    assert (handler.handled, handler.refused) == (1, 0)


def test_a_deeply_nested_payload_is_a_bad_request_not_an_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = CommandHandler(FakeAgent())
    deep = b"[" * 100_000 + b"]" * 100_000  # the independent test's payload
    within_size = b'{"camera":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    just_too_deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    with caplog.at_level(logging.DEBUG):
        for payload in (deep, within_size, just_too_deep):
            parsed = body(handler.handle("ping", payload))
            assert parsed["ok"] is False and str(parsed["error"]).startswith("bad request"), parsed
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert handler.refused == 3
    # Brackets inside strings are text, and nesting up to the limit is parsed as usual.
    brackets = json.dumps({"camera": "[" * 100}).encode()
    assert "bad request" not in str(body(handler.handle("snapshot", brackets))["error"])
    assert not nests_deeper_than("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, MAX_JSON_DEPTH)
    assert nests_deeper_than('{"a":' * 40 + "1" + "}" * 40, MAX_JSON_DEPTH)
    assert not nests_deeper_than('"\\"[[[[' + "[" * 40 + '"', MAX_JSON_DEPTH)


def test_echoed_request_text_is_cut_short() -> None:
    handler = CommandHandler(FakeAgent())
    long_name = "x" * 60_000
    reply = handler.handle(long_name, b"{}")
    # The echo is cut; the rest of the reply is the list of known commands.
    known = len(", ".join(COMMANDS))
    assert reply is not None and len(reply.payload) < known + 200
    error = str(body(reply)["error"])
    assert error.startswith(f"unknown command '{'x' * MAX_ECHO_CHARS}… (60000 characters)'")
    long_key = "k" * 10_000
    error = str(body(handler.handle("ping", json.dumps({long_key: 1}).encode()))["error"])
    assert (
        error
        == f"{'k' * MAX_ECHO_CHARS}… (10000 characters): unknown key (misspelt, or not valid here)"
    )
    error = str(
        body(handler.handle("preview", json.dumps({"camera": "c" * 20_000}).encode()))["error"]
    )
    assert "c" * 65 not in error and len(error) <= MAX_ERROR_CHARS
    huge = json.loads(Reply.error("e" * 5_000_000).payload)
    assert len(huge["error"]) <= MAX_ERROR_CHARS + 30
    validator("reply-error").validate(huge)  # its maxLength holds
    assert shown("short") == "short"


# -- every command against the same hostile values ------------------------------------

VALID_COMMANDS: dict[str, dict[str, object]] = {
    "ping": {},
    "status": {},
    "reload": {},
    "announce": {},
    "snapshot": {"camera": "cam1", "width_px": 320},
    "preview": {
        "camera": "cam1",
        "on": True,
        "seconds": 5,
        "fps": 1.5,
        "width_px": 320,
        "budget_bps": 16_000,
    },
    "reference": {"camera": "cam1", "mode": "frame", "analyzers": ["flood"]},
    "clips": {"camera": "cam1", "since": 0, "until": 2e9},
    "clip_hold": {"id": "cam1-1-beef"},
    "clip_release": {"id": "cam1-1-beef"},
    "clip_fetch": {"id": "cam1-1-beef", "offset": 0, "length": 100},
    "update_begin": {"id": "r1", "size": 10, "sha256": "0" * 64},
    "update_chunk": {"id": "r1", "offset": 0, "data": "aGVsbG8=", "sha256": "0" * 64},
    "update_commit": {"id": "r1", "kind": "model"},
    "update_fetch": {"id": "r1", "url": "https://example.com/r1", "size": 10, "sha256": "0" * 64},
}

# JSON text -> its JSON type ("nonfinite": NaN and Infinity, which Python's parser reads
# but no JSON type holds).
HOSTILE_VALUES: list[tuple[str, str]] = [
    ("null", "null"),
    ("true", "boolean"),
    ("false", "boolean"),
    ("-1", "integer"),
    (str(10**30), "integer"),
    ("1e308", "number"),
    ("-1e308", "number"),
    ("NaN", "nonfinite"),
    ("Infinity", "nonfinite"),
    ("-Infinity", "nonfinite"),
    ('"1"', "string"),
    ('"true"', "string"),
    (json.dumps("x" * 30_000), "string"),
    (json.dumps("cam1\u0000"), "string"),
    (json.dumps("../../etc/passwd"), "string"),
    (json.dumps("cam1/#"), "string"),
    (json.dumps("\u202ecam1"), "string"),
    ('["cam1"]', "array"),
    ('{"camera": "cam1"}', "object"),
    ("[[[[[[[[1]]]]]]]]", "array"),
]


class Recorder:
    """The clip store and the updater as the handler sees them: every call recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def _called(self, name: str, *args: object) -> dict[str, object]:
        self.calls.append((name, args))
        return {"ok": True}

    def list(self, *args: object) -> dict[str, object]:
        return self._called("list", *args)

    def hold(self, *args: object) -> dict[str, object]:
        return self._called("hold", *args)

    def fetch(self, *args: object) -> object:
        self._called("fetch", *args)
        if len(args) == 3:  # a clip chunk
            return SimpleNamespace(data=b"mp4", properties=lambda: ())
        return {"ok": True}

    def begin(self, *args: object) -> dict[str, object]:
        return self._called("begin", *args)

    def chunk(self, *args: object) -> dict[str, object]:
        return self._called("chunk", *args)

    def commit(self, *args: object, **kwargs: object) -> dict[str, object]:
        return self._called("commit", *args)


class EverythingAgent(FakeAgent):
    def __init__(self, references: Path) -> None:
        super().__init__(references)
        self.reloads = 0
        self.announces = 0

    def reload_config(self) -> Mapping[str, object]:
        self.reloads += 1
        return {"ok": True, "changed": []}

    def announce(self) -> Mapping[str, object]:
        self.announces += 1
        return {"ok": True, "announced": ["status", "stats"]}


def allowed_json_types(schema: Mapping[str, object]) -> set[str]:
    """The JSON types a property's schema lets through (an integer is a number too)."""
    types: set[str] = set()
    options = schema.get("anyOf", [schema])
    assert isinstance(options, list)
    for option in options:
        kind = option.get("type", "string" if "enum" in option else None)
        assert kind is not None, schema
        types.add(kind)
    if "number" in types:
        types.add("integer")
    return types


def strict_json(payload: bytes) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"the reply holds {constant}, which is not JSON")

    return json.loads(payload, parse_constant=refuse)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_refuses_hostile_values_and_changes_nothing(
    name: str, tmp_path: Path
) -> None:
    """Each field of each command set, in turn, to values of the wrong type, NaN and
    Infinity, huge and odd strings, lists, objects; and payloads that are no command at
    all. A value whose type the command's schema does not allow is refused naming the
    field; every reply is strict JSON with a short error; a refusal changes nothing."""
    assert set(VALID_COMMANDS) == set(COMMANDS)
    agent = EverythingAgent(tmp_path / "refs")
    recorder = Recorder()
    handler = CommandHandler(agent, clips=recorder, updates=recorder)  # type: ignore[arg-type]

    def state() -> tuple[object, ...]:
        return (
            len(agent.previews),
            tuple(agent.pending()),
            len(recorder.calls),
            agent.reloads,
            agent.announces,
        )

    valid = VALID_COMMANDS[name]
    baseline = CommandHandler(
        EverythingAgent(tmp_path / "refs"), clips=Recorder(), updates=Recorder()
    )  # type: ignore[arg-type]
    reply = baseline.handle(name, json.dumps(valid).encode())
    assert reply is not None and reply.ok, (name, reply)  # the hostile values are the change
    properties = COMMAND_MODELS[name].model_json_schema().get("properties", {})
    assert set(properties) == set(valid)
    cases: list[tuple[str, bytes, str | None]] = []
    for field in valid:
        allowed = allowed_json_types(properties[field])
        for text, kind in HOSTILE_VALUES:
            payload = json.dumps({**valid, field: "@@"}).replace('"@@"', text).encode()
            cases.append((f"{field}={text[:20]}", payload, None if kind in allowed else field))
    for raw in (
        b"\xff\xfe\xfd",
        b"\x00" * 8,
        b"[]",
        b"null",
        b'"camera"',
        b"{",
        b"x" * 1_048_576,
        json.dumps({**valid, "extra": 1}).encode(),
        json.dumps({**valid, "cam1/#": 1}).encode(),
    ):
        cases.append((f"raw {raw[:12]!r}", raw, ""))
    for label, payload, must_refuse in cases:
        before = state()
        reply = handler.handle(name, payload)
        assert reply is not None, label
        if reply.content_type != "application/json":
            assert reply.ok and must_refuse is None, label  # a snapshot or a clip chunk
            continue
        answer = strict_json(reply.payload)
        assert isinstance(answer, dict), label
        if must_refuse is not None:
            assert answer["ok"] is False, (label, answer)
            assert must_refuse in str(answer["error"]), (label, answer)
        if answer.get("ok") is False:
            assert len(str(answer["error"])) <= MAX_ERROR_CHARS, label
            assert state() == before, label
    assert body(handler.handle("ping", b"{}"))["ok"] is True


def test_a_reload_refused_for_many_reasons_is_a_bounded_error_reply() -> None:
    """A config file with thousands of problems: the refusal quoted every one of them, a
    reply far over the documented 1,100 characters (the whole list is in the device's log
    and in ``check-config``)."""

    class Refusing(EverythingAgent):
        def reload_config(self) -> Mapping[str, object]:
            reasons = "; ".join(f"cameras[0].zones[{i}].name: bad" for i in range(5_000))
            return {"ok": False, "error": f"config /etc/x.yaml refused: {reasons}"}

    handler = CommandHandler(Refusing(None))  # type: ignore[arg-type]
    reply = handler.handle("reload", b"{}")
    answer = body(reply)
    assert answer["ok"] is False and str(answer["error"]).startswith("config /etc/x.yaml refused")
    assert len(str(answer["error"])) <= MAX_ERROR_CHARS + 30
    validator("reply-error").validate(answer)
    assert handler.refused == 1


@pytest.mark.parametrize("name", ["update_begin", "update_chunk", "clip_fetch"])
def test_a_full_disk_behind_a_command_is_said_not_an_internal_error(
    name: str, tmp_path: Path
) -> None:
    """The update staging appends a chunk, the clip store reads one: an OSError escaped the
    handler and the command thread answered only "internal error"."""

    class DiskFull(Recorder):
        def _called(self, name: str, *args: object) -> dict[str, object]:
            raise OSError(errno.ENOSPC, "No space left on device")

    handler = CommandHandler(EverythingAgent(tmp_path), clips=DiskFull(), updates=DiskFull())  # type: ignore[arg-type]
    answer = body(handler.handle(name, json.dumps(VALID_COMMANDS[name]).encode()))
    assert answer == {"ok": False, "error": f"{name} failed on the device: No space left on device"}
    assert body(handler.handle("ping", b"{}"))["ok"] is True


def test_a_report_holding_nan_or_infinity_is_still_strict_json() -> None:
    """Python writes NaN and Infinity, which no JSON parser of the centre need accept."""

    class Odd(FakeAgent):
        def status_report(self) -> Mapping[str, object]:
            return {"cameras": {"cam1": {"fps": float("nan"), "ms": [1.5, float("inf")]}}}

    reply = CommandHandler(Odd()).handle("status", b"{}")
    assert reply is not None
    assert strict_json(reply.payload) == {
        "ok": True,
        "cameras": {"cam1": {"fps": None, "ms": [1.5, None]}},
    }
