"""Dependencies shared by the routes: the runtime, and who is calling.

A caller proves who they are with an API token (``Authorization: Bearer …``, for
machines) or a session cookie (``soi_session``, for browsers, set by
``POST /auth/login``). A request with a session cookie that changes something (any
method but GET, HEAD and OPTIONS) must also carry the session's CSRF token in
``X-CSRF-Token``. A request with neither credential is answered 401.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from soi.api.problems import Problem
from soi.auth import (
    Caller,
    CsrfError,
    InvalidSessionError,
    InvalidTokenError,
    LoginLimiter,
)
from soi.runtime import Runtime
from soi.services import authenticate_session, authenticate_token

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AdminDep",
    "Caller",
    "CallerDep",
    "LimiterDep",
    "RuntimeDep",
    "client_address",
    "get_caller",
    "get_login_limiter",
    "get_runtime",
    "require_admin",
]

#: The browser session's cookie (HttpOnly).
SESSION_COOKIE = "soi_session"
#: The CSRF token's cookie (readable by the page's scripts, for double submit).
CSRF_COOKIE = "soi_csrf"
#: The header that carries the CSRF token back.
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change nothing, and so need no CSRF token.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: What a 401 asks for (RFC 6750 section 3).
_CHALLENGE = 'Bearer realm="soi"'


def get_runtime(request: Request) -> Runtime:
    """Return the process's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_login_limiter(request: Request) -> LoginLimiter:
    """Return the process's counter of failed sign-ins."""
    limiter: LoginLimiter = request.app.state.login_limiter
    return limiter


LimiterDep = Annotated[LoginLimiter, Depends(get_login_limiter)]


def client_address(request: Request) -> str:
    """The client's address (behind a proxy on this box: the address it forwards)."""
    return request.client.host if request.client is not None else ""


def _unauthorized(title: str, detail: str, *, error: str | None = None) -> Problem:
    challenge = _CHALLENGE
    if error is not None:
        description = detail.replace("\\", "").replace('"', "'")
        challenge += f', error="{error}", error_description="{description}"'
    return Problem(401, title, detail, headers={"WWW-Authenticate": challenge})


def get_caller(request: Request, runtime: RuntimeDep) -> Caller:
    """The caller of this request, from its bearer token or session cookie.

    Raises
    ------
    Problem
        401 without credentials, or with a token or session that is unknown,
        expired, revoked or whose user is disabled (``WWW-Authenticate`` says which
        for a token); 403 for an unsafe request with a session cookie and no
        matching ``X-CSRF-Token``.
    """
    address = client_address(request)
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized(
                "Invalid authorization",
                "the Authorization header must be 'Bearer TOKEN'",
                error="invalid_request",
            )
        try:
            return authenticate_token(runtime.database, token.strip(), address=address)
        except InvalidTokenError as exc:
            raise _unauthorized("Invalid token", str(exc), error="invalid_token") from None
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        try:
            return authenticate_session(
                runtime.database,
                session_id,
                address=address,
                idle_timeout=timedelta(minutes=runtime.settings.session_idle_minutes),
                check_csrf=request.method not in _SAFE_METHODS,
                csrf_token=request.headers.get(CSRF_HEADER),
            )
        except InvalidSessionError as exc:
            raise _unauthorized("Session ended", str(exc)) from None
        except CsrfError as exc:
            raise Problem(403, "CSRF token missing or wrong", str(exc)) from None
    raise _unauthorized(
        "Not signed in",
        "sign in with POST /auth/login, or send an API token as 'Authorization: Bearer TOKEN'",
    )


CallerDep = Annotated[Caller, Depends(get_caller)]


def require_admin(caller: CallerDep) -> Caller:
    """The caller, if an administrator.

    Raises
    ------
    Problem
        403 for any other role.
    """
    if not caller.is_admin:
        raise Problem(403, "Forbidden", f"this needs the admin role; {caller.username} is not")
    return caller


AdminDep = Annotated[Caller, Depends(require_admin)]
