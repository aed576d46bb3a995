"""edge_agent.security: file checks and the TLS client context, no network."""

from __future__ import annotations

import importlib.util
import logging
import ssl
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives import serialization

from edge_agent.security import (
    InsecureKeyFileError,
    TlsConfigError,
    build_tls_context,
    check_ca_file,
    check_private_key_file,
    check_secret_file,
    plaintext_password_warning,
    redact_url,
    tls_problems,
)

REPO = Path(__file__).resolve().parents[2]


def _load_pki() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "provisioning_pki", REPO / "provisioning" / "pki.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pki = _load_pki()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("tls")
    ca = pki.make_ca()
    pki.write_public(directory / "ca.crt", ca.cert_pem)
    device = pki.issue_client_cert(ca, "cam-01")
    device.write(directory / "cam-01.crt", directory / "cam-01.key")
    other = pki.issue_client_cert(ca, "cam-02")
    other.write(directory / "cam-02.crt", directory / "cam-02.key")
    encrypted = device.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    pki.write_private(directory / "encrypted.key", encrypted)
    return {
        "ca": directory / "ca.crt",
        "cert": directory / "cam-01.crt",
        "key": directory / "cam-01.key",
        "other_key": directory / "cam-02.key",
        "encrypted_key": directory / "encrypted.key",
    }


def _copy(source: Path, target: Path, mode: int) -> Path:
    target.write_bytes(source.read_bytes())
    target.chmod(mode)
    return target


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_key_is_accepted(files: dict[str, Path], tmp_path: Path, mode: int) -> None:
    check_private_key_file(_copy(files["key"], tmp_path / "k.key", mode))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602, 0o610])
def test_key_shared_with_group_or_others_is_refused(
    files: dict[str, Path], tmp_path: Path, mode: int
) -> None:
    key = _copy(files["key"], tmp_path / "k.key", mode)
    with pytest.raises(InsecureKeyFileError) as caught:
        check_private_key_file(key)
    assert f"chmod 600 {key}" in str(caught.value)
    assert f"{mode:04o}" in str(caught.value)


def test_missing_key_directory_and_non_key_are_refused(
    files: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(TlsConfigError, match="does not exist"):
        check_private_key_file(tmp_path / "nope.key")
    with pytest.raises(TlsConfigError, match="not a regular file"):
        check_private_key_file(tmp_path)
    with pytest.raises(TlsConfigError, match="does not hold a PEM private key"):
        check_private_key_file(_copy(files["cert"], tmp_path / "cert-as-key", 0o600))


def test_passphrase_protected_key_is_refused_not_prompted(files: dict[str, Path]) -> None:
    with pytest.raises(TlsConfigError, match="passphrase"):
        check_private_key_file(files["encrypted_key"])


def test_error_messages_never_contain_key_material(files: dict[str, Path], tmp_path: Path) -> None:
    key = _copy(files["key"], tmp_path / "k.key", 0o644)
    with pytest.raises(InsecureKeyFileError) as caught:
        check_private_key_file(key)
    body = files["key"].read_text().splitlines()[1]
    assert body not in str(caught.value)


def test_ca_file_writable_by_others_is_refused(files: dict[str, Path], tmp_path: Path) -> None:
    check_ca_file(_copy(files["ca"], tmp_path / "ok.crt", 0o644))
    with pytest.raises(TlsConfigError, match="chmod 644"):
        check_ca_file(_copy(files["ca"], tmp_path / "bad.crt", 0o666))


def test_context_verifies_chain_and_host_name_by_default(files: dict[str, Path]) -> None:
    context = build_tls_context(ca_file=files["ca"], cert_file=files["cert"], key_file=files["key"])
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_insecure_turns_off_only_the_host_name_check_and_says_so(
    files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edge_agent.security"):
        context = build_tls_context(
            ca_file=files["ca"], cert_file=None, key_file=None, insecure=True
        )
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert "host name checking is OFF" in caplog.text


def test_mismatched_certificate_and_key_are_refused(files: dict[str, Path]) -> None:
    with pytest.raises(TlsConfigError, match="cannot be used together"):
        build_tls_context(ca_file=files["ca"], cert_file=files["cert"], key_file=files["other_key"])


def test_cert_without_key_is_refused(files: dict[str, Path]) -> None:
    with pytest.raises(TlsConfigError, match="together"):
        build_tls_context(ca_file=files["ca"], cert_file=files["cert"], key_file=None)


def test_tls_problems_lists_every_problem(files: dict[str, Path], tmp_path: Path) -> None:
    assert tls_problems(ca_file=files["ca"], cert_file=files["cert"], key_file=files["key"]) == []
    problems = tls_problems(
        ca_file=tmp_path / "missing-ca.crt",
        cert_file=files["cert"],
        key_file=_copy(files["key"], tmp_path / "k.key", 0o644),
    )
    assert len(problems) == 2
    assert "missing-ca.crt does not exist" in problems[0]
    assert "chmod 600" in problems[1]


def test_plaintext_password_warning_names_the_host() -> None:
    assert "clear text" in plaintext_password_warning("broker.example")
    assert "broker.example" in plaintext_password_warning("broker.example")


@pytest.mark.parametrize(
    ("raw", "redacted"),
    [
        ("rtsp://admin:s3cret@10.0.0.9:554/h264", "rtsp://admin:***@10.0.0.9:554/h264"),
        ("cannot open rtsp://u:p@cam/x (timeout)", "cannot open rtsp://u:***@cam/x (timeout)"),
        ("http://cam/snap.cgi?user=a&pwd=s3cret&ch=1", "http://cam/snap.cgi?user=a&pwd=***&ch=1"),
        ("rtsp://cam.local/stream1", "rtsp://cam.local/stream1"),
        ("/dev/video0", "/dev/video0"),
        ("rtsp://user@cam/s", "rtsp://user@cam/s"),
    ],
)
def test_redact_url_hides_passwords_only(raw: str, redacted: str) -> None:
    assert redact_url(raw) == redacted
    assert "s3cret" not in redact_url(raw)


def test_secret_file_rule_applies_to_any_file(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("mqtt: {password: x}\n")
    config.chmod(0o600)
    check_secret_file(config, "config file")
    config.chmod(0o644)
    with pytest.raises(InsecureKeyFileError, match=r"config file .* `chmod 600 "):
        check_secret_file(config, "config file")
