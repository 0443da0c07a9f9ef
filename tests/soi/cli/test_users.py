"""``soi users``, ``soi facilities add`` for them, and ``soi audit``, through CliRunner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from soi.auth import AuthError, InvalidTokenError, LoginLimiter, local_caller
from soi.cli import app
from soi.runtime import open_database
from soi.services import SessionPolicy, authenticate_token, sign_in, study_detail
from soi.settings import load_settings
from store import Database, IdentifierKind, IdentifierRecord, get_user
from tests.support.auth import PASSWORD
from tests.support.store import index_cxr_study

runner = CliRunner()
CCCD = "001099012345"
UID = "1.2.826.0.1.3680043.8.498.303"


@pytest.fixture
def common(tmp_path: Path, database_url: str) -> list[str]:
    """Where the commands find the database (both backends)."""
    return ["--data-dir", str(tmp_path / "data"), "--database-url", database_url]


@pytest.fixture
def database(common: list[str]) -> Iterator[Database]:
    """The commands' database, opened here too."""
    db = open_database(load_settings(data_dir=Path(common[1]), database_url=common[3]))
    yield db
    db.dispose()


def _soi(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=stdin)


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def _signs_in(database: Database, username: str, password: str) -> bool:
    limiter = LoginLimiter(max_failures=100, max_failures_per_address=100, window_seconds=1)
    try:
        sign_in(
            database,
            limiter,
            username=username,
            password=password,
            address="127.0.0.1",
            policy=SessionPolicy.from_settings(load_settings()),
        )
    except AuthError:
        return False
    return True


class TestUsers:
    def test_add_people_and_service_accounts(self, common: list[str], database: Database) -> None:
        _ok(_soi("facilities", "add", "BV-A", "--name", "Bệnh viện A", *common))
        out = _ok(_soi("users", "add", "root", "--role", "admin", "--password-stdin", *common,
                       stdin=f"{PASSWORD}\n")).output  # fmt: skip
        assert "User added: root (admin)" in out
        # Typed twice at the prompt.
        out = _ok(_soi("users", "add", "lan", "--role", "technician", "--facility", "BV-A",
                       "--display-name", "Nguyễn Thị Lan", *common,
                       stdin=f"{PASSWORD}\n{PASSWORD}\n")).output  # fmt: skip
        assert "User added: lan (technician at BV-A)" in out
        out = _ok(_soi("users", "add", "coord", "--role", "screening_coordinator", "--facility",
                       "BV-A", "--program", "DR-2026", "--password-stdin", *common,
                       stdin=f"{PASSWORD}\n")).output  # fmt: skip
        out = _ok(_soi("users", "add", "ris", "--role", "integration", *common)).output
        assert "soi users token ris" in out

        with database.read() as session:
            assert get_user(session, "lan").display_name == "Nguyễn Thị Lan"
            assert get_user(session, "ris").password_hash is None
            assert get_user(session, "root").password_hash.startswith("$argon2id$")  # type: ignore[union-attr]
        assert _signs_in(database, "lan", PASSWORD)

        listing = _ok(_soi("users", "list", *common)).output
        for text in ("root", "admin", "lan", "technician", "BV-A", "DR-2026", "ris"):
            assert text in listing

    @pytest.mark.parametrize(
        ("args", "stdin", "message"),
        [
            (["--role", "technician"], f"{PASSWORD}\n", "works for a facility"),
            (["--role", "technician", "--facility", "BV-Z"], f"{PASSWORD}\n",
             "soi facilities add BV-Z"),
            (["--role", "admin"], "short\n", "at least 10 characters"),
            (["--role", "integration", "--password-stdin"], "", "has no password"),
            (["--role", "emperor"], "", "emperor"),
        ],
    )  # fmt: skip
    def test_refusals(self, common: list[str], args: list[str], stdin: str, message: str) -> None:
        extra = [] if "--password-stdin" in args or "emperor" in args else ["--password-stdin"]
        result = _soi("users", "add", "x", *args, *extra, *common, stdin=stdin)
        assert result.exit_code != 0
        assert message in result.output

    def test_prompt_needs_the_same_password_twice(self, common: list[str]) -> None:
        result = _soi("users", "add", "root", "--role", "admin", *common,
                      stdin=f"{PASSWORD}\nother password!\n{PASSWORD}\n{PASSWORD}\n")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "do not match" in result.output

    def test_disable_enable_and_password(self, common: list[str], database: Database) -> None:
        _ok(_soi("users", "add", "root", "--role", "admin", "--password-stdin", *common,
                 stdin=f"{PASSWORD}\n"))  # fmt: skip
        assert "User disabled: root" in _ok(_soi("users", "disable", "root", *common)).output
        assert not _signs_in(database, "root", PASSWORD)
        assert "yes" in _ok(_soi("users", "list", *common)).output
        _ok(_soi("users", "enable", "root", *common))
        assert _signs_in(database, "root", PASSWORD)

        _ok(_soi("users", "password", "root", "--password-stdin", *common,
                 stdin="a brand new password\n"))  # fmt: skip
        assert not _signs_in(database, "root", PASSWORD)
        assert _signs_in(database, "root", "a brand new password")

        assert _soi("users", "disable", "nobody", *common).exit_code == 1
        _ok(_soi("users", "add", "ris", "--role", "integration", *common))
        refused = _soi("users", "password", "ris", "--password-stdin", *common,
                       stdin=f"{PASSWORD}\n")  # fmt: skip
        assert refused.exit_code == 1
        assert "has no password" in refused.output

    def test_token_is_printed_once_and_can_be_revoked(
        self, common: list[str], database: Database
    ) -> None:
        _ok(_soi("users", "add", "ris", "--role", "integration", *common))
        result = _ok(_soi("users", "token", "ris", "--days", "30", "--name", "RIS", *common))
        token = result.stdout.strip()
        assert token.startswith("soi_")
        assert "shown this once" in result.stderr
        assert authenticate_token(database, token, address="127.0.0.1").username == "ris"

        listing = _ok(_soi("users", "tokens", "ris", *common)).output
        assert "RIS" in listing
        assert "active" in listing
        assert token not in listing
        assert "1" in _ok(_soi("users", "list", *common)).output.split("ris")[1]

        _ok(_soi("users", "revoke-token", "1", *common))
        with pytest.raises(InvalidTokenError, match="revoked"):
            authenticate_token(database, token, address="127.0.0.1")
        assert "revoked" in _ok(_soi("users", "tokens", "ris", *common)).output
        assert _soi("users", "revoke-token", "99", *common).exit_code == 1
        assert _soi("users", "token", "nobody", *common).exit_code == 1


class TestAudit:
    def test_audit_by_patient_finds_the_reads(self, common: list[str], database: Database) -> None:
        index_cxr_study(
            database,
            UID,
            identifier=IdentifierRecord(IdentifierKind.NATIONAL_ID, "urn:vn:cccd", CCCD),
        )
        assert study_detail(database, UID, caller=local_caller()) is not None
        _ok(_soi("studies", UID, *common))  # the command line's reads are audited too

        table = _ok(_soi("audit", "--patient", CCCD, *common)).output
        assert table.count("study.read") == 2
        assert "cli" in table
        assert local_caller().username in table

        trail = json.loads(_ok(_soi("audit", "--patient", CCCD, "--json", *common)).output)
        [patient_id] = trail["patient_ids"]
        assert [e["action"] for e in trail["items"]] == ["audit.read", "study.read", "study.read"]
        assert {e["patient_id"] for e in trail["items"]} == {patient_id}

        by_study = json.loads(_ok(_soi("audit", "--study", UID, "--json", *common)).output)
        assert {e["study_instance_uid"] for e in by_study["items"]} == {UID}
        limited = json.loads(_ok(_soi("audit", "--limit", "1", "--json", *common)).output)
        assert len(limited["items"]) == 1

        unknown = _soi("audit", "--patient", "nobody", *common)
        assert unknown.exit_code == 1
        assert "no patient has an identifier 'nobody'" in unknown.output
