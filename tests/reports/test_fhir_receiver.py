"""Soi's FHIR Bundles against a real FHIR R4 receiver (Medplum's FhirRouter, on Node.js).

The receiver (tests/support/fhir_server) validates every resource with Medplum's validator
against the R4 StructureDefinitions and with the official R4 JSON schema, runs transactions
all-or-nothing with conditional creates, and checks that stored references resolve.

One receiver serves the module; it answers its first request with 503 (a simulated
outage), so the exchange's first POST fails and its retry goes through. Every test takes
the ``exchange`` fixture, so that this first request is that POST whatever the test order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from reports.context import ReportContext
from reports.fhir import OrganizationRef, build_bundle, bundle_json
from tests.support.fhir_server import (
    FhirReceiver,
    ReceivedRequest,
    validate_many_against_r4_schema,
)

TOKEN = "soi-test-token"
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd|001180000123"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\n%%EOF\n"
STATION = OrganizationRef(
    "Trạm Y tế xã Phương Thiện", system="urn:soi:facility", value="TYT-PHUONG-THIEN"
)
#: The ungradable result is a result of its own (same patient and study, another id).
UNGRADABLE_RESULT_ID = 18


@dataclass
class Exchange:
    """What was sent to the module's receiver, and what it answered."""

    complete: dict[str, Any]
    ungradable: dict[str, Any]
    outage: httpx.Response
    first: httpx.Response
    second: httpx.Response
    ungradable_response: httpx.Response


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirReceiver]:
    """One receiver for the module: token required, the first request refused with 503."""
    with FhirReceiver(
        tmp_path_factory.mktemp("fhir-receiver"), token=TOKEN, fail_first=1, retry_after=1
    ) as emr:
        yield emr


@pytest.fixture(scope="module")
def _cache() -> dict[str, Exchange]:
    return {}


def _post(emr: FhirReceiver, bundle: str | bytes, **headers: str) -> httpx.Response:
    content = bundle.encode() if isinstance(bundle, str) else bundle
    return httpx.post(
        emr.base_url, content=content, headers={**emr.headers(), **headers}, timeout=60
    )


@pytest.fixture
def exchange(
    request: pytest.FixtureRequest, receiver: FhirReceiver, _cache: dict[str, Exchange]
) -> Exchange:
    """The complete result sent twice (after one 503), then the ungradable one; once."""
    if "exchange" not in _cache:
        complete_context: ReportContext = request.getfixturevalue("complete_context")
        ungradable_context: ReportContext = replace(
            request.getfixturevalue("ungradable_context"), result_id=UNGRADABLE_RESULT_ID
        )
        complete = bundle_json(build_bundle(complete_context, pdf=PDF, commune_station=STATION))
        ungradable = bundle_json(build_bundle(ungradable_context))
        outage = _post(receiver, complete)
        first = _post(receiver, complete)
        second = _post(receiver, complete)
        ungradable_response = _post(receiver, ungradable)
        _cache["exchange"] = Exchange(
            json.loads(complete), json.loads(ungradable), outage, first, second, ungradable_response
        )
    return _cache["exchange"]


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _types(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["resourceType"] for entry in bundle["entry"]]


def _only(emr: FhirReceiver, resource_type: str, **params: str) -> dict[str, Any]:
    found = emr.search(resource_type, **params)
    assert found["resourceType"] == "Bundle"
    assert found["type"] == "searchset"
    assert found["total"] == 1, f"{resource_type}?{params}: {found['total']} matches"
    resource: dict[str, Any] = found["entry"][0]["resource"]
    return resource


def _patient_id(emr: FhirReceiver) -> str:
    patient_id: str = _only(emr, "Patient", identifier=CCCD)["id"]
    return patient_id


# ------------------------------------------------------------------------ receiver


def test_metadata_is_an_r4_capability_statement(exchange: Exchange, receiver: FhirReceiver) -> None:
    statement = _ok(httpx.get(f"{receiver.base_url}/metadata", timeout=30))
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    interactions = {item["code"] for item in statement["rest"][0]["interaction"]}
    assert "transaction" in interactions


def test_first_attempt_meets_the_outage(exchange: Exchange, receiver: FhirReceiver) -> None:
    assert exchange.outage.status_code == 503
    assert exchange.outage.headers["Retry-After"] == "1"
    assert exchange.outage.json()["resourceType"] == "OperationOutcome"
    first: ReceivedRequest = receiver.requests()[0]
    assert (first.method, first.target, first.status) == ("POST", "/fhir/R4", 503)


# ------------------------------------------------------------------ the transaction


def test_complete_bundle_is_accepted(exchange: Exchange) -> None:
    answer = _ok(exchange.first)
    assert answer["resourceType"] == "Bundle"
    assert answer["type"] == "transaction-response"
    sent = exchange.complete["entry"]
    assert len(answer["entry"]) == len(sent)
    assert Counter(_types(exchange.complete)) == {
        "Organization": 1,
        "Patient": 1,
        "Device": 1,
        "ImagingStudy": 1,
        "Observation": 5,
        "DiagnosticReport": 1,
        "ServiceRequest": 1,
        "Task": 1,
        "Communication": 1,
    }
    for request, response in zip(sent, answer["entry"], strict=True):
        kind = request["resource"]["resourceType"]
        assert response["response"]["status"] == "201", (kind, response["response"])
        assert response["response"]["location"].startswith(f"{kind}/")
        assert response["resource"]["resourceType"] == kind


def test_second_post_creates_nothing(exchange: Exchange, receiver: FhirReceiver) -> None:
    first = _ok(exchange.first)
    second = _ok(exchange.second)
    assert [e["response"]["status"] for e in second["entry"]] == ["200"] * len(second["entry"])
    assert [e["resource"]["id"] for e in second["entry"]] == [
        e["resource"]["id"] for e in first["entry"]
    ]
    for kind, params in (
        ("Patient", {"identifier": CCCD}),
        ("DiagnosticReport", {"identifier": "urn:soi:result|17"}),
        ("Observation", {"identifier": "urn:soi:result|17-cardiomegaly"}),
        ("ServiceRequest", {"identifier": "urn:soi:result|17-follow-up"}),
        ("Task", {"identifier": "urn:soi:result|17-follow-up-task"}),
        ("Communication", {"identifier": "urn:soi:result|17-commune-notification"}),
    ):
        _only(receiver, kind, **params)


def test_patient_is_found_by_cccd(exchange: Exchange, receiver: FhirReceiver) -> None:
    assert exchange.first.status_code == 200
    patient = _only(receiver, "Patient", identifier=CCCD)
    values = {(i["system"], i["value"]) for i in patient["identifier"]}
    assert ("http://fhir.hl7.org.vn/core/sid/cccd", "001180000123") in values
    assert ("http://fhir.hl7.org.vn/core/sid/bhyt", "DN4010100000123") in values
    assert patient["name"][0]["family"] == "NGUYỄN"
    assert patient["birthDate"] == "1980-02-14"
    assert receiver.read("Patient", patient["id"])["id"] == patient["id"]


def test_diagnostic_report_is_preliminary_and_linked(
    exchange: Exchange, receiver: FhirReceiver
) -> None:
    assert exchange.first.status_code == 200
    patient_id = _patient_id(receiver)
    report = _only(receiver, "DiagnosticReport", identifier="urn:soi:result|17")
    assert report["status"] == "preliminary"
    assert report["subject"]["reference"] == f"Patient/{patient_id}"
    assert report["presentedForm"][0]["contentType"] == "application/pdf"
    # The transaction's urn:uuid references now name the server's resources.
    for reference in [r["reference"] for r in report["result"]] + [
        report["imagingStudy"][0]["reference"],
        report["performer"][0]["reference"],
    ]:
        kind, _, resource_id = reference.partition("/")
        assert receiver.read(kind, resource_id)["resourceType"] == kind
    observations = receiver.search("Observation", subject=f"Patient/{patient_id}")
    statuses = {entry["resource"]["status"] for entry in observations["entry"]}
    assert statuses == {"preliminary"}


def test_ungradable_bundle_is_accepted(exchange: Exchange, receiver: FhirReceiver) -> None:
    answer = _ok(exchange.ungradable_response)
    assert answer["type"] == "transaction-response"
    statuses = {
        sent["resource"]["resourceType"]: got["response"]["status"]
        for sent, got in zip(exchange.ungradable["entry"], answer["entry"], strict=True)
    }
    # The facility, patient, model and study exist already; the result is new.
    assert statuses == {
        "Organization": "200",
        "Patient": "200",
        "Device": "200",
        "ImagingStudy": "200",
        "Observation": "201",
        "DiagnosticReport": "201",
    }
    report = _only(
        receiver, "DiagnosticReport", identifier=f"urn:soi:result|{UNGRADABLE_RESULT_ID}"
    )
    assert report["status"] == "preliminary"
    gate = _only(
        receiver, "Observation", identifier=f"urn:soi:result|{UNGRADABLE_RESULT_ID}-quality-gate"
    )
    assert gate["valueCodeableConcept"]["coding"][0]["code"] == "ungradable"
    patient_id = _patient_id(receiver)
    reports = receiver.search("DiagnosticReport", subject=f"Patient/{patient_id}")
    assert reports["total"] == 2
    _only(receiver, "Organization", identifier="urn:soi:facility|BV-DK-HAGIANG")
    _only(receiver, "Device", identifier="urn:soi:model|cxr@0.2.0")


def test_bundles_pass_the_r4_json_schema(exchange: Exchange) -> None:
    bogus = {"resourceType": "Observation", "status": "bogus", "code": {"text": "x"}}
    complete, ungradable, invalid = validate_many_against_r4_schema(
        [exchange.complete, exchange.ungradable, bogus]
    )
    assert complete == []
    assert ungradable == []
    # The validator does find problems: an empty list above means something.
    assert len(invalid) == 1
    assert invalid[0].startswith("Observation.status: must be equal to one of the allowed values")


# --------------------------------------------------------------------- refusals


def test_invalid_status_is_refused(exchange: Exchange, receiver: FhirReceiver) -> None:
    bogus = {"resourceType": "Observation", "status": "bogus", "code": {"text": "x"}}
    response = httpx.post(
        f"{receiver.base_url}/Observation", json=bogus, headers=receiver.headers(), timeout=30
    )
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["severity"] == "error"
    assert issue["expression"] == ["Observation.status"]
    assert "preliminary" in issue["details"]["text"]


def test_missing_required_element_is_refused(exchange: Exchange, receiver: FhirReceiver) -> None:
    response = httpx.post(
        f"{receiver.base_url}/Observation",
        json={"resourceType": "Observation", "status": "final"},
        headers=receiver.headers(),
        timeout=30,
    )
    assert response.status_code == 400, response.text
    issues = response.json()["issue"]
    assert {"Observation.code"} <= {e for issue in issues for e in issue.get("expression", [])}
    assert any(issue["details"]["text"] == "Missing required property" for issue in issues)


def test_invalid_entry_refuses_the_whole_transaction(
    exchange: Exchange, receiver: FhirReceiver
) -> None:
    bundle = json.loads(json.dumps(exchange.ungradable))
    for entry in bundle["entry"]:
        for identifier in entry["resource"].get("identifier", []):
            if identifier.get("system") == "urn:soi:result":
                identifier["value"] = identifier["value"].replace("18", "99", 1)
        entry["request"]["ifNoneExist"] = entry["request"]["ifNoneExist"].replace("|18", "|99")
    index = _types(bundle).index("Observation")
    bundle["entry"][index]["resource"]["status"] = "bogus"
    response = _post(receiver, json.dumps(bundle))
    assert response.status_code == 400, response.text
    expressions = [e for issue in response.json()["issue"] for e in issue.get("expression", [])]
    assert f"Bundle.entry[{index}].resource.status" in expressions
    assert receiver.search("DiagnosticReport", identifier="urn:soi:result|99")["total"] == 0


def test_token_is_enforced(exchange: Exchange, receiver: FhirReceiver) -> None:
    url = f"{receiver.base_url}/Patient"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.get(url, params={"identifier": CCCD}, headers=headers, timeout=30)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["resourceType"] == "OperationOutcome"
    response = httpx.post(
        receiver.base_url,
        content=b'{"resourceType": "Bundle", "type": "transaction", "entry": []}',
        headers={"Content-Type": "application/fhir+json"},
        timeout=30,
    )
    assert response.status_code == 401
    authorized = httpx.get(
        url,
        params={"identifier": CCCD},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert authorized.status_code == 200
