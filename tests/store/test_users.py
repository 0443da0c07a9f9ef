"""Users, API tokens and browser sessions in the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from store import (
    BrowserSession,
    CredentialError,
    Database,
    DuplicateError,
    NotFoundError,
    UserRole,
    active_token_counts,
    add_facility,
    add_user,
    create_session,
    create_token,
    disable_user,
    enable_user,
    end_session,
    get_session,
    get_user,
    list_tokens,
    list_users,
    revoke_token,
    set_password,
    touch_session,
    touch_token,
    utcnow,
    verify_token,
)

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def db(database: Database) -> Database:
    """The database with a facility BV-A, a technician and an integration account."""
    with database.write() as session:
        add_facility(session, code="BV-A", name="Bệnh viện A")
        add_user(
            session,
            username="lan",
            role=UserRole.TECHNICIAN,
            facility_code="BV-A",
            display_name="Nguyễn Thị Lan",
            password_hash=HASH,
        )
        add_user(session, username="ris", role=UserRole.INTEGRATION)
    return database


class TestAddUser:
    def test_users_read_back_with_their_facility(self, db: Database) -> None:
        with db.read() as session:
            users = {u.username: u for u in list_users(session)}
            assert set(users) == {"lan", "ris"}
            lan = get_user(session, "lan")
        assert lan.facility is not None
        assert lan.facility.code == "BV-A"
        assert (lan.role, lan.display_name, lan.password_hash) == (
            UserRole.TECHNICIAN,
            "Nguyễn Thị Lan",
            HASH,
        )
        assert users["ris"].password_hash is None
        assert users["ris"].facility_id is None

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"role": "technician", "password_hash": HASH}, "works for a facility"),
            ({"role": "radiologist", "password_hash": HASH}, "works for a facility"),
            (
                {"role": "screening_coordinator", "facility_code": "BV-A", "password_hash": HASH},
                "give `program`",
            ),
            (
                {
                    "role": "technician",
                    "facility_code": "BV-A",
                    "program": "DR",
                    "password_hash": HASH,
                },
                "for screening coordinators",
            ),
            ({"role": "integration", "password_hash": HASH}, "has no password"),
            ({"role": "admin"}, "signs in with a password"),
            ({"role": "admin", "password_hash": HASH, "username": "bad name"}, "`username`"),
            ({"role": "admin", "password_hash": HASH, "username": "-x"}, "`username`"),
            ({"role": "emperor", "password_hash": HASH}, "emperor"),
        ],
    )
    def test_role_rules(self, db: Database, fields: dict[str, Any], message: str) -> None:
        arguments = {"username": "new.user", **fields}
        with pytest.raises(ValueError, match=message), db.write() as session:
            add_user(session, **arguments)

    def test_coordinator_needs_facility_and_program(self, db: Database) -> None:
        with db.write() as session:
            user = add_user(
                session,
                username="coord",
                role="screening_coordinator",
                facility_code="BV-A",
                program=" DR-2026 ",
                password_hash=HASH,
            )
        assert user.program == "DR-2026"

    def test_admin_and_researcher_need_no_facility(self, db: Database) -> None:
        with db.write() as session:
            add_user(session, username="admin", role="admin", password_hash=HASH)
            add_user(session, username="res", role="researcher", password_hash=HASH)
        with db.read() as session:
            assert get_user(session, "res").facility_id is None

    def test_duplicate_and_unknown_facility(self, db: Database) -> None:
        with pytest.raises(DuplicateError, match="'lan' already exists"), db.write() as session:
            add_user(session, username="lan", role="admin", password_hash=HASH)
        with pytest.raises(NotFoundError, match="BV-Z"), db.write() as session:
            add_user(
                session,
                username="x",
                role="technician",
                facility_code="BV-Z",
                password_hash=HASH,
            )
        with pytest.raises(NotFoundError, match="no user 'nobody'"), db.read() as session:
            get_user(session, "nobody")

    def test_passwords_only_for_people(self, db: Database) -> None:
        with pytest.raises(ValueError, match="has no password"), db.write() as session:
            set_password(session, "ris", HASH)
        with db.write() as session:
            set_password(session, "lan", HASH + "x")
        with db.read() as session:
            assert get_user(session, "lan").password_hash == HASH + "x"


class TestTokens:
    def test_create_verify_touch_list(self, db: Database) -> None:
        expires = utcnow() + timedelta(days=1)
        with db.write() as session:
            token = create_token(
                session, username="ris", token_hash=_digest("t1"), expires_at=expires, name="RIS"
            )
        with db.read() as session:
            found = verify_token(session, _digest("t1"))
            assert found.id == token.id
            assert found.user.username == "ris"
            assert found.last_used_at is None
        moment = utcnow()
        with db.write() as session:
            touch_token(session, token.id, now=moment)
        with db.read() as session:
            [listed] = list_tokens(session, "ris")
            assert listed.name == "RIS"
            assert listed.last_used_at == moment
            assert active_token_counts(session) == {listed.user_id: 1}

    def test_expired_revoked_unknown_disabled(self, db: Database) -> None:
        with db.write() as session:
            token = create_token(
                session,
                username="ris",
                token_hash=_digest("t2"),
                expires_at=utcnow() + timedelta(hours=1),
            )
        later = utcnow() + timedelta(hours=2)
        with pytest.raises(CredentialError, match="expired") as caught, db.read() as session:
            verify_token(session, _digest("t2"), now=later)
        assert caught.value.reason == "expired"
        with pytest.raises(CredentialError) as caught, db.read() as session:
            verify_token(session, _digest("other"))
        assert caught.value.reason == "unknown"

        with db.write() as session:
            disable_user(session, "ris")
        with pytest.raises(CredentialError) as caught, db.read() as session:
            verify_token(session, _digest("t2"))
        assert caught.value.reason == "disabled"
        with db.write() as session:
            enable_user(session, "ris")
        with db.read() as session:
            verify_token(session, _digest("t2"))

        with db.write() as session:
            first = revoke_token(session, token.id).revoked_at
        with db.write() as session:
            assert revoke_token(session, token.id).revoked_at == first
        with pytest.raises(CredentialError) as caught, db.read() as session:
            verify_token(session, _digest("t2"))
        assert caught.value.reason == "revoked"
        with db.read() as session:
            assert active_token_counts(session) == {}
        with pytest.raises(NotFoundError), db.write() as session:
            revoke_token(session, 999_999)

    def test_refused_tokens(self, db: Database) -> None:
        future = utcnow() + timedelta(days=1)
        with pytest.raises(ValueError, match="SHA-256"), db.write() as session:
            create_token(session, username="ris", token_hash="soi_plaintext", expires_at=future)
        with pytest.raises(ValueError, match="in the future"), db.write() as session:
            create_token(
                session,
                username="ris",
                token_hash=_digest("t"),
                expires_at=utcnow() - timedelta(seconds=1),
            )
        with db.write() as session:
            disable_user(session, "ris")
        with pytest.raises(ValueError, match="disabled"), db.write() as session:
            create_token(session, username="ris", token_hash=_digest("t"), expires_at=future)


class TestSessions:
    def _open(self, db: Database, name: str, *, hours: float = 8) -> BrowserSession:
        with db.write() as session:
            return create_session(
                session,
                username="lan",
                session_hash=_digest(name),
                csrf_hash=_digest(f"{name}-csrf"),
                expires_at=utcnow() + timedelta(hours=hours),
                address="10.0.0.7",
            )

    def test_create_get_touch_end(self, db: Database) -> None:
        opened = self._open(db, "s1")
        with db.read() as session:
            found = get_session(session, _digest("s1"))
            assert (found.id, found.user.username, found.address) == (opened.id, "lan", "10.0.0.7")
            assert found.csrf_hash == _digest("s1-csrf")
            assert found.user.facility is not None
            assert found.user.facility.code == "BV-A"
        with db.write() as session:
            assert end_session(session, _digest("s1"))
            assert not end_session(session, _digest("s1"))
        with pytest.raises(CredentialError) as caught, db.read() as session:
            get_session(session, _digest("s1"))
        assert caught.value.reason == "unknown"

    def test_absolute_and_idle_expiry(self, db: Database) -> None:
        self._open(db, "s2", hours=1)
        with pytest.raises(CredentialError, match="expired"), db.read() as session:
            get_session(session, _digest("s2"), now=utcnow() + timedelta(hours=2))
        idle = timedelta(minutes=30)
        later = utcnow() + timedelta(minutes=40)
        with pytest.raises(CredentialError, match="expired"), db.read() as session:
            get_session(session, _digest("s2"), now=later, idle_timeout=idle)
        with db.write() as session:
            browser = get_session(session, _digest("s2"))
            touch_session(session, browser.id, now=utcnow() + timedelta(minutes=20))
        with db.read() as session:
            get_session(session, _digest("s2"), now=later, idle_timeout=idle)

    def test_disable_and_new_password_end_sessions(self, db: Database) -> None:
        self._open(db, "s3")
        with db.write() as session:
            disable_user(session, "lan")
        with db.read() as session:
            assert session.scalars(select(BrowserSession)).all() == []
        with db.write() as session:
            enable_user(session, "lan")
        self._open(db, "s4")
        with db.write() as session:
            set_password(session, "lan", HASH)
        with db.read() as session:
            assert session.scalars(select(BrowserSession)).all() == []

    def test_expired_sessions_are_removed_by_the_next_sign_in(self, db: Database) -> None:
        self._open(db, "old", hours=-1)
        self._open(db, "new")
        with db.read() as session:
            hashes = session.scalars(select(BrowserSession.session_hash)).all()
        assert hashes == [_digest("new")]

    def test_disabled_user_gets_no_session(self, db: Database) -> None:
        with db.write() as session:
            disable_user(session, "lan")
        with pytest.raises(ValueError, match="disabled"):
            self._open(db, "s5")
