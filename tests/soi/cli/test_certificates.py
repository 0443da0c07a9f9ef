"""``soi users cert``: radiologists' signing certificates, through CliRunner."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from typer.testing import CliRunner, Result

from reports import SigningIdentity, sign_pdf, verify_pdf
from soi.cli import app
from soi.runtime import open_database
from soi.services.certificates import LOCAL_CA_NAME, SigningCertificates
from soi.settings import load_settings
from store import AuditEvent, Database
from tests.support.auth import PASSWORD
from tests.support.pki import TestCa

runner = CliRunner()
PASSPHRASE = "cụm mật khẩu ký số 2026"
FACILITY = "Bệnh viện Đa khoa tỉnh Hà Giang"
DISPLAY_NAME = "Trần Văn Bình"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The data folder the commands use."""
    return tmp_path / "data"


@pytest.fixture
def common(data_dir: Path, database_url: str) -> list[str]:
    """Where the commands find the database and the data folder (both backends)."""
    return ["--data-dir", str(data_dir), "--database-url", database_url]


@pytest.fixture
def database(common: list[str]) -> Iterator[Database]:
    """The commands' database, opened here too."""
    db = open_database(load_settings(data_dir=Path(common[1]), database_url=common[3]))
    yield db
    db.dispose()


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    """A file whose first line is :data:`PASSPHRASE`."""
    path = tmp_path / "passphrase.txt"
    path.write_text(f"{PASSPHRASE}\n", encoding="utf-8")
    return path


@pytest.fixture
def people(common: list[str]) -> None:
    """A facility, a radiologist who works there and a technician."""
    _ok(_soi("facilities", "add", "BV-HG", "--name", FACILITY, *common))
    for username, role in (("binh", "radiologist"), ("lan", "technician")):
        _ok(_soi("users", "add", username, "--role", role, "--facility", "BV-HG",
                 "--display-name", DISPLAY_NAME if username == "binh" else "Nguyễn Thị Lan",
                 "--password-stdin", *common, stdin=f"{PASSWORD}\n"))  # fmt: skip


def _soi(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=stdin)


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def _refused(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert message in result.output


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _signs(identity: SigningIdentity, root: x509.Certificate) -> None:
    """``identity`` signs a PDF that verifies against ``root``."""
    from fpdf import FPDF

    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=12)
    document.cell(text="report")
    signed = sign_pdf(
        bytes(document.output()),
        identity,
        signer_name=DISPLAY_NAME,
        reason="Xác nhận kết quả",
        location=FACILITY,
        signed_at=datetime.now(UTC) - timedelta(seconds=5),
    )
    assert verify_pdf(signed, [root]).ok


@pytest.mark.usefixtures("people")
class TestCreate:
    def test_create_show_remove(
        self, common: list[str], data_dir: Path, database: Database, passphrase_file: Path
    ) -> None:
        out = _ok(_soi("users", "cert", "create", "binh", "--passphrase-file",
                       str(passphrase_file), *common)).output  # fmt: skip
        assert "Signing certificate created for binh." in out
        assert f"CN={DISPLAY_NAME},O={FACILITY}" in out
        assert "local CA" in out
        assert "licensed CA" in out

        p12 = data_dir / "certificates" / "users" / "binh.p12"
        ca_key = data_dir / "certificates" / "ca" / "ca.key"
        ca_crt = data_dir / "certificates" / "ca" / "ca.crt"
        assert _mode(p12) == 0o600
        assert _mode(ca_key) == 0o600
        ca = x509.load_pem_x509_certificate(ca_crt.read_bytes())
        assert LOCAL_CA_NAME in ca.subject.rfc4514_string()
        assert "not a national CA" in LOCAL_CA_NAME

        # The stored file is the user's key, opened by the passphrase only.
        identity = SigningIdentity.from_pkcs12(p12.read_bytes(), PASSPHRASE)
        certificate = identity.certificate
        assert isinstance(identity.private_key, rsa.RSAPrivateKey)
        assert identity.private_key.key_size == 3072
        assert certificate.issuer == ca.subject
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature
        assert usage.content_commitment
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        assert timedelta(days=729) < lifetime < timedelta(days=731)
        _signs(identity, ca)

        shown = _ok(_soi("users", "cert", "show", "binh", *common)).output
        fingerprint = certificate.fingerprint(hashes.SHA256()).hex(":").upper()
        assert fingerprint in shown
        assert format(certificate.serial_number, "X") in shown
        assert f"CN={LOCAL_CA_NAME}" in shown
        assert f"{certificate.not_valid_after_utc:%Y-%m-%d}" in shown

        again = _soi("users", "cert", "create", "binh", "--passphrase-file",
                     str(passphrase_file), *common)  # fmt: skip
        _refused(again, "already holds a signing certificate")

        out = _ok(_soi("users", "cert", "remove", "binh", *common)).output
        assert "Signing certificate removed for binh" in out
        assert not p12.exists()
        _refused(_soi("users", "cert", "show", "binh", *common), "holds no signing certificate")
        _refused(_soi("users", "cert", "remove", "binh", *common), "holds no signing certificate")

        with database.read() as session:
            actions = [
                event.action
                for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
                if event.action.startswith("user.cert.")
            ]
        assert actions == ["user.cert.create", "user.cert.remove"]

    def test_prompted_passphrase_is_hidden_and_confirmed(
        self, common: list[str], data_dir: Path
    ) -> None:
        typed = f"{PASSPHRASE}\nsomething else!\n{PASSPHRASE}\n{PASSPHRASE}\n"
        result = _soi("users", "cert", "create", "binh", *common, stdin=typed)
        _ok(result)
        assert "do not match" in result.output
        assert PASSPHRASE not in result.output
        p12 = (data_dir / "certificates" / "users" / "binh.p12").read_bytes()
        assert SigningIdentity.from_pkcs12(p12, PASSPHRASE).subject.startswith("CN=")

    def test_the_local_ca_is_made_once(self, common: list[str], data_dir: Path) -> None:
        _ok(_soi("users", "add", "an", "--role", "radiologist", "--facility", "BV-HG",
                 "--password-stdin", *common, stdin=f"{PASSWORD}\n"))  # fmt: skip
        for username in ("binh", "an"):
            _ok(_soi("users", "cert", "create", username, *common,
                     stdin=f"{PASSPHRASE}\n{PASSPHRASE}\n"))  # fmt: skip
        ca = x509.load_pem_x509_certificate(
            (data_dir / "certificates" / "ca" / "ca.crt").read_bytes()
        )
        for username in ("binh", "an"):
            p12 = (data_dir / "certificates" / "users" / f"{username}.p12").read_bytes()
            assert SigningIdentity.from_pkcs12(p12, PASSPHRASE).certificate.issuer == ca.subject
        # A user without a display name is named by their username.
        shown = _ok(_soi("users", "cert", "show", "an", *common)).output
        assert f"CN=an,O={FACILITY}" in shown

    @pytest.mark.parametrize(
        ("username", "stdin", "message"),
        [
            ("lan", f"{PASSPHRASE}\n{PASSPHRASE}\n", "only radiologists hold signing certificates"),
            ("nobody", f"{PASSPHRASE}\n{PASSPHRASE}\n", "no user 'nobody'"),
            ("binh", "short\nshort\n", "at least 10 characters"),
        ],
    )
    def test_refusals(
        self, common: list[str], data_dir: Path, username: str, stdin: str, message: str
    ) -> None:
        _refused(_soi("users", "cert", "create", username, *common, stdin=stdin), message)
        assert not (data_dir / "certificates" / "users" / f"{username}.p12").exists()

    def test_empty_passphrase_file(self, common: list[str], tmp_path: Path) -> None:
        empty = tmp_path / "empty.txt"
        empty.write_text("\n")
        _refused(
            _soi("users", "cert", "create", "binh", "--passphrase-file", str(empty), *common),
            "must hold the passphrase",
        )

    def test_passphrase_is_no_command_line_value(self, common: list[str]) -> None:
        result = _soi("users", "cert", "create", "binh", "--passphrase", PASSPHRASE, *common)
        assert result.exit_code == 2
        assert "No such option" in result.output


@pytest.mark.usefixtures("people")
class TestImport:
    def test_import_from_a_licensed_ca(
        self,
        common: list[str],
        data_dir: Path,
        database: Database,
        passphrase_file: Path,
        tmp_path: Path,
    ) -> None:
        licensed = TestCa("Licensed CA of Việt Nam (test)")
        source = tmp_path / "binh.p12"
        source.write_bytes(licensed.issue_pkcs12(DISPLAY_NAME, PASSPHRASE, organization=FACILITY))
        out = _ok(_soi("users", "cert", "import", "binh", str(source), "--passphrase-file",
                       str(passphrase_file), *common)).output  # fmt: skip
        assert "Signing certificate imported for binh." in out
        assert "CN=Licensed CA of Việt Nam (test)" in out
        assert "local CA" not in out

        stored = data_dir / "certificates" / "users" / "binh.p12"
        assert _mode(stored) == 0o600
        identity = SigningCertificates(database, data_dir).identity("binh", PASSPHRASE)
        assert identity.certificate.issuer == licensed.certificate.subject
        assert licensed.certificate in identity.chain
        _signs(identity, licensed.certificate)
        assert (
            "Licensed CA of Việt Nam" in _ok(_soi("users", "cert", "show", "binh", *common)).output
        )

    def test_prompted_passphrase(self, common: list[str], tmp_path: Path) -> None:
        source = tmp_path / "binh.p12"
        source.write_bytes(TestCa().issue_pkcs12(DISPLAY_NAME, PASSPHRASE))
        _ok(_soi("users", "cert", "import", "binh", str(source), *common, stdin=f"{PASSPHRASE}\n"))

    def test_refusals(self, common: list[str], data_dir: Path, tmp_path: Path) -> None:
        ca = TestCa()
        now = datetime.now(UTC)
        good = tmp_path / "good.p12"
        good.write_bytes(ca.issue_pkcs12(DISPLAY_NAME, PASSPHRASE))
        expired = tmp_path / "expired.p12"
        expired.write_bytes(
            ca.issue_pkcs12(
                DISPLAY_NAME,
                PASSPHRASE,
                not_before=now - timedelta(days=900),
                not_after=now - timedelta(days=100),
            )
        )
        not_p12 = tmp_path / "cert.pem"
        not_p12.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        cases = [
            ("binh", good, "wrong passphrase 1\n", "passphrase does not open"),
            ("binh", expired, f"{PASSPHRASE}\n", "expired on"),
            ("binh", not_p12, f"{PASSPHRASE}\n", "not a PKCS#12"),
            ("lan", good, f"{PASSPHRASE}\n", "only radiologists"),
        ]
        for username, path, stdin, message in cases:
            result = _soi("users", "cert", "import", username, str(path), *common, stdin=stdin)
            _refused(result, message)
        assert not (data_dir / "certificates" / "users").exists() or not any(
            (data_dir / "certificates" / "users").iterdir()
        )
        result = _soi("users", "cert", "import", "binh", "missing.p12", *common)
        assert result.exit_code == 2
        assert "Invalid value for 'file'" in result.output
