"""The HTTP API against its own OpenAPI schema: schemathesis generates requests for every
operation from the schema FastAPI serves, sends them to the app in process with an
administrator's token, and checks each answer: no server error, a status code, a
content type and a body the schema declares.

Examples are bounded and derandomized, so a run is short and repeatable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.schemas import BaseSchema

from soi.api import create_app
from soi.runtime import Runtime
from soi.settings import Settings
from tests.soi.api.conftest import Hospitals
from tests.support.auth import bearer
from tests.support.store import index_cxr_study

pytestmark = pytest.mark.slow

#: Operations left out: the resumable uploads and the web pages (tested on their own).
EXCLUDED_PATHS = r"^/(uploads|ui)(/|$)"
#: STOW-RS bodies: each generated body goes as the one part of a multipart/related body.
STOW_BOUNDARY = "soi-schemathesis"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={STOW_BOUNDARY}'


@schemathesis.serializer("multipart/related")
def _one_part(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return (
        f"--{STOW_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{STOW_BOUNDARY}--\r\n".encode()
    )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Sign-in failures are not limited: the generated sign-ins must not end in 429."""
    return settings.model_copy(
        update={"login_max_failures": 1000, "login_max_failures_per_address": 100_000}
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime with its DIMSE listener up, so that ``/health`` is ok."""
    rt = Runtime.build(settings)
    assert rt.listener is not None
    rt.listener.start()
    yield rt
    rt.close()


#: A study of each hospital; the technician of BV-A must never see B's.
STUDY_A, STUDY_B = "1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.22"


@pytest.fixture(params=["admin", "technician"])
def caller(request: pytest.FixtureRequest) -> str:
    """Who sends the generated requests: an administrator, or a technician of BV-A."""
    role: str = request.param
    return role


@pytest.fixture
def api_schema(
    caller: str,
    runtime: Runtime,
    hospitals: Hospitals,
    person: Callable[..., str],
    token_of: Callable[[str], str],
) -> BaseSchema:
    """The app's schema, over a runtime holding a study of each hospital; the app keeps
    the caller's name and credentials in its state."""
    index_cxr_study(runtime.database, STUDY_A, facility_code="BV-A")
    index_cxr_study(runtime.database, STUDY_B, facility_code="BV-B")
    app = create_app(runtime)
    facility = "BV-A" if caller == "technician" else None
    app.state.test_caller = caller
    app.state.test_headers = bearer(token_of(person(caller, caller, facility)))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=EXCLUDED_PATHS)


@schema.parametrize()
@hypothesis.settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_operation_answers_as_its_schema_says(case: Case) -> None:
    app = case.operation.schema.app
    headers = dict(app.state.test_headers)
    if case.media_type == "multipart/related":
        headers["Content-Type"] = STOW_TYPE
    response = case.call_and_validate(headers=headers)
    if app.state.test_caller == "technician":
        # B's study UID is also its patient's MRN (index_cxr_study).
        assert STUDY_B not in response.text, response.text
