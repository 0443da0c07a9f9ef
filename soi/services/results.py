"""A study's AI results for integrators (HIS, EMR), and the documents built from them.

The results come as JSON with links to their documents: the DICOM SR, the PDF report
(Vietnamese or English), the heatmap overlay pictures and the FHIR Bundle. Each
document is built by :class:`~soi.services.documents.DocumentFactory`, the builder the
outbox sends with, so the SR served here carries the SOP Instance UID of the one sent
to the PACS.

Everything is scoped to the facilities the caller may see: another facility's study is
not found, exactly as one that does not exist. Every read is written to the audit log
(``result.read``, ``document.read``) before the data is handed out.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydicom import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from models import ModelError
from reports import NoPatientIdentifierError, build_pdf
from reports.context import Language
from soi.auth import Caller
from soi.schemas import (
    CodeOut,
    DeliveryStateOut,
    PatientIdentifierOut,
    ResultFindingOut,
    ResultLinks,
    ResultReportOut,
    ResultStudyOut,
    StudyResults,
)
from soi.services.audit import record_caller_event
from soi.services.documents import FHIR_BUNDLE, SR, DocumentFactory
from store import (
    AuditOutcome,
    Database,
    Delivery,
    FileStoreError,
    IdentifierKind,
    Patient,
    PatientIdentifier,
    Result,
    Study,
    list_deliveries,
    list_results,
    locate_study,
    result_reason,
)

if TYPE_CHECKING:
    from soi.runtime import Runtime

__all__ = [
    "DocumentUnavailableError",
    "ResultDocument",
    "ResultDocumentKind",
    "ResultNotFoundError",
    "ResultsError",
    "issued_for",
    "result_document",
    "study_results",
]

#: Media types of the documents.
DICOM, PDF, PNG = "application/dicom", "application/pdf", "image/png"
FHIR_JSON = "application/fhir+json"
#: How the gateway names the system of a facility's record numbers (then its code).
MRN_SYSTEM_PREFIX = "urn:soi:mrn:"
#: The report languages, as the ``lang`` parameter names them.
LANGUAGES: tuple[Language, ...] = ("vi", "en")


class ResultsError(Exception):
    """A result or document that cannot be given; ``title`` and ``detail`` say why (to
    the caller), ``cause`` what went wrong inside (for the audit log)."""

    def __init__(self, title: str, detail: str, *, cause: str = "") -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail
        self.cause = cause or detail


class ResultNotFoundError(ResultsError):
    """No such study, result or heatmap for this caller (another facility's: the same)."""


class DocumentUnavailableError(ResultsError):
    """The result exists but cannot give the document (e.g. a FHIR Bundle for a patient
    without an identifier, or a result of a model version no longer installed)."""


class ResultDocumentKind(StrEnum):
    """The documents a result gives over HTTP."""

    SR = "sr"
    PDF = "pdf"
    HEATMAP = "heatmap"
    FHIR = "fhir"


@dataclass(frozen=True, slots=True)
class ResultDocument:
    """A document as the HTTP reply carries it; a DICOM one's SOP Instance UID, a PDF's
    language."""

    media_type: str
    content: bytes
    filename: str
    sop_instance_uid: str = ""
    language: str = ""


def _result_url(base_url: str, study_instance_uid: str, result_id: int) -> str:
    return f"{base_url}/studies/{study_instance_uid}/results/{result_id}"


def _links(base: str, heatmaps: dict[str, str]) -> ResultLinks:
    return ResultLinks(
        sr=f"{base}/sr",
        pdf=f"{base}/report.pdf",
        pdf_by_language={lang: f"{base}/report.pdf?lang={lang}" for lang in LANGUAGES},
        fhir=f"{base}/fhir",
        heatmaps=heatmaps,
    )


def _report(
    result: Result, pipeline: str, deliveries: list[Delivery], base: str
) -> ResultReportOut:
    reason = result_reason(result)
    heatmaps = {
        f.label: f"{base}/heatmaps/{quote(f.label, safe='')}.png"
        for f in result.findings
        if f.overlay_path
    }
    return ResultReportOut(
        id=result.id,
        pipeline=pipeline,
        model_name=result.model_name,
        model_version=result.model_version,
        state=result.state,
        status=result.status,
        reason={key: text for key, text in (("en", reason.en), ("vi", reason.vi)) if text},
        created_at=result.created_at,
        findings=[
            ResultFindingOut(
                label=f.label,
                code=CodeOut(scheme=f.code_scheme, value=f.code_value, meaning=f.code_meaning),
                probability=f.probability,
                threshold=f.threshold,
                positive=f.positive,
                sop_instance_uid=f.sop_instance_uid,
                heatmap=heatmaps.get(f.label),
            )
            for f in result.findings
        ],
        deliveries=[
            DeliveryStateOut(
                destination=d.destination,
                kind=d.kind,
                state=d.state,
                attempts=d.attempts,
                document_id=d.document_id,
                sent_at=d.sent_at,
            )
            for d in deliveries
        ],
        links=_links(base, heatmaps),
    )


def issued_for(identifier: PatientIdentifier, facility_code: str) -> bool:
    """Whether an identifier may be shown with a study of ``facility_code``: a national
    one, or a record number that facility issued (another's tells where else the
    person is treated)."""
    if identifier.kind is not IdentifierKind.MRN:
        return True
    own = f"{MRN_SYSTEM_PREFIX}{facility_code}"
    return identifier.system == own or identifier.system.startswith(f"{own}:")


def _visible_study(session: Session, study_instance_uid: str, caller: Caller) -> Study | None:
    statement = (
        select(Study)
        .where(Study.study_instance_uid == study_instance_uid)
        .options(
            selectinload(Study.patient).selectinload(Patient.identifiers),
            selectinload(Study.facility),
            selectinload(Study.jobs),
        )
    )
    if caller.facility_ids is not None:
        statement = statement.where(Study.facility_id.in_(list(caller.facility_ids)))
    return session.scalars(statement).one_or_none()


def study_results(
    database: Database, study_instance_uid: str, *, caller: Caller, base_url: str
) -> StudyResults:
    """Return a study's results for ``caller``, with links under ``base_url``.

    The read is audited (``result.read``): a success with the patient, facility and
    results shown; a refusal (another facility's study) or a failure (no such study)
    with what was asked.

    Raises
    ------
    ResultNotFoundError
        No such study, or one of a facility ``caller`` may not see.
    """
    with database.read() as session:
        study = _visible_study(session, study_instance_uid, caller)
        if study is not None:
            by_result: dict[int | None, list[Delivery]] = defaultdict(list)
            for delivery in reversed(list_deliveries(session, study_id=study.id, limit=10_000)):
                by_result[delivery.result_id].append(delivery)
            pipelines = {job.id: job.pipeline for job in study.jobs}
            reports = [
                _report(
                    result,
                    pipelines.get(result.job_id, ""),
                    by_result.get(result.id, []),
                    _result_url(base_url, study_instance_uid, result.id),
                )
                for result in list_results(session, study.id)
            ]
            answer = StudyResults(
                study=ResultStudyOut(
                    study_instance_uid=study.study_instance_uid,
                    accession_number=study.accession_number,
                    study_date=study.study_date,
                    modalities=study.modalities,
                    facility=study.facility.code,
                    state=study.state,
                    patient_identifiers=[
                        PatientIdentifierOut(kind=i.kind, system=i.system, value=i.value)
                        for i in study.patient.identifiers
                        if issued_for(i, study.facility.code)
                    ],
                ),
                current=reports[-1] if reports else None,
                history=list(reversed(reports[:-1])),
            )
            facility_id, patient_id = study.facility_id, study.patient_id
    if study is None:
        with database.write() as session:
            _refuse(session, caller, "result.read", study_instance_uid, {})
        raise ResultNotFoundError("Study not found", f"no study {study_instance_uid}")
    with database.write() as session:
        _audit(
            session,
            caller,
            action="result.read",
            outcome=AuditOutcome.SUCCESS,
            facility_id=facility_id,
            patient_id=patient_id,
            study_instance_uid=study_instance_uid,
            detail={"results": [report.id for report in reports]},
        )
    return answer


def result_document(
    runtime: Runtime,
    study_instance_uid: str,
    result_id: int,
    kind: ResultDocumentKind | str,
    *,
    caller: Caller,
    language: Language | None = None,
    label: str = "",
) -> ResultDocument:
    """Build one document of a result of a study, for ``caller``.

    Parameters
    ----------
    runtime:
        The process's store, model registry and settings.
    study_instance_uid:
        The study the result belongs to.
    result_id:
        The result's id.
    kind:
        Which document: the SR, the PDF report, a heatmap overlay or the FHIR Bundle.
    caller:
        Who asks; the study must be of a facility they may see.
    language:
        The PDF's language; by default the facility's.
    label:
        The finding whose heatmap is wanted (``kind`` heatmap).

    Returns
    -------
    ResultDocument
        The bytes, their media type and a file name. The read is audited
        (``document.read``, with the kind, the result and the SR's SOP Instance UID).

    Raises
    ------
    ResultNotFoundError
        No such study (or another facility's), no such result of it, or no heatmap of
        that finding.
    DocumentUnavailableError
        The result cannot give this document.
    """
    kind = ResultDocumentKind(kind)
    detail: dict[str, Any] = {"kind": kind.value, "result_id": result_id}
    if kind is ResultDocumentKind.HEATMAP:
        detail["label"] = label[:64]
    with runtime.database.read() as session:
        study = _visible_study(session, study_instance_uid, caller)
        result = session.get(Result, result_id) if study is not None else None
        if study is not None and (result is None or result.study_id != study.id):
            result = None
        overlay = ""
        if result is not None and kind is ResultDocumentKind.HEATMAP:
            overlay = next((f.overlay_path or "" for f in result.findings if f.label == label), "")
        scope = (study.facility_id, study.patient_id) if study is not None else None
        made_by = ""
        if result is not None:
            made_by = f"{result.model_name} {result.model_version}"
    if scope is None:
        with runtime.database.write() as session:
            _refuse(session, caller, "document.read", study_instance_uid, detail)
        raise ResultNotFoundError("Study not found", f"no study {study_instance_uid}")
    problem: ResultsError | None = None
    document: ResultDocument | None = None
    if result is None:
        problem = ResultNotFoundError(
            "Result not found", f"study {study_instance_uid} has no result {result_id}"
        )
    elif kind is ResultDocumentKind.HEATMAP and not overlay:
        problem = ResultNotFoundError(
            "Heatmap not found", f"result {result_id} has no heatmap of {label!r}"
        )
    else:
        try:
            document = _build(runtime, result_id, kind, language, overlay, made_by, label)
        except DocumentUnavailableError as exc:
            problem = exc
    with runtime.database.write() as session:
        if document is None:
            assert problem is not None
            detail["reason"] = problem.cause[:500]
        elif document.language:
            detail["language"] = document.language
        _audit(
            session,
            caller,
            action="document.read",
            outcome=AuditOutcome.SUCCESS if document is not None else AuditOutcome.FAILURE,
            facility_id=scope[0],
            patient_id=scope[1],
            study_instance_uid=study_instance_uid,
            sop_instance_uid=document.sop_instance_uid if document is not None else "",
            detail=detail,
        )
    if problem is not None:
        raise problem
    assert document is not None
    return document


def _build(
    runtime: Runtime,
    result_id: int,
    kind: ResultDocumentKind,
    language: Language | None,
    overlay: str,
    made_by: str,
    label: str,
) -> ResultDocument:
    unreadable = f"a stored file the {kind.value} of result {result_id} is made from cannot be read"
    if kind is ResultDocumentKind.HEATMAP:
        try:
            content = runtime.result_files.absolute(overlay).read_bytes()
        except (OSError, FileStoreError) as exc:
            raise DocumentUnavailableError(
                "Document unavailable", unreadable, cause=str(exc)
            ) from None
        return ResultDocument(PNG, content, f"result-{result_id}-{label}.png")
    factory = DocumentFactory(
        settings=runtime.settings,
        database=runtime.database,
        registry=runtime.registry,
        instance_files=runtime.files,
        result_files=runtime.result_files,
    )
    try:
        if kind is ResultDocumentKind.SR:
            dataset = factory(result_id, SR, "").dataset
            assert dataset is not None
            uid = str(dataset.SOPInstanceUID)
            return ResultDocument(DICOM, _part10(dataset), f"{uid}.dcm", sop_instance_uid=uid)
        if kind is ResultDocumentKind.FHIR:
            text = factory(result_id, FHIR_BUNDLE, "").text
            assert text is not None
            return ResultDocument(FHIR_JSON, text.encode("utf-8"), f"result-{result_id}.json")
        context = factory.context(result_id)
        chosen = language or context.facility.language
        pdf = build_pdf(context, language=chosen)
        return ResultDocument(PDF, pdf, f"result-{result_id}-{chosen}.pdf", language=chosen)
    except ModelError as exc:
        raise DocumentUnavailableError(
            "Document unavailable",
            f"result {result_id} was made by {made_by}, which is no longer installed",
            cause=str(exc),
        ) from None
    except NoPatientIdentifierError as exc:
        raise DocumentUnavailableError(
            "Document unavailable",
            f"result {result_id} cannot give a FHIR Bundle: its patient has no identifier",
            cause=str(exc),
        ) from None
    except (FileStoreError, OSError) as exc:
        raise DocumentUnavailableError("Document unavailable", unreadable, cause=str(exc)) from None


def _part10(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _refuse(
    session: Session,
    caller: Caller,
    action: str,
    study_instance_uid: str,
    detail: dict[str, Any],
) -> None:
    """Record a read of a study that is absent, or another facility's."""
    located = locate_study(session, study_instance_uid)
    _audit(
        session,
        caller,
        action=action,
        outcome=AuditOutcome.FAILURE if located is None else AuditOutcome.REFUSED,
        facility_id=None if located is None else located[0],
        patient_id=None if located is None else located[1],
        study_instance_uid=study_instance_uid,
        detail={**detail, "reason": "no such study" if located is None else "another facility's"},
    )


def _audit(
    session: Session, caller: Caller, *, action: str, outcome: AuditOutcome, **fields: Any
) -> None:
    record_caller_event(
        session,
        caller,
        action=action,
        outcome=outcome,
        **fields,
    )
