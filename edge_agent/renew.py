"""Certificate renewal while the agent runs (docs/enrolment.md).

Certificates are short-lived (days), so a stolen or retired device falls off by itself
without waiting for the broker to re-read a CRL. At ``renew_at_fraction`` of its
lifetime the agent makes a new key beside the old one (``device.key.new``, 0600), sends a
CSR on ``{root}/renew/request`` over its own mTLS link (the broker lets only this
certificate's identity write there), and ``edge-provision serve`` answers with the
``renew`` command. The answer is checked (our new key, our id), the files are swapped
with ``os.replace`` and the MQTT link reconnects with the new certificate: no restart,
the session and the outbox untouched.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from edge_agent import crypto
from edge_agent.enrol import PROTOCOL_VERSION, RENEW_COMMAND, inside, renew_topic, write_atomic
from edge_agent.files import fsync_path
from edge_agent.remote import MAX_JSON_DEPTH, MAX_PAYLOAD_BYTES, Reply
from edge_agent.strict_json import nests_deeper_than

__all__ = ["RenewLink", "Renewer"]

_log = logging.getLogger(__name__)


class RenewLink(Protocol):
    """What the renewer needs from the MQTT side (the agent's Publisher)."""

    @property
    def connected(self) -> bool: ...

    def publish_volatile(
        self, topic: str, payload: bytes, *, content_type: str, expiry_s: float, qos: int = 0
    ) -> bool: ...

    def reload_tls(self) -> None: ...


def _pair_matches(cert_file: Path, key_file: Path) -> bool:
    try:
        info = crypto.cert_info(cert_file.read_bytes())
        return info.public_key_pem == crypto.key_public_pem(key_file.read_bytes())
    except (OSError, ValueError):
        return False


def repair_identity(cert_file: Path, key_file: Path) -> str | None:
    """At start: when a power cut split a renewal (the key switched, the certificate not),
    finish it with ``.new`` or take it back with ``.old``; what was done, or None when the
    pair matched (or nothing can make it match: TLS set-up then says so)."""
    if not cert_file.exists() or not key_file.exists() or _pair_matches(cert_file, key_file):
        return None
    for suffix, what in ((".new", "finished"), (".old", "taken back")):
        candidate = cert_file.with_name(cert_file.name + suffix)
        key_candidate = key_file.with_name(key_file.name + suffix)
        if candidate.exists() and _pair_matches(candidate, key_file):
            candidate.replace(cert_file)
        elif candidate.exists() and key_candidate.exists():
            if not _pair_matches(candidate, key_candidate):
                continue
            key_candidate.replace(key_file)
            candidate.replace(cert_file)
        else:
            continue
        fsync_path(cert_file.parent)
        done = f"a certificate renewal cut short was {what} ({cert_file}, {key_file})"
        _log.warning("%s", done)
        return done
    return None


class Renewer:
    """Asks for a new certificate when one is due and installs the answer."""

    COMMAND = RENEW_COMMAND

    def __init__(
        self,
        *,
        device_id: str,
        topic_root: str,
        cert_file: Path,
        key_file: Path,
        link: RenewLink,
        renew_at_fraction: float,
        retry_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < renew_at_fraction < 1:
            raise ValueError("renew_at_fraction must be between 0 and 1")
        self.device_id = device_id
        self.topic = renew_topic(topic_root)
        self.cert_file = cert_file
        self.key_file = key_file
        self.new_key_file = inside(key_file.parent, key_file.name + ".new")
        self.new_cert_file = inside(cert_file.parent, cert_file.name + ".new")
        self.old_key_file = inside(key_file.parent, key_file.name + ".old")
        self.old_cert_file = inside(cert_file.parent, cert_file.name + ".old")
        repair_identity(cert_file, key_file)
        self._link = link
        self._fraction = renew_at_fraction
        self._retry_s = retry_s
        self._clock = clock  # the certificate's validity is wall time
        self._monotonic = monotonic  # the retry interval is not: NTP may step the clock
        self._lock = threading.Lock()
        self._asked_at: float | None = None  # monotonic
        self._renew_at: datetime | None = None
        self.renewals = 0

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), timezone.utc)

    def due(self) -> bool:
        """Past ``renew_at_fraction`` of the certificate's lifetime (read once per
        certificate: :meth:`tick` runs every second)."""
        if self._renew_at is None:
            info = crypto.cert_info(self.cert_file.read_bytes())
            self._renew_at = info.renew_at(self._fraction)
        return self._now() >= self._renew_at

    def tick(self) -> bool:
        """Ask for a renewal if one is due and none was asked recently; True if asked."""
        with self._lock:
            if self._asked_at is not None and self._monotonic() - self._asked_at < self._retry_s:
                return False
            if not self._link.connected or not self.due():
                return False
            key_pem = crypto.new_key_pem()
            try:
                write_atomic(self.new_key_file, key_pem, 0o600)
            except OSError as error:  # a full disk: asked again after retry_s, not every tick
                self._asked_at = self._monotonic()
                _log.error(
                    "certificate renewal not asked: cannot write the new key %s: %s; "
                    "trying again in %.0f s",
                    self.new_key_file,
                    error.strerror or error,
                    self._retry_s,
                )
                return False
            body = {
                "v": PROTOCOL_VERSION,
                "csr": crypto.new_csr_pem(key_pem, self.device_id).decode(),
            }
            sent = self._link.publish_volatile(
                self.topic,
                json.dumps(body).encode(),
                content_type="application/json",
                expiry_s=self._retry_s,
                qos=1,
            )
            if sent:
                self._asked_at = self._monotonic()
                _log.info("certificate renewal requested on %s", self.topic)
            return sent

    def on_certificate(self, payload: bytes) -> Reply:
        """The ``renew`` command: a certificate for the key we made in :meth:`tick`."""
        if len(payload) > MAX_PAYLOAD_BYTES:  # a certificate chain is a few kB
            return Reply.error(f"bad request: payload of {len(payload)} bytes")
        try:
            if nests_deeper_than(payload.decode("utf-8"), MAX_JSON_DEPTH):
                return Reply.error(f"bad request: JSON nested deeper than {MAX_JSON_DEPTH} levels")
            body = json.loads(payload)
            cert_pem = str(body["cert"]).encode()
            info = crypto.cert_info(cert_pem)
        except (ValueError, KeyError, TypeError) as error:  # UnicodeDecodeError too
            return Reply.error(f"renewal answer cannot be read: {error}")
        with self._lock:
            if not self.new_key_file.exists():
                return Reply.error("no renewal is pending")
            key_pem = self.new_key_file.read_bytes()
            if info.public_key_pem != crypto.key_public_pem(key_pem):
                return Reply.error("the certificate is not for the pending key")
            if info.common_name != self.device_id:
                return Reply.error(f"the certificate names {info.common_name!r}")
            old_cert, old_key = self.cert_file.read_bytes(), self.key_file.read_bytes()
            # Both new files on disk before either is switched, the old pair kept beside
            # them: a power cut at any point leaves a pair `repair_identity` can complete
            # or take back at the next start (key first, then certificate: a reconnect in
            # between is refused by TLS set-up and retried).
            try:
                write_atomic(self.new_cert_file, cert_pem, 0o644)
                write_atomic(self.old_key_file, old_key, 0o600)
                write_atomic(self.old_cert_file, old_cert, 0o644)
            except OSError as error:  # a full disk: nothing switched, the pending key kept
                self.new_cert_file.unlink(missing_ok=True)
                problem = f"cannot keep the renewed certificate: {error.strerror or error}"
                _log.error("%s; the current one stays in use", problem)
                return Reply.error(f"{problem}; the current one stays in use, send it again")
            self.new_key_file.replace(self.key_file)
            self.new_cert_file.replace(self.cert_file)
            fsync_path(self.cert_file.parent)
            try:
                self._link.reload_tls()
            except ValueError as error:
                _log.error("renewed certificate not usable (%s); keeping the old one", error)
                write_atomic(self.key_file, old_key, 0o600)
                write_atomic(self.cert_file, old_cert, 0o644)
                return Reply.error(str(error))
            # Not before retry_s again, even if the new certificate is already due (a
            # lifetime shorter than the CA's back-dating): no renewal storm.
            self._asked_at = self._monotonic()
            self._renew_at = info.renew_at(self._fraction)
            self.renewals += 1
        _log.info("certificate renewed, valid until %s; reconnecting", info.not_after)
        return Reply.json({"ok": True, "not_after": info.not_after.isoformat()})
