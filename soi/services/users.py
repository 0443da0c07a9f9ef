"""Users, service accounts and their API tokens, as the ``soi users`` commands manage them.

Passwords are hashed here (argon2id) and tokens made here; the store keeps hashes
and digests only. Every change is written to the audit log with who made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from soi.auth import Caller, digest, hash_password, new_token
from store import (
    ApiToken,
    AuditOutcome,
    Database,
    NotFoundError,
    User,
    UserRole,
    active_token_counts,
    add_user,
    create_token,
    disable_user,
    enable_user,
    get_user,
    list_tokens,
    list_users,
    record_event,
    revoke_token,
    set_password,
    utcnow,
)

__all__ = [
    "MAX_TOKEN_DAYS",
    "IssuedToken",
    "TokenSummary",
    "UserSummary",
    "change_password",
    "create_user",
    "issue_token",
    "list_user_summaries",
    "list_user_tokens",
    "revoke_user_token",
    "service_account_token",
    "set_user_disabled",
]

#: Longest life of an API token, in days.
MAX_TOKEN_DAYS = 3650


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A user as listed."""

    username: str
    display_name: str
    role: str
    facility: str | None
    program: str | None
    disabled: bool
    active_tokens: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TokenSummary:
    """An API token as listed (never the token itself)."""

    id: int
    username: str
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= utcnow() else "active"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just issued: shown once, then only its digest remains."""

    id: int
    username: str
    name: str
    token: str
    expires_at: datetime


def _summary(user: User, active_tokens: int) -> UserSummary:
    return UserSummary(
        username=user.username,
        display_name=user.display_name,
        role=user.role.value,
        facility=user.facility.code if user.facility is not None else None,
        program=user.program,
        disabled=user.disabled,
        active_tokens=active_tokens,
        created_at=user.created_at,
    )


def _token_summary(token: ApiToken, username: str) -> TokenSummary:
    return TokenSummary(
        id=token.id,
        username=username,
        name=token.name,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


def _audit(session: Session, actor: Caller, *, action: str, subject: str, **detail: object) -> None:
    record_event(
        session,
        actor=actor.username,
        actor_kind=actor.actor_kind,
        action=action,
        outcome=AuditOutcome.SUCCESS,
        source_address=actor.address,
        detail={"user": subject, **detail},
    )


def create_user(
    database: Database,
    *,
    actor: Caller,
    username: str,
    role: UserRole | str,
    password: str | None = None,
    facility_code: str | None = None,
    program: str | None = None,
    display_name: str = "",
) -> UserSummary:
    """Create a person's account (with a password) or a service account (without).

    Raises
    ------
    PasswordPolicyError
        The password is too short or too long.
    ValueError
        The username is malformed or the role's rules are not met (see
        :func:`store.add_user`).
    NotFoundError
        The facility does not exist.
    DuplicateError
        The username is taken.
    """
    password_hash = hash_password(password) if password is not None else None
    with database.write() as session:
        user = add_user(
            session,
            username=username,
            role=role,
            facility_code=facility_code,
            program=program,
            display_name=display_name,
            password_hash=password_hash,
        )
        _audit(session, actor, action="user.add", subject=username, role=user.role.value)
        return _summary(user, 0)


def list_user_summaries(database: Database) -> list[UserSummary]:
    """Every user with their facility and how many usable tokens they hold."""
    with database.read() as session:
        counts = active_token_counts(session)
        return [_summary(user, counts.get(user.id, 0)) for user in list_users(session)]


def set_user_disabled(
    database: Database, *, actor: Caller, username: str, disabled: bool
) -> UserSummary:
    """Disable a user (no sign-in, no token, browser sessions end) or enable them again.

    Raises
    ------
    NotFoundError
        No user has that name.
    """
    with database.write() as session:
        user = (disable_user if disabled else enable_user)(session, username)
        _audit(
            session, actor, action="user.disable" if disabled else "user.enable", subject=username
        )
        counts = active_token_counts(session)
        return _summary(user, counts.get(user.id, 0))


def change_password(database: Database, *, actor: Caller, username: str, password: str) -> None:
    """Set a person's password; their browser sessions end.

    Raises
    ------
    PasswordPolicyError
        The password is too short or too long.
    ValueError
        The user is a service account.
    NotFoundError
        No user has that name.
    """
    password_hash = hash_password(password)
    with database.write() as session:
        set_password(session, username, password_hash)
        _audit(session, actor, action="user.password", subject=username)


def _checked_days(days: float) -> timedelta:
    if not 0 < days <= MAX_TOKEN_DAYS:
        raise ValueError(f"`days` must be > 0 and <= {MAX_TOKEN_DAYS}, {days} is given")
    return timedelta(days=days)


def _issue(session: Session, actor: Caller, username: str, days: float, name: str) -> IssuedToken:
    token = new_token()
    row = create_token(
        session,
        username=username,
        token_hash=digest(token),
        expires_at=utcnow() + _checked_days(days),
        name=name,
    )
    _audit(
        session,
        actor,
        action="auth.token.create",
        subject=username,
        token=row.id,
        name=row.name,
        expires_at=row.expires_at.isoformat(),
    )
    return IssuedToken(
        id=row.id, username=username, name=row.name, token=token, expires_at=row.expires_at
    )


def issue_token(
    database: Database, *, actor: Caller, username: str, days: float = 90, name: str = ""
) -> IssuedToken:
    """Issue an API token for ``username``, valid ``days`` days.

    Raises
    ------
    NotFoundError
        No user has that name.
    ValueError
        The user is disabled, or ``days`` is not in (0, :data:`MAX_TOKEN_DAYS`].
    """
    with database.write() as session:
        return _issue(session, actor, username, days, name)


def service_account_token(
    database: Database,
    *,
    actor: Caller,
    username: str,
    name: str,
    days: float = 1,
) -> IssuedToken:
    """Issue a token for the integration account ``username``, creating it if needed.

    For the tools that own a data folder and drive its ``soi serve`` over HTTP (the
    demonstration, test and benchmark harnesses): the account sees every facility.

    Raises
    ------
    ValueError
        ``username`` exists and is not an enabled integration account.
    """
    with database.write() as session:
        try:
            user = get_user(session, username)
        except NotFoundError:
            user = add_user(session, username=username, role=UserRole.INTEGRATION)
            _audit(session, actor, action="user.add", subject=username, role=user.role.value)
        if user.role is not UserRole.INTEGRATION:
            raise ValueError(f"{username!r} is a {user.role.value}, not an integration account")
        return _issue(session, actor, username, days, name)


def list_user_tokens(database: Database, username: str) -> list[TokenSummary]:
    """Every token of ``username``, newest first.

    Raises
    ------
    NotFoundError
        No user has that name.
    """
    with database.read() as session:
        return [_token_summary(token, username) for token in list_tokens(session, username)]


def revoke_user_token(database: Database, *, actor: Caller, token_id: int) -> TokenSummary:
    """Revoke a token for good.

    Raises
    ------
    NotFoundError
        No token has that id.
    """
    with database.write() as session:
        token = revoke_token(session, token_id)
        _audit(
            session, actor, action="auth.token.revoke", subject=token.user.username, token=token_id
        )
        return _token_summary(token, token.user.username)
