"""The FHIR R4 stand-in receiver, fed Soi's own transaction Bundles.

Peers: Soi's :class:`~reports.channels.FhirChannel` and plain httpx requests. The
Bundles are the ones Soi builds for a hand-made chest X-ray result
(``tests/reports/conftest.py``).
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from reports.channels import Document, FhirChannel, Outcome
from reports.context import ReportContext
from reports.fhir import OrganizationRef, build_bundle, bundle_json
from soi.standins import FhirReceiver

TOKEN = "standin-test-token"
CCCD = "http://fhir.hl7.org.vn/core/sid/cccd|001180000123"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\n%%EOF\n"
STATION = OrganizationRef(
    "Trạm Y tế xã Phương Thiện", system="urn:soi:facility", value="TYT-PHUONG-THIEN"
)


@pytest.fixture
def bundle(complete_context: ReportContext) -> str:
    """Soi's Bundle of a complete result with a positive finding, its PDF and a station."""
    return bundle_json(build_bundle(complete_context, pdf=PDF, commune_station=STATION))


@pytest.fixture
def emr(tmp_path: Path) -> Iterator[FhirReceiver]:
    with FhirReceiver(store_dir=tmp_path / "emr", token=TOKEN) as receiver:
        yield receiver


def _post(emr: FhirReceiver, body: str | bytes, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Content-Type": "application/fhir+json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = body.encode() if isinstance(body, str) else body
    return httpx.post(emr.base_url, content=content, headers=headers, timeout=30)


def _get(emr: FhirReceiver, path: str, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.get(f"{emr.base_url}/{path}", params=params, headers=headers, timeout=30)


def _statuses(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [entry["response"]["status"] for entry in response.json()["entry"]]


def _issues(response: httpx.Response, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issues: list[dict[str, Any]] = outcome["issue"]
    assert issues
    return issues


def _patient(name: str, value: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:id", "value": value}],
        "name": [{"family": name}],
    }


def _transaction(*entries: dict[str, Any], kind: str = "transaction") -> str:
    return json.dumps({"resourceType": "Bundle", "type": kind, "entry": list(entries)})


def _post_entry(resource: dict[str, Any], if_none_exist: str | None = None) -> dict[str, Any]:
    request = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist is not None:
        request["ifNoneExist"] = if_none_exist
    return {"resource": resource, "request": request}


class TestSoiBundles:
    def test_first_send_creates_every_entry_and_the_second_creates_nothing(
        self, emr: FhirReceiver, bundle: str
    ) -> None:
        sent = json.loads(bundle)["entry"]
        first = _post(emr, bundle)
        assert _statuses(first) == ["201 Created"] * len(sent)
        assert first.json()["type"] == "transaction-response"
        counts = emr.counts()
        assert counts == Counter(e["resource"]["resourceType"] for e in sent)
        assert counts["Observation"] == 5
        outcome = FhirChannel(emr.base_url, token=TOKEN).send(Document("fhir", "b", text=bundle))
        assert outcome.outcome is Outcome.SENT, outcome.message
        assert outcome.message.endswith(f"{len(sent)} entries (200 OK)")
        assert emr.counts() == counts
        again = _post(emr, bundle)
        locations = [e["response"]["location"] for e in first.json()["entry"]]
        assert [e["response"]["location"] for e in again.json()["entry"]] == locations

    def test_references_are_resolved_to_the_stored_resources(
        self, emr: FhirReceiver, bundle: str
    ) -> None:
        answer = _post(emr, bundle).json()
        stored = {
            f"{kind}/{resource['id']}" for kind in emr.counts() for resource in emr.resources(kind)
        }
        locations = [e["response"]["location"].rsplit("/_history/", 1)[0] for e in answer["entry"]]
        assert set(locations) == stored
        references = [
            ref
            for kind in emr.counts()
            for resource in emr.resources(kind)
            for ref in _references(resource)
        ]
        assert references
        assert not [ref for ref in references if ref.startswith("urn:uuid:")]
        assert set(references) <= stored
        [patient] = emr.resources("Patient")
        [report] = emr.resources("DiagnosticReport")
        assert report["subject"]["reference"] == f"Patient/{patient['id']}"
        assert len(report["result"]) == 5

    def test_patient_and_report_are_found_by_search(self, emr: FhirReceiver, bundle: str) -> None:
        assert _post(emr, bundle).status_code == 200
        [patient] = emr.search("Patient", CCCD)
        assert patient["name"][0]["family"] == "NGUYỄN"
        found = _get(emr, "Patient", identifier=CCCD).json()
        assert (found["type"], found["total"]) == ("searchset", 1)
        assert found["entry"][0]["resource"] == patient
        assert found["entry"][0]["fullUrl"] == f"{emr.base_url}/Patient/{patient['id']}"
        reference = f"Patient/{patient['id']}"
        by_subject = _get(emr, "DiagnosticReport", subject=reference).json()
        assert by_subject["total"] == 1
        report = by_subject["entry"][0]["resource"]
        assert report["presentedForm"][0]["contentType"] == "application/pdf"
        assert _get(emr, "DiagnosticReport", patient=patient["id"]).json()["total"] == 1
        assert _get(emr, "Observation", patient=reference).json()["total"] == 5
        assert _get(emr, "Observation", subject="Patient/nobody").json()["total"] == 0
        assert emr.search("Patient", "urn:other|001180000123") == []

    def test_a_second_result_of_the_same_patient_adds_its_report_only(
        self, emr: FhirReceiver, bundle: str, ungradable_context: ReportContext
    ) -> None:
        from dataclasses import replace

        assert _post(emr, bundle).status_code == 200
        other = bundle_json(build_bundle(replace(ungradable_context, result_id=18)))
        statuses = dict(zip(_types(other), _statuses(_post(emr, other)), strict=True))
        assert statuses["Patient"] == statuses["ImagingStudy"] == "200 OK"
        assert statuses["DiagnosticReport"] == "201 Created"
        assert emr.counts()["Patient"] == 1
        assert emr.counts()["DiagnosticReport"] == 2
        [patient] = emr.resources("Patient")
        subjects = {r["subject"]["reference"] for r in emr.resources("DiagnosticReport")}
        assert subjects == {f"Patient/{patient['id']}"}

    def test_what_arrived_is_written_as_json(
        self, emr: FhirReceiver, bundle: str, tmp_path: Path
    ) -> None:
        assert _post(emr, bundle).status_code == 200
        [patient] = emr.resources("Patient")
        path = tmp_path / "emr" / "Patient" / f"{patient['id']}.json"
        text = path.read_text(encoding="utf-8")
        assert "NGUYỄN" in text
        assert json.loads(text) == patient
        written = sorted(p.parent.name for p in (tmp_path / "emr").glob("*/*.json"))
        assert Counter(written) == emr.counts()

    def test_read_answers_the_resource_and_404_for_what_is_not_there(
        self, emr: FhirReceiver, bundle: str
    ) -> None:
        assert _post(emr, bundle).status_code == 200
        [patient] = emr.resources("Patient")
        read = _get(emr, f"Patient/{patient['id']}")
        assert read.status_code == 200
        assert read.json() == patient
        assert read.json()["meta"]["versionId"] == "1"
        assert read.headers["etag"] == 'W/"1"'
        assert _issues(_get(emr, "Patient/no-such-id"), 404)[0]["code"] == "not-found"
        assert _issues(_get(emr, "Nonsense/1"), 404)[0]["code"] == "not-found"
        assert _issues(_get(emr, "Nonsense"), 404)


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _types(bundle: str) -> list[str]:
    return [entry["resource"]["resourceType"] for entry in json.loads(bundle)["entry"]]


class TestRefusals:
    @pytest.mark.parametrize(
        ("kind", "change", "expression"),
        [
            ("Patient", {"birthDate": "14/02/1980"}, "resource.birthDate"),
            ("Patient", {"favouriteColour": "blue"}, "resource.favouriteColour"),
            ("DiagnosticReport", {"status": None}, "resource.status"),
            ("Observation", {"resourceType": "Observaton"}, "resource.resourceType"),
        ],
    )
    def test_an_invalid_resource_refuses_the_whole_transaction(
        self,
        emr: FhirReceiver,
        bundle: str,
        kind: str,
        change: dict[str, Any],
        expression: str,
    ) -> None:
        data = json.loads(bundle)
        index = _types(bundle).index(kind)
        resource = data["entry"][index]["resource"]
        for key, value in change.items():
            if value is None:
                del resource[key]
            else:
                resource[key] = value
        issues = _issues(_post(emr, json.dumps(data)), 400)
        assert f"Bundle.entry[{index}].{expression}" in [
            where for issue in issues for where in issue.get("expression", [])
        ]
        assert all(issue["diagnostics"] for issue in issues)
        assert emr.counts() == {}
        outcome = FhirChannel(emr.base_url, token=TOKEN).send(
            Document("fhir", "bad", text=json.dumps(data))
        )
        assert outcome.outcome is Outcome.REFUSED
        assert "400" in outcome.message

    def test_a_reference_to_no_entry_refuses_the_transaction(
        self, emr: FhirReceiver, bundle: str
    ) -> None:
        data = json.loads(bundle)
        index = _types(bundle).index("DiagnosticReport")
        data["entry"][index]["resource"]["subject"]["reference"] = "urn:uuid:0000-missing"
        [issue] = _issues(_post(emr, json.dumps(data)), 400)
        assert "urn:uuid:0000-missing" in issue["diagnostics"]
        assert emr.counts() == {}

    @pytest.mark.parametrize(
        ("body", "words"),
        [
            (b"this is not JSON", "not JSON"),
            (b"\xff\xfe{", "not JSON"),
            (b"[1, 2]", "resourceType"),
            (json.dumps(_patient("TRAN", "1")).encode(), "expected a Bundle"),
            (_transaction(kind="collection").encode(), "transaction or batch"),
        ],
    )
    def test_what_is_not_a_transaction_is_400(
        self, emr: FhirReceiver, body: bytes, words: str
    ) -> None:
        [issue] = _issues(_post(emr, body), 400)
        assert words in issue["diagnostics"]

    def test_without_the_token_requests_are_401(self, emr: FhirReceiver, bundle: str) -> None:
        for token in (None, "wrong-token"):
            response = _post(emr, bundle, token=token)
            assert _issues(response, 401)[0]["code"] == "login"
            assert response.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{emr.base_url}/Patient", timeout=30).status_code == 401
        refused = FhirChannel(emr.base_url, token="wrong").send(Document("fhir", "b", text=bundle))
        assert refused.outcome is Outcome.REFUSED
        assert emr.counts() == {}

    def test_an_unsupported_search_parameter_is_400_not_everything(self, emr: FhirReceiver) -> None:
        assert _post(emr, _transaction(_post_entry(_patient("TRAN", "1")))).status_code == 200
        [issue] = _issues(_get(emr, "Patient", family="TRAN"), 400)
        assert issue["code"] == "not-supported"


class TestConditionalOperations:
    def test_if_none_exist_matches_on_every_parameter(self, emr: FhirReceiver) -> None:
        a = _patient("TRAN", "A-1")
        a["identifier"].append({"system": "urn:test:other", "value": "X|1"})
        [status] = _statuses(_post(emr, _transaction(_post_entry(a, "identifier=urn:test:id|A-1"))))
        assert status == "201 Created"
        both = "identifier=urn:test:id|A-1&identifier=urn:test:other|X%5C%7C1"
        assert _statuses(_post(emr, _transaction(_post_entry(a, both)))) == ["200 OK"]
        b = _patient("TRAN", "A-1")
        b["identifier"].append({"system": "urn:test:other", "value": "X2"})
        other = "identifier=urn:test:id|A-1&identifier=urn:test:other|X2"
        assert _statuses(_post(emr, _transaction(_post_entry(b, other)))) == ["201 Created"]
        assert emr.counts() == {"Patient": 2}
        assert len(emr.search("Patient", "urn:test:other|X\\|1")) == 1
        assert len(emr.search("Patient", "A-1")) == 2
        assert len(emr.search("Patient", "urn:test:id|")) == 2

    def test_several_matches_are_412(self, emr: FhirReceiver) -> None:
        twice = _transaction(_post_entry(_patient("LE", "D")), _post_entry(_patient("LE", "D")))
        assert _statuses(_post(emr, twice)) == ["201 Created"] * 2
        conditional = _transaction(_post_entry(_patient("LE", "D"), "identifier=urn:test:id|D"))
        assert _issues(_post(emr, conditional), 412)[0]["code"] == "multiple-matches"
        assert emr.counts() == {"Patient": 2}

    def test_conditional_put_updates_the_one_match(self, emr: FhirReceiver) -> None:
        assert _post(emr, _transaction(_post_entry(_patient("PHAM", "P")))).status_code == 200
        [created] = emr.resources("Patient")
        put = {
            "resource": _patient("PHẠM", "P"),
            "request": {"method": "PUT", "url": "Patient?identifier=urn:test:id|P"},
        }
        assert _statuses(_post(emr, _transaction(put))) == ["200 OK"]
        [updated] = emr.resources("Patient")
        assert updated["id"] == created["id"]
        assert updated["name"][0]["family"] == "PHẠM"
        assert updated["meta"]["versionId"] == "2"
        put["request"]["url"] = "Patient?identifier=urn:test:id|Q"
        assert _statuses(_post(emr, _transaction(put))) == ["201 Created"]
        assert emr.counts() == {"Patient": 2}

    def test_a_batch_runs_each_entry_on_its_own(self, emr: FhirReceiver) -> None:
        bad = _patient("VO", "B")
        bad["birthDate"] = "yesterday"
        batch = _transaction(_post_entry(_patient("VO", "A")), _post_entry(bad), kind="batch")
        response = _post(emr, batch)
        assert response.json()["type"] == "batch-response"
        assert _statuses(response) == ["201 Created", "400"]
        outcome = response.json()["entry"][1]["response"]["outcome"]
        assert outcome["issue"][0]["expression"] == ["Bundle.entry[0].resource.birthDate"]
        assert emr.counts() == {"Patient": 1}


class TestServer:
    def test_metadata_is_an_open_r4_capability_statement(self, emr: FhirReceiver) -> None:
        response = httpx.get(f"{emr.base_url}/metadata", timeout=30)
        assert response.status_code == 200
        statement = CapabilityStatement.model_validate(response.json())
        assert statement.fhirVersion == "4.0.1"
        assert emr.label in response.text
        assert "stand-in" in emr.label
        interactions = {item["code"] for item in response.json()["rest"][0]["interaction"]}
        assert interactions == {"transaction", "batch"}

    def test_stop_frees_the_port_and_keeps_what_arrived(self, tmp_path: Path) -> None:
        receiver = FhirReceiver().start()
        port = receiver.port
        assert port > 0
        assert receiver.base_url == f"http://127.0.0.1:{port}/fhir"
        assert _post(receiver, _transaction(_post_entry(_patient("DO", "S")))).status_code == 200
        receiver.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{receiver.base_url}/metadata", timeout=5)
        assert receiver.counts() == {"Patient": 1}
        with FhirReceiver(port=port) as again:
            assert httpx.get(f"{again.base_url}/metadata", timeout=5).status_code == 200

    def test_a_taken_port_is_an_oserror(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            receiver = FhirReceiver(port=sock.getsockname()[1])
            with pytest.raises(OSError, match="in use"):
                receiver.start()

    @pytest.mark.parametrize(("argument", "value"), [("port", -1), ("token", "")])
    def test_bad_arguments_are_refused(self, argument: str, value: object) -> None:
        with pytest.raises(ValueError, match=f"`{argument}`"):
            FhirReceiver(**{argument: value})  # type: ignore[arg-type]
