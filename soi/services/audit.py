"""The audit log as people read it: by patient, study or actor, newest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from soi.auth import Caller
from soi.schemas import AuditEventOut, AuditTrail
from store import (
    AuditEvent,
    AuditOutcome,
    Database,
    list_audit_events,
    patients_with_identifier,
    record_event,
)

__all__ = ["MAX_AUDIT_EVENTS", "audit_trail", "record_caller_event"]

#: The most events one question returns.
MAX_AUDIT_EVENTS = 1000


def record_caller_event(
    session: Session, caller: Caller, *, action: str, outcome: AuditOutcome, **fields: Any
) -> None:
    """Add to the audit log, in ``session``'s transaction, what ``caller`` did (who,
    how authenticated, from where): ``fields`` are those of :func:`store.record_event`."""
    record_event(
        session,
        actor=caller.username,
        actor_kind=caller.actor_kind,
        action=action,
        outcome=outcome,
        source_address=caller.address,
        **fields,
    )


def _event(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
        id=event.id,
        occurred_at=event.occurred_at,
        actor=event.actor,
        actor_kind=event.actor_kind,
        action=event.action,
        outcome=event.outcome.value,
        source_address=event.source_address,
        facility_id=event.facility_id,
        patient_id=event.patient_id,
        study_instance_uid=event.study_instance_uid,
        sop_instance_uid=event.sop_instance_uid,
        detail=dict(event.detail or {}),
    )


def audit_trail(
    database: Database,
    *,
    caller: Caller,
    patient: str | None = None,
    study_instance_uid: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> AuditTrail:
    """Return audit events, newest first; reading them is audited too (``audit.read``).

    Parameters
    ----------
    database:
        The store.
    caller:
        Who asks (an administrator; the route or command checks it).
    patient:
        An identifier value of the patient as people know it (a CCCD, a BHYT number, a
        facility's Patient ID): the events about every patient holding it.
    study_instance_uid:
        Only the events about this study.
    actor:
        Only the events of this user, service account, DICOM peer or worker.
    action:
        Only the events of this action.
    limit:
        The most events, 1 to :data:`MAX_AUDIT_EVENTS`.
    before_id:
        Only the events older than this one: the next page is asked for with the
        previous answer's ``next_before_id``.

    Raises
    ------
    ValueError
        ``limit`` or ``before_id`` is out of range.
    """
    if not 1 <= limit <= MAX_AUDIT_EVENTS:
        raise ValueError(f"`limit` must be 1 to {MAX_AUDIT_EVENTS}, {limit} is given")
    if before_id is not None and before_id < 1:
        raise ValueError(f"`before_id` must be a positive event id, {before_id} is given")
    with database.read() as session:
        patient_ids = patients_with_identifier(session, patient) if patient is not None else None
        events = list_audit_events(
            session,
            patient_ids=patient_ids,
            study_instance_uid=study_instance_uid,
            actor=actor,
            action=action,
            limit=limit + 1,  # one more tells whether an older page follows
            before_id=before_id,
        )
        items = [_event(event) for event in events[:limit]]
    next_before_id = items[-1].id if len(events) > limit else None
    with database.write() as session:
        record_caller_event(
            session,
            caller,
            action="audit.read",
            outcome=AuditOutcome.SUCCESS,
            patient_id=patient_ids[0] if patient_ids and len(patient_ids) == 1 else None,
            study_instance_uid=study_instance_uid or "",
            detail={
                # The identifier value itself is personal data: the log keeps whom it named.
                "filters": {
                    key: value
                    for key, value in (
                        ("patient_ids", patient_ids),
                        ("study", study_instance_uid),
                        ("actor", actor),
                        ("action", action),
                        ("before_id", before_id),
                    )
                    if value is not None
                },
                "count": len(items),
            },
        )
    return AuditTrail(patient_ids=patient_ids, items=items, next_before_id=next_before_id)
