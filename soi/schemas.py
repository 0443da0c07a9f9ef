"""Shapes of the HTTP API's replies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = [
    "AuditEventOut",
    "AuditTrail",
    "DeliveryOut",
    "FindingOut",
    "HealthCheck",
    "HealthReport",
    "InstanceOut",
    "JobOut",
    "Me",
    "Page",
    "ResultOut",
    "SeriesOut",
    "SignInReply",
    "StudyDetail",
    "StudySummary",
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
