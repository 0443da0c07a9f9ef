"""Users, their API tokens and their browser sessions.

The store keeps digests only: password hashes made by the caller, and SHA-256
digests of tokens and session cookies. How secrets are made and hashed is the
caller's policy; here are the rules of the records themselves (which roles need a
facility or a program, which have no password), expiry and revocation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from store.enums import UserRole
from store.errors import CredentialError, DuplicateError, NotFoundError
from store.facilities import get_facility
from store.models import ApiToken, BrowserSession, User
from store.types import utcnow

__all__ = [
    "FACILITY_ROLES",
    "PASSWORDLESS_ROLES",
    "active_token_counts",
    "add_user",
    "create_session",
    "create_token",
    "disable_user",
    "enable_user",
    "end_session",
    "get_session",
    "get_user",
    "list_tokens",
    "list_users",
    "revoke_token",
    "set_password",
    "touch_session",
    "touch_token",
    "verify_token",
]

#: Roles whose people work for one facility and must name it.
FACILITY_ROLES = frozenset(
    {UserRole.RADIOLOGIST, UserRole.TECHNICIAN, UserRole.SCREENING_COORDINATOR}
)
#: Roles of service accounts: no password, API tokens only.
PASSWORDLESS_ROLES = frozenset({UserRole.INTEGRATION})

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def _checked_digest(name: str, value: str) -> str:
    if not _DIGEST.fullmatch(value):
        raise ValueError(f"`{name}` must be a SHA-256 digest in lower-case hex, {value!r} is given")
    return value


def add_user(
    session: Session,
    *,
    username: str,
    role: UserRole | str,
    facility_code: str | None = None,
    program: str | None = None,
    display_name: str = "",
    password_hash: str | None = None,
) -> User:
    """Create a user or service account.

    Parameters
    ----------
    session:
        The transaction to add it in.
    username:
        1 to 64 letters, digits, ``_ . @ -``, starting with a letter or digit; unique.
    role:
        A :class:`~store.enums.UserRole` value.
    facility_code:
        The facility the user works for: needed for radiologists, technicians and
        screening coordinators; optional for the others.
    program:
        The screening program of a screening coordinator (needed for that role, refused
        for the others).
    display_name:
        The person's name as shown.
    password_hash:
        The hash of the password (people); ``None`` for a service account.

    Returns
    -------
    User
        The new user, flushed, with its facility.

    Raises
    ------
    ValueError
        The username is malformed, or the role's rules are not met.
    NotFoundError
        The facility does not exist.
    DuplicateError
        The username is taken.
    """
    checked_role = UserRole(role)
    if not _USERNAME.fullmatch(username):
        raise ValueError(
            "`username` must be 1 to 64 letters, digits, '_', '.', '@' or '-' starting with "
            f"a letter or digit, {username!r} is given"
        )
    if checked_role in FACILITY_ROLES and not facility_code:
        raise ValueError(f"a {checked_role.value} works for a facility: give `facility_code`")
    if checked_role is UserRole.SCREENING_COORDINATOR and not (program and program.strip()):
        raise ValueError("a screening_coordinator coordinates a program: give `program`")
    if checked_role is not UserRole.SCREENING_COORDINATOR and program:
        raise ValueError(f"`program` is for screening coordinators, not for a {checked_role.value}")
    if program is not None and len(program.strip()) > 64:
        raise ValueError(f"`program` must be at most 64 characters, {program!r} is given")
    if checked_role in PASSWORDLESS_ROLES and password_hash is not None:
        raise ValueError(f"a {checked_role.value} account has no password: it uses API tokens")
    if checked_role not in PASSWORDLESS_ROLES and not password_hash:
        raise ValueError(f"a {checked_role.value} signs in with a password: give `password_hash`")
    facility = get_facility(session, facility_code) if facility_code else None
    user = User(
        username=username,
        display_name=display_name[:200],
        role=checked_role,
        facility_id=facility.id if facility is not None else None,
        program=program.strip() if program else None,
        password_hash=password_hash,
        disabled=False,
    )
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise DuplicateError(f"user {username!r} already exists") from None
    user.facility = facility
    return user


def get_user(session: Session, username: str) -> User:
    """Return the user called ``username``, with its facility.

    Raises
    ------
    NotFoundError
        No user has that name.
    """
    user = session.scalars(
        select(User).options(joinedload(User.facility)).where(User.username == username)
    ).one_or_none()
    if user is None:
        raise NotFoundError(f"no user {username!r}")
    return user


def list_users(session: Session) -> Sequence[User]:
    """Return every user with its facility, by username."""
    return session.scalars(
        select(User).options(joinedload(User.facility)).order_by(User.username)
    ).all()


def _end_user_sessions(session: Session, user_id: int) -> None:
    session.execute(delete(BrowserSession).where(BrowserSession.user_id == user_id))


def disable_user(session: Session, username: str) -> User:
    """Disable a user: no sign-in, no token accepted; their browser sessions end.

    Their tokens are kept (and work again once the user is enabled) unless revoked.

    Raises
    ------
    NotFoundError
        No user has that name.
    """
    user = get_user(session, username)
    user.disabled = True
    _end_user_sessions(session, user.id)
    session.flush()
    return user


def enable_user(session: Session, username: str) -> User:
    """Enable a disabled user again.

    Raises
    ------
    NotFoundError
        No user has that name.
    """
    user = get_user(session, username)
    user.disabled = False
    session.flush()
    return user


def set_password(session: Session, username: str, password_hash: str) -> User:
    """Replace a user's password hash; their browser sessions end.

    Raises
    ------
    NotFoundError
        No user has that name.
    ValueError
        The user is a service account (no password), or the hash is empty.
    """
    user = get_user(session, username)
    if user.role in PASSWORDLESS_ROLES:
        raise ValueError(f"{username!r} is a {user.role.value} account: it has no password")
    if not password_hash:
        raise ValueError("`password_hash` must not be empty")
    user.password_hash = password_hash
    _end_user_sessions(session, user.id)
    session.flush()
    return user


# -- API tokens ---------------------------------------------------------------------------


def create_token(
    session: Session,
    *,
    username: str,
    token_hash: str,
    expires_at: datetime,
    name: str = "",
) -> ApiToken:
    """Record a new API token of ``username`` by its digest.

    Parameters
    ----------
    session:
        The transaction to add it in.
    username:
        Whose token it is.
    token_hash:
        SHA-256 of the token, lower-case hex; the token itself is never stored.
    expires_at:
        When it stops working.
    name:
        A label for people (which system uses it).

    Raises
    ------
    NotFoundError
        No user has that name.
    ValueError
        The user is disabled, the digest malformed or ``expires_at`` already past.
    """
    user = get_user(session, username)
    if user.disabled:
        raise ValueError(f"user {username!r} is disabled: enable it before issuing a token")
    if expires_at <= utcnow():
        raise ValueError(f"`expires_at` must be in the future, {expires_at.isoformat()} is given")
    token = ApiToken(
        user_id=user.id,
        name=name[:64],
        token_hash=_checked_digest("token_hash", token_hash),
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    token.user = user
    return token


def list_tokens(session: Session, username: str) -> Sequence[ApiToken]:
    """Return every token of ``username``, newest first (revoked and expired included).

    Raises
    ------
    NotFoundError
        No user has that name.
    """
    user = get_user(session, username)
    return session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    ).all()


def active_token_counts(session: Session, *, now: datetime | None = None) -> dict[int, int]:
    """Return, per user id, how many of their tokens are neither revoked nor expired."""
    moment = now or utcnow()
    rows = session.execute(
        select(ApiToken.user_id, func.count())
        .where(ApiToken.revoked_at.is_(None), ApiToken.expires_at > moment)
        .group_by(ApiToken.user_id)
    ).all()
    return {int(user_id): int(count) for user_id, count in rows}


def verify_token(session: Session, token_hash: str, *, now: datetime | None = None) -> ApiToken:
    """Return the usable token whose digest is ``token_hash``, with its user and facility.

    Reads only; record the use with :func:`touch_token`.

    Raises
    ------
    CredentialError
        ``unknown``, ``revoked``, ``expired``, or ``disabled`` (its user).
    """
    token = session.scalars(
        select(ApiToken)
        .options(selectinload(ApiToken.user).joinedload(User.facility))
        .where(ApiToken.token_hash == token_hash)
    ).one_or_none()
    if token is None:
        raise CredentialError("unknown", "the token is not known")
    if token.revoked_at is not None:
        raise CredentialError("revoked", "the token has been revoked")
    if token.expires_at <= (now or utcnow()):
        raise CredentialError("expired", "the token has expired")
    if token.user.disabled:
        raise CredentialError("disabled", "the token's user is disabled")
    return token


def touch_token(session: Session, token_id: int, *, now: datetime | None = None) -> None:
    """Record that a token was used at ``now``."""
    token = session.get(ApiToken, token_id)
    if token is not None:
        token.last_used_at = now or utcnow()


def revoke_token(session: Session, token_id: int) -> ApiToken:
    """Revoke a token for good (revoking it again keeps the first time), with its user.

    Raises
    ------
    NotFoundError
        No token has that id.
    """
    token = session.scalars(
        select(ApiToken).options(selectinload(ApiToken.user)).where(ApiToken.id == token_id)
    ).one_or_none()
    if token is None:
        raise NotFoundError(f"no token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return token


# -- browser sessions ---------------------------------------------------------------------


def create_session(
    session: Session,
    *,
    username: str,
    session_hash: str,
    csrf_hash: str,
    expires_at: datetime,
    address: str = "",
) -> BrowserSession:
    """Record a signed-in browser by the digests of its cookie and CSRF token.

    Sessions that have expired (anyone's) are removed on the way.

    Raises
    ------
    NotFoundError
        No user has that name.
    ValueError
        The user is disabled, or a digest is malformed.
    """
    user = get_user(session, username)
    if user.disabled:
        raise ValueError(f"user {username!r} is disabled")
    now = utcnow()
    session.execute(delete(BrowserSession).where(BrowserSession.expires_at <= now))
    browser = BrowserSession(
        session_hash=_checked_digest("session_hash", session_hash),
        user_id=user.id,
        csrf_hash=_checked_digest("csrf_hash", csrf_hash),
        created_at=now,
        last_seen_at=now,
        expires_at=expires_at,
        address=address[:255],
    )
    session.add(browser)
    session.flush()
    browser.user = user
    return browser


def get_session(
    session: Session,
    session_hash: str,
    *,
    now: datetime | None = None,
    idle_timeout: timedelta | None = None,
) -> BrowserSession:
    """Return the live browser session whose cookie digest is ``session_hash``.

    Reads only; record activity with :func:`touch_session`.

    Parameters
    ----------
    session:
        The transaction to read in.
    session_hash:
        SHA-256 of the session cookie.
    now:
        The time to judge expiry at (default: now).
    idle_timeout:
        A session not seen for longer has expired too.

    Raises
    ------
    CredentialError
        ``unknown`` (or ended), ``expired``, or ``disabled`` (its user).
    """
    browser = session.scalars(
        select(BrowserSession)
        .options(selectinload(BrowserSession.user).joinedload(User.facility))
        .where(BrowserSession.session_hash == session_hash)
    ).one_or_none()
    if browser is None:
        raise CredentialError("unknown", "the session is not known or has ended")
    moment = now or utcnow()
    idle = idle_timeout is not None and browser.last_seen_at + idle_timeout <= moment
    if browser.expires_at <= moment or idle:
        raise CredentialError("expired", "the session has expired: sign in again")
    if browser.user.disabled:
        raise CredentialError("disabled", "the user is disabled")
    return browser


def touch_session(session: Session, session_id: int, *, now: datetime | None = None) -> None:
    """Record activity of a browser session at ``now``."""
    browser = session.get(BrowserSession, session_id)
    if browser is not None:
        browser.last_seen_at = now or utcnow()


def end_session(session: Session, session_hash: str) -> bool:
    """End (remove) a browser session; whether there was one."""
    result = session.execute(
        delete(BrowserSession).where(BrowserSession.session_hash == session_hash)
    )
    return bool(getattr(result, "rowcount", 0))
