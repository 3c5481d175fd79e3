"""A self-made X.509 certificate authority for the trust domain (dev-only).

Issues X.509-SVIDs as the SPIFFE X509-SVID standard describes them (§4, §5): one
URI SAN holding the SPIFFE ID, ``CA:false``, key usage ``digitalSignature`` only.
The CA certificate is the trust domain's X.509 bundle. Every key lives in memory.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_TTL = dt.timedelta(days=1)
X509_SVID_TTL = dt.timedelta(hours=1)
Clock = Callable[[], float]


@dataclass(frozen=True)
class IssuedX509Svid:
    """DER leaf certificate, its PKCS#8 DER private key and its lifetime."""

    spiffe_id: str
    cert_der: bytes
    key_der: bytes = field(repr=False)
    lifetime_s: float


class X509Authority:
    """Signs X.509-SVIDs for one trust domain with an in-memory P-256 CA key."""

    def __init__(self, trust_domain: str, *, clock: Clock = time.time) -> None:
        if not trust_domain:
            raise ValueError("an X.509 authority needs a trust domain")
        self.trust_domain = trust_domain
        self._clock = clock
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._cert = self._self_signed()
        self.bundle_der: bytes = self._cert.public_bytes(serialization.Encoding.DER)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(int(self._clock()), tz=dt.UTC)

    def _self_signed(self) -> x509.Certificate:
        now = self._now()
        name = x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "trustloop dev SPIRE")]
        )
        usage = _key_usage(cert_sign=True)
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + CA_TTL)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
            .add_extension(usage, critical=True)
            .add_extension(_spiffe_san(f"spiffe://{self.trust_domain}"), False)
            .add_extension(_ski(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    def issue(self, spiffe_id: str) -> IssuedX509Svid:
        """A fresh key pair and X.509-SVID for ``spiffe_id``, valid for an hour."""
        if not spiffe_id.startswith(f"spiffe://{self.trust_domain}/"):
            raise ValueError("the SPIFFE ID is not in this trust domain")

        key = ec.generate_private_key(ec.SECP256R1())
        now = self._now()
        not_after = min(now + X509_SVID_TTL, self._cert.not_valid_after_utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(_SVID_EKU, critical=False)
            .add_extension(_spiffe_san(spiffe_id), critical=True)
            .sign(self._key, hashes.SHA256())
        )

        key_der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        cert_der = cert.public_bytes(serialization.Encoding.DER)
        lifetime_s = (not_after - now).total_seconds()
        return IssuedX509Svid(spiffe_id, cert_der, key_der, lifetime_s)


_SVID_EKU = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)


def _spiffe_san(uri: str) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)])


def _ski(public_key: ec.EllipticCurvePublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
