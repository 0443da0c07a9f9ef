"""Certificates made for tests with ``cryptography``: a CA and the signers it issues.

The tests of signing need certificates the production code would refuse (expired, not
yet valid, without a signing key usage); they are made here, independently of the local
CA of :mod:`soi.services.certificates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

__all__ = ["TestCa", "key_usage"]


def key_usage(*, digital_signature: bool, content_commitment: bool) -> x509.KeyUsage:
    """A key usage extension value with only the two signing bits chosen."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=not (digital_signature or content_commitment),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass
class TestCa:
    """A self-signed P-256 CA, valid from a year ago for ten years."""

    __test__ = False  # not a test class, despite its name

    name: str = "Soi test CA"

    def __post_init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=365))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue_pkcs12(
        self,
        common_name: str,
        passphrase: str,
        *,
        organization: str = "",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        usage: x509.KeyUsage | None = None,
        rsa_bits: int | None = None,
    ) -> bytes:
        """A signer's key and certificate (with this CA's), as a PKCS#12 file.

        By default valid from an hour ago for a year, for digitalSignature and
        nonRepudiation; a P-256 key unless ``rsa_bits`` asks for an RSA one.
        """
        now = datetime.now(UTC)
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
            ec.generate_private_key(ec.SECP256R1())
            if rsa_bits is None
            else rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        )
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(hours=1))
            .not_valid_after(not_after or now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                usage or key_usage(digital_signature=True, content_commitment=True), critical=True
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return pkcs12.serialize_key_and_certificates(
            common_name.encode("utf-8"),
            key,
            certificate,
            [self.certificate],
            serialization.BestAvailableEncryption(passphrase.encode("utf-8")),
        )
