"""The edge-agent command line as a technician or developer runs it: real processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from helpers import EDGE_AGENT, edge_agent, sim_camera, wait_until
from realdata import require_media, require_model

from edge_agent.broker import LocalBroker
from edge_agent.mqtt import MqttSettings, ReceivedMessage, Subscriber
from edge_agent.runlock import RunLock


def write_config(path: Path, **overrides: object) -> Path:
    config: dict[str, object] = {
        "site_id": "test-site",
        "device_id": "dev-1",
        "cameras": [sim_camera()],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "outbox": {"path": str(path.parent / "outbox.db")},
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config))
    return path


# ---------------------------------------------------------------- check-config


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    result = edge_agent("check-config", str(write_config(tmp_path / "agent.yaml")))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "test-site" in result.stdout


def test_check_config_names_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "site_id: 'has space'\n"
        "device_id: dev-1\n"
        "cameras:\n"
        "  - id: cam1\n"
        "    fps: -1\n"
        "    source: {kind: opencv}\n"
        "detector: {score_treshold: 0.4}\n"
        "mqtt: {port: 0}\n"
    )
    result = edge_agent("check-config", str(path))
    assert result.returncode == 2
    for expected in (
        "site_id:",
        "cameras[0].fps:",
        "cameras[0].source.uri:",
        "detector.score_treshold: unknown key",
        "mqtt.port:",
    ):
        assert expected in result.stderr, result.stderr
    assert "5 problem(s)" in result.stderr


def test_check_config_reports_files_that_do_not_exist(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "agent.yaml",
        cameras=[{"id": "c", "source": {"kind": "opencv", "uri": str(tmp_path / "no.mp4")}}],
        mqtt={"tls": {"ca_file": str(tmp_path / "ca.crt")}},
        detector={"model": "no_such_model"},
    )
    result = edge_agent("check-config", str(path))
    assert result.returncode == 2
    assert "cameras[0].source.uri: video file not found" in result.stderr
    assert "mqtt.tls: TLS CA file" in result.stderr and "does not exist" in result.stderr
    assert "detector.model: unknown model 'no_such_model'" in result.stderr


def test_check_config_finds_seven_planted_problems_in_one_run(tmp_path: Path) -> None:
    """Schema problems (the first three) do not hide the checks on the parts that are valid."""
    path = tmp_path / "site.yaml"
    path.write_text(
        "site_id: 'has space'\n"
        "device_id: dev-1\n"
        "cameras:\n"
        "  - {id: cam0, fps: -1, source: {kind: sim}}\n"
        f"  - {{id: cam1, source: {{kind: opencv, uri: {tmp_path / 'gone.mp4'}}}}}\n"
        "  - {id: cam2, source: {kind: sim, scenario: stret}}\n"
        "detector: {model: ssd_mobilnet}\n"
        "motion: {treshold: 3}\n"
        f"mqtt: {{tls: {{ca_file: {tmp_path / 'ca.crt'}}}}}\n"
        f"outbox: {{path: {tmp_path / 'outbox.db'}}}\n"
    )
    result = edge_agent("check-config", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for expected in (
        "site_id:",
        "cameras[0].fps:",
        "motion.treshold: unknown key",
        "detector.model: unknown model 'ssd_mobilnet'",
        "mqtt.tls: TLS CA file",
        "cameras[1].source.uri: video file not found",
        "cameras[2].source.scenario: unknown simulator scene 'stret'",
    ):
        assert f"  - {expected}" in result.stderr, result.stderr
    assert "7 problem(s)" in result.stderr
    offline = edge_agent("check-config", "--offline", str(path))
    assert offline.returncode == 2
    assert "6 problem(s)" in offline.stderr and "mqtt.tls" not in offline.stderr, offline.stderr


def test_check_config_offline_passes_a_site_config_away_from_the_device() -> None:
    example = Path(__file__).parents[2] / "examples" / "bridge.yaml"
    assert edge_agent("check-config", str(example)).returncode == 2  # no /etc/edge-agent here
    result = edge_agent("check-config", "--offline", str(example))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "offline" in result.stdout


def test_check_config_explains_pathological_files_with_exit_2(tmp_path: Path) -> None:
    for name, text in {
        "date": "site_id: 2024-02-30\n",
        "digits": "mqtt: {port: " + "7" * 5000 + "}\n",
        "nesting": "site_id: " + "[" * 1500 + "]" * 1500 + "\n",
        "empty": "",
    }.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        result = edge_agent("check-config", str(path))
        assert result.returncode == 2, (name, result.stderr)
        assert "1 problem(s)" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_run_refuses_a_broken_config_without_starting(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("site_id: [unclosed\n")
    result = edge_agent("run", "--config", str(path))
    assert result.returncode == 2
    assert "not valid YAML" in result.stderr


def test_run_refuses_an_outbox_it_cannot_open_and_leaves_it_alone(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    os.mkfifo(outbox)  # not a file SQLite can use, and not one to move aside either
    result = edge_agent("run", "--config", str(write_config(tmp_path / "agent.yaml")))
    assert result.returncode == 1  # the environment, not the input (README: exit codes)
    assert f"cannot start: outbox {outbox} is not a regular file" in result.stderr
    assert "Traceback" not in result.stderr
    assert outbox.is_fifo()
    assert [p.name for p in tmp_path.iterdir() if "corrupt" in p.name] == []


def test_a_second_agent_on_the_same_outbox_exits_1_and_touches_nothing(tmp_path: Path) -> None:
    lock = RunLock(tmp_path / "outbox.db")  # the first agent, as `run` holds it
    lock.acquire()
    try:
        result = edge_agent("run", "--config", str(write_config(tmp_path / "agent.yaml")))
    finally:
        lock.release()
    assert result.returncode == 1, result.stderr
    assert f"another edge-agent (pid {os.getpid()}) is running" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outbox.db").exists()  # it never opened the outbox


def test_run_refuses_a_config_whose_outbox_path_is_a_directory(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    outbox.mkdir()  # e.g. a volume mounted at the file's path: the config names a directory
    (outbox / "keep").write_text("x")
    result = edge_agent("run", "--config", str(write_config(tmp_path / "agent.yaml")))
    assert result.returncode == 2  # check-config's verdict, before anything starts
    assert f"outbox.path: {outbox} is a directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert (outbox / "keep").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir() if "corrupt" in p.name] == []


# ---------------------------------------------------------------- replay


def test_replay_prints_car_events_on_real_traffic(tmp_path: Path) -> None:
    require_model("ssd_mobilenet_v1")
    video = require_media("automl_traffic_frames.mp4")
    config = write_config(tmp_path / "agent.yaml", tracker={"min_hits": 2, "max_missed_s": 0.5})
    result = edge_agent("replay", str(video), "--config", str(config), "--json", "--every", "1")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events, result.stderr
    new_cars = {e["id"] for e in events if e["type"] == "new" and e["label"] == "car"}
    ended = {e["id"] for e in events if e["type"] == "end"}
    assert len(new_cars) >= 3  # a busy highway: several cars in view in every frame
    assert new_cars <= ended  # every event is closed at the end of the file
    assert all(e["v"] == 1 and len(e["box"]) == 4 for e in events)


def test_replay_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agent.yaml")
    result = edge_agent("replay", str(tmp_path / "none.mp4"), "--config", str(config))
    assert result.returncode == 2
    assert "video file not found" in result.stderr


# ---------------------------------------------------------------- demo


def test_demo_shows_events_and_exits_0() -> None:
    require_model("ssd_mobilenet_v1")
    require_media("intel_one-by-one-person-detection.mp4")
    result = edge_agent("demo", "--seconds", "8")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("status online" in line for line in lines), result.stdout
    assert any(" NEW " in line and "person" in line for line in lines), result.stdout
    assert any("status stopped" in line for line in lines), result.stdout


# ---------------------------------------------------------------- run + SIGKILL


def run_agent(config: Path, processes: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    """``edge-agent run`` as a service manager starts it (the fixture reaps it)."""
    process = subprocess.Popen([*EDGE_AGENT, "run", "--config", str(config)], text=True)
    processes.append(process)
    return process


@contextmanager
def watching_events(
    port: int, client_id: str, on_message: Callable[[ReceivedMessage], None]
) -> Iterator[Subscriber]:
    """A consumer of the test device's events, subscribed before anything is sent."""
    with Subscriber(
        MqttSettings.consumer("127.0.0.1", port, client_id),
        ["city/test-site/dev-1/events/#"],
        on_message,
    ) as subscriber:
        subscriber.start(timeout_s=10.0)
        yield subscriber


def durable_events(outbox_path: Path) -> dict[int, str]:
    """seq → event id of the event messages the agent has made durable so far."""
    if not outbox_path.exists():
        return {}
    with sqlite3.connect(f"file:{outbox_path}?mode=ro", uri=True, timeout=5.0) as db:
        try:
            rows = db.execute(
                "SELECT seq, payload FROM messages WHERE message_class = 'event'"
            ).fetchall()
        except sqlite3.OperationalError:  # the agent has not created the table yet
            return {}
    return {seq: json.loads(payload)["id"] for seq, payload in rows}


def test_events_made_durable_survive_sigkill_and_arrive_after_restart(
    tmp_path: Path, private_broker: LocalBroker, child_processes: list[subprocess.Popen[str]]
) -> None:
    require_model("ssd_mobilenet_v1")
    require_media("intel_one-by-one-person-detection.mp4")
    outbox_path = tmp_path / "outbox.db"
    # The first run cannot reach any broker: everything it makes stays in the outbox.
    private_broker.stop()
    camera = sim_camera(realtime=False, loop=False)
    config = write_config(
        tmp_path / "agent.yaml",
        cameras=[camera],
        mqtt={"host": "127.0.0.1", "port": private_broker.port},
    )
    first = run_agent(config, child_processes)
    # The scene's one person makes new + updates + end; wait for the lifecycle to be durable.
    wait_until(lambda: len(durable_events(outbox_path)) >= 2, 120.0, "events in the outbox")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    durable = durable_events(outbox_path)
    assert durable

    private_broker.start()
    received: dict[int, str] = {}
    lock = threading.Lock()

    def on_message(message: ReceivedMessage) -> None:
        body = message.json()
        with lock:
            received[int(body["seq"])] = body["id"]

    with watching_events(private_broker.port, "e2e-sigkill-watch", on_message):
        second = run_agent(config, child_processes)

        def all_arrived() -> bool:
            with lock:
                return all(received.get(seq) == event_id for seq, event_id in durable.items())

        wait_until(all_arrived, 60.0, f"the {len(durable)} durable events after restart")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    assert os.path.exists(outbox_path)


def test_an_event_open_when_the_agent_is_killed_is_ended_by_the_next_run(
    tmp_path: Path, private_broker: LocalBroker, child_processes: list[subprocess.Popen[str]]
) -> None:
    require_model("ssd_mobilenet_v1")
    require_media("intel_one-by-one-person-detection.mp4")
    # person_walks_in, in real time: someone walks in at 5 s and stands until 21 s.
    config = write_config(
        tmp_path / "agent.yaml", mqtt={"host": "127.0.0.1", "port": private_broker.port}
    )
    steps: list[dict[str, object]] = []
    lock = threading.Lock()

    def on_message(message: ReceivedMessage) -> None:
        with lock:
            steps.append(message.json())

    def seen(predicate: Callable[[dict[str, object]], bool]) -> list[dict[str, object]]:
        with lock:
            return [step for step in steps if predicate(step)]

    with watching_events(private_broker.port, "e2e-open-at-kill", on_message):
        first = run_agent(config, child_processes)
        wait_until(lambda: seen(lambda s: s["type"] == "new"), 60.0, "the person's new event")
        first.send_signal(signal.SIGKILL)  # with the person still standing there
        first.wait(timeout=30)
        (opened,) = seen(lambda s: s["type"] == "new")
        assert not seen(lambda s: s["type"] == "end")

        second = run_agent(config, child_processes)

        def ended_by_restart() -> list[dict[str, object]]:
            return seen(lambda s: s["id"] == opened["id"] and s["type"] == "end")

        wait_until(ended_by_restart, 60.0, "the next run ending the open event")
        (end,) = ended_by_restart()
        assert end["end_reason"] == "restart"
        assert end["boot"] == opened["boot"]  # ended under the run that opened it
        assert isinstance(end["end"], float) and end["end"] >= opened["start"]  # type: ignore[operator]
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0


def test_check_config_refuses_a_password_in_a_file_others_can_read(tmp_path: Path) -> None:
    path = write_config(tmp_path / "agent.yaml", mqtt={"username": "dev-1", "password": "s3cret"})
    path.chmod(0o644)
    result = edge_agent("check-config", str(path))
    assert result.returncode == 2
    assert "mqtt.password:" in result.stderr and "chmod 600" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    path.chmod(0o600)
    assert edge_agent("check-config", str(path)).returncode == 0


def test_check_config_catches_label_typos_that_would_never_fire(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "agent.yaml",
        detector={"model": "ssd_mobilenet_v1", "labels": ["peron", "car"]},
    )
    result = edge_agent("check-config", str(path))
    assert result.returncode == 2
    assert "detector.labels: 'peron' is not a label of model ssd_mobilenet_v1" in result.stderr


# ---------------------------------------------------------------- a city's own model


def own_model_detector(tmp_path: Path) -> dict[str, object]:
    """The Ultralytics-layout model as a file a city trained, with its own label names
    (Indonesian for the two it cares about), as ``detector:`` config."""
    from edge_agent.detect.labels import COCO80

    model = require_model("yolo11n_int8_416")
    names = {"person": "orang", "car": "mobil"}
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{names.get(label, label)}\n" for label in COCO80))
    return {
        "model": str(model),
        "layout": "ultralytics",
        "labels_file": str(labels),
        "labels": ["orang", "mobil"],
        "threads": 1,
    }


def test_replay_runs_a_users_model_with_its_own_labels(tmp_path: Path) -> None:
    video = require_media("automl_traffic_frames.mp4")
    config = write_config(tmp_path / "agent.yaml", detector=own_model_detector(tmp_path))
    result = edge_agent("replay", str(video), "--config", str(config), "--json", "--every", "1")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    labels = {e["label"] for e in events if e["type"] == "new"}
    assert "mobil" in labels and labels <= {"orang", "mobil"}, events


def test_run_publishes_events_of_a_users_model_with_its_own_labels(
    tmp_path: Path, private_broker: LocalBroker, child_processes: list[subprocess.Popen[str]]
) -> None:
    require_media("intel_one-by-one-person-detection.mp4")
    config = write_config(
        tmp_path / "agent.yaml",
        cameras=[sim_camera(realtime=False, loop=False)],
        detector=own_model_detector(tmp_path),
        mqtt={"host": "127.0.0.1", "port": private_broker.port},
    )
    received: list[dict[str, object]] = []
    lock = threading.Lock()

    def on_message(message: ReceivedMessage) -> None:
        with lock:
            received.append(json.loads(message.payload))

    with watching_events(private_broker.port, "own-model-watch", on_message):
        run_agent(config, child_processes)
        wait_until(
            lambda: any(e.get("type") == "new" for e in list(received)),
            120.0,
            "an event from the agent running the user's model",
        )
    with lock:
        labels = {e["label"] for e in received if e.get("type") == "new"}
    assert labels == {"orang"}, received
