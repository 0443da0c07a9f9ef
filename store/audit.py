"""The append-only audit log of accesses to and changes of patient data."""

from __future__ import annotations

from collections.abc import Collection, Sequence
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
    patient_ids: Collection[int] | None = None,
    study_instance_uid: str | None = None,
    actor: str | None = None,
    before_id: int | None = None,
) -> Sequence[AuditEvent]:
    """Return audit events, newest first.

    Parameters
    ----------
    session:
        The transaction to read in.
    patient_id, patient_ids:
        Only the events about this patient, or about one of these (an empty
        collection: none).
    action:
        Only events of this action (``study.read``, ``auth.login``…).
    limit:
        The most events returned.
    study_instance_uid:
        Only the events about this study.
    actor:
        Only the events of this user, service account, DICOM peer or worker.
    before_id:
        Only the events older than this one (``id`` below it): the next page after an
        event already shown. Events recorded meanwhile get higher ids, so they never
        shift the pages that follow.
    """
    statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        statement = statement.where(AuditEvent.id < before_id)
    if patient_id is not None:
        statement = statement.where(AuditEvent.patient_id == patient_id)
    if patient_ids is not None:
        statement = statement.where(AuditEvent.patient_id.in_(list(patient_ids)))
    if action is not None:
        statement = statement.where(AuditEvent.action == action)
    if study_instance_uid is not None:
        statement = statement.where(AuditEvent.study_instance_uid == study_instance_uid)
    if actor is not None:
        statement = statement.where(AuditEvent.actor == actor)
    return session.scalars(statement).all()
