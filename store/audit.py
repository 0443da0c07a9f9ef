"""The append-only audit log of accesses to and changes of patient data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.enums import AuditOutcome
from store.models import AuditEvent

__all__ = ["list_audit_events", "record_event"]


def record_event(
    session: Session,
    *,
    actor: str,
    actor_kind: str,
    action: str,
    outcome: AuditOutcome | str,
    source_address: str = "",
    facility_id: int | None = None,
    patient_id: int | None = None,
    study_instance_uid: str = "",
    sop_instance_uid: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the current transaction.

    The event commits with the change it describes, so the log and the data never
    disagree after a crash.
    """
    event = AuditEvent(
        actor=actor[:128],
        actor_kind=actor_kind,
        action=action,
        outcome=AuditOutcome(outcome),
        source_address=source_address[:255],
        facility_id=facility_id,
        patient_id=patient_id,
        study_instance_uid=study_instance_uid[:64],
        sop_instance_uid=sop_instance_uid[:64],
        detail=detail or {},
    )
    session.add(event)
    return event


def list_audit_events(
    session: Session,
    *,
    patient_id: int | None = None,
    action: str | None = None,
    limit: int = 1000,
) -> Sequence[AuditEvent]:
    """Return audit events, newest first, optionally for one patient or action."""
    statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if patient_id is not None:
        statement = statement.where(AuditEvent.patient_id == patient_id)
    if action is not None:
        statement = statement.where(AuditEvent.action == action)
    return session.scalars(statement).all()
