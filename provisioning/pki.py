"""The CA: a broker certificate, device and consumer certificates (CN = device id /
consumer name, always a valid id: no ``/ + #``), CSRs signed with short lifetimes
(:func:`sign_csr`, used by ``edge-provision``), and a CRL.

Its CA key sits unencrypted in the state directory (mode 0600): keep that directory on
a guarded machine, or put the key in an HSM. Devices make their own keys and send CSRs
(docs/enrolment.md); :func:`issue_client_cert` (key made here) is for consumers, labs
and tests — the certificates have the same shape.

Nothing this module writes belongs in git (``*.pem`` and ``*.key`` are ignored).

Command line (see deploy/mosquitto/README.md)::

    python -m provisioning.pki init DIR --server-name mqtt.example.net --server-name 10.0.0.5
    python -m provisioning.pki issue DIR cam-0001          # device (or consumer) cert
    python -m provisioning.pki revoke DIR DIR/clients/cam-0001.crt
    python -m provisioning.pki crl DIR                     # re-sign the CRL before it expires
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_agent.ids import check_id, inside

if TYPE_CHECKING:  # the name exists from cryptography 40; Bookworm's apt ships 38
    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

__all__ = [
    "Credential",
    "csr_key_id",
    "issue_client_cert",
    "issue_server_cert",
    "load_credential",
    "make_ca",
    "make_crl",
    "sign_csr",
    "write_private",
    "write_public",
]

CLOCK_SKEW = timedelta(minutes=5)
"""Certificates start this far in the past, so a device whose clock lags still accepts them."""

CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=825)
CLIENT_VALIDITY = timedelta(days=825)
CRL_VALIDITY = timedelta(days=30)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def common_name(self) -> str:
        return str(self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

    def write(self, cert_path: Path, key_path: Path) -> None:
        """Certificate world-readable (it is public), key 0600."""
        write_public(cert_path, self.cert_pem)
        write_private(key_path, self.key_pem)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret: created 0600 (never briefly world-readable), and forced to 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o644)


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Signatures only; a CA also signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: fast to generate (tests make many), supported by every TLS stack we meet.
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(
    common_name: str = "edge-agent test CA",
    *,
    valid_for: timedelta = CA_VALIDITY,
    now: datetime | None = None,
) -> Credential:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    now = now or _utcnow()
    key = _new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Credential(cert, key)


def _leaf_cert(
    ca: Credential,
    common_name: str,
    public_key: CertificatePublicKeyTypes,
    usage: x509.ObjectIdentifier,
    sans: Sequence[x509.GeneralName],
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def _leaf(
    ca: Credential,
    common_name: str,
    usage: x509.ObjectIdentifier,
    sans: Sequence[x509.GeneralName],
    not_before: datetime,
    not_after: datetime,
) -> Credential:
    key = _new_key()
    cert = _leaf_cert(ca, common_name, key.public_key(), usage, sans, not_before, not_after)
    return Credential(cert, key)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue_server_cert(
    ca: Credential,
    hostnames: Sequence[str],
    *,
    valid_for: timedelta = SERVER_VALIDITY,
    now: datetime | None = None,
) -> Credential:
    """The broker's certificate. Clients check the name they dial against ``hostnames``
    (subjectAltName: IP addresses as IP entries, anything else as DNS names)."""
    if not hostnames:
        raise ValueError("a server certificate needs at least one host name or IP address")
    now = now or _utcnow()
    return _leaf(
        ca,
        hostnames[0],
        ExtendedKeyUsageOID.SERVER_AUTH,
        [_general_name(h) for h in hostnames],
        now - CLOCK_SKEW,
        now + valid_for,
    )


def issue_client_cert(
    ca: Credential,
    common_name: str,
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    valid_for: timedelta = CLIENT_VALIDITY,
    now: datetime | None = None,
) -> Credential:
    """A device or consumer certificate, key made here (lab and tests; devices make their
    own key and send a CSR, :func:`sign_csr`). The broker takes ``common_name`` as the
    MQTT username and client id: for a device it must be the device id, and it must be
    a valid id (:func:`edge_agent.ids.check_id`: no ``/``, ``+``, ``#``)."""
    check_id(common_name, "certificate CN")
    now = now or _utcnow()
    start = not_before or now - CLOCK_SKEW
    end = not_after or now + valid_for
    if end <= start:
        raise ValueError("not_after must be later than not_before")
    return _leaf(ca, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [], start, end)


def sign_csr(
    ca: Credential,
    csr_pem: bytes,
    common_name: str,
    *,
    valid_for: timedelta,
    now: datetime | None = None,
) -> x509.Certificate:
    """A client certificate for the key in ``csr_pem``, named ``common_name``.

    The name comes from the caller (the inventory, the renewing identity), never from
    the CSR's subject; the CSR proves possession of the key. Refuses an invalid id, a
    CSR whose signature does not verify and a weak key.
    """
    check_id(common_name, "certificate CN")
    csr = _verified_csr(csr_pem)
    public_key = csr.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.key_size < 256:
            raise ValueError("EC keys must be at least 256 bits")
    elif isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise ValueError("RSA keys must be at least 2048 bits")
    else:
        raise ValueError("only EC (P-256 and up) and RSA (2048 and up) keys are signed")
    now = now or _utcnow()
    return _leaf_cert(
        ca,
        common_name,
        public_key,
        ExtendedKeyUsageOID.CLIENT_AUTH,
        [],
        now - CLOCK_SKEW,
        now + valid_for,
    )


def pem_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _verified_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    """The CSR, whose signature proves possession of its key; ValueError otherwise."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise ValueError("the CSR is not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise ValueError("the CSR's signature does not verify")
    return csr


def csr_key_id(csr_pem: bytes) -> str:
    """SHA-256 of the public key a CSR carries (ValueError for a malformed or forged CSR):
    names the key without trusting anything else the CSR says."""
    csr = _verified_csr(csr_pem)
    der = csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def make_crl(
    ca: Credential,
    revoked: Iterable[tuple[int, datetime]] | Iterable[x509.Certificate] = (),
    *,
    valid_for: timedelta = CRL_VALIDITY,
    now: datetime | None = None,
) -> bytes:
    """A PEM CRL signed by ``ca`` listing ``revoked`` (certificates, or (serial, date) pairs).

    OpenSSL (hence mosquitto) refuses *every* client once the CRL's next-update time has
    passed, so re-sign it well before ``valid_for`` runs out.
    """
    now = now or _utcnow()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + valid_for)
    )
    for item in revoked:
        serial, when = (
            (item.serial_number, now) if isinstance(item, x509.Certificate) else (item[0], item[1])
        )
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def load_credential(cert_path: Path, key_path: Path) -> Credential:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: expected an EC private key made by this tool")
    return Credential(cert, key)


# -- command line ----------------------------------------------------------------


def _ca_of(directory: Path) -> Credential:
    return load_credential(directory / "ca.crt", directory / "ca.key")


def _revoked_list(directory: Path) -> list[tuple[int, datetime]]:
    path = directory / "revoked.txt"
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            serial, when = line.split()
            entries.append((int(serial, 16), datetime.fromisoformat(when)))
    return entries


def _write_crl(directory: Path, days: int) -> None:
    crl = make_crl(_ca_of(directory), _revoked_list(directory), valid_for=timedelta(days=days))
    write_public(directory / "crl.pem", crl)


def _cmd_init(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if (directory / "ca.key").exists():
        print(f"pki: {directory}/ca.key exists; refusing to overwrite a CA", file=sys.stderr)
        return 2
    ca = make_ca(args.ca_name)
    ca.write(directory / "ca.crt", directory / "ca.key")
    names = args.server_name or ["localhost", "127.0.0.1"]
    server = issue_server_cert(ca, names)
    server.write(directory / "server.crt", directory / "server.key")
    _write_crl(directory, args.crl_days)
    print(f"wrote CA, broker certificate for {', '.join(names)} and CRL to {directory}")
    return 0


def _cmd_issue(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    try:
        check_id(args.cn, "certificate CN")
        cert_path = inside(directory / "clients", f"{args.cn}.crt")
        key_path = inside(directory / "clients", f"{args.cn}.key")
    except ValueError as error:
        print(f"pki: {error}", file=sys.stderr)
        return 2
    cred = issue_client_cert(_ca_of(directory), args.cn, valid_for=timedelta(days=args.days))
    cred.write(cert_path, key_path)
    print(f"wrote {cert_path} and {key_path} (mode 0600); CN={args.cn}")
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    cert = x509.load_pem_x509_certificate(Path(args.cert).read_bytes())
    with (directory / "revoked.txt").open("a", encoding="utf-8") as listing:
        listing.write(f"{cert.serial_number:x} {_utcnow().isoformat()}\n")
    _write_crl(directory, args.crl_days)
    print(f"revoked serial {cert.serial_number:x}; copy {directory}/crl.pem to the broker")
    return 0


def _cmd_crl(args: argparse.Namespace) -> int:
    _write_crl(args.dir, args.crl_days)
    print(f"re-signed {args.dir}/crl.pem, valid {args.crl_days} days")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provisioning.pki", description="Test/dev PKI for edge_agent and mosquitto."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="new CA, broker certificate and empty CRL")
    init.add_argument("dir", type=Path)
    init.add_argument("--ca-name", default="edge-agent dev CA")
    init.add_argument(
        "--server-name",
        action="append",
        help="host name or IP the devices dial (repeat; default localhost and 127.0.0.1)",
    )
    issue = commands.add_parser("issue", help="a device or consumer certificate")
    issue.add_argument("dir", type=Path)
    issue.add_argument("cn", help="device id (for a device) or consumer name")
    issue.add_argument("--days", type=int, default=CLIENT_VALIDITY.days)
    revoke = commands.add_parser("revoke", help="add a certificate to the CRL")
    revoke.add_argument("dir", type=Path)
    revoke.add_argument("cert", type=Path)
    crl = commands.add_parser("crl", help="re-sign the CRL (it expires)")
    crl.add_argument("dir", type=Path)
    for command in (init, revoke, crl):
        command.add_argument("--crl-days", type=int, default=CRL_VALIDITY.days)
    args = parser.parse_args(argv)
    handlers = {"init": _cmd_init, "issue": _cmd_issue, "revoke": _cmd_revoke, "crl": _cmd_crl}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
