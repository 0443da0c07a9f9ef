"""The HTTP API with a real runtime and database, two hospitals and their people."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from soi.api import create_app
from soi.auth import local_caller
from soi.runtime import Runtime
from soi.services import create_user, issue_token
from soi.settings import Settings
from store import add_facility, get_facility
from tests.support.auth import PASSWORD


@dataclass(frozen=True, slots=True)
class Hospitals:
    """Facility ids of the two hospitals."""

    a: int
    b: int


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime without a DIMSE listener (the API tests store rows directly)."""
    rt = Runtime.build(settings, with_listener=False)
    yield rt
    rt.close()


@pytest.fixture
def hospitals(runtime: Runtime) -> Hospitals:
    """BV-A and BV-B."""
    with runtime.database.write() as session:
        add_facility(session, code="BV-A", name="Bệnh viện A")
        add_facility(session, code="BV-B", name="Bệnh viện B")
    with runtime.database.read() as session:
        return Hospitals(a=get_facility(session, "BV-A").id, b=get_facility(session, "BV-B").id)


@pytest.fixture
def person(runtime: Runtime) -> Callable[..., str]:
    """Make a user (a person with :data:`PASSWORD`, or a service account); its name."""

    def make(username: str, role: str, facility: str | None = None, **fields: str) -> str:
        create_user(
            runtime.database,
            actor=local_caller(),
            username=username,
            role=role,
            password=None if role == "integration" else PASSWORD,
            facility_code=facility,
            **fields,
        )
        return username

    return make


@pytest.fixture
def token_of(runtime: Runtime) -> Callable[[str], str]:
    """Issue an API token for a user."""

    def issue(username: str) -> str:
        return issue_token(runtime.database, actor=local_caller(), username=username, days=1).token

    return issue


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """A client with no credentials."""
    with TestClient(create_app(runtime)) as test_client:
        yield test_client
