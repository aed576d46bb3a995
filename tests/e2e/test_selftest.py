"""`edge-agent selftest` as a technician runs it: real process, the simulator camera, the
real model and a real mosquitto."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from api_contract import validator
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fakes.centre import Centre
from helpers import sim_camera, wait_until
from realdata import require_media, require_model

from edge_agent.broker import LocalBroker, free_loopback_port
from edge_agent.runlock import RunLock

EDGE_AGENT = [sys.executable, "-m", "edge_agent.cli"]
ROOT = "city/test-site/dev-1"
CHECKS = ["config", "camera cam1", "model", "outbox", "clock", "broker", "birth", "commands"]


@pytest.fixture(autouse=True)
def _real_data() -> None:
    require_model("ssd_mobilenet_v1")
    require_media("intel_one-by-one-person-detection.mp4")


def write_config(tmp_path: Path, port: int, **overrides: object) -> Path:
    config: dict[str, object] = {
        "site_id": "test-site",
        "device_id": "dev-1",
        "cameras": [sim_camera()],
        "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "mqtt": {"host": "127.0.0.1", "port": port},
    }
    config.update(overrides)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def selftest(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGE_AGENT, "selftest", "--config", str(config), "--camera-s", "1", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def lines_by_check(stdout: str) -> dict[str, str]:
    """Each check's line, by its name (the second column)."""
    found = {}
    for line in stdout.splitlines():
        status, _, rest = line.partition("  ")
        if status in ("PASS", "WARN", "FAIL", "SKIP"):
            for name in [*CHECKS, "centre"]:
                if rest.startswith(name + " "):
                    found[name] = line
    return found


def test_every_check_passes_on_a_working_device(tmp_path: Path, broker: LocalBroker) -> None:
    result = selftest(write_config(tmp_path, broker.port))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = lines_by_check(result.stdout)
    for name in CHECKS:
        if name == "clock":  # this machine's clock may not be synchronised: said, not failed
            assert lines[name].split()[0] in ("PASS", "WARN"), lines[name]
        else:
            assert lines[name].startswith("PASS"), lines[name]
    assert "480x270" in lines["camera cam1"]
    assert " ms per inference on a live 480x270 frame" in lines["model"]
    assert lines["centre"].startswith("SKIP") and "no centre" in lines["centre"]
    assert result.stdout.splitlines()[-1].startswith("selftest: OK")


def test_a_running_agent_keeps_its_camera_and_broker_session(
    tmp_path: Path, broker: LocalBroker
) -> None:
    """The broker binds the client id to the certificate: a self-test logging in as the
    device would throw the running agent off. It says so and checks the rest."""
    config = write_config(tmp_path, broker.port)
    lock = RunLock(tmp_path / "outbox.db")  # what `edge-agent run` holds while it runs
    lock.acquire()
    try:
        result = selftest(config)
    finally:
        lock.release()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if "  " in line}
    assert lines["agent"].startswith("WARN") and f"pid {os.getpid()}" in lines["agent"]
    assert "systemctl stop edge-agent" in lines["agent"]
    assert lines["camera"].startswith("SKIP") and "running agent" in lines["camera"]
    assert lines["broker"].startswith("SKIP")
    assert lines["model"].startswith("PASS") and lines["outbox"].startswith("PASS")


def test_json_output_for_scripts(tmp_path: Path, broker: LocalBroker) -> None:
    result = selftest(write_config(tmp_path, broker.port), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["exit_code"] == 0
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["camera cam1"]["data"]["width_px"] == 480
    assert checks["camera cam1"]["data"]["height_px"] == 270
    assert checks["camera cam1"]["data"]["fps"] > 0
    assert checks["model"]["data"]["inference_ms"] > 0
    assert checks["outbox"]["data"]["free_bytes"] > 0
    assert checks["broker"]["status"] == "PASS"


def test_a_dead_broker_fails_its_line_and_exits_1(tmp_path: Path) -> None:
    result = selftest(write_config(tmp_path, free_loopback_port()))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = lines_by_check(result.stdout)
    assert lines["broker"].startswith("FAIL") and "cannot reach 127.0.0.1" in lines["broker"]
    assert "mqtt.host" in lines["broker"]
    assert lines["birth"].startswith("SKIP") and lines["commands"].startswith("SKIP")
    assert lines["camera cam1"].startswith("PASS")  # the rest of the checklist still ran


def test_each_standby_broker_of_the_list_gets_a_line_of_its_own(
    tmp_path: Path, broker: LocalBroker
) -> None:
    """Failover only helps if the next broker takes the device: every later broker of
    ``mqtt.brokers`` is probed too; one that does not answer warns, it does not fail."""
    dead_port = free_loopback_port()
    with LocalBroker() as standby:
        brokers = [
            {"host": "127.0.0.1", "port": broker.port},
            {"host": "127.0.0.1", "port": standby.port},
            {"host": "127.0.0.1", "port": dead_port},
        ]
        result = selftest(write_config(tmp_path, broker.port, mqtt={"brokers": brokers}))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {
        line.split()[2]: line
        for line in result.stdout.splitlines()
        if line.split()[1:2] == ["broker"] and len(line.split()) > 2
    }
    assert lines[f"127.0.0.1:{standby.port}"].startswith("PASS"), result.stdout
    assert "standby" in lines[f"127.0.0.1:{standby.port}"]
    dead = lines[f"127.0.0.1:{dead_port}"]
    assert dead.startswith("WARN") and "would fail over" in dead, result.stdout
    first = ["PASS", "broker", "connected", "to", f"127.0.0.1:{broker.port}"]
    assert any(line.split()[:5] == first for line in result.stdout.splitlines()), result.stdout


def test_a_missing_model_fails_its_line_and_exits_2(tmp_path: Path, broker: LocalBroker) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    env = {**os.environ, "EDGE_AGENT_MODEL_PATH": str(empty), "EDGE_AGENT_CACHE_DIR": str(empty)}
    result = selftest(write_config(tmp_path, broker.port), env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    line = lines_by_check(result.stdout)["model"]
    assert line.startswith("FAIL") and "not found" in line and "models fetch" in line


def test_an_unwritable_outbox_fails_its_line_and_exits_1(
    tmp_path: Path, broker: LocalBroker
) -> None:
    fifo = tmp_path / "outbox.db"  # the agent cannot open a FIFO as its database
    os.mkfifo(fifo)
    result = selftest(write_config(tmp_path, broker.port, outbox={"path": str(fifo)}))
    assert result.returncode == 1, result.stdout + result.stderr
    line = lines_by_check(result.stdout)["outbox"]
    assert line.startswith("FAIL") and "not a regular file" in line
    assert lines_by_check(result.stdout)["config"].startswith("PASS")


def test_a_broken_config_stops_at_the_first_line_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("site_id: 'has space'\ndevice_id: dev-1\ncameras: []\n")
    result = selftest(path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = lines_by_check(result.stdout)
    assert lines["config"].startswith("FAIL") and "check-config" in lines["config"]
    assert list(lines) == ["config"]


def test_the_centre_round_trip_when_the_centre_answers(tmp_path: Path, broker: LocalBroker) -> None:
    centre = Centre(broker.port, ROOT)
    process = subprocess.Popen(
        [
            *EDGE_AGENT,
            "selftest",
            "--config",
            str(write_config(tmp_path, broker.port)),
            "--camera-s",
            "1",
            "--centre-wait-s",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        out = []
        for line in process.stdout:  # the commands line: selftest listens on cmd/ping now
            out.append(line)
            if line[6:].startswith("commands "):
                break
        assert out[-1].startswith("PASS"), "".join(out)
        centre.send("ping", {}, b"c-1")
        rest, _ = process.communicate(timeout=120)
        assert process.returncode == 0, "".join(out) + rest
        assert lines_by_check(rest)["centre"].startswith("PASS")
        wait_until(lambda: centre.inbox.at(f"{ROOT}/reply/centre"), 10.0, "the reply")
        replies = centre.inbox.at(f"{ROOT}/reply/centre")
        assert len(replies) == 1
        assert getattr(replies[0].properties, "CorrelationData", None) == b"c-1"
        assert json.loads(replies[0].payload)["ok"] is True
        # The birth the centre saw: not retained, marked, and what the API documents.
        # (A retained status another test's agent left on this root may come first.)
        births = [m for m in centre.inbox.at(f"{ROOT}/status") if not m.retain]
        assert len(births) == 1
        birth = json.loads(births[0].payload)
        assert birth["selftest"] is True and birth["state"] == "online"
        validator("status").validate(birth)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        centre.close()


# -- over TLS ----------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    *,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate, key: object = None) -> Path:
    path = directory / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path = directory / f"{name}.key"
        key_path.write_bytes(
            key.private_bytes(  # type: ignore[attr-defined]
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
    return path


@dataclass(frozen=True)
class TlsBroker:
    port: int
    dir: Path


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """A mosquitto with an mTLS listener: a throwaway CA, its server certificate for
    127.0.0.1 and a device certificate ``dev-1``; another CA the broker does not know."""
    directory = tmp_path_factory.mktemp("tls")
    ca_key, server_key, device_key, other_key = _key(), _key(), _key(), _key()
    ca = _cert("test CA", ca_key)
    _write(directory, "ca", ca)
    _write(directory, "other-ca", _cert("other CA", other_key))
    _write(
        directory,
        "server",
        _cert("broker", server_key, ("test CA", ca_key), server=True),
        server_key,
    )
    _write(directory, "dev-1", _cert("dev-1", device_key, ("test CA", ca_key)), device_key)
    port = free_loopback_port()
    listener = "\n".join(
        [
            f"listener {port} 127.0.0.1",
            f"cafile {directory / 'ca.crt'}",
            f"certfile {directory / 'server.crt'}",
            f"keyfile {directory / 'server.key'}",
            "require_certificate true",
            "use_identity_as_username true",
        ]
    )
    with LocalBroker(extra_config=listener):
        yield TlsBroker(port, directory)


def tls_config(tmp_path: Path, broker: TlsBroker, ca: str = "ca.crt") -> Path:
    tls = {
        "ca_file": str(broker.dir / ca),
        "cert_file": str(broker.dir / "dev-1.crt"),
        "key_file": str(broker.dir / "dev-1.key"),
    }
    return write_config(
        tmp_path, broker.port, mqtt={"host": "127.0.0.1", "port": broker.port, "tls": tls}
    )


def test_every_check_passes_over_mutual_tls(tmp_path: Path, tls_broker: TlsBroker) -> None:
    result = selftest(tls_config(tmp_path, tls_broker))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = lines_by_check(result.stdout)
    assert lines["broker"].startswith("PASS") and "over TLS" in lines["broker"]
    assert lines["birth"].startswith("PASS") and lines["commands"].startswith("PASS")


def test_a_broker_certificate_from_an_unknown_ca_fails_the_broker_line(
    tmp_path: Path, tls_broker: TlsBroker
) -> None:
    result = selftest(tls_config(tmp_path, tls_broker, ca="other-ca.crt"))
    assert result.returncode == 1, result.stdout + result.stderr
    line = lines_by_check(result.stdout)["broker"]
    assert line.startswith("FAIL") and "TLS" in line and "certificate" in line
