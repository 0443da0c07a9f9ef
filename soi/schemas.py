"""Shapes of the HTTP API's replies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from store import (
    DeliveryState,
    IdentifierKind,
    ResultState,
    ResultStatus,
    ReviewState,
    StudyState,
)

__all__ = [
    "AuditEventOut",
    "AuditTrail",
    "CodeOut",
    "DeliveryOut",
    "DeliveryStateOut",
    "FindingOut",
    "HealthCheck",
    "HealthReport",
    "InstanceOut",
    "JobOut",
    "Me",
    "Page",
    "PatientIdentifierOut",
    "PatientIdentifierValueOut",
    "ProblemDetails",
    "ResultFindingOut",
    "ResultLinks",
    "ResultOut",
    "ResultReportOut",
    "ResultStudyOut",
    "SeriesOut",
    "SignInReply",
    "StudyDetail",
    "StudyResults",
    "StudySummary",
    "WorklistFindingOut",
    "WorklistItem",
    "WorklistPageOut",
]


class HealthCheck(BaseModel):
    """One component's health."""

    ok: bool
    detail: str
    data: dict[str, str | int | float | bool] = Field(default_factory=dict)


class HealthReport(BaseModel):
    """Health of the process: database, disk, DIMSE listener."""

    status: str = Field(description="ok or degraded")
    checks: dict[str, HealthCheck]


class JobOut(BaseModel):
    """An inference job of a study."""

    pipeline: str
    state: str
    state_reason: str
    attempts: int
    instances: int
    created_at: datetime
    updated_at: datetime


class FindingOut(BaseModel):
    """One model finding: the coded label, its probability against the operating point."""

    label: str
    code: dict[str, str] = Field(description="scheme, value and meaning (e.g. SNOMED CT)")
    probability: float
    threshold: float | None
    positive: bool
    sop_instance_uid: str | None = Field(description="the image the finding was read on")
    heatmap: str | None = Field(description="heatmap array, relative to the result files")
    overlay: str | None = Field(description="overlay picture, relative to the result files")


class ResultOut(BaseModel):
    """What a model concluded about the study; AI results are preliminary until signed."""

    id: int
    pipeline: str
    model_name: str
    model_version: str
    state: str = Field(description="complete, ungradable or failed")
    status: str = Field(description="preliminary (AI, unsigned), final or amended")
    reason: dict[str, str] = Field(description="why not complete, in en and vi")
    created_at: datetime
    findings: list[FindingOut]
    details: dict[str, object]


class DeliveryOut(BaseModel):
    """A result document on its way to a receiving system (the outbox)."""

    id: int
    result_id: int | None
    destination: str = Field(description="the configured destination's name")
    kind: str = Field(description="dicom-sr, dicom-heatmap:LABEL, dicom-pdf, fhir-bundle, hl7-oru")
    state: str = Field(description="pending, retrying, sent or dead")
    attempts: int
    document_id: str = Field(description="SOP Instance UID, Bundle identifier or HL7 control id")
    remote_reply: str = Field(description="what the destination answered last")
    last_error: str
    next_attempt_at: datetime | None
    sent_at: datetime | None


class InstanceOut(BaseModel):
    """A stored instance."""

    sop_instance_uid: str
    sop_class_uid: str
    sop_class_name: str
    transfer_syntax_uid: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    view_position: str
    applicability: str
    pipelines: list[str]
    file_size: int
    received_at: datetime
    source_ae: str


class SeriesOut(BaseModel):
    """A series and its instances."""

    series_instance_uid: str
    modality: str
    body_part_examined: str
    series_number: int | None
    series_description: str
    instances: list[InstanceOut]


class StudySummary(BaseModel):
    """A study as listed."""

    study_instance_uid: str
    patient_id: int
    patient_name: str
    facility: str
    accession_number: str
    study_date: str
    study_description: str
    modalities: str
    state: str
    state_reason: str
    num_instances: int
    first_received_at: datetime
    last_received_at: datetime
    stable_at: datetime | None
    jobs: list[JobOut]


class StudyDetail(StudySummary):
    """A study with its series, instances and jobs."""

    patient_identifiers: list[dict[str, str]]
    series: list[SeriesOut]
    results: list[ResultOut] = Field(description="oldest first; the last one is current")
    deliveries: list[DeliveryOut] = Field(description="the results' documents, oldest first")


class Page(BaseModel):
    """A page of studies."""

    total: int
    limit: int
    offset: int
    items: list[StudySummary]


class Me(BaseModel):
    """Who the caller is and whose patient data they may see."""

    username: str
    role: str = Field(description="admin, radiologist, technician, screening_coordinator, …")
    actor_kind: str = Field(description="user (browser session) or token (API token)")
    facility_id: int | None = Field(description="the caller's own facility")
    facility_ids: list[int] | None = Field(
        description="facilities whose patient data the caller may see; null: all"
    )


class SignInReply(Me):
    """A new browser session: the CSRF token to send back as ``X-CSRF-Token``."""

    csrf_token: str = Field(description="also in the soi_csrf cookie")
    expires_at: datetime


class AuditEventOut(BaseModel):
    """One audit event: who did what, when, from where, about whom, with which outcome."""

    id: int
    occurred_at: datetime
    actor: str
    actor_kind: str = Field(description="user, token, cli, dicom-peer, worker, …")
    action: str = Field(description="study.read, study.list, auth.login, dimse.store, …")
    outcome: str = Field(description="success, refused or failure")
    source_address: str
    facility_id: int | None
    patient_id: int | None
    study_instance_uid: str
    sop_instance_uid: str
    detail: dict[str, object]


class AuditTrail(BaseModel):
    """Audit events, newest first."""

    patient_ids: list[int] | None = Field(
        description="the patients the identifier asked for names (null: not asked)"
    )
    items: list[AuditEventOut]
    next_before_id: int | None = Field(
        default=None,
        description="pass as before_id for the next, older page (null: no older events)",
    )


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "type": "about:blank",
                "title": "Study not found",
                "status": 404,
                "detail": "no study 1.2.826.0.1.3680043.8.498.101",
                "instance": "/studies/1.2.826.0.1.3680043.8.498.101/results",
            }
        }
    )

    type: str = Field("about:blank", description="a URI naming the kind of problem")
    title: str = Field(description="a short summary of the kind of problem")
    status: int = Field(description="the HTTP status code")
    detail: str = Field(description="what went wrong with this request, and how to proceed")
    instance: str | None = Field(None, description="the path of the request")


class PatientIdentifierOut(BaseModel):
    """One identifier of the patient (national ID, health insurance, record number)."""

    kind: IdentifierKind = Field(description="national_id (CCCD), health_insurance (BHYT), …")
    system: str = Field(description="the identifier's system URI")
    value: str


class CodeOut(BaseModel):
    """A coded concept (SNOMED CT, RadLex, …)."""

    scheme: str = Field(description="the coding scheme designator, e.g. SCT")
    value: str = Field(description="the code")
    meaning: str = Field(description="the code's meaning, in English")


class ResultFindingOut(BaseModel):
    """One finding of a result: its probability against the model's operating point."""

    label: str = Field(description="the model's name for the finding, e.g. cardiomegaly")
    code: CodeOut
    probability: float = Field(description="the model's output, 0 to 1")
    threshold: float | None = Field(description="the operating point; positive at or above")
    positive: bool
    sop_instance_uid: str | None = Field(description="the image the finding was read on")
    heatmap: str | None = Field(
        description="URL of the heatmap overlay picture (PNG); null when there is none"
    )


class DeliveryStateOut(BaseModel):
    """Where one of the result's documents stands on its way to a receiving system."""

    destination: str = Field(description="the configured destination's name")
    kind: str = Field(description="dicom-sr, dicom-heatmap:LABEL, dicom-pdf, fhir-bundle, hl7-oru")
    state: DeliveryState = Field(description="pending, retrying, sent or dead")
    attempts: int
    document_id: str = Field(description="SOP Instance UID, Bundle identifier or HL7 control id")
    sent_at: datetime | None


class ResultLinks(BaseModel):
    """Where to fetch the result's documents (absolute URLs; same credentials)."""

    sr: str = Field(
        description="the DICOM SR (TID 1500, application/dicom), with the SOP Instance UID "
        "of the one sent to the PACS"
    )
    pdf: str = Field(description="the report as PDF, in the facility's language")
    pdf_by_language: dict[str, str] = Field(description="the report as PDF in vi and in en")
    fhir: str = Field(description="the FHIR R4 Bundle (DiagnosticReport, Observations, …)")
    heatmaps: dict[str, str] = Field(description="overlay pictures (PNG) by finding label")


class ResultReportOut(BaseModel):
    """One AI result of a study, for integrators; preliminary until a clinician signs."""

    id: int
    pipeline: str = Field(description="the analysis that ran, e.g. cxr")
    model_name: str
    model_version: str
    state: ResultState = Field(description="complete, ungradable (retake) or failed")
    status: ResultStatus = Field(description="preliminary (AI, unsigned), final or amended")
    reason: dict[str, str] = Field(description="why not complete, in en and vi (empty if complete)")
    created_at: datetime
    findings: list[ResultFindingOut]
    deliveries: list[DeliveryStateOut] = Field(description="the documents sent, oldest first")
    links: ResultLinks


class ResultStudyOut(BaseModel):
    """The study the results are about."""

    study_instance_uid: str
    accession_number: str
    study_date: str = Field(description="YYYYMMDD, or empty")
    modalities: str
    facility: str = Field(description="the facility's code")
    state: StudyState = Field(description="receiving, or stable (assembled)")
    patient_identifiers: list[PatientIdentifierOut]


class StudyResults(BaseModel):
    """A study's AI results: the current one, and the earlier ones it replaced."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "study": {
                    "study_instance_uid": "1.2.826.0.1.3680043.8.498.101",
                    "accession_number": "ACC-2026-0001",
                    "study_date": "20260105",
                    "modalities": "CR",
                    "facility": "BV-A",
                    "state": "stable",
                    "patient_identifiers": [
                        {"kind": "national_id", "system": "urn:vn:cccd", "value": "001099012345"}
                    ],
                },
                "current": {
                    "id": 7,
                    "pipeline": "cxr",
                    "model_name": "cxr",
                    "model_version": "0.2.0",
                    "state": "complete",
                    "status": "preliminary",
                    "reason": {},
                    "created_at": "2026-01-05T03:04:05Z",
                    "findings": [
                        {
                            "label": "cardiomegaly",
                            "code": {
                                "scheme": "SCT",
                                "value": "8186001",
                                "meaning": "Cardiomegaly",
                            },
                            "probability": 0.91,
                            "threshold": 0.5,
                            "positive": True,
                            "sop_instance_uid": "1.2.826.0.1.3680043.8.498.101.1",
                            "heatmap": "https://soi.example/studies/1.2.826.0.1.3680043.8.498.101"
                            "/results/7/heatmaps/cardiomegaly.png",
                        }
                    ],
                    "deliveries": [
                        {
                            "destination": "pacs",
                            "kind": "dicom-sr",
                            "state": "sent",
                            "attempts": 1,
                            "document_id": "1.2.826.0.1.3680043.8.498.555",
                            "sent_at": "2026-01-05T03:04:09Z",
                        }
                    ],
                    "links": {
                        "sr": "https://soi.example/studies/1.2.826.0.1.3680043.8.498.101"
                        "/results/7/sr",
                        "pdf": "https://soi.example/studies/1.2.826.0.1.3680043.8.498.101"
                        "/results/7/report.pdf",
                        "pdf_by_language": {
                            "vi": "https://soi.example/studies/1.2.826.0.1.3680043.8.498.101"
                            "/results/7/report.pdf?lang=vi",
                            "en": "https://soi.example/studies/1.2.826.0.1.3680043.8.498.101"
                            "/results/7/report.pdf?lang=en",
                        },
                        "fhir": "https://soi.example/studies/1.2.826.0.1.3680043.8.498.101"
                        "/results/7/fhir",
                        "heatmaps": {
                            "cardiomegaly": "https://soi.example/studies/"
                            "1.2.826.0.1.3680043.8.498.101/results/7/heatmaps/cardiomegaly.png"
                        },
                    },
                },
                "history": [],
            }
        }
    )

    study: ResultStudyOut
    current: ResultReportOut | None = Field(description="the latest result; null while none")
    history: list[ResultReportOut] = Field(
        description="the earlier results the current one replaced, newest first"
    )


class TrainingDataOut(BaseModel):
    """On what data a model was trained."""

    description: str
    synthetic: bool = Field(
        description="trained on synthetic data only: no measured clinical performance"
    )


class ModelTargetOut(BaseModel):
    """One finding a model reads, with its operating point."""

    key: str
    display: dict[str, str] = Field(description="the finding's name in en and vi")
    threshold: float = Field(description="probability at or above which it is called positive")


class ModelOut(BaseModel):
    """An installed model version."""

    name: str
    version: str
    active: bool = Field(description="the version new studies are read with")
    task: str
    intended_use: str
    training_data: TrainingDataOut
    targets: list[ModelTargetOut]
    created_at: datetime
    card: str = Field(description="path of the model card (Markdown)")


class WorklistFindingOut(BaseModel):
    """One of a study's top AI findings (positive first, most likely first)."""

    label: str = Field(description="the model's name for the finding, e.g. pneumothorax")
    probability: float = Field(description="the model's output, 0 to 1")
    positive: bool


class PatientIdentifierValueOut(BaseModel):
    """An identifier shown with a patient."""

    kind: IdentifierKind = Field(description="national_id (CCCD), health_insurance (BHYT), …")
    value: str


class WorklistItem(BaseModel):
    """A study on the radiologists' worklist."""

    study_instance_uid: str
    patient_name: str
    patient_identifier: PatientIdentifierValueOut | None = Field(
        description="a national identifier, else the facility's record number"
    )
    facility: str = Field(description="the facility's code")
    facility_name: str
    modalities: str
    study_date: str = Field(description="YYYYMMDD, or empty")
    received_at: datetime = Field(description="when the study's first instance arrived")
    waiting_minutes: int = Field(description="minutes since then")
    state: StudyState = Field(description="receiving, or stable (assembled)")
    quality_gate: str | None = Field(
        description="passed or failed when the newest AI result says so, else null"
    )
    urgency: int = Field(
        description="0 critical AI finding, 1 AI positive, 2 AI normal, 3 no AI result"
    )
    urgency_score: float = Field(description="the highest probability of a positive finding")
    findings: list[WorklistFindingOut] = Field(description="the top findings, at most 3")
    model_name: str | None
    model_version: str | None
    ai_preliminary: bool = Field(description="an AI result not yet signed by a clinician")
    review_state: ReviewState = Field(description="unread, in_review, signed or amended")
    assigned_to: str | None = Field(description="the username of the assigned reader")


class WorklistPageOut(BaseModel):
    """A page of the worklist: open studies first, most urgent first, oldest first."""

    total: int = Field(description="the studies matching the filters, in all")
    limit: int
    offset: int
    items: list[WorklistItem]
