"""PAdES signatures of the report PDF, checked by pyHanko and by poppler's ``pdfsig``."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from reports.context import ReportContext
from reports.pdf import build_pdf
from reports.signing import (
    SIGNATURE_FIELD,
    CertificateValidityError,
    KeyUsageError,
    NotPdfError,
    NotPkcs12Error,
    SignatureNotFoundError,
    SigningError,
    SigningIdentity,
    UnsupportedKeyError,
    WrongPassphraseError,
    sign_pdf,
    verify_pdf,
)
from tests.support.pki import TestCa, key_usage
from tests.support.tools import require_binary

PASSPHRASE = "cụm mật khẩu ký số 2026"
SIGNER = "BS. Trần Văn Bình"
REASON = "Xác nhận kết quả chẩn đoán hình ảnh do AI gợi ý"
LOCATION = "Bệnh viện Đa khoa tỉnh Hà Giang"
ORGANIZATION = "Bệnh viện Đa khoa tỉnh Hà Giang"


@pytest.fixture(scope="module")
def ca() -> TestCa:
    """The CA that issues the signers' certificates."""
    return TestCa()


@pytest.fixture(scope="module")
def p12(ca: TestCa) -> bytes:
    """A radiologist's PKCS#12 file, protected by :data:`PASSPHRASE`."""
    return ca.issue_pkcs12(SIGNER, PASSPHRASE, organization=ORGANIZATION)


@pytest.fixture
def report(complete_context: ReportContext) -> bytes:
    """The report PDF of the complete result, as the project builds it."""
    return build_pdf(complete_context)


def _signed_at() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


def _sign(report: bytes, p12: bytes, signed_at: datetime | None = None) -> bytes:
    identity = SigningIdentity.from_pkcs12(p12, PASSPHRASE)
    return sign_pdf(
        report,
        identity,
        signer_name=SIGNER,
        reason=REASON,
        location=LOCATION,
        signed_at=signed_at or _signed_at(),
    )


def pdfsig(pdf: bytes, tmp_path: Path) -> str:
    """Poppler's ``pdfsig`` report on the signatures of ``pdf``."""
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(
        [str(require_binary("pdfsig")), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout + done.stderr


def _tamper(signed: bytes) -> bytes:
    """The signed file with one byte of the report's own (signed) part changed."""
    position = signed.index(b"/Producer (") + len(b"/Producer (")
    changed = bytearray(signed)
    changed[position] = ord("Q") if changed[position] != ord("Q") else ord("R")
    return bytes(changed)


class TestSignPdf:
    def test_signed_report_verifies_with_pyhanko(
        self, report: bytes, p12: bytes, ca: TestCa
    ) -> None:
        signed_at = _signed_at()
        signed = _sign(report, p12, signed_at)
        # An incremental update: the report's bytes are kept as they were.
        assert signed.startswith(report)
        assert len(signed) > len(report)

        check = verify_pdf(signed, [ca.certificate])
        assert check.field_name == SIGNATURE_FIELD
        assert check.intact
        assert check.valid
        assert check.trusted
        assert check.covers_whole_document
        assert check.ok
        assert f"CN={SIGNER}" in check.signer_subject
        assert f"O={ORGANIZATION}" in check.signer_subject
        assert check.signing_time == signed_at
        assert check.signer_name == SIGNER

    def test_vietnamese_reason_and_location_round_trip(self, report: bytes, p12: bytes) -> None:
        check = verify_pdf(_sign(report, p12), [TestCa().certificate])
        assert check.reason == REASON
        assert check.location == LOCATION
        # Signed by a CA that is not among the trust roots: intact and valid, not trusted.
        assert check.intact
        assert check.valid
        assert not check.trusted
        assert not check.ok

    def test_pdfsig_says_valid_and_names_the_signer(
        self, report: bytes, p12: bytes, tmp_path: Path
    ) -> None:
        out = pdfsig(_sign(report, p12), tmp_path)
        assert f"Signature Field Name: {SIGNATURE_FIELD}" in out
        assert f"Signer Certificate Common Name: {SIGNER}" in out
        assert "Signature Validation: Signature is Valid." in out
        assert "Signing Hash Algorithm: SHA-256" in out
        assert "Signature Type: ETSI.CAdES.detached" in out
        assert "Total document signed" in out
        assert len(re.findall(r"^Signature #\d+:", out, re.MULTILINE)) == 1

    def test_tampering_is_found_by_both(
        self, report: bytes, p12: bytes, ca: TestCa, tmp_path: Path
    ) -> None:
        tampered = _tamper(_sign(report, p12))
        check = verify_pdf(tampered, [ca.certificate])
        assert not check.intact
        assert not check.ok
        out = pdfsig(tampered, tmp_path)
        assert "Signature Validation:" in out
        assert "Signature is Valid." not in out
        assert "Digest Mismatch." in out

    def test_bytes_appended_after_the_signature_are_reported(
        self, report: bytes, p12: bytes, ca: TestCa
    ) -> None:
        check = verify_pdf(_sign(report, p12) + b"\n% appended\n", [ca.certificate])
        assert check.intact
        assert not check.covers_whole_document
        assert not check.ok

    def test_rsa_identity_signs_too(self, report: bytes, ca: TestCa, tmp_path: Path) -> None:
        data = ca.issue_pkcs12(SIGNER, PASSPHRASE, rsa_bits=3072)
        identity = SigningIdentity.from_pkcs12(data, PASSPHRASE)
        assert isinstance(identity.private_key, rsa.RSAPrivateKey)
        signed = sign_pdf(
            report,
            identity,
            signer_name=SIGNER,
            reason=REASON,
            location=LOCATION,
            signed_at=_signed_at(),
        )
        assert verify_pdf(signed, [ca.certificate]).ok
        assert "Signature is Valid." in pdfsig(signed, tmp_path)

    def test_small_rsa_key_is_refused(self, ca: TestCa) -> None:
        data = ca.issue_pkcs12(SIGNER, PASSPHRASE, rsa_bits=1024)
        with pytest.raises(UnsupportedKeyError, match="RSA 1024 bits"):
            SigningIdentity.from_pkcs12(data, PASSPHRASE)


class TestRefusals:
    def test_wrong_passphrase(self, p12: bytes) -> None:
        with pytest.raises(WrongPassphraseError, match="passphrase does not open"):
            SigningIdentity.from_pkcs12(p12, "not the passphrase")

    @pytest.mark.parametrize(
        "data",
        [b"", b"%PDF-1.7\n", b"-----BEGIN CERTIFICATE-----\nMIIB\n", bytes(range(256))],
    )
    def test_not_pkcs12(self, data: bytes) -> None:
        with pytest.raises(NotPkcs12Error, match="not a PKCS#12"):
            SigningIdentity.from_pkcs12(data, PASSPHRASE)

    def test_expired_certificate(self, ca: TestCa) -> None:
        now = datetime.now(UTC)
        expired = ca.issue_pkcs12(
            SIGNER,
            PASSPHRASE,
            not_before=now - timedelta(days=800),
            not_after=now - timedelta(days=70),
        )
        with pytest.raises(CertificateValidityError, match="expired on"):
            SigningIdentity.from_pkcs12(expired, PASSPHRASE)

    def test_not_yet_valid_certificate(self, ca: TestCa) -> None:
        now = datetime.now(UTC)
        future = ca.issue_pkcs12(
            SIGNER,
            PASSPHRASE,
            not_before=now + timedelta(days=3),
            not_after=now + timedelta(days=400),
        )
        with pytest.raises(CertificateValidityError, match="not yet valid"):
            SigningIdentity.from_pkcs12(future, PASSPHRASE)

    def test_certificate_expired_at_signing_time(self, report: bytes, p12: bytes) -> None:
        identity = SigningIdentity.from_pkcs12(p12, PASSPHRASE)
        with pytest.raises(CertificateValidityError, match="expired on"):
            sign_pdf(
                report,
                identity,
                signer_name=SIGNER,
                reason=REASON,
                location=LOCATION,
                signed_at=datetime.now(UTC) + timedelta(days=800),
            )

    def test_key_usage_without_signing(self, ca: TestCa) -> None:
        encipher_only = ca.issue_pkcs12(
            SIGNER,
            PASSPHRASE,
            usage=key_usage(digital_signature=False, content_commitment=False),
        )
        with pytest.raises(KeyUsageError, match="neither digitalSignature nor nonRepudiation"):
            SigningIdentity.from_pkcs12(encipher_only, PASSPHRASE)

    @pytest.mark.parametrize(
        ("digital_signature", "content_commitment"), [(True, False), (False, True)]
    )
    def test_either_signing_usage_is_enough(
        self, ca: TestCa, digital_signature: bool, content_commitment: bool
    ) -> None:
        data = ca.issue_pkcs12(
            SIGNER,
            PASSPHRASE,
            usage=key_usage(
                digital_signature=digital_signature, content_commitment=content_commitment
            ),
        )
        assert SigningIdentity.from_pkcs12(data, PASSPHRASE).subject == f"CN={SIGNER}"

    def test_key_that_is_not_the_certificates(self, ca: TestCa) -> None:
        one = SigningIdentity.from_pkcs12(ca.issue_pkcs12("A", PASSPHRASE), PASSPHRASE)
        other = SigningIdentity.from_pkcs12(ca.issue_pkcs12("B", PASSPHRASE), PASSPHRASE)
        with pytest.raises(UnsupportedKeyError, match="does not belong to the certificate"):
            SigningIdentity(private_key=one.private_key, certificate=other.certificate)

    def test_naive_signing_time(self, report: bytes, p12: bytes) -> None:
        identity = SigningIdentity.from_pkcs12(p12, PASSPHRASE)
        with pytest.raises(ValueError, match="`signed_at` must carry a time zone"):
            sign_pdf(
                report,
                identity,
                signer_name=SIGNER,
                reason=REASON,
                location=LOCATION,
                signed_at=datetime(2026, 11, 23, 9, 0),
            )

    def test_sign_not_a_pdf(self, p12: bytes) -> None:
        with pytest.raises(NotPdfError):
            _sign(b"GIF89a not a pdf", p12)

    def test_verify_unsigned_and_not_a_pdf(self, report: bytes, ca: TestCa) -> None:
        with pytest.raises(SignatureNotFoundError, match="no signature in field 'SoiRadiologist'"):
            verify_pdf(report, [ca.certificate])
        with pytest.raises(NotPdfError, match="not a PDF"):
            verify_pdf(b"<html></html>", [ca.certificate])

    def test_second_signature_in_the_same_field_is_refused(self, report: bytes, p12: bytes) -> None:
        with pytest.raises(SigningError, match="cannot be signed"):
            _sign(_sign(report, p12), p12)
