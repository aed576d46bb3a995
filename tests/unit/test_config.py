from pathlib import Path

import pytest

from edge_agent.config import (
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
