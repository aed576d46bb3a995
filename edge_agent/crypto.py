"""The device's key and certificate signing request (docs/enrolment.md), and the Ed25519
signatures of releases (docs/updates.md): the one device-side module that imports
``cryptography``.

Why a module of its own: the private key is made here, on the device, and written
once, owner-only, into the device's own directory; nothing else in the agent ever reads
its bytes (the TLS stack loads it by path). What leaves the device is the CSR (public
key and name) and nothing more.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

__all__ = [
    "CertInfo",
    "cert_info",
    "csr_common_name",
    "ed25519_key_id",
    "ed25519_new_key",
    "ed25519_public",
    "ed25519_sign",
    "ed25519_verify",
    "key_public_pem",
    "new_csr_pem",
    "new_key_pem",
]


def new_key_pem() -> bytes:
    """A fresh P-256 private key, PEM (PKCS#8, unencrypted: a service cannot type a
    passphrase; the file mode protects it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_csr_pem(key_pem: bytes, common_name: str) -> bytes:
    """A CSR for ``key_pem`` with subject ``CN=common_name`` only (the CA sets the rest)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the device key is not an EC key")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_common_name(csr_pem: bytes) -> str:
    """The CN a CSR asks for (ValueError for a malformed CSR or a bad signature)."""
    csr = x509.load_pem_x509_csr(csr_pem)
    if not csr.is_signature_valid:
        raise ValueError("the CSR's signature does not verify")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise ValueError("the CSR must name exactly one CN")
    return str(names[0].value)


@dataclass(frozen=True)
class CertInfo:
    """What the device needs to know about its certificate: who, from when, until when,
    and whether it belongs to a given key."""

    common_name: str
    not_before: datetime
    not_after: datetime
    public_key_pem: bytes

    def renew_at(self, fraction: float) -> datetime:
        """The moment ``fraction`` of the lifetime has passed (e.g. 2/3)."""
        return self.not_before + (self.not_after - self.not_before) * fraction


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def cert_info(cert_pem: bytes) -> CertInfo:
    cert = x509.load_pem_x509_certificate(cert_pem)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    before = getattr(cert, "not_valid_before_utc", None) or _utc(cert.not_valid_before)
    after = getattr(cert, "not_valid_after_utc", None) or _utc(cert.not_valid_after)
    return CertInfo(
        common_name=str(names[0].value) if names else "",
        not_before=before,
        not_after=after,
        public_key_pem=_public_pem(cert.public_key()),
    )


def key_public_pem(key_pem: bytes) -> bytes:
    """The public half of a private key, to match a certificate against it."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    return _public_pem(key.public_key())


def _public_pem(public_key: object) -> bytes:
    assert hasattr(public_key, "public_bytes")
    data: bytes = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


# -- Ed25519: release signatures (docs/updates.md) ---------------------------------------
# Keys travel as raw bytes (32, hex in files and config): short enough to paste into a
# device config, with nothing to parse.


def ed25519_new_key() -> bytes:
    """A fresh Ed25519 private key, raw (32 bytes): the operator's release key."""
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def ed25519_public(private_raw: bytes) -> bytes:
    """The public half (raw, 32 bytes) of a raw private key."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(private_raw)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_key_id(public_raw: bytes) -> str:
    """A short name for a public key (16 hex digits of its sha256), as TUF names keys."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def ed25519_sign(private_raw: bytes, message: bytes) -> bytes:
    return ed25519.Ed25519PrivateKey.from_private_bytes(private_raw).sign(message)


def ed25519_verify(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public_raw``'s over ``message`` (False for a malformed
    key or signature: never raises for what came over the network)."""
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
