"""Soi's HTTP API on a free loopback port, as ``soi serve`` runs it, for DICOMweb tests.

The FastAPI app over a real runtime, served by uvicorn in a thread, with two hospitals
(``BV-A``, ``BV-B``) and callers with API tokens: ``pacs`` (an integration account that
sees every facility), ``tech-a`` and ``tech-b`` (technicians of each hospital) and
``research`` (a researcher). Requests prove who sends them with :meth:`Soi.headers`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import uvicorn
from dicomweb_client import DICOMwebClient
from sqlalchemy import func, select

from soi.api import create_app
from soi.auth import local_caller
from soi.runtime import Runtime
from soi.services import create_user, issue_token, service_account_token
from soi.settings import Settings
from store import Instance, add_facility

from .auth import PASSWORD, bearer
from .net import LOOPBACK, free_port

__all__ = ["CALLERS", "Soi", "serve_soi"]

#: The people made besides ``pacs``: user name, role and facility.
CALLERS = (
    ("tech-a", "technician", "BV-A"),
    ("tech-b", "technician", "BV-B"),
    ("research", "researcher", None),
)


@dataclass
class Soi:
    """Soi's DICOMweb service on a loopback port, and the tokens of its callers."""

    url: str
    runtime: Runtime
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, user: str = "pacs") -> dict[str, str]:
        """What a request of ``user`` carries to prove who it is."""
        return bearer(self.tokens[user])

    def client(self, user: str = "pacs") -> DICOMwebClient:
        """dicomweb-client for ``user``."""
        return DICOMwebClient(self.url, headers=self.headers(user))

    def http(self, user: str = "pacs") -> httpx.Client:
        """A plain HTTP client for ``user``."""
        return httpx.Client(base_url=self.url, headers=self.headers(user), timeout=60.0)

    def stored(self) -> int:
        """How many instances are indexed."""
        with self.runtime.database.read() as session:
            return int(session.scalar(select(func.count()).select_from(Instance)) or 0)


def _add_callers(runtime: Runtime) -> dict[str, str]:
    with runtime.database.write() as session:
        add_facility(session, code="BV-A", name="Bệnh viện A")
        add_facility(session, code="BV-B", name="Bệnh viện B")
    actor = local_caller()
    tokens = {
        "pacs": service_account_token(
            runtime.database, actor=actor, username="pacs", name="tests"
        ).token
    }
    for username, role, facility in CALLERS:
        create_user(
            runtime.database,
            actor=actor,
            username=username,
            role=role,
            password=PASSWORD,
            facility_code=facility,
        )
        tokens[username] = issue_token(runtime.database, actor=actor, username=username).token
    return tokens


@contextmanager
def serve_soi(settings: Settings) -> Iterator[Soi]:
    """Run Soi's HTTP API (no DIMSE listener) until the block ends.

    Raises
    ------
    AssertionError
        uvicorn does not start within 30 s.
    """
    runtime = Runtime.build(settings, with_listener=False)
    tokens = _add_callers(runtime)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime), host=LOOPBACK, port=port, log_config=None, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, name="soi-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
            time.sleep(0.02)
        yield Soi(url=f"http://{LOOPBACK}:{port}/dicomweb", runtime=runtime, tokens=tokens)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        runtime.close()
