"""Checks and TLS set-up for the MQTT link (docs/security.md).

Why this is its own module: every check here runs *before* a socket is opened, so a
bad key file or an unusable CA stops the agent at start with a message that names the
file and the fix, instead of surfacing later as a reconnect loop with an OpenSSL error.

Rules enforced:

- the server is always verified: against ``ca_file`` (or the system CAs when no CA file
  is given) *and* against the host name dialled; only an explicit ``insecure=True``
  turns hostname checking off (never a default, and it is logged);
- a private key file must be a regular file readable by its owner only (mode 0600 or
  0400): a key that group or others can read, or write, is refused;
- a CA file that group or others can write is refused (whoever can write it can make
  the agent trust any broker);
- a passphrase-protected key is refused with a clear error: OpenSSL would otherwise
  prompt on a terminal that a service does not have, and hang;
- no message here ever contains key material or passwords, only paths and modes.

No paho import here (only ``edge_agent.mqtt`` imports paho): :func:`build_tls_context`
returns a plain :class:`ssl.SSLContext` that the MQTT module hands to paho.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import stat
from pathlib import Path

__all__ = [
    "InsecureKeyFileError",
    "TlsConfigError",
    "build_tls_context",
    "check_ca_file",
    "check_certificate_file",
    "check_private_key_file",
    "check_secret_file",
    "plaintext_password_warning",
    "redact_url",
    "tls_problems",
]

_log = logging.getLogger(__name__)

MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2


class TlsConfigError(ValueError):
    """TLS settings that cannot work or are unsafe; the message names the file and the fix."""


class InsecureKeyFileError(TlsConfigError):
    """A private key file that someone other than its owner can read or write."""


def _regular_file_mode(path: Path, what: str) -> int:
    """The permission bits of ``path``, which must be a regular file."""
    try:
        info = path.stat()  # follows symlinks: the mode that matters is the target's
    except FileNotFoundError:
        raise TlsConfigError(f"{what} {path} does not exist") from None
    except PermissionError:
        raise TlsConfigError(
            f"{what} {path} cannot be reached by this user (uid {os.geteuid()}):"
            " check the permissions of the directories above it"
        ) from None
    except OSError as error:
        raise TlsConfigError(f"{what} {path} cannot be read: {error.strerror or error}") from None
    if not stat.S_ISREG(info.st_mode):
        raise TlsConfigError(f"{what} {path} is not a regular file")
    return stat.S_IMODE(info.st_mode)


def _read_head(path: Path, what: str, max_bytes: int = 1 << 20) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(max_bytes)
    except PermissionError:
        raise TlsConfigError(
            f"{what} {path} is not readable by this user (uid {os.geteuid()});"
            " it must belong to the user the agent runs as"
        ) from None
    except OSError as error:
        raise TlsConfigError(f"{what} {path} cannot be read: {error.strerror or error}") from None


def check_private_key_file(path: Path) -> None:
    """Refuse a missing, unreadable, passphrase-protected or over-shared private key file.

    Over-shared means any permission bit for group or others (read, write or execute):
    a key others can read is no longer a secret, one they can write lets them swap the
    device's identity.
    """
    what = "TLS private key file"
    check_secret_file(path, what)
    head = _read_head(path, what)
    if b"PRIVATE KEY-----" not in head:
        raise TlsConfigError(f"{what} {path} does not hold a PEM private key")
    if b"ENCRYPTED" in head:
        raise TlsConfigError(
            f"{what} {path} is protected by a passphrase, which an unattended agent cannot"
            " type; store it unencrypted with mode 0600 instead"
        )


def check_secret_file(path: Path, what: str = "file holding a secret") -> None:
    """Refuse a file holding a secret (e.g. a config with ``mqtt.password``) that group or
    others may read or write; same rule as for a private key, without the PEM checks."""
    mode = _regular_file_mode(path, what)
    if mode & 0o077:
        raise InsecureKeyFileError(
            f"{what} {path} has mode {mode:04o}: group or others may read or write it."
            f" Run `chmod 600 {path}` (owner only) and start again."
        )


def check_certificate_file(path: Path, what: str = "TLS certificate file") -> None:
    """A certificate file (public) must exist, be readable and hold a PEM certificate."""
    _regular_file_mode(path, what)
    if b"-----BEGIN CERTIFICATE-----" not in _read_head(path, what):
        raise TlsConfigError(f"{what} {path} does not hold a PEM certificate")


def check_ca_file(path: Path) -> None:
    """Like :func:`check_certificate_file`, and nobody but the owner may write it."""
    what = "TLS CA file"
    mode = _regular_file_mode(path, what)
    if mode & 0o022:
        raise TlsConfigError(
            f"{what} {path} has mode {mode:04o}: group or others may write it, and so make the"
            f" agent trust any broker. Run `chmod 644 {path}`."
        )
    check_certificate_file(path, what)


def _refuse_passphrase() -> str:
    raise TlsConfigError("the TLS private key asks for a passphrase; store it unencrypted, 0600")


def build_tls_context(
    *,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    insecure: bool = False,
) -> ssl.SSLContext:
    """A client context: TLS ≥ 1.2, server certificate and host name verified.

    ``ca_file`` None means the system's CAs. ``cert_file`` and ``key_file`` (both or
    neither) are the device's identity for mTLS. ``insecure`` only disables the host
    name check (the chain is still verified); it exists for lab set-ups and is logged.
    Raises :class:`TlsConfigError` (or :class:`InsecureKeyFileError`) before any
    network activity.
    """
    if (cert_file is None) != (key_file is None):
        raise TlsConfigError("TLS cert_file and key_file must be given together")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname on
    context.minimum_version = MIN_TLS_VERSION
    if ca_file is not None:
        check_ca_file(ca_file)
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except ssl.SSLError as error:
            raise TlsConfigError(f"TLS CA file {ca_file} cannot be loaded: {error}") from None
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert_file is not None and key_file is not None:
        check_certificate_file(cert_file)
        check_private_key_file(key_file)
        try:
            context.load_cert_chain(str(cert_file), str(key_file), password=_refuse_passphrase)
        except ssl.SSLError as error:
            raise TlsConfigError(
                f"TLS certificate {cert_file} and key {key_file} cannot be used together"
                f" ({error.reason or error}): is the key the one this certificate was issued for?"
            ) from None
    if insecure:
        context.check_hostname = False
        _log.warning(
            "TLS host name checking is OFF (tls_insecure): any holder of a certificate from"
            " this CA can impersonate the broker; use only in a lab"
        )
    return context


def tls_problems(
    *, ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> list[str]:
    """Every problem with these TLS files, for ``edge-agent check-config`` (never raises)."""
    problems: list[str] = []
    if (cert_file is None) != (key_file is None):
        problems.append("cert_file and key_file must be given together")
    checks = (
        (ca_file, check_ca_file),
        (cert_file, check_certificate_file),
        (key_file, check_private_key_file),
    )
    for path, check in checks:
        if path is None:
            continue
        try:
            check(path)
        except TlsConfigError as error:
            problems.append(str(error))
    if not problems:
        try:
            build_tls_context(ca_file=ca_file, cert_file=cert_file, key_file=key_file)
        except TlsConfigError as error:
            problems.append(str(error))
    return problems


def plaintext_password_warning(host: str | None = None) -> str:
    """The warning for a password sent without TLS (it travels in clear text)."""
    where = f" to {host}" if host else ""
    return (
        f"an MQTT password is configured without TLS: it is sent{where} in clear text;"
        " configure mqtt.tls (ca_file) so the broker is verified and the link encrypted"
    )


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*):[^@/\s]*@")
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|pass|token|secret|key|auth)=)[^&;#\s]*",
    re.IGNORECASE,
)


def redact_url(text: str) -> str:
    """``text`` with URL passwords and secret query values replaced by ``***``.

    Camera URIs often carry credentials (``rtsp://admin:pw@10.0.0.9/stream``); use this
    wherever a URI may reach a log line, an error message, ``stats`` or ``status``.

    >>> redact_url("rtsp://admin:s3cret@cam.local:554/h264?channel=1&password=x")
    'rtsp://admin:***@cam.local:554/h264?channel=1&password=***'
    """
    text = _URL_PASSWORD.sub(r"\g<head>:***@", text)
    return _QUERY_SECRET.sub(r"\g<head>***", text)
