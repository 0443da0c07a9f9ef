"""A stored AI result, loaded with everything its documents need."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset
from sqlalchemy import update

from reports.context import Language, ReportContext
from reports.pdf import STRINGS, report_title
from soi.runtime import Runtime
from soi.services.documents import DocumentFactory
from soi.services.report_context import load_report_context
from soi.settings import Settings
from store import (
    DEFAULT_FACILITY_CODE,
    Facility,
    NotFoundError,
    Result,
    set_facility_language,
    utcnow,
)
from tests.support.store import ingest_datasets
from tests.support.tools import require_binary
from training.labels import CxrFinding
from training.phantoms import generate_cxr, phantom_to_dicom


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.build(settings, with_listener=False, with_workers=True)
    yield rt
    rt.close()


def test_context_of_a_stored_result(runtime: Runtime) -> None:
    rng = np.random.default_rng(21)
    phantom = generate_cxr(rng, findings={CxrFinding.CARDIOMEGALY}, size=512)
    ds = phantom_to_dicom(phantom, rng, modality="CR")
    ingest_datasets(runtime.ingestor, [ds])
    runtime.assembler.run_once(now=utcnow() + timedelta(minutes=5))
    report = runtime.workers[0].run_once()
    assert report is not None
    assert report.result_id is not None

    context = load_report_context(
        runtime.database,
        report.result_id,
        registry=runtime.registry,
        instance_files=runtime.files,
        result_files=runtime.result_files,
    )

    assert context.state == "complete"
    assert context.preliminary
    assert context.study.study_instance_uid == ds.StudyInstanceUID
    assert context.patient.name == str(ds.PatientName)
    kinds = {identifier.kind for identifier in context.patient.identifiers}
    assert {"national_id", "mrn"} <= kinds
    [image] = context.images
    assert image.sop_instance_uid == ds.SOPInstanceUID
    assert image.path.is_file()
    assert context.model.device_name == "cxr 0.2.0"
    assert context.model.synthetic_training_data
    assert {m.key for m in context.model.metrics} == {str(f) for f in CxrFinding}
    cardiomegaly = next(f for f in context.findings if f.key == "cardiomegaly")
    assert cardiomegaly.positive
    assert cardiomegaly.display_vi == "Bóng tim to"
    assert cardiomegaly.overlay_path is not None
    assert cardiomegaly.overlay_path.is_file()
    assert {gate.gate for gate in context.gates} >= {"modality", "view"}
    with runtime.database.read() as session:
        assert session.get(Result, report.result_id) is not None
    with pytest.raises(NotFoundError):
        load_report_context(
            runtime.database,
            report.result_id + 100,
            registry=runtime.registry,
            instance_files=runtime.files,
            result_files=runtime.result_files,
        )


def _stored_result(runtime: Runtime, seed: int) -> int:
    """Receive one CR of a new study (LOCAL facility) and run its job; the result's id."""
    rng = np.random.default_rng(seed)
    phantom = generate_cxr(rng, findings={CxrFinding.CARDIOMEGALY}, size=512)
    ingest_datasets(runtime.ingestor, [phantom_to_dicom(phantom, rng, modality="CR")])
    runtime.assembler.run_once(now=utcnow() + timedelta(minutes=5))
    report = runtime.workers[0].run_once()
    assert report is not None
    assert report.result_id is not None
    return report.result_id


def _context(runtime: Runtime, result_id: int, default_language: Language = "vi") -> ReportContext:
    return load_report_context(
        runtime.database,
        result_id,
        registry=runtime.registry,
        instance_files=runtime.files,
        result_files=runtime.result_files,
        default_language=default_language,
    )


def _set_local_language(runtime: Runtime, language: str | None) -> None:
    with runtime.database.write() as session:
        set_facility_language(session, DEFAULT_FACILITY_CODE, report_language=language)


def _pdf_text(document: Dataset, tmp_path: Path) -> str:
    """Poppler's text of an encapsulated PDF, white space normalised."""
    path = tmp_path / "report.pdf"
    path.write_bytes(bytes(document.EncapsulatedDocument).rstrip(b"\0"))
    done = subprocess.run(
        [str(require_binary("pdftotext")), "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return " ".join(done.stdout.decode("utf-8").split())


class TestReportLanguage:
    """The facility's ``report_language`` wins; the setting's applies to the others."""

    def test_the_setting_applies_to_a_facility_without_its_own(self, runtime: Runtime) -> None:
        result_id = _stored_result(runtime, 31)

        assert _context(runtime, result_id).facility.language == "vi"
        assert _context(runtime, result_id, default_language="en").facility.language == "en"

    def test_an_english_facility_gets_english_documents(
        self, runtime: Runtime, tmp_path: Path
    ) -> None:
        result_id = _stored_result(runtime, 32)
        _set_local_language(runtime, "en")

        context = _context(runtime, result_id, default_language="vi")
        assert context.facility.language == "en"
        assert runtime.settings.report_language == "vi"
        factory = DocumentFactory(
            settings=runtime.settings,
            database=runtime.database,
            registry=runtime.registry,
            instance_files=runtime.files,
            result_files=runtime.result_files,
        )
        pdf = factory(result_id, "dicom-pdf", "pacs").dataset
        assert pdf is not None
        assert pdf.DocumentTitle == report_title(context, "en")
        assert pdf.DocumentTitle.startswith(STRINGS["en"]["title"])
        text = _pdf_text(pdf, tmp_path)
        assert "AI chest X-ray result" in text
        assert "Cardiomegaly" in text
        assert STRINGS["vi"]["title"] not in text
        oru = factory(result_id, "hl7-oru", "his").text
        assert oru is not None
        assert oru.split("\r", 1)[0].split("|")[18] == "en^English^ISO639"
        bundle = json.loads(factory(result_id, "fhir-bundle", "emr").text or "{}")
        [report] = [
            entry["resource"]
            for entry in bundle["entry"]
            if entry["resource"]["resourceType"] == "DiagnosticReport"
        ]
        assert report["language"] == "en"
        assert report["presentedForm"][0]["language"] == "en"
        assert "Cardiomegaly" in report["conclusion"]

    def test_a_vietnamese_facility_keeps_vietnamese_under_an_english_setting(
        self, runtime: Runtime
    ) -> None:
        result_id = _stored_result(runtime, 33)
        _set_local_language(runtime, "vi")
        assert _context(runtime, result_id, default_language="en").facility.language == "vi"

        _set_local_language(runtime, None)
        assert _context(runtime, result_id, default_language="en").facility.language == "en"

    def test_an_unknown_stored_language_is_refused(self, runtime: Runtime) -> None:
        result_id = _stored_result(runtime, 34)
        with runtime.database.write() as session:
            session.execute(
                update(Facility)
                .where(Facility.code == DEFAULT_FACILITY_CODE)
                .values(report_language="fr")
            )

        with pytest.raises(ValueError, match="facility 'LOCAL' has report_language 'fr'"):
            _context(runtime, result_id)
