"""The reference broker config (deploy/mosquitto/) against a real mosquitto, with a
throwaway PKI made at test time: identity, ACL and TLS, as docs/security.md states them.

Each refusal test has a control that differs in one property only and is accepted
(a certificate from the same CA, the right password, the right server name), so a
refusal cannot come from a broken set-up.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import paho.mqtt.client as paho
import pytest
from fakes.mqtt import Inbox
from helpers import wait_until
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from realdata import skip_or_fail
from reference_broker import ReferenceBroker

from edge_agent.broker import (
    BrokerNotAvailable,
    free_loopback_port,
)
from edge_agent.encode import Topics
from edge_agent.mqtt import MqttSettings, Publisher, Subscriber, SubscriberError
from edge_agent.outbox import Outbox
from edge_agent.security import InsecureKeyFileError
from edge_agent.types import MessageClass, OutboundMessage

REPO = Path(__file__).resolve().parents[2]
REFERENCE_ACL = REPO / "deploy" / "mosquitto" / "acl"
PREFIX = "city"  # the prefix the reference ACL is written for
CONSUMER = "command-centre"  # the consumer the reference ACL names
TIMEOUT_S = 20.0


def _load_pki() -> ModuleType:
    """provisioning/pki.py, which is not an installed package."""
    spec = importlib.util.spec_from_file_location(
        "provisioning_pki", REPO / "provisioning" / "pki.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


pki = _load_pki()


# -- PKI and broker ---------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    name: str  # certificate CN / username
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    other_ca: Path  # a CA the broker does not trust
    device_a: Identity
    device_b: Identity
    consumer: Identity
    revoked: Identity
    expired: Identity
    forged_a: Identity  # CN of device A, signed by the unknown CA
    password_user: str
    password: str


def _identity(ca: object, directory: Path, cn: str, **kwargs: object) -> Identity:
    cred = pki.issue_client_cert(ca, cn, **kwargs)
    ident = Identity(cn, directory / f"{cn}.crt", directory / f"{cn}.key")
    cred.write(ident.cert, ident.key)
    return ident


def _broker_files(directory: Path, ca: object, server_names: list[str], crl: bytes) -> None:
    """What deploy/mosquitto/README.md tells an operator to put in /etc/mosquitto/edge-agent/."""
    server = pki.issue_server_cert(ca, server_names)
    server.write(directory / "server.crt", directory / "server.key")
    pki.write_public(directory / "crl.pem", crl)


@pytest.fixture(scope="module")
def pki_files(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca("test CA")
    ca.write(directory / "ca.crt", directory / "ca.key")
    other = pki.make_ca("unknown CA")
    pki.write_public(directory / "other-ca.crt", other.cert_pem)
    suffix = uuid.uuid4().hex[:6]
    device_a = _identity(ca, directory, f"dev-a-{suffix}")
    revoked = _identity(ca, directory, f"dev-r-{suffix}")
    now = datetime.now(timezone.utc)
    expired = _identity(
        ca,
        directory,
        f"dev-e-{suffix}",
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=1),
    )
    forged = pki.issue_client_cert(other, device_a.name)
    forged_a = Identity(device_a.name, directory / "forged.crt", directory / "forged.key")
    forged.write(forged_a.cert, forged_a.key)
    crl = pki.make_crl(ca, [pki.load_credential(revoked.cert, revoked.key).cert])
    _broker_files(directory, ca, ["localhost", "127.0.0.1"], crl)
    # A second set of broker files whose certificate names another host.
    wrong = directory / "wrong-name"
    wrong.mkdir()
    pki.write_public(wrong / "ca.crt", ca.cert_pem)
    _broker_files(wrong, ca, ["mqtt.example.invalid"], crl)
    password = uuid.uuid4().hex
    for target in (directory, wrong):
        shutil.copy(REFERENCE_ACL, target / "acl")
        _password_file(target / "passwd", device_a.name, password)
    return Pki(
        dir=directory,
        ca=directory / "ca.crt",
        other_ca=directory / "other-ca.crt",
        device_a=device_a,
        device_b=_identity(ca, directory, f"dev-b-{suffix}"),
        consumer=_identity(ca, directory, CONSUMER),
        revoked=revoked,
        expired=expired,
        forged_a=forged_a,
        password_user=device_a.name,
        password=password,
    )


def _password_file(path: Path, user: str, password: str) -> None:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(tool).exists():
        skip_or_fail("mosquitto_passwd not found (Debian package mosquitto)")
    subprocess.run([tool, "-b", "-c", str(path), user, password], check=True, timeout=30)
    path.chmod(0o600)


def _start(files: Path) -> Iterator[ReferenceBroker]:
    try:
        broker = ReferenceBroker(files)
    except BrokerNotAvailable as error:
        skip_or_fail(str(error))
    with broker:
        yield broker


@pytest.fixture(scope="module")
def ref_broker(pki_files: Pki) -> Iterator[ReferenceBroker]:
    yield from _start(pki_files.dir)


@pytest.fixture
def site() -> str:
    return f"site{uuid.uuid4().hex[:8]}"


# -- clients ------------------------------------------------------------------------


def subscriber(
    broker: ReferenceBroker,
    ca: Path,
    who: Identity | None,
    topics: list[str],
    inbox: Inbox,
    **kwargs: object,
) -> Subscriber:
    settings = MqttSettings.consumer(
        str(kwargs.pop("host", broker.host)),
        int(kwargs.pop("port", broker.port)),  # type: ignore[call-overload]
        f"sub-{uuid.uuid4().hex[:8]}",
        tls_ca_file=ca,
        tls_cert_file=who.cert if who else None,
        tls_key_file=who.key if who else None,
        **kwargs,
    )
    sub = Subscriber(settings, topics, inbox)
    sub.start(TIMEOUT_S)
    return sub


def publisher(
    broker: ReferenceBroker,
    ca: Path,
    who: Identity,
    outbox: Outbox,
    site: str,
    protocol: str = "5",
) -> Publisher:
    return Publisher(
        MqttSettings(
            host=broker.host,
            port=broker.port,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            protocol=protocol,  # type: ignore[arg-type]
            tls_ca_file=ca,
            tls_cert_file=who.cert,
            tls_key_file=who.key,
            reconnect_min_delay_s=1,
            reconnect_max_delay_s=1,
        ),
        outbox,
        Topics(f"{PREFIX}/{site}/{who.name}"),
        birth_payload={"version": "test"},
    )


class RawClient:
    """An MQTT 5 client with a certificate that publishes and returns the PUBACK reason
    (raw paho: the command-centre side, which edge_agent has no sender for)."""

    def __init__(self, broker: ReferenceBroker, ca: Path, who: Identity) -> None:
        self._acks: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"raw-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(str(ca))
        context.load_cert_chain(str(who.cert), str(who.key))
        self.client.tls_set_context(context)
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_publish(
        self, client: paho.Client, userdata: object, mid: int, rc: ReasonCode, props: object
    ) -> None:
        with self._cond:
            self._acks[mid] = rc
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self._acks, TIMEOUT_S), "no PUBACK"
            return self._acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def centre(ref_broker: ReferenceBroker, pki_files: Pki) -> Iterator[RawClient]:
    cc = RawClient(ref_broker, pki_files.ca, pki_files.consumer)
    try:
        yield cc
    finally:
        cc.close()


def event(site: str, device: str, name: str) -> OutboundMessage:
    return OutboundMessage(
        topic=f"{PREFIX}/{site}/{device}/events/cam1",
        message_class=MessageClass.EVENT,
        json_body={"v": 1, "id": name},
    )


def probe_connect(
    port: int,
    ca: Path,
    who: Identity | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    use_tls: bool = True,
) -> str:
    """Open a connection, send an MQTT 3.1.1 CONNECT and report what came back:
    ``"connack 0"`` (accepted), ``"connack 5"`` (not authorised) or ``"closed: ..."``.

    The broker is always verified here, so a refusal is the broker's, not ours.
    """

    def text(value: str) -> bytes:
        data = value.encode()
        return struct.pack("!H", len(data)) + data

    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)
    body = text("MQTT") + bytes([4, flags]) + struct.pack("!H", 30) + text(f"probe-{os.getpid()}")
    body += (text(username) if username else b"") + (text(password) if password else b"")
    packet = bytes([0x10, len(body)]) + body
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(ca))
    if who is not None:
        context.load_cert_chain(str(who.cert), str(who.key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
            conn: socket.socket = (
                context.wrap_socket(raw, server_hostname="127.0.0.1") if use_tls else raw
            )
            conn.sendall(packet)
            reply = conn.recv(4)
    except (OSError, ssl.SSLError) as error:
        return f"closed: {type(error).__name__}: {error}"
    if len(reply) == 4 and reply[0] == 0x20:
        return f"connack {reply[3]}"
    return f"closed: {reply!r}"


# -- identity and ACL ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_device_cannot_publish_into_another_devices_topics(
    ref_broker: ReferenceBroker, pki_files: Pki, site: str, tmp_path: Path, protocol: str
) -> None:
    a, b = pki_files.device_a, pki_files.device_b
    inbox = Inbox()
    consumer = subscriber(
        ref_broker, pki_files.ca, pki_files.consumer, [f"{PREFIX}/{site}/#"], inbox
    )
    outbox = Outbox(tmp_path / "outbox.db", max_bytes=1 << 20, max_rows=1000)
    # Forged first, own second: once the own event arrives, the broker has dealt with
    # the forged one (one connection is processed in order).
    outbox.enqueue_many([event(site, b.name, "forged-by-a"), event(site, a.name, "own-1")])
    pub = publisher(ref_broker, pki_files.ca, a, outbox, site, protocol)
    pub.start()
    try:
        own = f"{PREFIX}/{site}/{a.name}/events/cam1"
        wait_until(lambda: inbox.payloads(own), TIMEOUT_S, "device A's own event")
        assert not [t for t in inbox.topics() if f"/{b.name}/" in t], inbox.topics()
        if protocol == "5":
            # MQTT 5 PUBACK carries the reason: 0x87 not authorised, counted as rejected.
            wait_until(lambda: pub.stats().rejected_total == 1, TIMEOUT_S, "the refusal")
        else:
            # MQTT 3.1.1 has no PUBACK reason: the broker acknowledges and drops it.
            assert pub.stats().rejected_total == 0
    finally:
        pub.stop()
        consumer.stop()
        outbox.close()


def test_device_reads_only_its_own_commands(
    ref_broker: ReferenceBroker, pki_files: Pki, site: str, centre: RawClient
) -> None:
    a, b = pki_files.device_a, pki_files.device_b
    cmd_a = f"{PREFIX}/{site}/{a.name}/cmd/snapshot"
    cmd_b = f"{PREFIX}/{site}/{b.name}/cmd/snapshot"
    inbox_a, inbox_b = Inbox(), Inbox()
    # mosquitto 2.0 grants the subscriptions and filters on delivery (read access).
    sub_a = subscriber(
        ref_broker, pki_files.ca, a, [f"{PREFIX}/{site}/{b.name}/cmd/#", f"{PREFIX}/#"], inbox_a
    )
    sub_b = subscriber(ref_broker, pki_files.ca, b, [f"{PREFIX}/{site}/{b.name}/cmd/#"], inbox_b)
    try:
        assert centre.publish(cmd_b, b"for-b").value == 0
        assert centre.publish(cmd_a, b"for-a").value == 0
        wait_until(lambda: inbox_b.payloads(cmd_b), TIMEOUT_S, "B's own command (control)")
        wait_until(lambda: inbox_a.payloads(cmd_a), TIMEOUT_S, "A's own command")
        assert inbox_a.topics() and set(inbox_a.topics()) == {cmd_a}
    finally:
        sub_a.stop()
        sub_b.stop()


def test_consumer_reads_all_sites_but_cannot_speak_for_a_device(
    ref_broker: ReferenceBroker, pki_files: Pki, tmp_path: Path, centre: RawClient
) -> None:
    sites = [f"site{uuid.uuid4().hex[:8]}" for _ in range(2)]
    inbox = Inbox()
    consumer = subscriber(ref_broker, pki_files.ca, pki_files.consumer, [f"{PREFIX}/#"], inbox)
    pubs, boxes = [], []
    try:
        for site, device in zip(sites, (pki_files.device_a, pki_files.device_b), strict=True):
            box = Outbox(tmp_path / f"{site}.db", max_bytes=1 << 20, max_rows=1000)
            box.enqueue_many([event(site, device.name, f"{site}-e1")])
            pub = publisher(ref_broker, pki_files.ca, device, box, site)
            pub.start()
            pubs.append(pub)
            boxes.append(box)
        for site, device in zip(sites, (pki_files.device_a, pki_files.device_b), strict=True):
            topic = f"{PREFIX}/{site}/{device.name}/events/cam1"
            wait_until(lambda t=topic: inbox.payloads(t), TIMEOUT_S, f"event on {topic}")
        forged = f"{PREFIX}/{sites[0]}/{pki_files.device_a.name}/events/cam1"
        assert centre.publish(forged, b"forged").getName() == "Not authorized"
    finally:
        for pub in pubs:
            pub.stop()
        for box in boxes:
            box.close()
        consumer.stop()


# -- who may connect ----------------------------------------------------------------


def test_anonymous_clients_are_refused(ref_broker: ReferenceBroker, pki_files: Pki) -> None:
    ca = pki_files.ca
    assert probe_connect(ref_broker.port, ca, pki_files.device_a) == "connack 0"  # control
    assert probe_connect(ref_broker.port, ca).startswith("closed")  # TLS, no certificate
    assert probe_connect(ref_broker.port, ca, use_tls=False).startswith("closed")  # plain MQTT
    # The password listener: nothing, or a wrong password, is "not authorised" (5).
    port = ref_broker.password_port
    user = pki_files.password_user
    assert probe_connect(port, ca, username=user, password=pki_files.password) == "connack 0"
    assert probe_connect(port, ca) == "connack 5"
    assert probe_connect(port, ca, username=user, password="wrong") == "connack 5"
    assert probe_connect(port, ca, use_tls=False).startswith("closed")


def test_password_fallback_through_the_agents_client(
    ref_broker: ReferenceBroker, pki_files: Pki, site: str
) -> None:
    user = pki_files.password_user
    own = f"{PREFIX}/{site}/{user}/cmd/#"

    def with_password(password: str) -> Subscriber:
        return subscriber(
            ref_broker,
            pki_files.ca,
            None,
            [own],
            Inbox(),
            port=ref_broker.password_port,
            username=user,
            password=password,
        )

    with with_password(pki_files.password) as sub:
        assert sub.connected
    with pytest.raises(SubscriberError, match=r"[Nn]ot authori"):
        with_password("wrong")


@pytest.mark.parametrize("which", ["forged_a", "revoked", "expired"])
def test_bad_client_certificates_are_refused(
    ref_broker: ReferenceBroker, pki_files: Pki, which: str
) -> None:
    """Unknown CA (claiming device A's CN), revoked (in the CRL), expired: each refused,
    while device A's genuine certificate, made the same way, is accepted."""
    assert probe_connect(ref_broker.port, pki_files.ca, pki_files.device_a) == "connack 0"
    outcome = probe_connect(ref_broker.port, pki_files.ca, getattr(pki_files, which))
    assert outcome.startswith("closed"), outcome


def test_agent_refuses_a_broker_from_an_unknown_ca(
    ref_broker: ReferenceBroker, pki_files: Pki
) -> None:
    with pytest.raises(SubscriberError, match="certificate verify failed"):
        subscriber(ref_broker, pki_files.other_ca, pki_files.device_a, ["x/#"], Inbox())


def test_agent_refuses_a_broker_certificate_for_another_host(pki_files: Pki) -> None:
    for broker in _start(pki_files.dir / "wrong-name"):
        with pytest.raises(SubscriberError, match=r"mismatch|certificate verify failed"):
            subscriber(broker, pki_files.ca, pki_files.device_a, ["x/#"], Inbox())
        # Control: the same broker is accepted once host name checking is off, so the
        # only thing wrong was the name.
        with subscriber(
            broker, pki_files.ca, pki_files.device_a, ["x/#"], Inbox(), tls_insecure=True
        ) as sub:
            assert sub.connected


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_agent_refuses_a_key_file_others_can_access(
    pki_files: Pki, tmp_path: Path, mode: int
) -> None:
    key = tmp_path / "device.key"
    key.write_bytes(pki_files.device_a.key.read_bytes())
    key.chmod(mode)
    settings = MqttSettings(
        host="127.0.0.1",
        port=free_loopback_port(),
        client_id="never-connects",
        tls_ca_file=pki_files.ca,
        tls_cert_file=pki_files.device_a.cert,
        tls_key_file=key,
    )
    outbox = Outbox(tmp_path / "outbox.db", max_bytes=1 << 20, max_rows=1000)
    try:
        with pytest.raises(InsecureKeyFileError) as caught:
            Publisher(settings, outbox, Topics("x"), birth_payload={})
        message = str(caught.value)
        assert str(key) in message and "chmod 600" in message and f"{mode:04o}" in message
        key.chmod(0o600)  # control: the same file is accepted once it is private
        Publisher(settings, outbox, Topics("x"), birth_payload={})
    finally:
        outbox.close()
