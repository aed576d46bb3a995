"""The city side of enrolment and renewal: check, sign, answer (docs/enrolment.md).

:class:`Provisioner` holds the logic (no network): an enrolment request (token + CSR)
becomes a certificate named by the *inventory* (never by the CSR) and the device's
config; a renewal request arriving on ``{prefix}/{site}/{device}/renew/request`` (which
the broker lets only the certificate ``device`` write) becomes a new certificate for
that same device. :func:`serve` connects it to the broker as the ``provisioner``
identity; ``edge-provision sign`` uses it for requests carried on a USB stick.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from edge_agent.enrol import PROTOCOL_VERSION, RENEW_COMMAND, enrol_topics
from edge_agent.ids import ID_PATTERN, check_id, inside, write_atomic
from edge_agent.mqtt.client import new_client
from edge_agent.mqtt.settings import MqttSettings
from provisioning import pki
from provisioning.tokens import TokenRefused, TokenStore

__all__ = ["DeviceRecord", "Provisioner", "serve"]

_log = logging.getLogger("edge_provision")


def _answer(**body: object) -> bytes:
    return json.dumps({"v": PROTOCOL_VERSION, **body}).encode()


def refusal(why: str) -> bytes:
    return _answer(ok=False, error=why)


@dataclass(frozen=True)
class DeviceRecord:
    """What ``edge-provision inventory`` left for one device in the state directory."""

    site_id: str
    device_id: str
    config_yaml: str
    certificate_days: int


class Provisioner:
    """The CA and token store in one state directory (``edge-provision init``)."""

    def __init__(self, state: Path, *, valid_for: timedelta | None = None) -> None:
        self.state = state
        self.ca = pki.load_credential(state / "ca.crt", state / "ca.key")
        self.tokens = TokenStore(state / "tokens.json")
        self.valid_for = valid_for  # overrides each device's certificate_days (labs, tests)
        self.signed = 0

    def device(self, device_id: str) -> DeviceRecord:
        folder = inside(self.state / "devices", check_id(device_id, "device_id"))
        policy = json.loads((folder / "policy.json").read_text(encoding="utf-8"))
        return DeviceRecord(
            site_id=policy["site_id"],
            device_id=device_id,
            config_yaml=(folder / "config.yaml").read_text(encoding="utf-8"),
            certificate_days=int(policy["certificate_days"]),
        )

    def _sign(self, record: DeviceRecord, csr_pem: bytes) -> bytes:
        valid_for = self.valid_for or timedelta(days=record.certificate_days)
        cert = pki.sign_csr(self.ca, csr_pem, record.device_id, valid_for=valid_for)
        self.signed += 1
        _log.info("signed %s for %s", record.device_id, valid_for)
        return pki.pem_of(cert)

    def enrol(self, payload: bytes, *, token_id: str | None = None) -> bytes:
        """An enrolment request → the answer (never raises for a bad request)."""
        try:
            body = json.loads(payload)
            token, csr_pem = str(body["token"]), str(body["csr"]).encode()
        except (ValueError, KeyError, TypeError):
            return refusal("malformed request: expected JSON with token and csr")
        try:
            key_id = pki.csr_key_id(csr_pem)  # a bad CSR must not use the token up
        except ValueError as error:
            return refusal(str(error))
        try:
            grant = self.tokens.redeem(token, token_id=token_id, key_id=key_id)
        except TokenRefused as error:
            _log.warning("enrolment refused (token %s): %s", token_id or "?", error)
            return refusal(str(error))
        try:
            record = self.device(grant.device_id)
            cert_pem = self._sign(record, csr_pem)
        except (ValueError, OSError, KeyError) as error:
            _log.warning("enrolment of %s refused: %s", grant.device_id, error)
            return refusal(f"cannot sign: {error}")
        _log.info(
            "enrolled %s (site %s, token %s)", record.device_id, record.site_id, grant.token_id
        )
        return _answer(
            ok=True,
            cert=cert_pem.decode(),
            ca=self.ca.cert_pem.decode(),
            config=record.config_yaml,
        )

    def renew(self, site_id: str, device_id: str, payload: bytes) -> bytes:
        """A renewal request from ``device_id`` (the broker vouches for the identity)."""
        try:
            record = self.device(device_id)
        except (ValueError, OSError, KeyError) as error:
            return refusal(f"unknown device: {error}")
        if record.site_id != site_id:
            return refusal(f"{device_id} belongs to site {record.site_id}, not {site_id}")
        try:
            body = json.loads(payload)
            cert_pem = self._sign(record, str(body["csr"]).encode())
        except (ValueError, KeyError, TypeError) as error:
            return refusal(f"cannot sign: {error}")
        return _answer(ok=True, cert=cert_pem.decode())


def serve(
    provisioner: Provisioner,
    settings: MqttSettings,
    *,
    topic_prefix: str = "city",
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Answer enrolment and renewal requests until ``stop`` is set."""
    stop = stop or threading.Event()
    client = new_client(settings, clean_session=True)
    enrol_filter = enrol_topics("+")[0]
    renew_filter = f"{topic_prefix}/+/+/renew/request"

    def on_connect(c: Any, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            _log.error("broker refused the provisioner: %s", reason)
            return
        c.subscribe([(enrol_filter, 1), (renew_filter, 1)])

    def on_subscribe(_c: Any, _u: object, _mid: int, reasons: Any, _p: object) -> None:
        if any(r.is_failure for r in reasons):
            _log.error("broker refused the provisioner's subscriptions: %s", reasons)
        elif ready is not None:
            ready.set()
        _log.info("serving enrolment on %s and renewal on %s", enrol_filter, renew_filter)

    def on_message(c: Any, _u: object, message: Any) -> None:
        try:
            answer(c, message)
        except Exception:  # a bug or a broken state file must not stop the service
            _log.exception("request on %s not answered", message.topic)

    def answer(c: Any, message: Any) -> None:
        levels = str(message.topic).split("/")
        payload = bytes(message.payload)
        if len(levels) == 3 and levels[0] == "provision" and levels[2] == "request":
            token_id = levels[1]
            c.publish(
                enrol_topics(token_id)[1], provisioner.enrol(payload, token_id=token_id), qos=1
            )
        elif len(levels) == 5 and levels[3:] == ["renew", "request"]:
            site_id, device_id = levels[1], levels[2]
            if not (ID_PATTERN.fullmatch(site_id) and ID_PATTERN.fullmatch(device_id)):
                return
            root = "/".join(levels[:3])
            c.publish(
                f"{root}/cmd/{RENEW_COMMAND}", provisioner.renew(site_id, device_id, payload), qos=1
            )

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
    client.loop_start()
    try:
        stop.wait()
    finally:
        client.disconnect()
        client.loop_stop()


def write_device(
    state: Path,
    site_id: str,
    device_id: str,
    config: dict[str, Any],
    *,
    certificate_days: int,
    acl_lines: list[str],
) -> Path:
    """The device's folder in the state directory: config.yaml, policy.json, acl.txt."""
    folder = inside(state / "devices", check_id(device_id, "device_id"))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(
        inside(folder, "config.yaml"), yaml.safe_dump(config, sort_keys=False).encode(), 0o600
    )
    policy = {"site_id": site_id, "certificate_days": certificate_days}
    write_atomic(inside(folder, "policy.json"), json.dumps(policy).encode(), 0o600)
    write_atomic(inside(folder, "acl.txt"), ("\n".join(acl_lines) + "\n").encode(), 0o644)
    return folder
