"""PAdES signatures of report PDFs: the signer's identity, signing, and verification.

A signed report carries a PAdES baseline B-B signature (ETSI EN 319 142-1): a
detached CAdES signature (``/SubFilter /ETSI.CAdES.detached``, SHA-256) in a new
signature field, added to the report as an incremental update so that the bytes
of the report as built stay as they were. The signer's key and certificate come
from a PKCS#12 file (``.p12`` / ``.pfx``), as licensed certification authorities
issue them.

References
----------
ETSI EN 319 142-1 V1.1.1, PAdES digital signatures, part 1, section 6 (baseline B-B).
ISO 32000-1, section 12.8 (digital signatures).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import pkcs12 as asn1_pkcs12
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.utils import CryptographyDeprecationWarning

with warnings.catch_warnings():
    # pyHanko imports cryptography's DSA key class, which cryptography deprecates; Soi
    # never signs with DSA (SigningIdentity takes RSA and elliptic-curve keys only).
    warnings.filterwarnings(
        "ignore", message="DSA is deprecated", category=CryptographyDeprecationWarning
    )
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko.sign.general import SigningError as PyHankoSigningError
    from pyhanko.sign.validation import SignatureCoverageLevel, validate_pdf_signature
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko.sign.validation.settings import KeyUsageConstraints
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.registry import SimpleCertificateStore

__all__ = [
    "MIN_RSA_KEY_BITS",
    "SIGNATURE_FIELD",
    "CertificateValidityError",
    "KeyUsageError",
    "NotPdfError",
    "NotPkcs12Error",
    "SignatureCheck",
    "SignatureNotFoundError",
    "SigningError",
    "SigningIdentity",
    "UnsupportedKeyError",
    "WrongPassphraseError",
    "check_signing_certificate",
    "sign_pdf",
    "verify_pdf",
]

#: Name of the signature field a radiologist's signature goes into.
SIGNATURE_FIELD = "SoiRadiologist"
#: Smallest RSA key accepted for signing (ETSI TS 119 312 for signatures made now).
MIN_RSA_KEY_BITS = 2048

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class SigningError(Exception):
    """A report cannot be signed, or a signature cannot be checked."""


class NotPkcs12Error(SigningError):
    """The data given as a PKCS#12 file is not one."""


class WrongPassphraseError(SigningError):
    """The passphrase does not open the PKCS#12 file."""


class CertificateValidityError(SigningError):
    """The signer's certificate is expired, or not yet valid, at signing time."""


class KeyUsageError(SigningError):
    """The signer's certificate may not be used for signing documents."""


class UnsupportedKeyError(SigningError):
    """The PKCS#12 file holds no private key, or one of a kind not used for signing."""


class NotPdfError(SigningError):
    """The data given as a PDF cannot be read as one."""


class SignatureNotFoundError(SigningError):
    """The PDF has no signature in the field asked for."""


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"`{name}` must carry a time zone, {moment.isoformat()} is given")
    return moment


def _describe(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()


def check_signing_certificate(certificate: x509.Certificate, *, at: datetime) -> None:
    """Check that ``certificate`` may sign a document at the moment ``at``.

    Parameters
    ----------
    certificate:
        The signer's certificate.
    at:
        The signing time (with a time zone).

    Raises
    ------
    CertificateValidityError
        ``at`` is before the certificate's notBefore or after its notAfter.
    KeyUsageError
        The certificate has a key usage extension that allows neither
        digitalSignature nor nonRepudiation (contentCommitment), or is a CA certificate.
    ValueError
        ``at`` has no time zone.

    References
    ----------
    RFC 5280, sections 4.1.2.5 (validity), 4.2.1.3 (key usage), 4.2.1.9 (basic constraints).
    """
    _aware(at, "at")
    subject = _describe(certificate)
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    if at < not_before:
        raise CertificateValidityError(
            f"the certificate of {subject} is not yet valid at {at.isoformat()}: "
            f"it is valid from {not_before.isoformat()} to {not_after.isoformat()}"
        )
    if at > not_after:
        raise CertificateValidityError(
            f"the certificate of {subject} expired on {not_after.isoformat()} "
            f"(signing time {at.isoformat()}): ask its certification authority for a new one"
        )
    try:
        basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is not None and basic.ca:
        raise KeyUsageError(
            f"the certificate of {subject} is a CA certificate: a person's signing "
            "certificate is needed"
        )
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.digital_signature or usage.content_commitment):
        raise KeyUsageError(
            f"the key usage of the certificate of {subject} allows neither digitalSignature "
            "nor nonRepudiation: it cannot sign documents"
        )


def _looks_like_pkcs12(data: bytes) -> bool:
    """Whether ``data`` is a DER PFX structure (RFC 7292, section 4)."""
    try:
        pfx = asn1_pkcs12.Pfx.load(data, strict=True)
        return pfx["version"].native == "v3" and pfx["auth_safe"]["content_type"].native in (
            "data",
            "signed_data",
        )
    except (ValueError, TypeError, KeyError):
        return False


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """A signer: private key, certificate, and the chain of CA certificates above it.

    Attributes
    ----------
    private_key:
        The signer's RSA (at least :data:`MIN_RSA_KEY_BITS` bits) or elliptic-curve key.
    certificate:
        The signer's certificate, matching ``private_key``.
    chain:
        CA certificates above ``certificate`` (embedded in the signature).
    """

    private_key: SigningKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        key = self.private_key
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise UnsupportedKeyError(
                f"the signing key is a {type(key).__name__}: an RSA or elliptic-curve key is needed"
            )
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_KEY_BITS:
            raise UnsupportedKeyError(
                f"the signing key is RSA {key.key_size} bits: at least {MIN_RSA_KEY_BITS} "
                "bits are needed"
            )
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if key.public_key().public_bytes(der, public) != self.certificate.public_key().public_bytes(
            der, public
        ):
            raise UnsupportedKeyError(
                f"the private key does not belong to the certificate of "
                f"{_describe(self.certificate)}"
            )

    @classmethod
    def from_pkcs12(
        cls, data: bytes, passphrase: str, *, at: datetime | None = None
    ) -> SigningIdentity:
        """Open a PKCS#12 file and check that it can sign at the moment ``at``.

        Parameters
        ----------
        data:
            The PKCS#12 file's bytes (DER).
        passphrase:
            Its passphrase; ``""`` for a file without one.
        at:
            The moment the identity is to sign at; default: now.

        Returns
        -------
        SigningIdentity
            The key, the certificate that matches it and the other certificates of the file.

        Raises
        ------
        NotPkcs12Error
            ``data`` is not a PKCS#12 file.
        WrongPassphraseError
            ``passphrase`` does not open it.
        UnsupportedKeyError
            It holds no private key or no certificate, or a key that is not RSA
            (at least 2048 bits) or elliptic-curve.
        CertificateValidityError, KeyUsageError
            See :func:`check_signing_certificate`.

        References
        ----------
        RFC 7292, PKCS #12: Personal Information Exchange Syntax v1.1.
        """
        if not _looks_like_pkcs12(data):
            raise NotPkcs12Error(
                f"the file is not a PKCS#12 (.p12/.pfx) file ({len(data)} bytes that do not "
                "parse as a PFX structure): export the certificate with its private key as "
                "PKCS#12"
            )
        try:
            key, certificate, others = pkcs12.load_key_and_certificates(
                data, passphrase.encode("utf-8") if passphrase else None
            )
        except ValueError:
            raise WrongPassphraseError(
                "the passphrase does not open the PKCS#12 file (or the file is damaged)"
            ) from None
        if key is None:
            raise UnsupportedKeyError("the PKCS#12 file holds no private key")
        if certificate is None:
            raise UnsupportedKeyError("the PKCS#12 file holds no certificate for its key")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise UnsupportedKeyError(
                f"the PKCS#12 file holds a {type(key).__name__}: an RSA or elliptic-curve "
                "key is needed"
            )
        identity = cls(private_key=key, certificate=certificate, chain=tuple(others))
        identity.check(at=datetime.now(UTC) if at is None else at)
        return identity

    def check(self, *, at: datetime) -> None:
        """Check that the certificate may sign at the moment ``at``.

        Raises
        ------
        CertificateValidityError, KeyUsageError
            See :func:`check_signing_certificate`.
        """
        check_signing_certificate(self.certificate, at=at)

    @property
    def subject(self) -> str:
        """The certificate's subject (RFC 4514 string)."""
        return _describe(self.certificate)

    def _signer(self) -> signers.SimpleSigner:
        """pyHanko's in-memory signer for this identity."""
        key_der = self.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        der = serialization.Encoding.DER
        chain = [asn1_x509.Certificate.load(c.public_bytes(der)) for c in self.chain]
        registry = SimpleCertificateStore()  # type: ignore[no-untyped-call]
        registry.register_multiple(chain)
        return signers.SimpleSigner(
            signing_cert=asn1_x509.Certificate.load(self.certificate.public_bytes(der)),
            signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
            cert_registry=registry,
        )


class _TimedPdfSigner(signers.PdfSigner):
    """pyHanko's PDF signer, with the signing time given rather than read from the clock."""

    def __init__(self, *args: Any, signing_time: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signing_time = signing_time

    def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        session.system_time = self._signing_time
        return session


def _reader(pdf: bytes) -> Any:
    if not pdf.startswith(b"%PDF-"):
        raise NotPdfError(f"the data is not a PDF (it starts with {pdf[:8]!r})")
    try:
        return PdfFileReader(io.BytesIO(pdf))
    except (PdfError, ValueError) as exc:
        raise NotPdfError(f"the PDF cannot be read: {exc}") from None


def sign_pdf(
    pdf: bytes,
    identity: SigningIdentity,
    *,
    signer_name: str,
    reason: str,
    location: str,
    signed_at: datetime,
    field_name: str = SIGNATURE_FIELD,
) -> bytes:
    """Sign a PDF with a PAdES baseline B-B signature, as an incremental update.

    Parameters
    ----------
    pdf:
        The document, e.g. from :func:`reports.pdf.build_pdf`.
    identity:
        The signer.
    signer_name:
        The signer's name as shown by PDF readers (``/Name``), e.g. ``"BS. Trần Văn Bình"``.
    reason:
        Why it is signed (``/Reason``), e.g. ``"Xác nhận kết quả chẩn đoán hình ảnh"``.
    location:
        Where it is signed (``/Location``), e.g. the facility's name.
    signed_at:
        The signing time (with a time zone): written as ``/M`` and as the CMS
        signing-time attribute, and the moment the certificate must be valid at.
    field_name:
        The (invisible) signature field's name.

    Returns
    -------
    bytes
        The original bytes followed by the update that adds the signature.

    Raises
    ------
    NotPdfError
        ``pdf`` is not a readable PDF.
    CertificateValidityError, KeyUsageError
        The certificate may not sign at ``signed_at`` (see
        :func:`check_signing_certificate`).
    SigningError
        pyHanko refuses to sign, e.g. the field already holds a signature.
    ValueError
        ``signed_at`` has no time zone, or ``field_name`` is empty.

    References
    ----------
    ETSI EN 319 142-1, section 6.3 (baseline B-B): signing-time in the CMS signed
    attributes, ``/M`` in the signature dictionary, ESIC extension.
    """
    _aware(signed_at, "signed_at")
    if not field_name or "." in field_name:
        raise ValueError(f"`field_name` must be a non-empty name without '.', {field_name!r}")
    identity.check(at=signed_at)
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    except (PdfError, ValueError) as exc:
        raise NotPdfError(f"the PDF cannot be read: {exc}") from None
    metadata = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        name=signer_name,
        reason=reason,
        location=location,
    )
    signer = _TimedPdfSigner(metadata, identity._signer(), signing_time=signed_at)
    try:
        output = signer.sign_pdf(writer)
    except (PyHankoSigningError, PdfError) as exc:
        raise SigningError(f"the PDF cannot be signed: {exc}") from None
    signed: bytes = output.getvalue()
    return signed


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """What a signature of a PDF is found to be.

    Attributes
    ----------
    field_name:
        The signature field checked.
    intact:
        The signed bytes hash to the digest the signature holds.
    valid:
        The signature value verifies with the signer's certificate.
    trusted:
        The signer's certificate chains to one of the trust roots given, with a key
        usage that allows signing.
    signer_subject:
        The signer certificate's subject (RFC 4514 string).
    signing_time:
        The signing time the signer reported (not a timestamp: B-B has none).
    covers_whole_document:
        The signature covers every byte of the file: nothing was added after it.
    reason, location, signer_name:
        ``/Reason``, ``/Location`` and ``/Name`` of the signature dictionary.
    """

    field_name: str
    intact: bool
    valid: bool
    trusted: bool
    signer_subject: str
    signing_time: datetime | None
    covers_whole_document: bool
    reason: str
    location: str
    signer_name: str

    @property
    def ok(self) -> bool:
        """Intact, valid, trusted, and covering the whole document."""
        return self.intact and self.valid and self.trusted and self.covers_whole_document


def _text(value: object) -> str:
    return "" if value is None else str(value)


def verify_pdf(
    pdf: bytes,
    trust_roots: list[x509.Certificate] | tuple[x509.Certificate, ...],
    *,
    field_name: str = SIGNATURE_FIELD,
    validation_time: datetime | None = None,
) -> SignatureCheck:
    """Check the signature in ``field_name`` of a PDF against ``trust_roots``.

    No network is used: certificates are not fetched and revocation is not checked
    (a B-B signature carries no revocation data).

    Parameters
    ----------
    pdf:
        The signed document.
    trust_roots:
        CA certificates trusted as anchors (the licensed CA's root, or the local CA).
    field_name:
        The signature field to check.
    validation_time:
        The moment the certificate chain is validated at; default: now.

    Returns
    -------
    SignatureCheck

    Raises
    ------
    NotPdfError
        ``pdf`` is not a readable PDF.
    SignatureNotFoundError
        No signature is in ``field_name``.
    SigningError
        The signature is malformed beyond checking.

    References
    ----------
    ETSI EN 319 102-1, section 5.3 (validation process for basic signatures).
    """
    reader = _reader(pdf)
    try:
        signatures = reader.embedded_signatures
    except (PdfError, ValueError) as exc:
        raise NotPdfError(f"the PDF's signature fields cannot be read: {exc}") from None
    found = [sig for sig in signatures if sig.field_name == field_name]
    if not found:
        names = ", ".join(repr(sig.field_name) for sig in signatures) or "none"
        raise SignatureNotFoundError(
            f"the PDF has no signature in field {field_name!r} (signature fields: {names})"
        )
    embedded = found[-1]
    der = serialization.Encoding.DER
    context = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(root.public_bytes(der)) for root in trust_roots],
        allow_fetching=False,
        moment=None if validation_time is None else _aware(validation_time, "validation_time"),
    )
    usage = KeyUsageConstraints(
        key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False
    )
    try:
        status = validate_pdf_signature(embedded, context, key_usage_settings=usage)
    except (SignatureValidationError, PdfError, ValueError) as exc:
        raise SigningError(
            f"the signature in field {field_name!r} cannot be checked: {exc}"
        ) from None
    signature = embedded.sig_object
    signing_time = status.signer_reported_dt
    return SignatureCheck(
        field_name=field_name,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        signer_subject=x509.load_der_x509_certificate(
            status.signing_cert.dump()
        ).subject.rfc4514_string(),
        signing_time=None if signing_time is None else signing_time.astimezone(UTC),
        covers_whole_document=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
        reason=_text(signature.get("/Reason")),
        location=_text(signature.get("/Location")),
        signer_name=_text(signature.get("/Name")),
    )
