import json
from collections.abc import Iterator
from math import inf
from pathlib import Path
from typing import get_args

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edge_agent.config import (
    AgentConfig,
    ConfigError,
    OpenCVSourceConfig,
    SimSourceConfig,
    load_config,
    parse_config,
)

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))

MINIMAL = {
    "site_id": "plaza",
    "device_id": "pi-1",
    "cameras": [{"id": "cam1", "source": {"kind": "sim"}}],
}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_config_is_valid(path: Path) -> None:
    config = load_config(path)
    assert config.cameras and config.topic_root.count("/") == 2


def test_examples_cover_the_city_site_kinds() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {
        "riverside-plaza",
        "five-way-junction",
        "bridge",
        "traditional-market",
        "mosque-forecourt",
        "police-post",
    } <= names


def test_defaults_fill_a_minimal_config() -> None:
    config = parse_config(MINIMAL)
    assert isinstance(config.cameras[0].source, SimSourceConfig)
    assert config.mqtt.protocol == "5"
    assert config.client_id == "plaza-pi-1"
    assert config.topic_root == "city/plaza/pi-1"


def test_protocol_given_as_a_number_is_accepted() -> None:
    config = parse_config({**MINIMAL, "mqtt": {"protocol": 5}})
    assert config.mqtt.protocol == "5"


def test_references_are_the_agent_s_unless_a_camera_has_its_own() -> None:
    config = parse_config(MINIMAL)
    assert config.references.directory == Path("/var/lib/edge-agent/references")
    assert config.references.learn_at_start and config.cameras[0].references is None
    own = {"directory": "/srv/refs", "learn_at_start": False}
    camera = {**MINIMAL["cameras"][0], "references": own}  # type: ignore[index]
    config = parse_config({**MINIMAL, "references": {"directory": None}, "cameras": [camera]})
    assert config.references.directory is None
    assert config.cameras[0].references is not None
    assert config.cameras[0].references.directory == Path("/srv/refs")
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.references\.dir: unknown key"):
        parse_config({**MINIMAL, "cameras": [{**camera, "references": {"dir": "/x"}}]})


def test_every_problem_is_reported_with_its_path() -> None:
    broken = {
        "site_id": "bad/site",
        "device_id": "pi-1",
        "cameras": [
            {"id": "cam1", "source": {"kind": "opencv"}, "fps": 0, "treshold": 3},
            {"id": "cam1", "source": {"kind": "webcam"}},
        ],
        "detector": {"score_threshold": 1.5},
        "mqtt": {"port": 70000, "protocol": "4"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(broken)
    problems = "\n".join(caught.value.problems)
    for expected in (
        "site_id:",
        "cameras[0].source.uri:",
        "cameras[0].fps:",
        "cameras[0].treshold: unknown key",
        "cameras[1].source:",
        "detector.score_threshold:",
        "mqtt.port:",
        "mqtt.protocol:",
    ):
        assert expected in problems, f"{expected!r} missing from:\n{problems}"


def test_duplicate_camera_ids_are_rejected() -> None:
    cameras = [{"id": "cam1", "source": {"kind": "sim"}}] * 2
    with pytest.raises(ConfigError, match="camera ids must be unique"):
        parse_config({**MINIMAL, "cameras": cameras})


def test_tls_cert_without_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match="cert_file and key_file"):
        parse_config({**MINIMAL, "mqtt": {"tls": {"cert_file": "/x.crt"}}})


def test_zone_polygon_must_be_normalised() -> None:
    camera = {
        "id": "c",
        "source": {"kind": "sim"},
        "zones": [{"name": "z", "polygon": [[0, 0], [2, 0], [0, 1]]}],
    }
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.zones\[0\]\.polygon"):
        parse_config({**MINIMAL, "cameras": [camera]})


@pytest.mark.parametrize(
    "polygon",
    [
        [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]],  # corners clicked across: was "no area"
        [[0.1, 0.1], [0.9, 0.9], [0.9, 0.5], [0.1, 0.9]],  # uneven lobes: was accepted
        [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5], [1.0, 0.2], [1.0, 0.3]],
    ],
)
def test_a_zone_or_mask_whose_edges_cross_is_refused_saying_so(polygon: list[list[float]]) -> None:
    """Corners listed out of order make a bow-tie: even-odd containment keeps only its
    lobes, so part of the area meant is silently outside the zone (or the mask)."""
    zone = {"id": "c", "source": {"kind": "sim"}, "zones": [{"name": "z", "polygon": polygon}]}
    with pytest.raises(ConfigError, match=r"edges .* cross"):
        parse_config({**MINIMAL, "cameras": [zone]})
    masked = {"id": "c", "source": {"kind": "sim"}, "privacy": {"masks": [polygon]}}
    with pytest.raises(ConfigError, match=r"mask 0: edges .* cross"):
        parse_config({**MINIMAL, "cameras": [masked]})


def test_a_concave_zone_is_still_a_zone() -> None:
    concave = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.5, 0.3], [0.1, 0.9]]
    zone = {"id": "c", "source": {"kind": "sim"}, "zones": [{"name": "z", "polygon": concave}]}
    assert parse_config({**MINIMAL, "cameras": [zone]}).cameras[0].zones[0].polygon


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("site_id: a\ncameras: [\n  - id: x\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(path)


DOUBLED_RULES = """\
site_id: plaza
device_id: pi-1
cameras:
  - id: cam1
    source: {kind: sim}
    zones:
      - {name: door, polygon: [[0, 0], [0.5, 0], [0.5, 1]]}
    rules:
      - {kind: intrusion, zone: door}
    rules:
      - {kind: loitering, zone: door}
"""


def test_a_key_given_twice_in_one_mapping_is_refused_with_both_lines(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys: a second `rules:` (pasted below the first)
    silently dropped every rule of the first and the file passed check-config."""
    path = tmp_path / "agent.yaml"
    path.write_text(DOUBLED_RULES)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    (problem,) = raised.value.problems
    assert "line 10" in problem and "'rules' given twice" in problem, problem
    assert "first at line 8" in problem, problem


def test_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    """A key from a `<<:` merge overridden by the mapping's own is YAML's merge, not a
    repeated key."""
    path = tmp_path / "agent.yaml"
    path.write_text(
        "site_id: plaza\ndevice_id: pi-1\ncameras:\n"
        "  - {id: cam1, source: &sim {kind: sim, scenario: street}}\n"
        "  - {id: cam2, source: {<<: *sim, scenario: person_walks_in}}\n"
    )
    config = load_config(path)
    sources = [camera.source for camera in config.cameras]
    assert [getattr(source, "scenario", None) for source in sources] == [
        "street",
        "person_walks_in",
    ]


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        ("topic_prefix", "ci\u0001ty", "U+0001"),
        ("topic_prefix", "city\ufffe", "U+FFFE"),
        ("client_id", "pi\u0085-1", "U+0085"),
        ("username", "dev\u007f", "U+007F"),
    ],
)
def test_mqtt_text_the_broker_would_refuse_is_a_config_error(
    key: str, value: str, code: str
) -> None:
    """The broker takes such a character in a topic, client id or user name as a malformed
    packet and drops the connection: the agent retried for ever, never connected, and
    said only that the broker could not be reached."""
    with pytest.raises(ConfigError) as raised:
        parse_config({**MINIMAL, "mqtt": {key: value}})
    (problem,) = raised.value.problems
    assert problem.startswith(f"mqtt.{key}:") and code in problem, problem


def test_a_session_expiry_mqtt_cannot_carry_is_a_config_error() -> None:
    """MQTT's Session Expiry Interval is a four-byte integer: 2**32 passed the config, then
    paho's network thread raised struct.error on every CONNECT and the agent never
    connected. 0xFFFFFFFF ('never expires') is the largest."""
    with pytest.raises(ConfigError, match=r"mqtt\.session_expiry_s: .*less than or equal"):
        parse_config({**MINIMAL, "mqtt": {"session_expiry_s": 2**32}})
    assert parse_config({**MINIMAL, "mqtt": {"session_expiry_s": 2**32 - 1}})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_a_list_at_top_level_is_explained() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        parse_config(["site_id"])


def test_opencv_source_keeps_its_uri() -> None:
    camera = {"id": "c", "source": {"kind": "opencv", "uri": "rtsp://cam/1"}}
    config = parse_config({**MINIMAL, "cameras": [camera]})
    source = config.cameras[0].source
    assert isinstance(source, OpenCVSourceConfig) and source.uri == "rtsp://cam/1"


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    """The config models an annotation holds (through unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models_in(arg)


def _durations(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every time-like field of the config: ``*_s`` and ``*_days`` (not ``*_per_s`` rates),
    and the outbox's ``ttl_s.{class}``."""
    for name, info in model.model_fields.items():
        nested = list(_models_in(info.annotation))
        for sub in nested:
            yield from _durations(sub, f"{prefix}{name}.")
        if nested:
            continue
        timed = name.endswith(("_s", "_days")) and not name.endswith("_per_s")
        if timed or prefix.endswith("ttl_s."):
            yield f"{prefix}{name}", info


def test_every_duration_of_the_config_has_an_upper_bound() -> None:
    """``stats_interval_s: 1e300`` (or ``.inf``) ran and never sent stats: each duration
    is bounded (an hour, a day, a week, 30 days as fits it) so a slip is a config error."""
    found = dict(_durations(AgentConfig))
    assert {"stats_interval_s", "outbox.ttl_s.alert", "updates.defer_max_s"} <= set(found)
    unbounded = sorted(
        path
        for path, info in found.items()
        if not any(isinstance(m, (annotated_types.Le, annotated_types.Lt)) for m in info.metadata)
    )
    assert unbounded == []


CAMERA = MINIMAL["cameras"][0]  # type: ignore[index]
ZONE = {"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}


@pytest.mark.parametrize(
    ("config", "path", "bound"),
    [
        ({"stats_interval_s": "{}"}, "stats_interval_s", 86400),
        ({"status": {"camera_silent_after_s": "{}"}}, "status.camera_silent_after_s", 86400),
        ({"outbox": {"ttl_s": {"alert": "{}"}}}, "outbox.ttl_s.alert", 2592000),
        ({"mqtt": {"reconnect_max_delay_s": "{}"}}, "mqtt.reconnect_max_delay_s", 3600),
        ({"tracker": {"max_missed_s": "{}"}}, "tracker.max_missed_s", 3600),
        (
            {"cameras": [{**CAMERA, "zones": [ZONE], "rules": [{"kind": "loitering",
                                              "zone": "z", "min_dwell_s": "{}"}]}]},
            "cameras[0].rules[0].min_dwell_s", 86400,
        ),
        (
            {"cameras": [{**CAMERA, "analyzers": [{"kind": "garbage",
                                                  "reference_tau_s": "{}"}]}]},
            "cameras[0].analyzers[0].reference_tau_s", 604800,
        ),
        ({"updates": {"trusted_keys": ["0" * 64], "defer_max_s": "{}"}},
         "updates.defer_max_s", 604800),
        ({"recording": {"max_age_days": "{}"}}, "recording.max_age_days", 366),
    ],
)  # fmt: skip
def test_a_duration_past_its_bound_is_a_config_error_naming_the_field(
    config: dict[str, object], path: str, bound: int
) -> None:
    def with_value(value: float) -> dict[str, object]:
        text = json.dumps(config).replace('"{}"', repr(value) if value != inf else "Infinity")
        return {**MINIMAL, **json.loads(text)}

    for slip in (1e300, inf, bound * 1.001):
        with pytest.raises(ConfigError) as raised:
            parse_config(with_value(slip))
        problems = [p for p in raised.value.problems if p.startswith(f"{path}:")]
        assert problems and f"less than or equal to {bound}" in problems[0], raised.value.problems
    parse_config(with_value(bound))  # the bound itself is allowed
