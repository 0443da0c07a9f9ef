"""Errors as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

import http
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from soi.schemas import ProblemDetails

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
]

PROBLEM_JSON = "application/problem+json"
_PROBLEM_SCHEMA = {"$ref": "#/components/schemas/ProblemDetails"}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
#: What each error status means in this API, for the OpenAPI schema.
_MEANINGS: dict[int, str] = {
    400: "Malformed request: a parameter or the body is not valid",
    401: "No credentials, or a token or session that is unknown, expired or revoked",
    403: "The caller's role may not do this, or a session's CSRF token is missing or wrong",
    404: "Not found, or of a facility the caller may not see (the same answer)",
    406: "None of the accepted media types can be sent",
    409: "The request conflicts with what is stored",
    413: "The request body is over the configured limit",
    415: "Unsupported Content-Type",
    422: "A parameter or the body does not validate",
    429: "Too many attempts; retry after the Retry-After seconds",
}


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


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that may answer ``statuses`` with problem details."""
    return {
        status: {
            "description": _MEANINGS.get(status, http.HTTPStatus(status).phrase),
            "content": {PROBLEM_JSON: {"schema": dict(_PROBLEM_SCHEMA)}},
        }
        for status in statuses
    }


def _as_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every error response as problem details.

    FastAPI describes its own 422 with its validation error model as JSON; the
    handlers below answer it (and every other error) as ``application/problem+json``.
    Responses that describe a body of their own (a 503 health report, a STOW-RS 409
    response data set) keep it.
    """
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400 and _undescribed(response):
                    if int(status) in _MEANINGS and response.get("description") in (
                        "Validation Error",
                        http.HTTPStatus(int(status)).phrase,
                    ):
                        response["description"] = _MEANINGS[int(status)]
                    response["content"] = {PROBLEM_JSON: {"schema": dict(_PROBLEM_SCHEMA)}}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ProblemDetails"] = ProblemDetails.model_json_schema()
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def _undescribed(response: dict[str, Any]) -> bool:
    """Whether an error response has no body of its own (or FastAPI's validation error)."""
    content = response.get("content")
    if not content:
        return True
    refs = {str(media.get("schema", {}).get("$ref", "")) for media in content.values()}
    return refs == {"#/components/schemas/HTTPValidationError"}


def _allowed_methods(request: Request, fallback: str) -> str:
    """The methods the OpenAPI schema gives the request's path, over every route of it
    (Starlette's own ``Allow`` names one route's); ``fallback`` for a path it omits."""
    root = request.scope.get("root_path", "")
    path = request.url.path.removeprefix(root) if root else request.url.path
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {method.upper() for method in item if method.upper() in _METHODS}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) or fallback


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details, and describe them so in the
    OpenAPI schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _as_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

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
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request, headers.get("Allow", ""))
        return problem_response(
            exc.status_code,
            str(exc.detail),
            str(exc.detail),
            instance=request.url.path,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
            for err in exc.errors()
        )
        return problem_response(422, "Invalid request", details, instance=request.url.path)
