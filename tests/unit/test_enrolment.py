"""Enrolment without a broker: ids, path containment, tokens, the inventory and the
USB-stick flow (docs/enrolment.md). The broker side is tests/integration/test_enrolment.py."""

from __future__ import annotations

import json
import os
import pwd
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import pytest
import yaml

from edge_agent.cli import main as agent_main
from edge_agent.config import load_config
from edge_agent.enrol import (
    DeviceFiles,
    Enrolment,
    EnrolmentError,
    parse_response,
    parse_token,
    read_bundle,
)
from edge_agent.ids import check_id, inside, write_atomic
from edge_agent.web.auth import verify_password
from provisioning import cli as provision_cli
from provisioning import pki
from provisioning.inventory import InventoryError, load_inventory
from provisioning.tokens import TokenRefused, TokenStore

# -- ids and paths -------------------------------------------------------------------


@pytest.mark.parametrize("good", ["a", "pole-117", "0", "s012-cam-01", "a" * 63])
def test_valid_ids(good: str) -> None:
    assert check_id(good) == good


@pytest.mark.parametrize(
    "bad",
    ["", "-a", "A", "dev-b/cmd", "dev+", "#", "a b", "a" * 64, "../x", "é", "a_b", "a.b", "a\n"],
)
def test_invalid_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid id"):
        check_id(bad, "device_id")


@pytest.mark.parametrize("escape", ["../escape", "/etc/passwd", "a/../../x", "", ".", "a/.."])
def test_inside_refuses_what_leaves_the_folder(tmp_path: Path, escape: str) -> None:
    with pytest.raises(ValueError, match="outside"):
        inside(tmp_path / "box", escape)


def test_inside_refuses_a_symlink_out(tmp_path: Path) -> None:
    (tmp_path / "box").mkdir()
    (tmp_path / "box" / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside"):
        inside(tmp_path / "box", "link/x")
    assert inside(tmp_path / "box", "ok.crt") == (tmp_path / "box" / "ok.crt").resolve()


def test_write_atomic_creates_owner_only_files_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "k", b"secret", 0o600)
    finally:
        os.umask(old)
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temp file left


def test_pki_issue_refuses_a_name_that_escapes_its_folder(tmp_path: Path) -> None:
    state = tmp_path / "pki"
    assert pki.main(["init", str(state)]) == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    assert pki.main(["issue", str(state), "../escape"]) == 2
    assert pki.main(["issue", str(state), "dev-b/cmd"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (state / "clients").exists()
    assert pki.main(["issue", str(state), "dev-b"]) == 0  # control
    assert (state / "clients" / "dev-b.crt").exists()


# -- tokens --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_a_token_is_used_once_and_stored_only_hashed(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token = store.issue("site-1", "pole-1", timedelta(days=1))
    token_id, secret = parse_token(token)
    stored = (tmp_path / "tokens.json").read_text() + store.passwd_path.read_text()
    assert secret not in stored
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600
    assert store.passwd_path.read_text().startswith(f"{token_id}:$7$101$")
    grant = store.redeem(token, token_id=token_id)
    assert (grant.site_id, grant.device_id) == ("site-1", "pole-1")
    with pytest.raises(TokenRefused, match="already used"):
        store.redeem(token)
    assert token_id not in store.passwd_path.read_text()  # the broker lets it in no more


def test_a_token_expires(tmp_path: Path) -> None:
    clock = Clock()
    store = TokenStore(tmp_path / "tokens.json", clock=clock)
    token = store.issue("site-1", "pole-1", timedelta(hours=1))
    clock.now += timedelta(hours=1)
    with pytest.raises(TokenRefused, match="expired"):
        store.redeem(token)
    clock.now -= timedelta(seconds=1)
    assert store.redeem(token).device_id == "pole-1"  # control: a second earlier, fine


def test_a_wrong_or_foreign_token_is_refused(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token = store.issue("site-1", "pole-1", timedelta(days=1))
    token_id, _ = parse_token(token)
    with pytest.raises(TokenRefused, match="unknown"):
        store.redeem(f"{token_id}.{'A' * 43}")
    with pytest.raises(TokenRefused, match="this enrolment topic"):
        store.redeem(token, token_id="enrol-" + "0" * 16)
    with pytest.raises(TokenRefused, match="malformed"):
        store.redeem("nonsense")
    assert store.redeem(token).device_id == "pole-1"  # the failures used nothing up


# -- inventory -----------------------------------------------------------------------


def _inventory(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "site_id": "police-post-117",
        "broker": {"host": "broker.city.example"},
        "devices": [
            {
                "device_id": "pp117-pi-01",
                "location": {"description": "gate pole", "lat": -6.2, "lon": 106.8},
                "cameras": [
                    {
                        "id": "gate",
                        "kind": "opencv",
                        "uri": "rtsp://10.0.0.9/main",
                        "zones": [{"name": "yard", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                    }
                ],
            }
        ],
    }
    data.update(changes)
    return data


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_inventory_makes_a_config_the_agent_loads(tmp_path: Path) -> None:
    inventory = load_inventory(_write(tmp_path, _inventory()))
    config = inventory.agent_config(inventory.devices[0])
    assert config["mqtt"]["client_id"] == "pp117-pi-01"
    assert config["cameras"][0]["source"] == {"kind": "opencv", "uri": "rtsp://10.0.0.9/main"}
    assert "topic write city/+/pp117-pi-01/#" in inventory.acl_lines(inventory.devices[0])


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"site_id": "Post/117"}, "not a valid id"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
        ({"devices": [{"device_id": "dev-b/cmd", "cameras": []}]}, "not a valid id"),
        (
            {
                "devices": [
                    {"device_id": "provisioner", "cameras": [{"id": "c", "kind": "picamera2"}]}
                ]
            },
            "reserved",
        ),
        (
            {"devices": [{"device_id": "enrol-1", "cameras": [{"id": "c", "kind": "picamera2"}]}]},
            "reserved",
        ),
        (
            {"devices": [{"device_id": "a", "cameras": [{"id": "c", "kind": "opencv"}]}]},
            "needs a uri",
        ),
        ({"certificate_days": 400}, "less than or equal to 90"),
    ],
)
def test_inventory_problems_are_refused(
    tmp_path: Path, change: dict[str, object], problem: str
) -> None:
    with pytest.raises(InventoryError, match=problem):
        load_inventory(_write(tmp_path, _inventory(**change)))


def test_repeated_device_ids_are_refused(tmp_path: Path) -> None:
    data = _inventory()
    data["devices"] = [*data["devices"], *data["devices"]]  # type: ignore[misc]
    with pytest.raises(InventoryError, match="repeated"):
        load_inventory(_write(tmp_path, data))


# -- the USB stick -------------------------------------------------------------------


def test_usb_stick_flow_keeps_the_key_on_the_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, usb, etc = tmp_path / "state", tmp_path / "usb", tmp_path / "device" / "etc"
    assert provision_cli.main(["init", str(state)]) == 0
    assert (
        provision_cli.main(
            ["inventory", str(state), str(_write(tmp_path, _inventory())), "--usb", str(usb)]
        )
        == 0
    )
    bundle = usb / "pp117-pi-01.enrol.json"
    assert bundle.stat().st_mode & 0o777 == 0o600
    # Step 1 on the device: key made here, CSR onto the stick.
    assert agent_main(["enroll", "--bundle", str(bundle), "--dir", str(etc)]) == 0
    request = usb / "pp117-pi-01.request.json"
    assert "PRIVATE KEY" not in request.read_text()
    assert (etc / "device.key").stat().st_mode & 0o777 == 0o600
    # At the city side.
    assert provision_cli.main(["sign", str(state), str(request)]) == 0
    # Step 2 on the device.
    assert agent_main(["enroll", "--bundle", str(bundle), "--dir", str(etc)]) == 0
    config = load_config(etc / "config.yaml")
    assert config.client_id == config.device_id == "pp117-pi-01"
    assert (
        config.mqtt.tls is not None and config.mqtt.tls.key_file == (etc / "device.key").resolve()
    )
    key = (etc / "device.key").read_text()
    for path in [*usb.iterdir(), *state.rglob("*")]:
        if path.is_file():
            assert key not in path.read_text(errors="replace"), path
    # Another device with the same stick: the token is spent for any other key.
    assert agent_main(["enroll", "--bundle", str(bundle), "--dir", str(tmp_path / "thief")]) == 0
    assert provision_cli.main(["sign", str(state), str(request)]) == 2
    assert "already used" in capsys.readouterr().err


def test_the_usb_flow_tells_the_technician_where_the_key_is_who_the_device_is_and_what_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Step 1 names the directory the key really stays in (the identity directory, not
    --dir); step 2 names the device, its topics and the next command (docs/install.md)."""
    state, usb = tmp_path / "state", tmp_path / "usb"
    etc, identity = tmp_path / "device" / "etc", tmp_path / "device" / "identity"
    assert provision_cli.main(["init", str(state)]) == 0
    site = _write(tmp_path, _inventory())
    assert provision_cli.main(["inventory", str(state), str(site), "--usb", str(usb)]) == 0
    bundle = usb / "pp117-pi-01.enrol.json"
    where = ["--dir", str(etc), "--identity-dir", str(identity)]
    capsys.readouterr()
    assert agent_main(["enroll", "--bundle", str(bundle), *where]) == 0
    assert f"the key stays in {identity})" in capsys.readouterr().out
    assert provision_cli.main(["sign", str(state), str(usb / "pp117-pi-01.request.json")]) == 0
    capsys.readouterr()
    assert agent_main(["enroll", "--bundle", str(bundle), *where]) == 0
    out = capsys.readouterr().out
    assert "this device is police-post-117/pp117-pi-01" in out
    assert "city/police-post-117/pp117-pi-01/" in out
    next_step = out.split("next: ", 1)[1].splitlines()[0]  # "sudo -u edge-agent …" as root
    assert next_step.endswith(f"edge-agent selftest --config {etc / 'config.yaml'}")


def test_a_certificate_for_another_key_or_device_is_not_installed(tmp_path: Path) -> None:
    ca = pki.make_ca()
    device = DeviceFiles(tmp_path / "etc")
    device.new_key()
    config = yaml.safe_dump({"site_id": "s", "device_id": "pole-1", "cameras": []})
    other = DeviceFiles(tmp_path / "other")
    other.new_key()
    foreign = pki.sign_csr(ca, other.csr("x"), "pole-1", valid_for=timedelta(days=1))
    misnamed = pki.sign_csr(ca, device.csr("x"), "pole-2", valid_for=timedelta(days=1))
    pem = lambda cert: cert.public_bytes(pki.serialization.Encoding.PEM)  # noqa: E731
    with pytest.raises(EnrolmentError, match="not for this device's key"):
        device.install(Enrolment(pem(foreign), ca.cert_pem, config))
    with pytest.raises(EnrolmentError, match="names 'pole-2'"):
        device.install(Enrolment(pem(misnamed), ca.cert_pem, config))
    assert not (tmp_path / "etc" / "device.crt").exists()
    good = pki.sign_csr(ca, device.csr("x"), "pole-1", valid_for=timedelta(days=1))
    device.install(Enrolment(pem(good), ca.cert_pem, config))  # control
    assert (
        json.loads(json.dumps(yaml.safe_load((tmp_path / "etc" / "config.yaml").read_text())))[
            "mqtt"
        ]["client_id"]
        == "pole-1"
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than"),  # was a RecursionError
        (b'{"v":1,"ok":true,"cert":"a","cert":"b","config":""}', "'cert' given twice"),
    ],
)
def test_an_answer_that_cannot_be_read_is_an_enrolment_error(answer: bytes, message: str) -> None:
    """The answer comes over the network or on a USB stick (DEVICE.response.json): one
    nested 100,000 deep ended `edge-agent enroll --bundle` in a RecursionError traceback."""
    with pytest.raises(EnrolmentError, match=message):
        parse_response(answer)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("site_id: s\ndevice_id: pole-1\nmqtt: 5\n", "mqtt is not a mapping"),
        ("site_id: s\ndevice_id: pole-1\nmqtt: {tls: x}\n", "mqtt.tls is not a mapping"),
        ("site_id: s\ndevice_id: pole-1\nsite_id: t\n", "'site_id' given twice"),
    ],
)
def test_a_config_from_the_city_side_that_is_not_one_is_refused_and_nothing_written(
    tmp_path: Path, config: str, message: str
) -> None:
    """`mqtt: 5` in the answer's config raised TypeError (no item assignment on an int)
    after the certificate had been checked; a key given twice kept the last."""
    ca = pki.make_ca()
    device = DeviceFiles(tmp_path / "etc")
    device.new_key()
    cert = pki.sign_csr(ca, device.csr("x"), "pole-1", valid_for=timedelta(days=1))
    pem = cert.public_bytes(pki.serialization.Encoding.PEM)
    with pytest.raises(EnrolmentError, match=message):
        device.install(Enrolment(pem, ca.cert_pem, config))
    assert not (tmp_path / "etc" / "device.crt").exists()
    assert not (tmp_path / "etc" / "config.yaml").exists()


@pytest.mark.parametrize(
    "bundle",
    [b"[" * 100_000 + b"]" * 100_000, b"[1]", b'"x"', b'{"device_id": 5, "token": 1}', b"\xff"],
)
def test_a_usb_bundle_that_is_not_one_is_said_as_such(tmp_path: Path, bundle: bytes) -> None:
    """`edge-agent enroll --bundle` on these printed a RecursionError traceback, or 'enroll:
    list indices must be integers or slices, not str'."""
    path = tmp_path / "pole-1.enrol.json"
    path.write_bytes(bundle)
    with pytest.raises(EnrolmentError, match="is not an enrolment bundle"):
        read_bundle(path)


def test_a_device_with_a_page_gets_its_password_at_enrolment_shown_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page's password is made on the device at enrolment: only its slow hash is kept,
    the technician sees it once; enrolling again does not replace it."""
    state, usb, etc = tmp_path / "state", tmp_path / "usb", tmp_path / "device" / "etc"
    inventory = _inventory()
    devices = cast(list[dict[str, object]], inventory["devices"])
    devices[0]["page"] = "192.168.1.20:8080"
    assert provision_cli.main(["init", str(state)]) == 0
    site = _write(tmp_path, inventory)
    assert provision_cli.main(["inventory", str(state), str(site), "--usb", str(usb)]) == 0
    bundle = usb / "pp117-pi-01.enrol.json"
    assert agent_main(["enroll", "--bundle", str(bundle), "--dir", str(etc)]) == 0
    assert not (etc / "web-password").exists()  # not enrolled yet: no page password either
    assert provision_cli.main(["sign", str(state), str(usb / "pp117-pi-01.request.json")]) == 0
    capsys.readouterr()
    assert agent_main(["enroll", "--bundle", str(bundle), "--dir", str(etc)]) == 0
    shown = capsys.readouterr().out
    password = shown.split("write it down): ", 1)[1].split()[0]
    stored = (etc / "web-password").read_text()
    assert password not in stored and verify_password(stored.strip(), password)
    assert (etc / "web-password").stat().st_mode & 0o777 == 0o600
    config = load_config(etc / "config.yaml")
    assert config.web.enabled and config.web.listen == "192.168.1.20:8080"
    assert agent_main(["enroll", "--bundle", str(bundle), "--dir", str(etc)]) == 0
    assert "write it down" not in capsys.readouterr().out
    assert (etc / "web-password").read_text() == stored


def test_the_identity_can_live_apart_from_the_config_where_the_service_may_renew_it(
    tmp_path: Path,
) -> None:
    """Under systemd /etc is read-only to the agent: key and certificates go to the state
    directory, the config stays in /etc, and the config points at them."""
    ca = pki.make_ca()
    device = DeviceFiles(tmp_path / "etc", tmp_path / "state" / "identity")
    device.new_key()
    cert = pki.sign_csr(ca, device.csr("x"), "pole-1", valid_for=timedelta(days=1))
    config = yaml.safe_dump({"site_id": "s", "device_id": "pole-1", "cameras": []})
    pem = cert.public_bytes(pki.serialization.Encoding.PEM)
    config_path = device.install(Enrolment(pem, ca.cert_pem, config))
    assert config_path == tmp_path / "etc" / "config.yaml"
    identity = tmp_path / "state" / "identity"
    assert sorted(p.name for p in identity.iterdir()) == ["ca.crt", "device.crt", "device.key"]
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["config.yaml"]
    tls = yaml.safe_load(config_path.read_text())["mqtt"]["tls"]
    assert tls["key_file"] == str(identity / "device.key")
    assert (identity / "device.key").stat().st_mode & 0o777 == 0o600
    device.give_to(pwd.getpwuid(os.getuid()).pw_name)  # as root, the service user's


def test_renewal_is_for_known_devices_of_their_own_site_until_retired(tmp_path: Path) -> None:
    from provisioning.server import Provisioner

    state = tmp_path / "state"
    assert provision_cli.main(["init", str(state)]) == 0
    assert provision_cli.main(["inventory", str(state), str(_write(tmp_path, _inventory()))]) == 0
    device = DeviceFiles(tmp_path / "etc")
    device.new_key()
    request = json.dumps({"v": 1, "csr": device.csr("pp117-pi-01").decode()}).encode()
    provisioner = Provisioner(state, valid_for=timedelta(days=1))
    answer = json.loads(provisioner.renew("police-post-117", "pp117-pi-01", request))
    assert answer["ok"] is True  # control
    assert device.matches_key(answer["cert"].encode())
    answer = json.loads(provisioner.renew("other-site", "pp117-pi-01", request))
    assert answer["ok"] is False and "belongs to site police-post-117" in answer["error"]
    assert provision_cli.main(["retire", str(state), "pp117-pi-01"]) == 0
    answer = json.loads(provisioner.renew("police-post-117", "pp117-pi-01", request))
    assert answer["ok"] is False and "unknown device" in answer["error"]
    assert provision_cli.main(["retire", str(state), "../state"]) == 2


def test_the_same_key_may_ask_again_another_may_not(tmp_path: Path) -> None:
    """An answer lost on a flaky uplink costs no token; a second device cannot use it."""
    from provisioning.server import Provisioner

    state = tmp_path / "state"
    assert provision_cli.main(["init", str(state)]) == 0
    assert provision_cli.main(["inventory", str(state), str(_write(tmp_path, _inventory()))]) == 0
    token = TokenStore(state / "tokens.json").issue("police-post-117", "pp117-pi-01", timedelta(1))
    provisioner = Provisioner(state)
    first, second = DeviceFiles(tmp_path / "first"), DeviceFiles(tmp_path / "second")
    first.new_key()
    second.new_key()

    def ask(device: DeviceFiles, csr: bytes | None = None) -> dict[str, object]:
        request = json.dumps({"token": token, "csr": (csr or device.csr("x")).decode()})
        answer: dict[str, object] = json.loads(provisioner.enrol(request.encode()))
        return answer

    broken = ask(
        first, b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    )
    assert broken["ok"] is False  # a bad CSR ...
    assert ask(first)["ok"] is True  # ... did not use the token up
    again = ask(first)  # the same key, a new CSR: the answer again
    assert again["ok"] is True and first.matches_key(str(again["cert"]).encode())
    other = ask(second)
    assert other["ok"] is False and "already used" in str(other["error"])


def test_a_renewal_cut_short_by_a_power_cut_is_finished_or_taken_back(tmp_path: Path) -> None:
    """The key switched, the certificate not: at the next start the pair is made whole
    again (with the new certificate written beside it, or else the old pair kept)."""
    from edge_agent.renew import repair_identity

    ca = pki.make_ca()
    pem = lambda cert: cert.public_bytes(pki.serialization.Encoding.PEM)  # noqa: E731
    device = DeviceFiles(tmp_path)
    old_key = device.new_key()
    old_cert = pem(pki.sign_csr(ca, device.csr("x"), "pole-1", valid_for=timedelta(days=1)))
    new_key = device.new_key("device.key.new")
    new_cert = pem(
        pki.sign_csr(
            ca, device.csr("x", key_name="device.key.new"), "pole-1", valid_for=timedelta(days=1)
        )
    )
    key, cert = tmp_path / "device.key", tmp_path / "device.crt"

    def cut_short(*, new_cert_written: bool) -> None:
        key.write_bytes(new_key)  # switched
        cert.write_bytes(old_cert)  # not yet
        (tmp_path / "device.key.old").write_bytes(old_key)
        (tmp_path / "device.crt.old").write_bytes(old_cert)
        (tmp_path / "device.crt.new").unlink(missing_ok=True)
        if new_cert_written:
            (tmp_path / "device.crt.new").write_bytes(new_cert)

    cut_short(new_cert_written=True)
    assert "finished" in (repair_identity(cert, key) or "")
    assert (key.read_bytes(), cert.read_bytes()) == (new_key, new_cert)
    cut_short(new_cert_written=False)
    assert "taken back" in (repair_identity(cert, key) or "")
    assert (key.read_bytes(), cert.read_bytes()) == (old_key, old_cert)
    assert repair_identity(cert, key) is None  # a matching pair is left alone


def test_enroll_over_an_unreachable_broker_says_to_run_it_again_and_a_bad_address_is_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At the pole the uplink is often not there yet: exit 1 with the reason and that the
    token is not spent (the same command again later); a --broker that is not HOST:PORT is
    bad input (2) in words, not Python's int() message."""
    state = tmp_path / "state"
    assert provision_cli.main(["init", str(state)]) == 0
    site = _write(tmp_path, _inventory())
    assert provision_cli.main(["inventory", str(state), str(site)]) == 0
    token = capsys.readouterr().out.split("enrol-", 1)[1].split()[0]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    enroll = ["enroll", "--token", f"enrol-{token}", "--ca", str(state / "ca.crt")]
    where = ["--dir", str(tmp_path / "etc")]
    assert agent_main([*enroll, "--broker", f"127.0.0.1:{closed}", *where]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the broker 127.0.0.1:{closed}" in err
    assert "the token is not spent" in err and "run the same command again" in err
    assert agent_main([*enroll, "--broker", "127.0.0.1:notaport", *where]) == 2
    err = capsys.readouterr().err
    assert "--broker must be HOST or HOST:PORT" in err and "int()" not in err
