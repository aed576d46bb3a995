"""The certificate renewer against what a broken or hostile centre sends and a full disk
(edge_agent/renew.py): a clear refusal, the device's identity untouched, the pending key
kept; and the agent's housekeeping goes on when one of its steps keeps failing."""

from __future__ import annotations

import errno
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

import edge_agent.renew as renew_module
from edge_agent.enrol import DeviceFiles
from edge_agent.remote import MAX_ERROR_CHARS
from edge_agent.renew import Renewer
from provisioning import pki

DEVICE = "pole-1"


class Link:
    connected = True

    def __init__(self) -> None:
        self.asked: list[bytes] = []
        self.tls_reloads = 0

    def publish_volatile(
        self, topic: str, payload: bytes, *, content_type: str, expiry_s: float, qos: int = 0
    ) -> bool:
        self.asked.append(payload)
        return True

    def reload_tls(self) -> None:
        self.tls_reloads += 1


class Device:
    """A device with its certificate (a day long) and a renewer whose clock is past the
    renewal point."""

    def __init__(self, directory: Path) -> None:
        self.ca = pki.make_ca()
        files = DeviceFiles(directory)
        files.new_key()
        self.key, self.cert = directory / "device.key", directory / "device.crt"
        self.cert.write_bytes(self.pem(files.csr(DEVICE)))
        self.link = Link()
        self.now_s = renew_module.crypto.cert_info(self.cert.read_bytes()).not_after.timestamp()
        self.now_s -= 3600.0  # an hour before it expires
        self.mono_s = 1000.0
        self.renewer = Renewer(
            device_id=DEVICE,
            topic_root=f"city/s/{DEVICE}",
            cert_file=self.cert,
            key_file=self.key,
            link=self.link,
            renew_at_fraction=0.5,
            retry_s=300.0,
            clock=lambda: self.now_s,
            monotonic=lambda: self.mono_s,
        )

    def advance(self, seconds: float) -> None:
        self.now_s += seconds
        self.mono_s += seconds

    def pem(self, csr: bytes) -> bytes:
        cert = pki.sign_csr(self.ca, csr, DEVICE, valid_for=timedelta(days=1))
        return cert.public_bytes(pki.serialization.Encoding.PEM)

    def identity(self) -> tuple[bytes, bytes]:
        return self.key.read_bytes(), self.cert.read_bytes()


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 100_000 + b"]" * 100_000,  # json.loads raised RecursionError: an internal error
        b"\xff\xfe\xfd",
        b"x" * 1_048_576,
        b"[]",
        b'{"cert": 5}',
        b'{"cert": "-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n"}',
        json.dumps({"cert": "\u0000" * 10_000}).encode(),
    ],
    ids=["deep", "not-utf8", "1MB", "list", "number", "bad-pem", "nuls"],
)
def test_a_hostile_renewal_answer_is_refused_and_changes_nothing(
    tmp_path: Path, payload: bytes
) -> None:
    device = Device(tmp_path)
    assert device.renewer.tick()  # a renewal pending: its key on disk
    before = device.identity()
    reply = device.renewer.on_certificate(payload)
    body = json.loads(reply.payload)
    assert body["ok"] is False and len(body["error"]) <= MAX_ERROR_CHARS, body
    assert device.identity() == before and device.renewer.new_key_file.exists()
    assert device.renewer.renewals == 0 and device.link.tls_reloads == 0


def test_a_full_disk_when_the_renewed_certificate_is_kept_changes_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = Device(tmp_path)
    assert device.renewer.tick()
    csr = json.loads(device.link.asked[-1])["csr"].encode()
    answer = json.dumps({"cert": device.pem(csr).decode()}).encode()
    before = device.identity()
    real_write = renew_module.write_atomic

    def disk_full(path: Path, data: bytes, mode: int, **options: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(renew_module, "write_atomic", disk_full)
    body = json.loads(device.renewer.on_certificate(answer).payload)
    assert body["ok"] is False and "No space left on device" in body["error"]
    assert device.identity() == before and device.renewer.renewals == 0
    assert not device.renewer.new_cert_file.exists() and device.renewer.new_key_file.exists()
    monkeypatch.setattr(renew_module, "write_atomic", real_write)
    # Room again: the same answer, sent again, is installed.
    assert json.loads(device.renewer.on_certificate(answer).payload)["ok"] is True
    assert device.renewer.renewals == 1 and device.identity() != before


def test_a_renewal_that_cannot_write_its_key_is_said_and_asked_again_later_not_each_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """It raised OSError from the housekeeping thread every second (a traceback each time,
    and the stats after it in that thread never went out)."""
    device = Device(tmp_path)

    def disk_full(path: Path, data: bytes, mode: int, **options: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(renew_module, "write_atomic", disk_full)
    with caplog.at_level(logging.ERROR, logger="edge_agent"):
        assert device.renewer.tick() is False
        device.advance(1.0)
        assert device.renewer.tick() is False  # not again for retry_s
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "cannot write the new key" in error and "No space left on device" in error
    assert device.link.asked == []
    monkeypatch.undo()
    device.advance(300.0)
    assert device.renewer.tick() is True and len(device.link.asked) == 1


def test_a_backward_clock_step_does_not_hold_back_the_next_request(tmp_path: Path) -> None:
    """The retry interval was wall time: NTP setting the clock back ten hours after a
    request went unanswered held the next one back ten hours (with a certificate an hour
    from expiry)."""
    device = Device(tmp_path)
    assert device.renewer.tick() is True
    device.now_s -= 10 * 3600.0  # stepped back, still past the renewal point
    device.advance(300.0)
    assert device.renewer.tick() is True and len(device.link.asked) == 2
