"""Enrolment on the device: key and CSR made here, certificate and config fetched over
the broker or carried on a USB stick (docs/enrolment.md).

Rules this module keeps (and ``provisioning`` relies on):

- ids match :data:`ID_PATTERN` (lower-case letters, digits, ``-``; never ``/ + #``), so
  an id is always exactly one MQTT topic level and one file name;
- every file is written inside its directory (:func:`inside` resolves and checks) and
  atomically (temp file + ``os.replace``): a power cut leaves the old file or the new;
- the private key is created owner-only in the device directory and read back only to
  make a CSR or match a certificate to it; requests carry the CSR, never the key.

The wire format (JSON) is shared with ``edge-provision``: a request is
``{"v": 1, "token": ..., "csr": PEM}`` (enrolment) or ``{"v": 1, "csr": PEM}``
(renewal); a response ``{"v": 1, "ok": true, "cert": PEM, "ca": PEM, "config": YAML}``
or ``{"v": 1, "ok": false, "error": why}``.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge_agent import crypto
from edge_agent.ids import ID_PATTERN, check_id, inside, write_atomic
from edge_agent.mqtt.client import new_client
from edge_agent.mqtt.settings import MqttSettings
from edge_agent.strict_json import AmbiguousJSON, loads_strict, nests_deeper_than
from edge_agent.yaml_text import load_yaml

__all__ = [
    "ID_PATTERN",
    "RENEW_COMMAND",
    "DeviceFiles",
    "Enrolment",
    "EnrolmentError",
    "check_id",
    "enrol_over_broker",
    "enrol_request",
    "enrol_topics",
    "inside",
    "parse_response",
    "parse_token",
    "read_bundle",
    "write_atomic",
]

TOKEN_PATTERN = re.compile(r"^(?P<id>enrol-[a-f0-9]{16})\.(?P<secret>[A-Za-z0-9_-]{20,100})$")
RENEW_COMMAND = "renew"
"""The command name under which ``edge-provision serve`` returns a renewed certificate."""
PROTOCOL_VERSION = 1


class EnrolmentError(Exception):
    """Enrolment cannot go on; the message says why and what to do."""


def parse_token(token: str) -> tuple[str, str]:
    """``(token_id, secret)`` of an enrolment token ``<16 hex>.<secret>``."""
    match = TOKEN_PATTERN.fullmatch(token.strip())
    if match is None:
        raise ValueError("the enrolment token is malformed: expected enrol-<16 hex>.<secret>")
    return match["id"], match["secret"]


def enrol_topics(token_id: str) -> tuple[str, str]:
    """(request, response) topics of one enrolment: the broker's enrolment listener
    lets a client whose id is ``token_id`` use these two and nothing else."""
    return f"provision/{token_id}/request", f"provision/{token_id}/response"


def renew_topic(root: str) -> str:
    """Where a device asks for a renewed certificate: under its own root, which the
    broker lets only that certificate's identity write."""
    return f"{root}/renew/request"


def enrol_request(token: str, csr_pem: bytes) -> bytes:
    return json.dumps({"v": PROTOCOL_VERSION, "token": token, "csr": csr_pem.decode()}).encode()


@dataclass(frozen=True)
class Enrolment:
    """What the city side returns: the signed certificate, the CA, the agent config."""

    cert_pem: bytes
    ca_pem: bytes
    config_yaml: str


MAX_ANSWER_DEPTH = 8  # {"v", "ok", "cert", "ca", "config"}: one level


def parse_response(payload: bytes) -> Enrolment:
    try:
        text = payload.decode("utf-8")
        if nests_deeper_than(text, MAX_ANSWER_DEPTH):
            raise EnrolmentError(
                f"the city side's answer is nested deeper than {MAX_ANSWER_DEPTH} levels"
            )
        body = loads_strict(text)
    except AmbiguousJSON as error:
        raise EnrolmentError(f"the city side's answer is ambiguous: {error}") from None
    except ValueError:  # UnicodeDecodeError too
        raise EnrolmentError("the city side's answer is not JSON") from None
    if not isinstance(body, dict) or body.get("v") != PROTOCOL_VERSION:
        raise EnrolmentError("the city side's answer has an unknown format")
    if not body.get("ok"):
        raise EnrolmentError(f"the city side refused: {body.get('error', 'no reason given')}")
    try:
        return Enrolment(
            str(body["cert"]).encode(), str(body.get("ca", "")).encode(), str(body["config"])
        )
    except KeyError as missing:
        raise EnrolmentError(f"the city side's answer lacks {missing}") from None


def read_bundle(path: Path) -> tuple[str, str]:
    """The device id and token of a USB-stick bundle (``DEVICE.enrol.json`` from
    ``edge-provision``); :class:`EnrolmentError` saying why it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
        if nests_deeper_than(text, MAX_ANSWER_DEPTH):
            raise ValueError(f"nested deeper than {MAX_ANSWER_DEPTH} levels")
        body = loads_strict(text)
    except ValueError as error:  # not UTF-8, not JSON, a key twice, too deep
        raise EnrolmentError(f"{path} is not an enrolment bundle: {error}") from None
    if not isinstance(body, dict) or not all(
        isinstance(body.get(key), str) for key in ("device_id", "token")
    ):
        raise EnrolmentError(
            f'{path} is not an enrolment bundle: expected {{"device_id": ..., "token": ...}}'
        )
    return check_id(body["device_id"], "device_id"), body["token"]


class DeviceFiles:
    """Where enrolment writes: ``config.yaml`` in the config directory (``/etc/edge-agent``),
    the identity — ``device.key`` (0600, made here), ``device.crt``, ``ca.crt`` — in
    ``identity_dir`` (the same directory unless given). Under systemd the identity lives in
    the state directory, the one place the sandboxed agent may write when it renews."""

    KEY = "device.key"
    NEW_KEY = "device.key.new"
    CERT = "device.crt"
    CA = "ca.crt"
    CONFIG = "config.yaml"
    IDENTITY = frozenset({KEY, NEW_KEY, CERT, CA})

    def __init__(self, directory: Path, identity_dir: Path | None = None) -> None:
        self.dir = directory
        self.identity_dir = identity_dir or directory
        self.extra_owned: list[Path] = []  # more files made here for the service user
        for folder in {directory, self.identity_dir}:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, name: str) -> Path:
        return inside(self.identity_dir if name in self.IDENTITY else self.dir, name)

    def page_password(self) -> str | None:
        """When the installed config turns the technician's page on and it has no password
        yet: a new random one, stored as its slow hash; returned to be shown once."""
        import secrets

        from edge_agent.config import ConfigError, load_config
        from edge_agent.web.auth import write_password_file
        from edge_agent.web.server import default_password_file

        config_path = self.path(self.CONFIG)
        try:
            web = load_config(config_path).web
        except ConfigError:
            return None  # install() checked what it needs; check-config says the rest
        password_file = default_password_file(web, config_path)
        if not web.enabled or password_file is None or password_file.exists():
            return None
        password = secrets.token_urlsafe(12)  # 16 characters, 96 bits
        write_password_file(password_file, password)
        self.extra_owned.append(password_file)
        return password

    def give_to(self, user: str) -> None:
        """Run as root for a service user: the identity and the config become that user's
        (the agent reads its key and replaces it when it renews)."""
        import pwd

        entry = pwd.getpwnam(user)
        owned = [
            self.identity_dir,
            *(self.path(n) for n in (*self.IDENTITY, self.CONFIG)),
            *self.extra_owned,
        ]
        for path in owned:
            if path.exists():
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def new_key(self, name: str = KEY) -> bytes:
        """A new private key written owner-only to ``name``; returns its PEM (for the CSR)."""
        key_pem = crypto.new_key_pem()
        write_atomic(self.path(name), key_pem, 0o600)
        return key_pem

    def csr(self, common_name: str, *, key_name: str = KEY) -> bytes:
        return crypto.new_csr_pem(self.path(key_name).read_bytes(), common_name)

    def matches_key(self, cert_pem: bytes, key_name: str = KEY) -> bool:
        key_pem = self.path(key_name).read_bytes()
        return crypto.cert_info(cert_pem).public_key_pem == crypto.key_public_pem(key_pem)

    def install(self, enrolment: Enrolment) -> Path:
        """Check the certificate is for our key and our device id, then write it, the CA
        and the config (TLS paths pointing here, client id = certificate identity)."""
        try:
            config: Any = load_yaml(enrolment.config_yaml)  # a key twice, too deep: refused
            info = crypto.cert_info(enrolment.cert_pem)
        except (yaml.YAMLError, ValueError, RecursionError) as error:
            raise EnrolmentError(f"the city side's answer cannot be read: {error}") from None
        if not isinstance(config, dict):
            raise EnrolmentError("the config from the city side is not a mapping")
        mqtt = config.setdefault("mqtt", {})
        if not isinstance(mqtt, dict) or not isinstance(mqtt.setdefault("tls", {}), dict):
            what = "mqtt" if not isinstance(mqtt, dict) else "mqtt.tls"
            raise EnrolmentError(f"the config from the city side: {what} is not a mapping")
        device_id = check_id(str(config.get("device_id")), "device_id")
        if info.common_name != device_id:
            raise EnrolmentError(
                f"the certificate names {info.common_name!r}, the config {device_id!r}"
            )
        if not self.matches_key(enrolment.cert_pem):
            raise EnrolmentError("the certificate is not for this device's key; enrol again")
        mqtt["client_id"] = device_id  # the broker binds the client id to the certificate
        mqtt["tls"].update(
            ca_file=str(self.path(self.CA)),
            cert_file=str(self.path(self.CERT)),
            key_file=str(self.path(self.KEY)),
        )
        if enrolment.ca_pem:
            write_atomic(self.path(self.CA), enrolment.ca_pem, 0o644)
        write_atomic(self.path(self.CERT), enrolment.cert_pem, 0o644)
        config_path = self.path(self.CONFIG)
        text = yaml.safe_dump(config, sort_keys=False)
        write_atomic(config_path, text.encode(), 0o600)  # may hold camera credentials
        return config_path


def enrol_over_broker(
    settings: MqttSettings, token_id: str, request: bytes, timeout_s: float
) -> bytes:
    """Send ``request`` on this token's request topic and return the answer.

    ``settings`` reach the broker's enrolment listener (TLS, server verified, no client
    certificate yet) with ``client_id = token_id``.
    """
    request_topic, response_topic = enrol_topics(token_id)
    answered = threading.Event()
    failed: list[str] = []
    answer: list[bytes] = []
    client = new_client(settings, clean_session=True)

    def on_connect(c: Any, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            failed.append(f"the broker refused the enrolment connection: {reason}")
            answered.set()
        else:
            c.subscribe(response_topic, qos=1)

    def on_subscribe(c: Any, _u: object, _mid: int, reasons: Any, _p: object) -> None:
        if any(r.is_failure for r in reasons):
            failed.append("the broker refused the enrolment subscription")
            answered.set()
        else:
            c.publish(request_topic, request, qos=1)

    def on_message(_c: Any, _u: object, message: Any) -> None:
        answer.append(bytes(message.payload))
        answered.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(settings.host, settings.port, keepalive=settings.keepalive_s)
    except OSError as error:
        raise EnrolmentError(
            f"cannot reach the broker {settings.host}:{settings.port}: {error}"
        ) from None
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            raise EnrolmentError(
                f"no answer from the city side within {timeout_s:g} s: is `edge-provision"
                " serve` running, and is the token right?"
            )
    finally:
        client.disconnect()
        client.loop_stop()
    if failed:
        raise EnrolmentError(failed[0])
    return answer[0]
