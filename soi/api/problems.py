"""Errors as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

__all__ = ["Problem", "install_problem_handlers", "problem_response"]

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error a route answers with, as problem details.

    ``headers`` go with the answer (``WWW-Authenticate`` with a 401, ``Retry-After``
    with a 429).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        type_: str = "about:blank",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = dict(headers or {})


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str = "",
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Return a problem details response."""
    body = {"type": type_, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            instance=request.url.path,
            type_=exc.type,
            headers=exc.headers,
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem_response(
            exc.status_code,
            str(exc.detail),
            str(exc.detail),
            instance=request.url.path,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
            for err in exc.errors()
        )
        return problem_response(422, "Invalid request", details, instance=request.url.path)
