"""``check_config_file``: every problem in one run, in words, never an exception."""

from __future__ import annotations

import copy
import os
import random
import sys
from pathlib import Path

import pytest
import yaml

from edge_agent.config import MAX_CONFIG_BYTES
from edge_agent.config_check import ConfigCheck, check_config_data, check_config_file

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def good(tmp_path: Path, **overrides: object) -> dict[str, object]:
    config: dict[str, object] = {
        "site_id": "plaza",
        "device_id": "pi-1",
        "cameras": [{"id": "cam1", "source": {"kind": "sim", "scenario": "street"}}],
        "outbox": {"path": str(tmp_path / "outbox.db")},
    }
    config.update(overrides)
    return config


def check_text(tmp_path: Path, text: str | bytes, *, offline: bool = False) -> ConfigCheck:
    path = tmp_path / "agent.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return check_config_file(path, offline=offline)


def check(tmp_path: Path, config: dict[str, object], *, offline: bool = False) -> ConfigCheck:
    return check_text(tmp_path, yaml.safe_dump(config), offline=offline)


def the_problem(result: ConfigCheck) -> str:
    assert result.config is None and len(result.problems) == 1, result.problems
    return result.problems[0]


def test_a_good_config_is_ok(tmp_path: Path) -> None:
    result = check(tmp_path, good(tmp_path))
    assert result.ok and result.problems == () and result.config is not None


# ---------------------------------------------------------------- pathological files


def test_an_impossible_date_is_named_with_its_line(tmp_path: Path) -> None:
    problem = the_problem(check_text(tmp_path, "device_id: pi-1\nsite_id: 2024-02-30\n"))
    assert "line 2" in problem and "2024-02-30" in problem and "quote it" in problem


def test_a_real_date_where_text_is_expected_says_to_quote_it(tmp_path: Path) -> None:
    text = yaml.safe_dump(good(tmp_path)).replace("site_id: plaza", "site_id: 2024-02-28")
    result = check_text(tmp_path, text)
    assert "site_id: YAML reads 2024-02-28 as a date: quote it ('...') to make it text" in (
        result.problems
    )


def test_a_5000_digit_integer_is_refused_in_words(tmp_path: Path) -> None:
    problem = the_problem(
        check_text(tmp_path, "site_id: plaza\nmqtt: {port: " + "9" * 5000 + "}\n")
    )
    assert "line 2" in problem and "5000 characters" in problem and "9" * 100 not in problem


@pytest.mark.parametrize("depth", [65, 1001, 100_000])
def test_deep_nesting_is_refused_in_words(tmp_path: Path, depth: int) -> None:
    problem = the_problem(check_text(tmp_path, "site_id: " + "[" * depth + "]" * depth + "\n"))
    assert "line 1" in problem and "nested deeper than 64 levels" in problem


def test_deep_block_nesting_is_refused_too(tmp_path: Path) -> None:
    text = "".join(f"{'  ' * level}k{level}:\n" for level in range(2000))
    assert "nested deeper than 64 levels" in the_problem(check_text(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("  \n\n", "the file is empty"),
        ("# only a comment\n", "holds no settings"),
        ("- a\n- b\n", "must hold a mapping"),
        ("just words\n", "must hold a mapping"),
        (b"\x00\x01\x02ELF\xff", "binary"),
        (b"site_id: caf\xe9\n", "not UTF-8"),
        ("site_id: [unclosed\n", "not valid YAML at line 2"),
    ],
    ids=["empty", "blank", "comment", "list", "scalar", "binary", "latin1", "syntax"],
)
def test_files_that_are_not_a_config_say_why(
    tmp_path: Path, text: str | bytes, expected: str
) -> None:
    assert expected in the_problem(check_text(tmp_path, text))


def test_a_missing_file_says_why(tmp_path: Path) -> None:
    assert "cannot read the file" in the_problem(check_config_file(tmp_path / "nope.yaml"))


def test_a_path_that_is_no_config_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    """``check-config /dev/zero`` (or ``run --config`` a FIFO) read until memory ran out,
    or waited for ever; a huge file was read whole before anything was said."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"# " + b"x" * (MAX_CONFIG_BYTES + 10) + b"\n")
    for path, expected in (
        (tmp_path, "it is a directory"),
        (huge, "larger than 4 MiB"),
        (fifo, "not a regular file"),  # these two never returned
        (Path("/dev/zero"), "not a regular file"),
    ):
        assert expected in the_problem(check_config_file(path)), path


# ---------------------------------------------------------------- every problem at once


def test_schema_problems_do_not_hide_the_rest(tmp_path: Path) -> None:
    config = good(
        tmp_path,
        site_id="has space",
        cameras=[
            {"id": "broken", "fps": -1, "source": {"kind": "sim"}},
            {"id": "file", "source": {"kind": "opencv", "uri": str(tmp_path / "no.mp4")}},
            {"id": "scene", "source": {"kind": "sim", "scenario": "stret"}},
        ],
        detector={"model": "no_such_model"},
        mqtt={"tls": {"ca_file": str(tmp_path / "ca.crt")}},
    )
    problems = check(tmp_path, config).problems
    expected = [
        "site_id:",
        "cameras[0].fps:",
        "detector.model: unknown model 'no_such_model'",
        "mqtt.tls: TLS CA file",
        "cameras[1].source.uri: video file not found",
        "cameras[2].source.scenario: unknown simulator scene 'stret'",
    ]
    assert len(problems) == len(expected), problems
    for prefix, problem in zip(expected, problems, strict=True):
        assert problem.startswith(prefix), problems


def test_label_typos_are_found_beside_schema_problems(tmp_path: Path) -> None:
    config = good(tmp_path, device_id="", detector={"labels": ["peron", "car"]})
    problems = check(tmp_path, config).problems
    assert problems[0].startswith("device_id:")
    assert "detector.labels: 'peron' is not a label of model ssd_mobilenet_v1" in problems


# ---------------------------------------------------------------- model and scenes


def test_a_model_file_that_is_not_there_is_a_problem(tmp_path: Path) -> None:
    detector = {"model": str(tmp_path / "own.tflite"), "layout": "yolox"}
    (problem,) = check(tmp_path, good(tmp_path, detector=detector)).problems
    assert problem.startswith("detector:") and "own.tflite" in problem


def test_a_camera_model_must_be_a_detector_of_the_manifest(tmp_path: Path) -> None:
    cameras = [
        {"id": "a", "source": {"kind": "sim", "scenario": "street"}, "model": "yolox_nano"},
        {"id": "b", "source": {"kind": "sim", "scenario": "street"}, "model": "yolox_nanp"},
        {
            "id": "c",
            "source": {"kind": "sim", "scenario": "street"},
            "model": "blazeface_full_range",
        },
    ]
    problems = check(tmp_path, good(tmp_path, cameras=cameras)).problems
    assert len(problems) == 2, problems
    assert problems[0].startswith("cameras[1].model:") and "yolox_nanp" in problems[0]
    assert problems[1] == "cameras[2].model: blazeface_full_range is a face model, not a detector"


def test_an_unknown_scene_lists_the_known_ones(tmp_path: Path) -> None:
    cameras = [{"id": "c", "source": {"kind": "sim", "scenario": "nowhere"}}]
    (problem,) = check(tmp_path, good(tmp_path, cameras=cameras)).problems
    assert "unknown simulator scene 'nowhere'" in problem and "street" in problem


def test_without_the_simulator_only_sim_cameras_are_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "hw_sim.scenes", None)  # import now fails
    webcam = {"id": "usb", "source": {"kind": "opencv", "uri": "/dev/video0"}}
    assert check(tmp_path, good(tmp_path, cameras=[webcam])).ok
    sim = {"id": "sim", "source": {"kind": "sim"}}
    (problem,) = check(tmp_path, good(tmp_path, cameras=[webcam, sim])).problems
    assert problem.startswith("cameras[1].source: kind 'sim' needs the simulator")


def test_a_pyav_camera_needs_pyav_and_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = {"id": "ip", "source": {"kind": "pyav", "uri": "rtsp://10.0.0.21/stream2"}}
    missing = {"id": "file", "source": {"kind": "pyav", "uri": str(tmp_path / "no.mp4")}}
    (problem,) = check(tmp_path, good(tmp_path, cameras=[stream, missing])).problems
    assert problem.startswith("cameras[1].source.uri: video file not found")
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV not installed
    (problem,) = check(tmp_path, good(tmp_path, cameras=[stream])).problems
    assert problem.startswith("cameras[0].source: kind 'pyav' needs PyAV")


# ---------------------------------------------------------------- offline


def test_offline_leaves_out_what_only_the_device_has(tmp_path: Path) -> None:
    (tmp_path / "outbox.db").mkdir()
    config = good(
        tmp_path,
        mqtt={"tls": {"ca_file": "/etc/edge-agent/ca.crt"}, "username": "u", "password": "p"},
    )
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    on_device = check_config_file(path).problems
    assert [p.split(":")[0] for p in on_device] == ["mqtt.tls", "mqtt.password", "outbox.path"]
    assert check_config_file(path, offline=True).ok


def test_offline_still_checks_everything_else(tmp_path: Path) -> None:
    config = good(tmp_path, detector={"model": "nope"}, mqtt={"tls": {"cert_file": "/x.crt"}})
    problems = check(tmp_path, config, offline=True).problems
    assert [p.split(":")[0] for p in problems] == ["mqtt.tls", "detector.model"], problems


@pytest.mark.parametrize("model", ["ssd_mobilenet_v1", "nope"])
def test_check_config_says_everything_else_is_fine_only_when_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str
) -> None:
    """On a laptop only the device's own files fail: check-config says so on a last line
    and points at --offline. Not when something else is wrong too (an unknown model)."""
    from edge_agent.cli import main

    config = good(tmp_path, detector={"model": model}, mqtt={"tls": {"ca_file": "/x/ca.crt"}})
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check-config", str(path)]) == 2
    said = capsys.readouterr().err
    assert "TLS CA file /x/ca.crt does not exist" in said
    assert ("everything else is fine" in said) == (model != "nope"), said


def test_every_example_passes_offline() -> None:
    for path in EXAMPLES:
        result = check_config_file(path, offline=True)
        assert result.ok, (path, result.problems)


# ---------------------------------------------------------------- fuzz

HUGE = "9" * 5000
DEEP = "[" * 3000 + "]" * 3000
SHALLOW_DEEP = "[" * 40 + "]" * 40  # parses; the schema must refuse it
WRONG: list[object] = [
    "__HUGE__", "__DEEP__", "__SHALLOW__", "__DATE__", "__BADDATE__",
    None, True, -1, 0, 1e308, "", "x" * 300, "a/b#", [], {}, [1, "two"], {"k": [None]},
    "/tmp/" + "x" * 5000, "/tmp/nul\x00byte", "/etc/passwd", "/tmp/x.tflite",
]  # fmt: skip


def _containers(node: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = []
    if isinstance(node, dict):
        found.append(path)
        for key, value in node.items():
            found.extend(_containers(value, (*path, key)))
    elif isinstance(node, list):
        found.append(path)
        for index, value in enumerate(node):
            found.extend(_containers(value, (*path, index)))
    return found


def _at(node: object, path: tuple[object, ...]) -> object:
    for part in path:
        node = node[part]  # type: ignore[index]
    return node


def mutate(config: dict[str, object], rng: random.Random) -> str:
    """A config with one to three things wrong with it, as YAML text."""
    config = copy.deepcopy(config)
    for _ in range(rng.randint(1, 3)):
        container = _at(config, rng.choice(_containers(config)))
        if isinstance(container, dict) and container:
            key = rng.choice(list(container))
            if rng.random() < 0.3:
                del container[key]
            else:
                container[key] = copy.deepcopy(rng.choice(WRONG))
        elif isinstance(container, list) and container:
            index = rng.randrange(len(container))
            action = rng.random()
            if action < 0.3:
                container.append(copy.deepcopy(container[index]))  # a duplicate id or name
            elif action < 0.5:
                del container[index]
            else:
                container[index] = copy.deepcopy(rng.choice(WRONG))
    text = yaml.safe_dump(config, sort_keys=False)
    for name, value in (
        ("__HUGE__", HUGE),
        ("__DEEP__", DEEP),
        ("__SHALLOW__", SHALLOW_DEEP),
        ("__DATE__", "2024-02-28"),
        ("__BADDATE__", "2024-02-30"),
    ):
        text = text.replace(name, value)
    return text


def test_300_mutated_examples_give_ok_or_reasons_never_an_exception(tmp_path: Path) -> None:
    rng = random.Random(20261206)
    examples = [yaml.safe_load(path.read_text()) for path in EXAMPLES]
    path = tmp_path / "mutant.yaml"
    refused = 0
    for round_ in range(300):
        text = mutate(rng.choice(examples), rng)
        path.write_text(text)
        result = check_config_file(path, offline=round_ % 2 == 0)
        assert isinstance(result, ConfigCheck)
        assert all(isinstance(p, str) and p for p in result.problems), (text, result)
        assert result.ok or result.problems, text
        refused += not result.ok
    assert refused > 200  # the mutations do break configs


@pytest.mark.parametrize("bad", ["/tmp/" + "x" * 5000, "/tmp/nul\x00byte"], ids=["long", "nul"])
def test_paths_the_file_system_cannot_take_are_problems(tmp_path: Path, bad: str) -> None:
    config = good(
        tmp_path,
        cameras=[{"id": "c", "source": {"kind": "opencv", "uri": bad}}],
        detector={"model": bad + ".tflite", "layout": "yolox"},
        mqtt={"tls": {"ca_file": bad}},
        outbox={"path": bad},
    )
    result = check_config_data(config)
    assert [p.split(":")[0] for p in result.problems] == [
        "detector",
        "mqtt.tls",
        "outbox.path",
        "cameras[0].source.uri" if "\x00" in bad else "cameras[0].source",
    ], result.problems
