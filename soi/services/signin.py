"""Signing in and out, and recognising callers by their session cookie or API token.

Every sign-in (successful, failed or refused), sign-out and refused CSRF check is
written to the audit log.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from soi.auth import (
    Caller,
    CsrfError,
    InvalidCredentialsError,
    InvalidSessionError,
    InvalidTokenError,
    LoginLimiter,
    PasswordPolicyError,
    TooManyAttemptsError,
    caller_for_user,
    digest,
    hash_password,
    new_secret,
    password_needs_rehash,
    same_digest,
    verify_password,
)
from soi.settings import Settings
from store import (
    AuditOutcome,
    CredentialError,
    Database,
    NotFoundError,
    User,
    create_session,
    end_session,
    get_session,
    get_user,
    record_event,
    touch_session,
    touch_token,
    utcnow,
    verify_token,
)

__all__ = [
    "SessionPolicy",
    "SignedIn",
    "authenticate_session",
    "authenticate_token",
    "sign_in",
    "sign_out",
]

_log = structlog.get_logger("soi.signin")

#: Last use of a token or session is written at most this often (a write per request
#: would serialise every read on SQLite).
_TOUCH_EVERY = timedelta(seconds=60)
#: Longest credential looked at; longer ones are not Soi's.
_MAX_CREDENTIAL_LENGTH = 256
#: What a failed sign-in tells the caller, whatever the cause.
_WRONG = "wrong username or password"


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long browser sessions last.

    Attributes
    ----------
    lifetime:
        A session ends this long after sign-in.
    idle_timeout:
        A session unused this long ends.
    """

    lifetime: timedelta
    idle_timeout: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        """The policy of ``session_hours`` and ``session_idle_minutes``."""
        return cls(
            lifetime=timedelta(hours=settings.session_hours),
            idle_timeout=timedelta(minutes=settings.session_idle_minutes),
        )


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new browser session.

    Attributes
    ----------
    caller:
        Who signed in.
    session_id:
        The session cookie's value (only its digest is kept).
    csrf_token:
        The token unsafe requests must carry in ``X-CSRF-Token`` (only its digest is kept).
    expires_at:
        When the session ends at the latest.
    """

    caller: Caller
    session_id: str
    csrf_token: str
    expires_at: datetime


def _audit(
    session: Session,
    *,
    actor: str,
    actor_kind: str,
    action: str,
    outcome: AuditOutcome,
    address: str,
    facility_id: int | None = None,
    reason: str = "",
) -> None:
    record_event(
        session,
        actor=actor,
        actor_kind=actor_kind,
        action=action,
        outcome=outcome,
        source_address=address,
        facility_id=facility_id,
        detail={"reason": reason} if reason else None,
    )


def _refuse_sign_in(
    database: Database, *, username: str, address: str, outcome: AuditOutcome, reason: str
) -> None:
    with database.write() as session:
        _audit(
            session,
            actor=username,
            actor_kind="user",
            action="auth.login",
            outcome=outcome,
            address=address,
            reason=reason,
        )
    _log.warning("sign-in refused", username=username[:64], address=address, reason=reason)


def sign_in(
    database: Database,
    limiter: LoginLimiter,
    *,
    username: str,
    password: str,
    address: str,
    policy: SessionPolicy,
) -> SignedIn:
    """Check a username and password and open a browser session.

    Parameters
    ----------
    database:
        The store.
    limiter:
        Counts failures per username and address.
    username, password:
        What the person typed.
    address:
        The client's address.
    policy:
        How long the session lasts.

    Returns
    -------
    SignedIn
        The session's cookie value and CSRF token, to hand to the browser.

    Raises
    ------
    TooManyAttemptsError
        Too many recent failures for this username or address.
    InvalidCredentialsError
        Unknown user, wrong password, a service account (no password), or a disabled
        account (said only to whoever gave its right password).
    """
    wait = limiter.retry_after(username, address)
    if wait is not None:
        _refuse_sign_in(
            database,
            username=username,
            address=address,
            outcome=AuditOutcome.REFUSED,
            reason="too many failed sign-ins",
        )
        raise TooManyAttemptsError(wait)
    user: User | None
    with database.read() as session:
        try:
            user = get_user(session, username)
        except NotFoundError:
            user = None
    if user is None or not verify_password(user.password_hash, password):
        limiter.failed(username, address)
        reason = "unknown user" if user is None else "wrong password"
        if user is not None and user.password_hash is None:
            reason = "service account (no password)"
        _refuse_sign_in(
            database,
            username=username,
            address=address,
            outcome=AuditOutcome.FAILURE,
            reason=reason,
        )
        raise InvalidCredentialsError(_WRONG)
    if user.disabled:
        _refuse_sign_in(
            database,
            username=username,
            address=address,
            outcome=AuditOutcome.REFUSED,
            reason="account disabled",
        )
        raise InvalidCredentialsError("the account is disabled")
    limiter.succeeded(username)
    session_id, csrf_token = new_secret(), new_secret()
    expires_at = utcnow() + policy.lifetime
    with database.write() as session:
        if user.password_hash is not None and password_needs_rehash(user.password_hash):
            # A password older than today's length rule keeps its hash until changed.
            with suppress(PasswordPolicyError):
                get_user(session, username).password_hash = hash_password(password)
        browser = create_session(
            session,
            username=username,
            session_hash=digest(session_id),
            csrf_hash=digest(csrf_token),
            expires_at=expires_at,
            address=address,
        )
        caller = caller_for_user(browser.user, address=address, actor_kind="user")
        _audit(
            session,
            actor=username,
            actor_kind="user",
            action="auth.login",
            outcome=AuditOutcome.SUCCESS,
            address=address,
            facility_id=user.facility_id,
        )
    return SignedIn(
        caller=caller, session_id=session_id, csrf_token=csrf_token, expires_at=expires_at
    )


def sign_out(database: Database, *, session_id: str, caller: Caller) -> None:
    """End the browser session whose cookie is ``session_id`` (audited)."""
    with database.write() as session:
        end_session(session, digest(session_id))
        _audit(
            session,
            actor=caller.username,
            actor_kind=caller.actor_kind,
            action="auth.logout",
            outcome=AuditOutcome.SUCCESS,
            address=caller.address,
            facility_id=caller.facility_id,
        )


def authenticate_token(database: Database, token: str, *, address: str) -> Caller:
    """The caller an API token stands for.

    Raises
    ------
    InvalidTokenError
        The token is malformed, unknown, expired or revoked, or its user is disabled.
    """
    if not token or len(token) > _MAX_CREDENTIAL_LENGTH:
        raise InvalidTokenError("malformed", "the token is malformed")
    now = utcnow()
    with database.read() as session:
        try:
            row = verify_token(session, digest(token), now=now)
        except CredentialError as exc:
            _log.warning("token refused", address=address, reason=exc.reason)
            raise InvalidTokenError(exc.reason, str(exc)) from None
        caller = caller_for_user(row.user, address=address, actor_kind="token")
        token_id, last_used_at = row.id, row.last_used_at
    if last_used_at is None or last_used_at + _TOUCH_EVERY <= now:
        with database.write() as session:
            touch_token(session, token_id, now=now)
    return caller


def authenticate_session(
    database: Database,
    session_id: str,
    *,
    address: str,
    idle_timeout: timedelta,
    check_csrf: bool,
    csrf_token: str | None = None,
) -> Caller:
    """The caller a session cookie stands for, checking the CSRF token when asked.

    Parameters
    ----------
    database:
        The store.
    session_id:
        The session cookie's value.
    address:
        The client's address.
    idle_timeout:
        A session unused this long has ended.
    check_csrf:
        Whether the request changes something (an unsafe method): then it must carry
        the session's CSRF token.
    csrf_token:
        The ``X-CSRF-Token`` header, if sent.

    Raises
    ------
    InvalidSessionError
        The session is unknown, ended or expired, or its user is disabled.
    CsrfError
        ``check_csrf`` and the CSRF token is missing or not the session's.
    """
    if not session_id or len(session_id) > _MAX_CREDENTIAL_LENGTH:
        raise InvalidSessionError("the session cookie is malformed: sign in again")
    now = utcnow()
    with database.read() as session:
        try:
            browser = get_session(session, digest(session_id), now=now, idle_timeout=idle_timeout)
        except CredentialError as exc:
            raise InvalidSessionError(str(exc)) from None
        caller = caller_for_user(browser.user, address=address, actor_kind="user")
        browser_id, last_seen_at, csrf_hash = browser.id, browser.last_seen_at, browser.csrf_hash
    if check_csrf and (not csrf_token or not same_digest(csrf_token, csrf_hash)):
        with database.write() as session:
            _audit(
                session,
                actor=caller.username,
                actor_kind=caller.actor_kind,
                action="auth.csrf",
                outcome=AuditOutcome.REFUSED,
                address=address,
                reason="missing CSRF token" if not csrf_token else "wrong CSRF token",
            )
        raise CsrfError(
            "a request that changes something with a session cookie must carry the "
            "session's CSRF token in X-CSRF-Token"
        )
    # Often enough that a session in use never looks idle.
    if last_seen_at + min(_TOUCH_EVERY, idle_timeout / 4) <= now:
        with database.write() as session:
            touch_session(session, browser_id, now=now)
    return caller
