"""Enrolment end to end against the reference broker (deploy/mosquitto, real mosquitto,
TLS): inventory → token → `edge-agent enroll` → birth over mTLS; tokens used once and
expiring; renewal without a restart; client ids bound to certificates (docs/enrolment.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from fakes.mqtt import Inbox
from helpers import wait_until
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from realdata import require_model, skip_or_fail
from reference_broker import ReferenceBroker

from edge_agent.broker import BrokerNotAvailable
from edge_agent.config import load_config
from edge_agent.encode import Topics
from edge_agent.enrol import enrol_request
from edge_agent.mqtt import MqttSettings, Publisher, Subscriber
from edge_agent.outbox import Outbox
from edge_agent.remote import Reply
from edge_agent.renew import Renewer
from provisioning import cli as provision_cli
from provisioning import pki
from provisioning.server import Provisioner, serve
from provisioning.tokens import TokenStore

REPO = Path(__file__).resolve().parents[2]
MOSQ = REPO / "deploy" / "mosquitto"
SITE = "site-1"
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class City:
    state: Path
    broker: ReferenceBroker
    tokens: dict[str, str]  # device id -> token
    dev_a: str
    dev_b: str
    dev_c: str
    consumer_cert: Path
    consumer_key: Path
    provisioner: Provisioner


def _inventory(path: Path, broker: ReferenceBroker, devices: list[str]) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "site_id": SITE,
                "broker": {
                    "host": broker.host,
                    "port": broker.port,
                    "enrol_port": broker.enrol_port,
                },
                "certificate_days": 7,
                "devices": [
                    {
                        "device_id": d,
                        "location": {"description": f"pole {d}", "lat": -6.2, "lon": 106.8},
                        "cameras": [
                            {
                                "id": "gate",
                                "kind": "sim",
                                "uri": "street",
                                "zones": [{"name": "yard", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                            }
                        ],
                    }
                    for d in devices
                ],
            }
        ),
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    """`edge-provision init` + `inventory`, the reference broker, `edge-provision serve`."""
    root = tmp_path_factory.mktemp("city")
    state = root / "state"
    assert provision_cli.main(["init", str(state)]) == 0
    for name in ("acl", "acl-enrol"):
        shutil.copy(MOSQ / name, state / name)
    (state / "passwd").touch(mode=0o600)
    try:
        broker = ReferenceBroker(state)
    except BrokerNotAvailable as error:
        skip_or_fail(str(error))
    suffix = uuid.uuid4().hex[:6]
    dev_a, dev_b, dev_c = (f"pole-{x}-{suffix}" for x in "abc")
    _inventory(root / "site.yaml", broker, [dev_a, dev_b, dev_c])
    out = root / "tokens.txt"
    with out.open("w") as handle:
        saved, sys.stdout = sys.stdout, handle
        try:
            assert provision_cli.main(["inventory", str(state), str(root / "site.yaml")]) == 0
        finally:
            sys.stdout = saved
    tokens = dict(
        line.split("\t")[:2] for line in out.read_text().splitlines() if not line.startswith("#")
    )
    out.unlink()
    ca = pki.load_credential(state / "ca.crt", state / "ca.key")
    consumer = pki.issue_client_cert(ca, "command-centre")
    consumer.write(root / "cc.crt", root / "cc.key")
    provisioner = Provisioner(state, valid_for=timedelta(hours=1))
    stop, ready = threading.Event(), threading.Event()
    settings = MqttSettings.consumer(
        broker.host,
        broker.port,
        "provisioner",
        tls_ca_file=state / "ca.crt",
        tls_cert_file=state / "clients" / "provisioner.crt",
        tls_key_file=state / "clients" / "provisioner.key",
    )
    with broker:
        server = threading.Thread(
            target=serve, args=(provisioner, settings), kwargs={"stop": stop, "ready": ready}
        )
        server.start()
        try:
            assert ready.wait(TIMEOUT_S), "edge-provision serve never subscribed"
            yield City(
                state,
                broker,
                tokens,
                dev_a,
                dev_b,
                dev_c,
                root / "cc.crt",
                root / "cc.key",
                provisioner,
            )
        finally:
            stop.set()
            server.join(TIMEOUT_S)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'hw-sim'}"}


def _enroll(city: City, token: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """The device's one command, as a technician types it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent.cli",
            "enroll",
            "--token",
            token,
            "--broker",
            f"{city.broker.host}:{city.broker.enrol_port}",
            "--ca",
            str(city.state / "ca.crt"),
            "--dir",
            str(directory),
            "--timeout-s",
            str(TIMEOUT_S),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=False,
    )


def _consumer(city: City, inbox: Inbox[object]) -> Subscriber:
    settings = MqttSettings.consumer(
        city.broker.host,
        city.broker.port,
        "command-centre",
        tls_ca_file=city.state / "ca.crt",
        tls_cert_file=city.consumer_cert,
        tls_key_file=city.consumer_key,
    )
    sub = Subscriber(settings, [f"city/{SITE}/#"], inbox)
    sub.start(TIMEOUT_S)
    return sub


def _device_publisher(config_path: Path, outbox: Outbox, **kwargs: object) -> Publisher:
    config = load_config(config_path)
    return Publisher(
        MqttSettings.from_config(config),
        outbox,
        Topics(config.topic_root),
        birth_payload={"version": "test"},
        **kwargs,  # type: ignore[arg-type]
    )


def _run_agent(
    directory: Path, tmp_path: Path, child_processes: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    """The device's second command: the agent itself, on the config enrolment wrote
    (only the outbox moved into the test's folder)."""
    data = yaml.safe_load((directory / "config.yaml").read_text())
    require_model(data.get("detector", {}).get("model", "ssd_mobilenet_v1"))
    data["outbox"] = {"path": str(tmp_path / "outbox.db")}
    run_config = tmp_path / "agent.yaml"
    run_config.write_text(yaml.safe_dump(data), encoding="utf-8")
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(run_config)],
        text=True,
        env=_env(),
    )
    child_processes.append(agent)
    return agent


def _status_states(inbox: Inbox[object], device: str) -> list[str]:
    return [json.loads(p)["state"] for p in inbox.payloads(f"city/{SITE}/{device}/status")]


def _enrolled(city: City, device: str, tmp_path: Path) -> Path:
    directory = tmp_path / device / "etc-edge-agent"
    result = _enroll(city, city.tokens[device], directory)
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


# -- (a) inventory entry → birth over mTLS -------------------------------------------


@pytest.fixture(scope="module")
def device_a(city: City, tmp_path_factory: pytest.TempPathFactory) -> Path:
    started = time.monotonic()
    directory = _enrolled(city, city.dev_a, tmp_path_factory.mktemp("dev-a"))
    print(f"enrolment of {city.dev_a} took {time.monotonic() - started:.2f} s")
    return directory


def test_inventory_entry_to_birth_over_mtls(
    city: City,
    device_a: Path,
    tmp_path: Path,
    child_processes: list[subprocess.Popen[str]],
) -> None:
    key = device_a / "device.key"
    assert key.stat().st_mode & 0o777 == 0o600
    # The key never left its directory: no other file anywhere under the test's
    # trees (city state, bundles, broker files) holds it.
    key_body = b"".join(key.read_bytes().splitlines()[1:-1])
    for folder in (city.state, city.broker.dir, device_a.parent.parent):
        for path in folder.rglob("*"):
            if path.is_file() and path != key:
                assert key_body not in b"".join(path.read_bytes().splitlines()), path
    config = load_config(device_a / "config.yaml")
    assert config.device_id == city.dev_a and config.client_id == city.dev_a
    inbox: Inbox[object] = Inbox()
    sub = _consumer(city, inbox)
    agent = _run_agent(device_a, tmp_path, child_processes)
    try:
        wait_until(lambda: "online" in _status_states(inbox, city.dev_a), TIMEOUT_S, "birth")
    finally:
        agent.terminate()
        agent.wait(TIMEOUT_S)
        sub.stop()


# -- (b) tokens are single use and expire --------------------------------------------


def test_a_used_token_is_refused(city: City, device_a: Path, tmp_path: Path) -> None:
    result = _enroll(city, city.tokens[city.dev_a], tmp_path / "again")
    assert result.returncode != 0
    assert "already used" in result.stdout + result.stderr
    assert not (tmp_path / "again" / "device.crt").exists()


def test_an_expired_token_is_refused(city: City, tmp_path: Path) -> None:
    store = TokenStore(city.state / "tokens.json")
    token = store.issue(SITE, city.dev_b, timedelta(seconds=-1))
    files = tmp_path / "d"
    from edge_agent.enrol import DeviceFiles

    device = DeviceFiles(files)
    device.new_key()
    answer = json.loads(city.provisioner.enrol(enrol_request(token, device.csr("x"))))
    assert answer["ok"] is False and "expired" in answer["error"]
    # and it never reached the broker's enrolment password file
    assert token.split(".")[0] not in (city.state / "enrol-passwd").read_text()


def test_a_wrong_secret_is_refused_by_the_broker(city: City, tmp_path: Path) -> None:
    token_id = city.tokens[city.dev_b].split(".")[0]
    result = _enroll(city, f"{token_id}.{'x' * 43}", tmp_path / "wrong")
    assert result.returncode != 0
    assert not (tmp_path / "wrong" / "device.crt").exists()


def test_a_token_issued_later_works_once_the_broker_reloads(
    city: City, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert provision_cli.main(["token", str(city.state), city.dev_b]) == 0
    token = capsys.readouterr().out.strip()
    refused = _enroll(city, token, tmp_path / "early")
    assert refused.returncode == 1
    assert "refused the enrolment connection" in refused.stderr
    pid = city.broker.pid
    assert pid is not None
    reloads = city.broker.log_text().count("Reloading config")
    os.kill(pid, signal.SIGHUP)  # `systemctl reload mosquitto`
    wait_until(
        lambda: city.broker.log_text().count("Reloading config") > reloads,
        TIMEOUT_S,
        "mosquitto re-read its configuration",
    )
    result = _enroll(city, token, tmp_path / "late")
    assert result.returncode == 0, result.stderr


# -- (c) renewal before expiry, no restart -------------------------------------------


def test_renewal_before_expiry_without_restart(city: City, outbox: Outbox, tmp_path: Path) -> None:
    directory = _enrolled(city, city.dev_b, tmp_path)
    cert_before = (directory / "device.crt").read_bytes()
    key_before = (directory / "device.key").read_bytes()
    config = load_config(directory / "config.yaml")
    assert config.mqtt.tls is not None and config.mqtt.tls.renew_at_fraction
    inbox: Inbox[object] = Inbox()
    sub = _consumer(city, inbox)
    renewer: list[Renewer] = []

    def on_command(name: str, payload: bytes, retained: bool) -> Reply | None:
        return renewer[0].on_certificate(payload) if name == Renewer.COMMAND else None

    device = _device_publisher(directory / "config.yaml", outbox, on_command=on_command)
    # The certificate lives 1 h here; the renewer's clock says 50 min have passed.
    renewer.append(
        Renewer(
            device_id=config.device_id,
            topic_root=config.topic_root,
            cert_file=directory / "device.crt",
            key_file=directory / "device.key",
            link=device,
            renew_at_fraction=config.mqtt.tls.renew_at_fraction,
            clock=lambda: time.time() + 50 * 60,
        )
    )
    try:
        device.start()
        wait_until(lambda: device.commands_ready, TIMEOUT_S, "device subscribed to commands")
        assert (
            Renewer(
                device_id=config.device_id,
                topic_root=config.topic_root,
                cert_file=directory / "device.crt",
                key_file=directory / "device.key",
                link=device,
                renew_at_fraction=config.mqtt.tls.renew_at_fraction,
            ).due()
            is False
        )  # control: by the real clock it is not due yet
        started = time.monotonic()
        assert renewer[0].tick()
        wait_until(lambda: renewer[0].renewals == 1, TIMEOUT_S, "renewed certificate installed")
        wait_until(
            lambda: _status_states(inbox, city.dev_b).count("online") >= 2,
            TIMEOUT_S,
            "a second birth: reconnected with the new certificate",
        )
        print(f"renewal to reconnection took {time.monotonic() - started:.2f} s")
        assert device.connected
        assert "offline" not in _status_states(inbox, city.dev_b)  # a clean reconnect
        assert (directory / "device.crt").read_bytes() != cert_before
        assert (directory / "device.key").read_bytes() != key_before
        assert (directory / "device.key").stat().st_mode & 0o777 == 0o600
        assert not (directory / "device.key.new").exists()
    finally:
        device.stop()
        sub.stop()


def test_the_running_agent_renews_its_certificate_without_restarting(
    city: City, tmp_path: Path, child_processes: list[subprocess.Popen[str]]
) -> None:
    # Two minutes of life (seven with the CA's back-dating): due at once at 2/3.
    city.provisioner.valid_for = timedelta(minutes=2)
    inbox: Inbox[object] = Inbox()
    sub = _consumer(city, inbox)
    try:
        directory = _enrolled(city, city.dev_c, tmp_path)
        enrolled_cert = (directory / "device.crt").read_bytes()
        agent = _run_agent(directory, tmp_path, child_processes)
        wait_until(
            lambda: _status_states(inbox, city.dev_c).count("online") >= 2,
            TIMEOUT_S,
            "a second birth: the agent renewed and reconnected",
        )
        assert (directory / "device.crt").read_bytes() != enrolled_cert
        assert agent.poll() is None  # the same process throughout
        assert "offline" not in _status_states(inbox, city.dev_c)
    finally:
        city.provisioner.valid_for = timedelta(hours=1)
        sub.stop()


# -- (d) client id bound to the certificate; crafted names refused -------------------


def _raw(city: City, cert: Path, key: Path, client_id: str) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(city.state / "ca.crt"))
    context.load_cert_chain(str(cert), str(key))
    client.tls_set_context(context)
    return client


def test_another_devices_client_id_is_rewritten(
    city: City, device_a: Path, outbox: Outbox, tmp_path: Path
) -> None:
    # B: a device with its own certificate (made by the lab CA; the same shape).
    ca = pki.load_credential(city.state / "ca.crt", city.state / "ca.key")
    victim = f"pole-v-{uuid.uuid4().hex[:6]}"
    pki.issue_client_cert(ca, victim).write(tmp_path / "v.crt", tmp_path / "v.key")
    commands: list[str] = []
    inbox: Inbox[object] = Inbox()
    sub = _consumer(city, inbox)
    b = Publisher(
        MqttSettings(
            host=city.broker.host,
            port=city.broker.port,
            client_id=victim,
            tls_ca_file=city.state / "ca.crt",
            tls_cert_file=tmp_path / "v.crt",
            tls_key_file=tmp_path / "v.key",
        ),
        outbox,
        Topics(f"city/{SITE}/{victim}"),
        birth_payload={"version": "test"},
        on_command=lambda name, payload, retained: commands.append(name) or None,
    )
    # A connects with B's client id (and a clean start, which would wipe B's session).
    connected = threading.Event()
    a = _raw(city, device_a / "device.crt", device_a / "device.key", victim)
    a.on_connect = lambda *args: connected.set()
    centre = _raw(city, city.consumer_cert, city.consumer_key, "command-centre-test")
    try:
        b.start()
        wait_until(lambda: b.commands_ready, TIMEOUT_S, "B subscribed to its commands")
        a.connect(city.broker.host, city.broker.port, clean_start=True)
        a.loop_start()
        assert connected.wait(TIMEOUT_S)
        centre.connect(city.broker.host, city.broker.port)
        centre.loop_start()
        # A QoS 1 publish before the CONNACK fails with "not currently connected" (loaded CI)
        wait_until(centre.is_connected, TIMEOUT_S, "the centre connected")
        centre.publish(f"city/{SITE}/{victim}/cmd/ping", b"{}", qos=1).wait_for_publish(TIMEOUT_S)
        wait_until(lambda: commands == ["ping"], TIMEOUT_S, "B receives the command sent to it")
        assert b.connected and b.stats().reconnects == 0  # never kicked
        assert "offline" not in _status_states(inbox, victim)  # B's will never fired
    finally:
        for client in (a, centre):
            client.disconnect()
            client.loop_stop()
        b.stop()
        sub.stop()


@pytest.mark.parametrize("name", ["pole-b/cmd", "pole-b/+", "#", "../escape", "Pole-B", ""])
def test_crafted_certificate_names_are_refused(city: City, name: str, tmp_path: Path) -> None:
    ca = pki.load_credential(city.state / "ca.crt", city.state / "ca.key")
    from edge_agent.enrol import DeviceFiles

    device = DeviceFiles(tmp_path / "d")
    device.new_key()
    with pytest.raises(ValueError, match="not a valid id"):
        pki.sign_csr(ca, device.csr("x"), name, valid_for=timedelta(days=1))
    with pytest.raises(ValueError, match="not a valid id"):
        pki.issue_client_cert(ca, name)
    before = sorted(p.name for p in city.state.parent.iterdir())
    assert pki.main(["issue", str(city.state), name]) == 2
    assert sorted(p.name for p in city.state.parent.iterdir()) == before
