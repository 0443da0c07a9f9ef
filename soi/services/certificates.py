"""Radiologists' signing certificates, kept as PKCS#12 files in the data folder.

Layout under ``<data_dir>/certificates/``:

``ca/ca.key``, ``ca/ca.crt``
    The deployment's local signing CA, made on first use, for installations without
    certificates from a licensed CA: its key (PEM, mode 0600) and certificate. Its
    subject says it is not a national CA; PDF readers trust its signatures only where
    its certificate is imported as a trust anchor. Production installations import
    each radiologist's certificate from a licensed CA instead.
``users/<username>.p12``
    A radiologist's key and certificate chain, encrypted with their passphrase
    (PBES2, AES-256-CBC; mode 0600).
``users/<username>.crt``
    The same certificate in PEM, readable without the passphrase (for ``show``).

Only radiologists hold signing certificates. Every change is audited.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from reports import SigningIdentity
from soi.auth import Caller
from store import AuditOutcome, Database, User, UserRole, get_user, record_event

__all__ = [
    "LOCAL_CA_NAME",
    "MIN_PASSPHRASE_LENGTH",
    "USER_CERTIFICATE_DAYS",
    "CertificateError",
    "CertificateExistsError",
    "CertificateInfo",
    "CertificateNotFoundError",
    "NotRadiologistError",
    "PassphrasePolicyError",
    "SigningCertificates",
]

#: Subject common name of the local signing CA.
LOCAL_CA_NAME = "Soi local signing CA (not a national CA)"
#: Days a certificate issued by the local CA is valid.
USER_CERTIFICATE_DAYS = 730
#: Days the local CA's own certificate is valid.
LOCAL_CA_DAYS = 3650
#: Shortest passphrase accepted for a key made here.
MIN_PASSPHRASE_LENGTH = 10
#: Largest PKCS#12 file accepted for import.
MAX_PKCS12_BYTES = 1024 * 1024
_RSA_BITS = 3072
_CLOCK_SKEW = timedelta(minutes=5)


class CertificateError(Exception):
    """A signing certificate cannot be made, imported, shown or removed."""


class NotRadiologistError(CertificateError):
    """The user is not a radiologist: only radiologists sign reports."""


class CertificateExistsError(CertificateError):
    """The user already holds a signing certificate."""


class CertificateNotFoundError(CertificateError):
    """The user holds no signing certificate."""


class PassphrasePolicyError(CertificateError):
    """The passphrase is too short or too long."""


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """A signing certificate as shown (never the key)."""

    username: str
    subject: str
    issuer: str
    serial: str
    not_valid_before: datetime
    not_valid_after: datetime
    sha256_fingerprint: str
    local_ca: bool

    @property
    def expired(self) -> bool:
        """Whether the certificate's validity has ended."""
        return self.not_valid_after < datetime.now(UTC)


def new_key() -> rsa.RSAPrivateKey:
    """A new RSA key for a certificate the local CA makes (its own, or a user's)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file readable by its owner only, then rename it over ``path``."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def _check_passphrase(passphrase: str, *, minimum: int) -> bytes:
    encoded = passphrase.encode("utf-8")
    if len(passphrase) < minimum:
        raise PassphrasePolicyError(
            f"the passphrase must have at least {minimum} characters, {len(passphrase)} given"
        )
    if len(encoded) > 1024:
        raise PassphrasePolicyError("the passphrase must be at most 1024 bytes")
    return encoded


class SigningCertificates:
    """The radiologists' signing certificates of one installation.

    Parameters
    ----------
    database:
        Where users are looked up and changes audited.
    data_dir:
        The data folder (``settings.data_dir``); files go in ``certificates/`` in it.
    """

    def __init__(self, database: Database, data_dir: Path) -> None:
        self._database = database
        self.root = data_dir / "certificates"
        self.ca_dir = self.root / "ca"
        self.users_dir = self.root / "users"

    # ------------------------------------------------------------------ the local CA

    def local_ca(self) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        """The local signing CA's key and certificate, made on first use.

        Two processes making it at once end up with the same CA: it is made in a
        temporary folder renamed into place, and the loser reads the winner's.

        Raises
        ------
        CertificateError
            Its files are unreadable or do not belong together.
        """
        if not (self.ca_dir / "ca.crt").is_file():
            self._make_local_ca()
        try:
            key = serialization.load_pem_private_key(
                (self.ca_dir / "ca.key").read_bytes(), password=None
            )
            certificate = x509.load_pem_x509_certificate((self.ca_dir / "ca.crt").read_bytes())
        except (OSError, ValueError) as exc:
            raise CertificateError(
                f"the local signing CA in {self.ca_dir} is damaged: {exc}"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.public_key() != certificate.public_key():
            raise CertificateError(
                f"the local signing CA's key in {self.ca_dir} does not match its certificate"
            )
        return key, certificate

    def local_ca_certificate(self) -> x509.Certificate:
        """The local CA's certificate: the trust root for signatures it issued keys for."""
        return self.local_ca()[1]

    def _make_local_ca(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        key = new_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Soi"),
                x509.NameAttribute(NameOID.COMMON_NAME, LOCAL_CA_NAME),
            ]
        )
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + timedelta(days=LOCAL_CA_DAYS))
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
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".ca."))
        try:
            _write_private(
                staging / "ca.key",
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            (staging / "ca.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
            os.chmod(staging, 0o700)
            try:
                staging.rename(self.ca_dir)
            except OSError:
                if not (self.ca_dir / "ca.crt").is_file():
                    raise CertificateError(
                        f"{self.ca_dir} exists without ca.crt: restore the local signing CA "
                        "from a backup, or move the folder away to make a new CA"
                    ) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # ------------------------------------------------------------------ users

    def _radiologist(self, session: Session, username: str) -> User:
        user = get_user(session, username)
        if user.role is not UserRole.RADIOLOGIST:
            raise NotRadiologistError(
                f"{username!r} is a {user.role.value}: only radiologists hold signing certificates"
            )
        if user.disabled:
            raise CertificateError(f"{username!r} is disabled: enable the user first")
        return user

    def _paths(self, username: str) -> tuple[Path, Path]:
        if Path(username).name != username or username.startswith("."):
            raise ValueError(f"`username` must be a plain name, {username!r} is given")
        return self.users_dir / f"{username}.p12", self.users_dir / f"{username}.crt"

    def _store(self, username: str, p12: bytes, certificate: x509.Certificate) -> None:
        self.users_dir.mkdir(parents=True, exist_ok=True)
        p12_path, crt_path = self._paths(username)
        _write_private(p12_path, p12)
        crt_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))

    def _refuse_existing(self, username: str) -> None:
        if self._paths(username)[0].exists():
            raise CertificateExistsError(
                f"{username!r} already holds a signing certificate: remove it first with "
                f"`soi users cert remove {username}`"
            )

    def _audit(self, session: Session, actor: Caller, action: str, info: CertificateInfo) -> None:
        record_event(
            session,
            actor=actor.username,
            actor_kind=actor.actor_kind,
            action=action,
            outcome=AuditOutcome.SUCCESS,
            source_address=actor.address,
            detail={
                "user": info.username,
                "subject": info.subject,
                "issuer": info.issuer,
                "serial": info.serial,
                "sha256": info.sha256_fingerprint,
            },
        )

    def _info(self, username: str, certificate: x509.Certificate) -> CertificateInfo:
        local = (self.ca_dir / "ca.crt").is_file() and (
            certificate.issuer == self.local_ca_certificate().subject
        )
        return CertificateInfo(
            username=username,
            subject=certificate.subject.rfc4514_string(),
            issuer=certificate.issuer.rfc4514_string(),
            serial=format(certificate.serial_number, "X"),
            not_valid_before=certificate.not_valid_before_utc,
            not_valid_after=certificate.not_valid_after_utc,
            sha256_fingerprint=_fingerprint(certificate),
            local_ca=local,
        )

    def create(self, username: str, passphrase: str, *, actor: Caller) -> CertificateInfo:
        """Issue ``username`` a signing certificate from the local CA and store it.

        An RSA 3072 key; the subject is the user's display name (or username) with
        their facility's name as organisation; key usage digitalSignature and
        nonRepudiation; valid :data:`USER_CERTIFICATE_DAYS` days (not beyond the CA).

        Raises
        ------
        NotFoundError
            No user has that name.
        NotRadiologistError
            The user is not a radiologist.
        CertificateExistsError
            The user already holds a signing certificate.
        PassphrasePolicyError
            The passphrase is shorter than :data:`MIN_PASSPHRASE_LENGTH` characters.
        CertificateError
            The user is disabled, or the local CA has expired or is damaged.
        """
        secret = _check_passphrase(passphrase, minimum=MIN_PASSPHRASE_LENGTH)
        with self._database.write() as session:
            user = self._radiologist(session, username)
            self._refuse_existing(username)
            ca_key, ca_certificate = self.local_ca()
            now = datetime.now(UTC)
            if ca_certificate.not_valid_after_utc <= now + timedelta(days=1):
                raise CertificateError(
                    f"the local signing CA expired on {ca_certificate.not_valid_after_utc:%Y-%m-%d}"
                    f": move {self.ca_dir} away to make a new one"
                )
            attributes = [
                x509.NameAttribute(NameOID.COMMON_NAME, user.display_name or user.username)
            ]
            if user.facility is not None:
                attributes.insert(
                    0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, user.facility.name[:64])
                )
            key = new_key()
            not_after = min(
                now + timedelta(days=USER_CERTIFICATE_DAYS), ca_certificate.not_valid_after_utc
            )
            certificate = (
                x509.CertificateBuilder()
                .subject_name(x509.Name(attributes))
                .issuer_name(ca_certificate.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _CLOCK_SKEW)
                .not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=True,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=False,
                        crl_sign=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                    critical=False,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
                .sign(ca_key, hashes.SHA256())
            )
            p12 = pkcs12.serialize_key_and_certificates(
                username.encode("utf-8"),
                key,
                certificate,
                [ca_certificate],
                serialization.BestAvailableEncryption(secret),
            )
            self._store(username, p12, certificate)
            info = self._info(username, certificate)
            self._audit(session, actor, "user.cert.create", info)
            return info

    def import_pkcs12(
        self, username: str, data: bytes, passphrase: str, *, actor: Caller
    ) -> CertificateInfo:
        """Check a PKCS#12 file from a licensed CA and store it for ``username``.

        The file must open with ``passphrase`` and be usable for signing now (see
        :meth:`reports.signing.SigningIdentity.from_pkcs12`). It is stored re-encrypted
        with the same passphrase (PBES2, AES-256), with its whole certificate chain.

        Raises
        ------
        NotFoundError
            No user has that name.
        NotRadiologistError
            The user is not a radiologist.
        CertificateExistsError
            The user already holds a signing certificate.
        PassphrasePolicyError
            The passphrase is empty: a key is never stored unencrypted.
        reports.signing.SigningError
            The file is not PKCS#12, the passphrase is wrong, or the certificate
            cannot sign now (expired, not yet valid, key usage).
        CertificateError
            The file is larger than 1 MiB, or the user is disabled.
        """
        if len(data) > MAX_PKCS12_BYTES:
            raise CertificateError(
                f"the file has {len(data)} bytes: a PKCS#12 file has at most "
                f"{MAX_PKCS12_BYTES} bytes"
            )
        secret = _check_passphrase(passphrase, minimum=1)
        identity = SigningIdentity.from_pkcs12(data, passphrase)
        with self._database.write() as session:
            self._radiologist(session, username)
            self._refuse_existing(username)
            p12 = pkcs12.serialize_key_and_certificates(
                username.encode("utf-8"),
                identity.private_key,
                identity.certificate,
                list(identity.chain),
                serialization.BestAvailableEncryption(secret),
            )
            self._store(username, p12, identity.certificate)
            info = self._info(username, identity.certificate)
            self._audit(session, actor, "user.cert.import", info)
            return info

    def show(self, username: str) -> CertificateInfo:
        """The certificate ``username`` holds (no passphrase needed).

        Raises
        ------
        NotFoundError
            No user has that name.
        CertificateNotFoundError
            The user holds no signing certificate.
        """
        with self._database.read() as session:
            get_user(session, username)
        certificate = self._certificate(username)
        return self._info(username, certificate)

    def _certificate(self, username: str) -> x509.Certificate:
        p12_path, crt_path = self._paths(username)
        if not p12_path.is_file():
            raise CertificateNotFoundError(
                f"{username!r} holds no signing certificate: make one with `soi users cert "
                f"create {username}` or import one with `soi users cert import {username} FILE`"
            )
        try:
            return x509.load_pem_x509_certificate(crt_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise CertificateError(
                f"the certificate file {crt_path} is unreadable: {exc}"
            ) from None

    def remove(self, username: str, *, actor: Caller) -> CertificateInfo:
        """Delete the signing certificate and key ``username`` holds.

        Raises
        ------
        NotFoundError
            No user has that name.
        CertificateNotFoundError
            The user holds no signing certificate.
        """
        with self._database.write() as session:
            get_user(session, username)
            info = self._info(username, self._certificate(username))
            for path in self._paths(username):
                path.unlink(missing_ok=True)
            self._audit(session, actor, "user.cert.remove", info)
            return info

    def identity(self, username: str, passphrase: str) -> SigningIdentity:
        """Open the key ``username`` holds, to sign with it now.

        Raises
        ------
        CertificateNotFoundError
            The user holds no signing certificate.
        reports.signing.SigningError
            The passphrase is wrong, or the certificate cannot sign now.
        """
        p12_path = self._paths(username)[0]
        if not p12_path.is_file():
            raise CertificateNotFoundError(f"{username!r} holds no signing certificate")
        return SigningIdentity.from_pkcs12(p12_path.read_bytes(), passphrase)
