"""``/studies/{uid}/results``: an integrator reads a study's AI results and fetches their
documents, within its own facility, every read audited.

The results are real: phantom radiographs go through the gateway's ingest, the study
assembler and the ONNX job worker; the outbox sends the documents to DCMTK's
``storescp``, so the SR served over HTTP is compared with the one the PACS received.
"""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from dicom_gateway import Source
from soi.runtime import Runtime
from soi.schemas import StudyResults
from soi.settings import DestinationSettings, Settings
from store import (
    AuditEvent,
    AuditOutcome,
    Delivery,
    DeliveryState,
    Job,
    ResultReason,
    ResultState,
    get_facility,
    record_result,
    utcnow,
)
from tests.soi.api.conftest import Hospitals
from tests.support.auth import bearer
from tests.support.dcmtk import dciodvfy
from tests.support.net import LOOPBACK, free_port, wait_for_port
from tests.support.store import encoded
from tests.support.tools import require_binary
from training.labels import CxrFinding
from training.phantoms import generate_cxr, phantom_to_dicom

PROBLEM = "application/problem+json"
MISSING = "1.2.826.0.1.3680043.8.498.999"


@dataclass(frozen=True, slots=True)
class Pacs:
    """DCMTK's storescp on a loopback port, writing what it receives to ``folder``."""

    port: int
    folder: Path

    def received(self) -> list[pydicom.Dataset]:
        return [pydicom.dcmread(path) for path in sorted(self.folder.iterdir())]


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[Pacs]:
    folder = tmp_path / "pacs"
    folder.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [str(require_binary("storescp")), "-aet", "PACS", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(LOOPBACK, port, timeout=15)
        yield Pacs(port, folder)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def runtime(settings: Settings, pacs: Pacs) -> Iterator[Runtime]:
    """A runtime with the ONNX job worker and an outbox to the PACS; no DIMSE listener."""
    pacs_destination = DestinationSettings(
        name="pacs", kind="dicom", ae_title="PACS", host=LOOPBACK, port=pacs.port
    )
    rt = Runtime.build(
        settings.model_copy(update={"destinations": [pacs_destination]}),
        with_listener=False,
        with_workers=True,
    )
    yield rt
    rt.close()


@dataclass(frozen=True, slots=True)
class Results:
    """A study at each hospital with its AI result; A also has an earlier one."""

    study_a: str
    study_b: str
    result_a: int
    earlier_a: int
    result_b: int


def _receive(runtime: Runtime, facility: str, seed: int) -> str:
    """A phantom radiograph with cardiomegaly, received for ``facility``; its study UID."""
    rng = np.random.default_rng(seed)
    phantom = generate_cxr(rng, findings={CxrFinding.CARDIOMEGALY}, size=512)
    ds = phantom_to_dicom(phantom, rng, modality="CR")
    with runtime.database.read() as session:
        facility_id = get_facility(session, facility).id
    outcome = runtime.ingestor.store(
        encoded(ds),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        source=Source("MODALITY", LOOPBACK, facility_id, facility),
    )
    assert outcome.ok, outcome
    return str(ds.StudyInstanceUID)


def _drain(runtime: Runtime) -> None:
    """Send every due delivery."""
    deadline = time.monotonic() + 60
    while any(sender.run_once() is not None for sender in runtime.senders):
        assert time.monotonic() < deadline, "the outbox did not drain within 60 s"


@pytest.fixture
def results(runtime: Runtime, hospitals: Hospitals) -> Results:
    study_a = _receive(runtime, "BV-A", 21)
    study_b = _receive(runtime, "BV-B", 31)
    runtime.assembler.run_once(now=utcnow() + timedelta(minutes=5))
    with runtime.database.write() as session:
        job = session.scalars(select(Job).order_by(Job.id)).first()
        assert job is not None
        earlier = record_result(
            session,
            job_id=job.id,
            study_id=job.study_id,
            model_name="cxr",
            model_version="0.2.0",
            state=ResultState.UNGRADABLE,
            reason=ResultReason(en="the image is rotated", vi="ảnh bị xoay"),
        ).id
    done = [runtime.workers[0].run_once() for _ in range(2)]
    ids = [report.result_id for report in done if report is not None]
    assert len(ids) == 2
    assert all(isinstance(i, int) for i in ids)
    _drain(runtime)
    return Results(study_a, study_b, int(ids[0]), earlier, int(ids[1]))


@pytest.fixture
def integrator(person: Callable[..., str], token_of: Callable[[str], str]) -> dict[str, str]:
    """The HIS of hospital A: a service account bound to BV-A."""
    return bearer(token_of(person("his-a", "integration", "BV-A")))


@pytest.fixture
def other(person: Callable[..., str], token_of: Callable[[str], str]) -> dict[str, str]:
    """A technician of hospital B."""
    return bearer(token_of(person("tech-b", "technician", "BV-B")))


def _events(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.database.read() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            ).all()
        )


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def _path(url: str) -> str:
    """A link's path and query, for the test client."""
    assert url.startswith("http://testserver/"), url
    return url.removeprefix("http://testserver")


class TestResults:
    def test_the_current_result_its_history_and_deliveries(
        self, client: TestClient, results: Results, integrator: dict[str, str]
    ) -> None:
        response = client.get(f"/studies/{results.study_a}/results", headers=integrator)
        assert response.status_code == 200, response.text
        body = StudyResults.model_validate(response.json())

        assert body.study.study_instance_uid == results.study_a
        assert body.study.facility == "BV-A"
        assert body.study.state == "stable"
        assert {i.kind for i in body.study.patient_identifiers} >= {"national_id", "mrn"}

        current = body.current
        assert current is not None
        assert (current.id, current.pipeline, current.state, current.status) == (
            results.result_a,
            "cxr",
            "complete",
            "preliminary",
        )
        assert current.model_name == "cxr"
        assert current.reason == {}
        cardiomegaly = next(f for f in current.findings if f.label == "cardiomegaly")
        assert cardiomegaly.positive
        assert cardiomegaly.threshold is not None
        assert cardiomegaly.probability >= cardiomegaly.threshold
        assert cardiomegaly.code.value == "8186001"
        base = f"http://testserver/studies/{results.study_a}/results/{results.result_a}"
        assert cardiomegaly.heatmap == f"{base}/heatmaps/cardiomegaly.png"
        assert all(f.heatmap is None for f in current.findings if not f.positive)
        assert current.links.sr == f"{base}/sr"
        assert current.links.pdf_by_language == {
            "vi": f"{base}/report.pdf?lang=vi",
            "en": f"{base}/report.pdf?lang=en",
        }
        assert current.links.heatmaps["cardiomegaly"] == cardiomegaly.heatmap

        kinds = [d.kind for d in current.deliveries]
        assert kinds[0] == "dicom-sr"
        assert "dicom-heatmap:cardiomegaly" in kinds
        assert kinds[-1] == "dicom-pdf"
        assert {d.state for d in current.deliveries} == {DeliveryState.SENT}
        assert all(d.destination == "pacs" and d.document_id for d in current.deliveries)

        [earlier] = body.history
        assert (earlier.id, earlier.state, earlier.findings) == (
            results.earlier_a,
            "ungradable",
            [],
        )
        assert earlier.reason == {"en": "the image is rotated", "vi": "ảnh bị xoay"}
        assert earlier.deliveries == []

    def test_another_facility_s_study_is_not_found_as_a_missing_one(
        self,
        client: TestClient,
        runtime: Runtime,
        hospitals: Hospitals,
        results: Results,
        other: dict[str, str],
    ) -> None:
        base = f"/studies/{results.study_a}/results"
        document = f"{base}/{results.result_a}"
        hidden = [
            client.get(path, headers=other)
            for path in (
                base,
                f"{document}/sr",
                f"{document}/report.pdf",
                f"{document}/heatmaps/cardiomegaly.png",
                f"{document}/fhir",
            )
        ]
        missing = client.get(f"/studies/{MISSING}/results", headers=other)
        for answer in [*hidden, missing]:
            body = _problem(answer, 404)
            assert body["title"] == "Study not found"
            assert set(body) == {"type", "title", "status", "detail", "instance"}
        assert _problem(hidden[0], 404)["detail"] == f"no study {results.study_a}"

        # Their own study is there; A's result id under it is not.
        own = client.get(f"/studies/{results.study_b}/results", headers=other)
        assert own.status_code == 200
        assert own.json()["current"]["id"] == results.result_b
        crossed = client.get(
            f"/studies/{results.study_b}/results/{results.result_a}/sr", headers=other
        )
        assert _problem(crossed, 404)["title"] == "Result not found"

        reads = [
            (e.outcome, e.facility_id, e.study_instance_uid)
            for e in _events(runtime, "result.read")
        ]
        assert reads == [
            (AuditOutcome.REFUSED, hospitals.a, results.study_a),
            (AuditOutcome.FAILURE, None, MISSING),
            (AuditOutcome.SUCCESS, hospitals.b, results.study_b),
        ]
        documents = _events(runtime, "document.read")
        assert [(e.outcome, e.detail["kind"]) for e in documents] == [
            (AuditOutcome.REFUSED, "sr"),
            (AuditOutcome.REFUSED, "pdf"),
            (AuditOutcome.REFUSED, "heatmap"),
            (AuditOutcome.REFUSED, "fhir"),
            (AuditOutcome.FAILURE, "sr"),
        ]
        assert all(e.actor == "tech-b" for e in documents)

    def test_unauthenticated_and_malformed_requests(
        self, client: TestClient, results: Results, integrator: dict[str, str]
    ) -> None:
        base = f"/studies/{results.study_a}/results"
        _problem(client.get(base), 401)
        _problem(client.get(f"{base}/{results.result_a}/sr"), 401)
        _problem(client.get("/studies/1.2'--/results", headers=integrator), 422)
        _problem(client.get(f"{base}/0/sr", headers=integrator), 422)
        _problem(client.get(f"{base}/x/report.pdf", headers=integrator), 422)
        _problem(
            client.get(f"{base}/{results.result_a}/report.pdf?lang=fr", headers=integrator), 422
        )
        heatmaps = f"{base}/{results.result_a}/heatmaps"
        _problem(client.get(f"{heatmaps}/%3Cscript%3E.png", headers=integrator), 422)
        _problem(client.get(f"{heatmaps}/..%2F..%2Fsoi.db.png", headers=integrator), 404)
        _problem(
            client.get(f"{base}/{results.result_a}/heatmaps/atelectasis.png", headers=integrator),
            404,
        )
        _problem(client.get(f"{base}/999999/fhir", headers=integrator), 404)


class TestDocuments:
    def test_the_sr_is_the_one_the_pacs_received(
        self,
        client: TestClient,
        runtime: Runtime,
        results: Results,
        integrator: dict[str, str],
        pacs: Pacs,
        tmp_path: Path,
    ) -> None:
        links = client.get(f"/studies/{results.study_a}/results", headers=integrator).json()
        answer = client.get(_path(links["current"]["links"]["sr"]), headers=integrator)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/dicom"
        path = tmp_path / "sr.dcm"
        path.write_bytes(answer.content)

        assert dciodvfy(path).errors == []
        document = hd.sr.srread(path)
        assert isinstance(document, hd.sr.Comprehensive3DSR)
        assert isinstance(document.content, hd.sr.MeasurementReport)
        served = pydicom.dcmread(path)
        assert served.StudyInstanceUID == results.study_a
        assert served.CompletionFlag == "PARTIAL"
        assert served.VerificationFlag == "UNVERIFIED"

        [sent] = [
            ds
            for ds in pacs.received()
            if ds.Modality == "SR" and ds.StudyInstanceUID == results.study_a
        ]
        assert served.SOPInstanceUID == sent.SOPInstanceUID
        assert served.ContentSequence == sent.ContentSequence
        with runtime.database.read() as session:
            [delivered] = session.scalars(
                select(Delivery).where(
                    Delivery.result_id == results.result_a, Delivery.kind == "dicom-sr"
                )
            ).all()
        assert delivered.document_id == served.SOPInstanceUID
        assert f'filename="{served.SOPInstanceUID}.dcm"' in answer.headers["content-disposition"]

        [read] = _events(runtime, "document.read")
        assert (read.actor, read.outcome, read.sop_instance_uid) == (
            "his-a",
            AuditOutcome.SUCCESS,
            served.SOPInstanceUID,
        )
        assert read.detail == {"kind": "sr", "result_id": results.result_a}

    def test_the_pdf_in_each_language(
        self,
        client: TestClient,
        runtime: Runtime,
        results: Results,
        integrator: dict[str, str],
        tmp_path: Path,
    ) -> None:
        base = f"/studies/{results.study_a}/results/{results.result_a}/report.pdf"
        texts = {}
        for lang in ("", "vi", "en"):
            answer = client.get(base, params={"lang": lang} if lang else {}, headers=integrator)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/pdf"
            path = tmp_path / f"report-{lang or 'default'}.pdf"
            path.write_bytes(answer.content)
            done = subprocess.run(
                [str(require_binary("pdftotext")), "-enc", "UTF-8", str(path), "-"],
                capture_output=True,
                check=True,
                timeout=30,
            )
            texts[lang] = " ".join(done.stdout.decode("utf-8").split())
        assert "SƠ BỘ" in texts["vi"]
        assert "Bóng tim to" in texts["vi"]
        assert "PRELIMINARY" in texts["en"]
        assert "Cardiomegaly" in texts["en"]
        assert texts[""] == texts["vi"]  # the facility's language: the setting's, vi
        assert results.study_a in texts["en"].replace(" ", "")
        languages = [e.detail["language"] for e in _events(runtime, "document.read")]
        assert languages == ["vi", "vi", "en"]

    def test_the_heatmap_and_the_fhir_bundle(
        self, client: TestClient, results: Results, integrator: dict[str, str]
    ) -> None:
        links = client.get(f"/studies/{results.study_a}/results", headers=integrator).json()
        heatmap = client.get(
            _path(links["current"]["links"]["heatmaps"]["cardiomegaly"]), headers=integrator
        )
        assert heatmap.status_code == 200, heatmap.text
        assert heatmap.headers["content-type"] == "image/png"
        picture = Image.open(io.BytesIO(heatmap.content))
        assert picture.format == "PNG"
        assert min(picture.size) >= 64

        fhir = client.get(_path(links["current"]["links"]["fhir"]), headers=integrator)
        assert fhir.status_code == 200, fhir.text
        assert fhir.headers["content-type"] == "application/fhir+json"
        bundle = fhir.json()
        assert bundle["resourceType"] == "Bundle"
        resources = [entry["resource"] for entry in bundle["entry"]]
        [report] = [r for r in resources if r["resourceType"] == "DiagnosticReport"]
        assert report["status"] == "preliminary"
        [patient] = [r for r in resources if r["resourceType"] == "Patient"]
        ids = {i["value"] for i in patient["identifier"]}
        identifiers = {i["value"] for i in links["study"]["patient_identifiers"]}
        assert ids & identifiers

    def test_a_result_of_a_model_no_longer_installed_gives_no_document(
        self,
        client: TestClient,
        runtime: Runtime,
        results: Results,
        person: Callable[..., str],
        token_of: Callable[[str], str],
    ) -> None:
        with runtime.database.write() as session:
            job = session.scalars(select(Job).order_by(Job.id.desc())).first()
            assert job is not None
            gone = record_result(
                session,
                job_id=job.id,
                study_id=job.study_id,
                model_name="cxr",
                model_version="0.0.1",
                state=ResultState.COMPLETE,
            ).id
        admin = bearer(token_of(person("root", "admin")))
        listed = client.get(f"/studies/{results.study_b}/results", headers=admin).json()
        assert listed["current"]["id"] == gone
        assert [r["id"] for r in listed["history"]] == [results.result_b]
        body = _problem(
            client.get(f"/studies/{results.study_b}/results/{gone}/sr", headers=admin), 409
        )
        assert "0.0.1" in body["detail"]
        [failed] = _events(runtime, "document.read")
        assert failed.outcome == AuditOutcome.FAILURE
        assert "0.0.1" in failed.detail["reason"]


class TestOpenApi:
    def test_the_results_and_their_errors_are_described(self, client: TestClient) -> None:
        schema = client.get("/openapi.json").json()
        results = schema["paths"]["/studies/{study_instance_uid}/results"]["get"]
        ok = results["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/StudyResults"}
        for status in ("401", "404", "422"):
            content = results["responses"][status]["content"]
            assert content == {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
        sr = schema["paths"]["/studies/{study_instance_uid}/results/{result_id}/sr"]["get"]
        assert set(sr["responses"]["200"]["content"]) == {"application/dicom"}
        components = schema["components"]["schemas"]
        assert "HTTPValidationError" not in components
        assert components["ProblemDetails"]["required"] == ["title", "status", "detail"]
        assert "example" in components["StudyResults"]
