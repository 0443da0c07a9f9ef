"""Coded states and kinds kept in the store."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Applicability",
    "AuditOutcome",
    "DeliveryState",
    "IdentifierKind",
    "JobState",
    "ResultState",
    "StudyState",
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
