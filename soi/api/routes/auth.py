"""``/auth``: sign in and out with a password, and who the caller is."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from soi.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CallerDep,
    LimiterDep,
    RuntimeDep,
    client_address,
)
from soi.api.problems import Problem
from soi.auth import (
    MAX_PASSWORD_LENGTH,
    Caller,
    InvalidCredentialsError,
    TooManyAttemptsError,
)
from soi.schemas import Me, SignInReply
from soi.services import SessionPolicy, sign_in, sign_out

router = APIRouter(prefix="/auth", tags=["auth"])

_FORMS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class Credentials(BaseModel):
    """A username and password, as JSON or as a form."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


_CREDENTIALS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": Credentials.model_json_schema()}
            for media in ("application/json", "application/x-www-form-urlencoded")
        },
    }
}


async def read_credentials(request: Request) -> Credentials:
    """The username and password of a sign-in request, from JSON or a form."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    data: Any
    if media == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise Problem(400, "Invalid request", "the body is not valid JSON") from None
    elif media in _FORMS:
        form = await request.form()
        data = {key: value for key, value in form.items() if isinstance(value, str)}
    else:
        raise Problem(
            415,
            "Unsupported media type",
            "send username and password as application/json or as a form",
        )
    try:
        return Credentials.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise Problem(422, "Invalid request", details) from None


def refuse_cross_site(request: Request) -> None:
    """Refuse a sign-in sent by another site's page (login CSRF).

    A page elsewhere could post a form here and sign the browser in to an account of
    its choosing. Browsers say where a request comes from: ``Sec-Fetch-Site`` (all
    current ones) and ``Origin`` (on every POST); a request from another site, or
    with an ``Origin`` that is not this server's, is refused. Clients that send
    neither (scripts, command-line tools) are not browsers and are let through.
    """
    site = request.headers.get("sec-fetch-site", "").lower()
    if site in ("cross-site", "same-site"):
        raise Problem(403, "Cross-site sign-in refused", "sign in from Soi's own pages")
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    scheme, _, authority = origin.partition("://")
    if origin == "null" or authority.lower() != host.lower() or scheme not in ("http", "https"):
        raise Problem(
            403,
            "Cross-site sign-in refused",
            f"the request comes from {origin[:100]}, not from this server's pages",
        )


def _me(caller: Caller) -> dict[str, Any]:
    return {
        "username": caller.username,
        "role": caller.role,
        "actor_kind": caller.actor_kind,
        "facility_id": caller.facility_id,
        "facility_ids": None if caller.facility_ids is None else sorted(caller.facility_ids),
    }


@router.post(
    "/login",
    response_model=SignInReply,
    responses={400: {}, 401: {}, 403: {}, 415: {}, 422: {}, 429: {}},
    openapi_extra=_CREDENTIALS_BODY,
    dependencies=[Depends(refuse_cross_site)],
)
def login(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    limiter: LimiterDep,
    credentials: Annotated[Credentials, Depends(read_credentials)],
) -> SignInReply:
    """Sign in: sets the soi_session (HttpOnly) and soi_csrf cookies, returns the CSRF token.

    A sign-in from another site's page is refused (403).
    """
    policy = SessionPolicy.from_settings(runtime.settings)
    try:
        signed = sign_in(
            runtime.database,
            limiter,
            username=credentials.username,
            password=credentials.password,
            address=client_address(request),
            policy=policy,
        )
    except TooManyAttemptsError as exc:
        raise Problem(
            429,
            "Too many sign-in attempts",
            str(exc),
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    except InvalidCredentialsError as exc:
        raise Problem(
            401, "Sign-in failed", str(exc), headers={"WWW-Authenticate": 'Bearer realm="soi"'}
        ) from None
    secure = runtime.settings.secure_cookies
    max_age = int(policy.lifetime.total_seconds())
    for name, value, http_only in (
        (SESSION_COOKIE, signed.session_id, True),
        (CSRF_COOKIE, signed.csrf_token, False),
    ):
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=secure,
            httponly=http_only,
            samesite="strict",
        )
    response.headers["Cache-Control"] = "no-store"
    return SignInReply.model_validate(
        {**_me(signed.caller), "csrf_token": signed.csrf_token, "expires_at": signed.expires_at}
    )


@router.post("/logout", status_code=204, responses={401: {}, 403: {}})
def logout(request: Request, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """Sign out: ends the browser session and clears its cookies."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id and caller.actor_kind == "user":
        sign_out(runtime.database, session_id=session_id, caller=caller)
    reply = Response(status_code=204)
    secure = runtime.settings.secure_cookies
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        reply.delete_cookie(name, path="/", secure=secure, httponly=http_only, samesite="strict")
    return reply


@router.get("/me", response_model=Me, responses={401: {}})
def me(caller: CallerDep) -> Me:
    """Who the caller is, and whose patient data they may see."""
    return Me.model_validate(_me(caller))
