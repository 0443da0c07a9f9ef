"""SQLAlchemy models of everything Soi keeps.

Patients are matched through :class:`PatientIdentifier` rows (national citizen ID,
health-insurance number, health-record ID, local MRN), never by name. Every state
change is a committed transaction so that any process can die and another picks the
work up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from store.enums import (
    Applicability,
    AuditOutcome,
    DeliveryState,
    IdentifierKind,
    JobState,
    ReportStatus,
    ResultState,
    ResultStatus,
    ReviewDecision,
    ReviewState,
    StudyState,
    Urgency,
    UserRole,
)
from store.types import UTCDateTime, enum_column_type, utcnow

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Base",
    "BrowserSession",
    "Delivery",
    "DicomPeer",
    "Facility",
    "Finding",
    "FindingReview",
    "Instance",
    "Job",
    "Patient",
    "PatientIdentifier",
    "Report",
    "Result",
    "Series",
    "Study",
    "User",
]

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention."""

    metadata = MetaData(naming_convention=_NAMING)


class Facility(Base):
    """A hospital, commune health station or screening program site.

    ``report_language`` (``"vi"`` or ``"en"``) is the language its reports are written
    in; ``None`` leaves it to the ``report_language`` setting.
    """

    __tablename__ = "facilities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), default="hospital")
    report_language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class User(Base):
    """A person or service account that uses Soi."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[UserRole] = mapped_column(enum_column_type(UserRole))
    facility_id: Mapped[int | None] = mapped_column(ForeignKey("facilities.id"))
    program: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    facility: Mapped[Facility | None] = relationship()


class ApiToken(Base):
    """A bearer token of a user or service account.

    Only the SHA-256 digest of the token is kept: the token itself is shown once,
    when it is issued, and cannot be read back.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()


class BrowserSession(Base):
    """A signed-in browser: the digests of its session cookie and CSRF token."""

    __tablename__ = "browser_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    address: Mapped[str] = mapped_column(String(255), default="")

    user: Mapped[User] = relationship()


class DicomPeer(Base):
    """A DICOM application entity allowed to associate with Soi."""

    __tablename__ = "dicom_peers"
    __table_args__ = (UniqueConstraint("ae_title", "host", name="uq_dicom_peers_ae_host"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    ae_title: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    facility: Mapped[Facility] = relationship()


class Patient(Base):
    """A person whose images Soi holds; identity lives in :class:`PatientIdentifier`."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    birth_date: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    identifiers: Mapped[list[PatientIdentifier]] = relationship(
        back_populates="patient", cascade="all, delete-orphan"
    )


class PatientIdentifier(Base):
    """One identifier of a patient, unique per kind and issuing system."""

    __tablename__ = "patient_identifiers"
    __table_args__ = (
        UniqueConstraint("kind", "system", "value", name="uq_patient_identifiers_kind_system"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    kind: Mapped[IdentifierKind] = mapped_column(enum_column_type(IdentifierKind))
    system: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(String(64), index=True)

    patient: Mapped[Patient] = relationship(back_populates="identifiers")


class Study(Base):
    """A DICOM study as assembled from the instances received.

    ``urgency`` (a :class:`~store.enums.Urgency`) and ``urgency_score`` (the highest
    probability among the positive findings of its current results, 0 without any) are
    kept up to date as results are stored. The worklist indexes hold the worklist's
    order (most urgent, most likely, longest waiting) with the review state last, so
    that the open studies (unread and in review together) are read in order from the
    index, the review state checked on each entry. ``review_version`` counts review
    edits (optimistic locking); ``review_impression`` is the impression draft of the
    current review round.
    """

    __tablename__ = "studies"
    __table_args__ = (Index("ix_studies_state_last_received", "state", "last_received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    accession_number: Mapped[str] = mapped_column(String(64), default="", index=True)
    study_date: Mapped[str] = mapped_column(String(8), default="", index=True)
    study_time: Mapped[str] = mapped_column(String(16), default="")
    study_description: Mapped[str] = mapped_column(String(200), default="")
    modalities: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[StudyState] = mapped_column(
        enum_column_type(StudyState), default=StudyState.RECEIVING
    )
    state_reason: Mapped[str] = mapped_column(String(500), default="")
    num_instances: Mapped[int] = mapped_column(Integer, default=0)
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stable_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    urgency: Mapped[int] = mapped_column(SmallInteger, default=int(Urgency.NONE))
    urgency_score: Mapped[float] = mapped_column(Float, default=0.0)
    review_state: Mapped[ReviewState] = mapped_column(
        enum_column_type(ReviewState), default=ReviewState.UNREAD
    )
    review_version: Mapped[int] = mapped_column(Integer, default=0)
    review_impression: Mapped[str] = mapped_column(Text, default="")
    assigned_to_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)

    patient: Mapped[Patient] = relationship()
    facility: Mapped[Facility] = relationship()
    assigned_to: Mapped[User | None] = relationship()
    series: Mapped[list[Series]] = relationship(back_populates="study")
    jobs: Mapped[list[Job]] = relationship(back_populates="study")


for _name, _leading in (
    ("ix_studies_worklist", ()),
    ("ix_studies_facility_worklist", (Study.facility_id,)),
):
    Index(
        _name,
        *_leading,
        Study.urgency,
        Study.urgency_score.desc(),
        Study.first_received_at,
        Study.id,
        Study.review_state,
    )


class Series(Base):
    """A DICOM series within a study."""

    __tablename__ = "series"
    __table_args__ = (Index("ix_series_study_id_modality", "study_id", "modality"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    body_part_examined: Mapped[str] = mapped_column(String(64), default="")
    series_number: Mapped[int | None] = mapped_column(Integer)
    series_description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")


class Instance(Base):
    """One stored SOP instance and where its file lies."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    instance_number: Mapped[int | None] = mapped_column(Integer)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    view_position: Mapped[str] = mapped_column(String(16), default="")
    image_type: Mapped[str] = mapped_column(String(200), default="")
    laterality: Mapped[str] = mapped_column(String(16), default="")
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    number_of_frames: Mapped[int | None] = mapped_column(Integer)
    file_path: Mapped[str] = mapped_column(String(255))
    file_size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    applicability: Mapped[Applicability] = mapped_column(enum_column_type(Applicability))
    pipelines: Mapped[list[str]] = mapped_column(JSON, default=list)
    source_ae: Mapped[str] = mapped_column(String(16), default="")
    source_address: Mapped[str] = mapped_column(String(255), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    series: Mapped[Series] = relationship(back_populates="instances")


class Job(Base):
    """An inference job: one pipeline run over one study."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("study_id", "pipeline", name="uq_jobs_study_pipeline"),
        Index("ix_jobs_state_pipeline", "state", "pipeline"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    pipeline: Mapped[str] = mapped_column(String(32))
    state: Mapped[JobState] = mapped_column(enum_column_type(JobState))
    state_reason: Mapped[str] = mapped_column(String(500), default="")
    instance_uids: Mapped[list[str]] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    study: Mapped[Study] = relationship(back_populates="jobs")


class Result(Base):
    """What a model concluded about a study (or why it could not)."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    state: Mapped[ResultState] = mapped_column(enum_column_type(ResultState))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[ResultStatus] = mapped_column(
        enum_column_type(ResultStatus), default=ResultStatus.PRELIMINARY
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    findings: Mapped[list[Finding]] = relationship(
        back_populates="result", cascade="all, delete-orphan"
    )


class Finding(Base):
    """One labelled model output within a result."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    code_scheme: Mapped[str] = mapped_column(String(16), default="")
    code_value: Mapped[str] = mapped_column(String(64), default="")
    code_meaning: Mapped[str] = mapped_column(String(200), default="")
    probability: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    positive: Mapped[bool] = mapped_column(Boolean)
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64))
    heatmap_path: Mapped[str | None] = mapped_column(String(255))
    overlay_path: Mapped[str | None] = mapped_column(String(255))

    result: Mapped[Result] = relationship(back_populates="findings")


class FindingReview(Base):
    """A reader's decision on one finding: the labelled cases retraining learns from.

    ``finding_id`` is ``None`` for a finding the reader added; ``ai_probability`` is the
    model's probability for the label (``None`` when the model gave none);
    ``review_version`` the study's review version the save that recorded it produced
    (the newest save's decisions are the current ones).
    """

    __tablename__ = "finding_reviews"
    __table_args__ = (
        Index("ix_finding_reviews_study_id_review_version", "study_id", "review_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id"), index=True)
    finding_id: Mapped[int | None] = mapped_column(ForeignKey("findings.id"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    ai_probability: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[ReviewDecision] = mapped_column(enum_column_type(ReviewDecision))
    probability_class: Mapped[str | None] = mapped_column(Text)
    region: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reader_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    review_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Report(Base):
    """A signed report of a study; a new version supersedes the one before."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("study_id", "version", name="uq_reports_study_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[ReportStatus] = mapped_column(enum_column_type(ReportStatus))
    impression: Mapped[str] = mapped_column(Text, default="")
    signed_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    document_sha256: Mapped[str] = mapped_column(String(64))
    supersedes_report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Delivery(Base):
    """A document on its way to a receiving system (the outbox)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_state_next", "state", "next_attempt_at"),
        UniqueConstraint("result_id", "destination", "kind", name="uq_deliveries_document"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    result_id: Mapped[int | None] = mapped_column(ForeignKey("results.id"))
    destination: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(96))
    state: Mapped[DeliveryState] = mapped_column(
        enum_column_type(DeliveryState), default=DeliveryState.PENDING
    )
    document_id: Mapped[str] = mapped_column(String(128), default="")
    remote_reply: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """An append-only record of an access to, or change of, patient data.

    Database triggers installed by the migrations refuse ``UPDATE`` and ``DELETE``.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_patient", "patient_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    actor_kind: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[AuditOutcome] = mapped_column(enum_column_type(AuditOutcome))
    source_address: Mapped[str] = mapped_column(String(255), default="")
    facility_id: Mapped[int | None] = mapped_column(Integer)
    patient_id: Mapped[int | None] = mapped_column(Integer)
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    sop_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
