"""Coded states and kinds kept in the store."""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = [
    "Applicability",
    "AuditOutcome",
    "DeliveryState",
    "IdentifierKind",
    "JobState",
    "ReportStatus",
    "ResultState",
    "ReviewDecision",
    "ReviewState",
    "StudyState",
    "Urgency",
    "UserRole",
]


class IdentifierKind(StrEnum):
    """Kinds of patient identifier; patients are matched on these, never on names.

    ``NATIONAL_ID`` is the national citizen identity number (CCCD), ``HEALTH_INSURANCE``
    the health-insurance card number (BHYT), ``HEALTH_RECORD`` the national health
    record identifier and ``MRN`` a facility's local medical record number (the DICOM
    Patient ID as the sending facility issued it).
    """

    NATIONAL_ID = "national_id"
    HEALTH_INSURANCE = "health_insurance"
    HEALTH_RECORD = "health_record"
    MRN = "mrn"


class StudyState(StrEnum):
    """Where a study is in assembly."""

    RECEIVING = "receiving"
    STABLE = "stable"


class Applicability(StrEnum):
    """Whether any pipeline reads an instance."""

    APPLICABLE = "applicable"
    NOT_APPLICABLE = "not_applicable"


class JobState(StrEnum):
    """Life cycle of an inference job."""

    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    UNGRADABLE = "ungradable"
    FAILED = "failed"


class ResultState(StrEnum):
    """Outcome of an inference job."""

    COMPLETE = "complete"
    UNGRADABLE = "ungradable"
    FAILED = "failed"


class ResultStatus(StrEnum):
    """Who stands behind a result (the FHIR ``DiagnosticReport.status`` values).

    Every AI result is ``preliminary`` until a clinician signs it (``final``); a
    signed result edited later is ``amended``.
    """

    PRELIMINARY = "preliminary"
    FINAL = "final"
    AMENDED = "amended"


class DeliveryState(StrEnum):
    """Life cycle of an outbound delivery."""

    PENDING = "pending"
    SENT = "sent"
    RETRYING = "retrying"
    DEAD = "dead"


class AuditOutcome(StrEnum):
    """Outcome recorded in an audit event."""

    SUCCESS = "success"
    REFUSED = "refused"
    FAILURE = "failure"


class UserRole(StrEnum):
    """Roles of people and service accounts."""

    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    TECHNICIAN = "technician"
    SCREENING_COORDINATOR = "screening_coordinator"
    RESEARCHER = "researcher"
    INTEGRATION = "integration"


class Urgency(IntEnum):
    """How urgently a study should be read, from its AI results (lower: sooner).

    ``CRITICAL``: a positive finding of a label configured as critical;
    ``POSITIVE``: any other positive finding; ``NORMAL``: a complete result with no
    positive finding; ``NONE``: no result yet, or none that could be read (ungradable,
    failed), or no pipeline applies.
    """

    CRITICAL = 0
    POSITIVE = 1
    NORMAL = 2
    NONE = 3


class ReviewState(StrEnum):
    """Where a study is in a radiologist's reading."""

    UNREAD = "unread"
    IN_REVIEW = "in_review"
    SIGNED = "signed"
    AMENDED = "amended"


class ReviewDecision(StrEnum):
    """What a reader did with one AI finding (or ``added``: a finding the AI missed)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EDITED = "edited"
    ADDED = "added"


class ReportStatus(StrEnum):
    """A signed report's status (the FHIR ``DiagnosticReport.status`` values)."""

    FINAL = "final"
    AMENDED = "amended"
