"""A FHIR R4 server stand-in that receives what Soi sends and answers searches.

:class:`FhirReceiver` serves, with uvicorn in a background thread, the part of the FHIR
RESTful API that :class:`~reports.channels.FhirChannel` and a curious person use:
``transaction``/``batch`` Bundles of POST (conditional create, ``ifNoneExist``) and PUT
entries, read, search by ``identifier``, ``_id``, ``subject`` and ``patient``, and a
CapabilityStatement. Each resource is validated with the R4B models of
``fhir.resources``; a transaction with one bad entry stores nothing and is answered 400
with an OperationOutcome. A stand-in for ``soi demo``, not an EMR.

References
----------
HL7 FHIR R4 (4.0.1): ``http.html`` 3.1.0.8.1 (conditional create), 3.1.0.11
(batch/transaction); ``search.html`` (token and reference parameters).
"""

from __future__ import annotations

import copy
import hmac
import json
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from soi.standins._fhir_store import (
    REFERENCE_PARAMETERS,
    FhirError,
    Issue,
    ResourceStore,
    batch_entry,
    outcome,
    parse_resource,
    resource_class,
)

__all__ = ["FhirReceiver"]

_FHIR_JSON = "application/fhir+json; charset=utf-8"
_START_TIMEOUT = 10.0


def _fhir_response(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    content = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return Response(content, status_code=status, media_type=_FHIR_JSON, headers=headers)


class FhirReceiver:
    """A FHIR R4 server stand-in on ``http://host:port/fhir``, for demonstrations.

    Parameters
    ----------
    host:
        The IPv4 address to listen on (loopback by default).
    port:
        The TCP port; 0 takes a free one, in :attr:`port` after :meth:`start`.
    store_dir:
        Where each stored resource is also written, as ``{Type}/{id}.json`` (its latest
        version), so that a person can open what arrived.
    token:
        When given, requests without ``Authorization: Bearer <token>`` are answered 401
        (``metadata`` stays open, as on SMART servers).
    """

    label = "Soi FHIR R4 stand-in receiver"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        store_dir: Path | None = None,
        token: str | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"`port` must be between 0 and 65535, {port} is given")
        if token is not None and not token:
            raise ValueError("`token` must not be empty; give None for no token")
        self.host, self.port = host, port
        self._token = token
        self._store = ResourceStore(store_dir)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The FHIR base URL, e.g. ``http://127.0.0.1:8080/fhir``."""
        return f"http://{self.host}:{self.port}/fhir"

    def start(self) -> FhirReceiver:
        """Listen and serve in a background thread; return once requests are answered.

        Raises
        ------
        OSError
            When the address cannot be bound.
        TimeoutError
            When the server does not start within 10 s.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.label} is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        app = _application(self._store, self._token, self.label)
        self._server = server = uvicorn.Server(
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        )
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="soi-fhir-standin", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.label} did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and free the port; what was received stays readable."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(_START_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> FhirReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def resources(self, resource_type: str) -> list[dict[str, Any]]:
        """Copies of the stored resources of one type, in the order they first arrived."""
        with self._store.lock:
            return copy.deepcopy(list(self._store.resources.get(resource_type, {}).values()))

    def search(self, resource_type: str, identifier: str) -> list[dict[str, Any]]:
        """Copies of the stored resources of one type with ``identifier`` (``system|value``)."""
        with self._store.lock:
            return copy.deepcopy(self._store.search(resource_type, [("identifier", identifier)]))

    def counts(self) -> dict[str, int]:
        """How many resources of each type are stored."""
        with self._store.lock:
            return {name: len(found) for name, found in self._store.resources.items() if found}


def _application(store: ResourceStore, token: str | None, label: str) -> FastAPI:
    """The FastAPI application of one receiver."""
    app = FastAPI(title=label, docs_url=None, redoc_url=None, openapi_url=None)
    expected = f"Bearer {token}".encode()

    def authorise(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if token is not None and not hmac.compare_digest(given, expected):
            raise FhirError(401, Issue("login", "a valid Bearer token is required"))

    def known(resource_type: str) -> None:
        if resource_class(resource_type) is None:
            text = f"{resource_type} is not a FHIR R4 resource type"
            raise FhirError(404, Issue("not-found", text))

    @app.exception_handler(FhirError)
    async def refused(request: Request, exc: FhirError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return _fhir_response(outcome(exc.issues), exc.status, **headers)

    @app.exception_handler(HTTPException)
    async def not_routed(request: Request, exc: HTTPException) -> Response:
        text = f"{request.method} {request.url.path}: {exc.detail}"
        return _fhir_response(outcome([Issue("not-supported", text)]), exc.status_code)

    @app.get("/fhir/metadata")
    async def metadata() -> Response:
        """The CapabilityStatement."""
        return _fhir_response(_capability_statement(label))

    @app.post("/fhir")
    async def transaction(request: Request) -> Response:
        """Run a transaction or batch Bundle."""
        authorise(request)
        bundle = parse_resource(await request.body(), "Bundle")
        kind, entries = bundle.get("type"), bundle.get("entry") or []
        if kind not in ("transaction", "batch"):
            text = f"Bundle.type must be transaction or batch, not {kind!r}"
            raise FhirError(400, Issue("invalid", text, "Bundle.type"))
        if not isinstance(entries, list):
            raise FhirError(400, Issue("structure", "Bundle.entry must be a list", "entry"))
        if kind == "transaction":
            answers = await run_in_threadpool(store.transaction, entries)
        else:
            answers = [await run_in_threadpool(batch_entry, store, e) for e in entries]
        return _fhir_response(
            {"resourceType": "Bundle", "type": f"{kind}-response", "entry": answers}
        )

    @app.get("/fhir/{resource_type}")
    async def search(resource_type: str, request: Request) -> Response:
        """Search one resource type."""
        authorise(request)
        known(resource_type)
        with store.lock:
            found = copy.deepcopy(store.search(resource_type, request.query_params.multi_items()))
        base = f"{str(request.base_url).rstrip('/')}/fhir/{resource_type}"
        entries = [{"fullUrl": f"{base}/{r['id']}", "resource": r} for r in found]
        bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(found)}
        return _fhir_response(bundle | {"entry": entries})

    @app.get("/fhir/{resource_type}/{resource_id}")
    async def read(resource_type: str, resource_id: str, request: Request) -> Response:
        """Read one resource."""
        authorise(request)
        known(resource_type)
        with store.lock:
            resource = copy.deepcopy(store.resources.get(resource_type, {}).get(resource_id))
        if resource is None:
            text = f"{resource_type}/{resource_id} is not known"
            raise FhirError(404, Issue("not-found", text))
        return _fhir_response(resource, ETag=f'W/"{resource["meta"]["versionId"]}"')

    return app


def _capability_statement(label: str) -> dict[str, Any]:
    """A minimal CapabilityStatement: the interactions and search parameters served."""
    search = [{"name": n, "type": "token"} for n in ("_id", "identifier")]
    search += [{"name": n, "type": "reference"} for n in REFERENCE_PARAMETERS]
    interactions = [{"code": code} for code in ("read", "search-type", "create", "update")]
    resource = {"interaction": interactions, "conditionalCreate": True, "searchParam": search}
    kinds = ("Patient", "ImagingStudy", "DiagnosticReport", "Observation", "Device")
    rest = {"mode": "server", "resource": [{"type": kind} | resource for kind in kinds]}
    rest["interaction"] = [{"code": "transaction"}, {"code": "batch"}]
    today = datetime.now(UTC).date().isoformat()
    return {"resourceType": "CapabilityStatement", "status": "active", "date": today} | {
        "kind": "instance",
        "implementation": {"description": label},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [rest],
    }
