"""The radiologists' worklist: the studies a reader may read, most urgent first.

Only radiologists and administrators read the worklist; a radiologist sees the studies
of the facilities they may see (:attr:`soi.auth.Caller.facility_ids`), scoped in the
query on the server. Every read is written to the audit log (``worklist.list``) before
the page is handed out, and so is every refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from soi.auth import Caller
from soi.schemas import (
    PatientIdentifierValueOut,
    WorklistFindingOut,
    WorklistItem,
    WorklistPageOut,
)
from soi.services.audit import record_caller_event
from store import (
    AuditOutcome,
    Database,
    Facility,
    IdentifierKind,
    ReviewState,
    User,
    UserRole,
    WorklistFilter,
    WorklistRow,
    worklist_page,
)

__all__ = [
    "ASSIGNED_TO_ME",
    "READER_ROLES",
    "WorklistError",
    "WorklistForbiddenError",
    "WorklistInvalidError",
    "WorklistNotFoundError",
    "WorklistQuery",
    "read_worklist",
]

#: The roles that read the worklist.
READER_ROLES = frozenset({UserRole.ADMIN, UserRole.RADIOLOGIST})
#: The ``assigned_to`` value that names the caller.
ASSIGNED_TO_ME = "me"


class WorklistError(Exception):
    """A worklist that cannot be given; ``title`` and ``detail`` say why."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail


class WorklistForbiddenError(WorklistError):
    """The caller's role does not read the worklist."""


class WorklistNotFoundError(WorklistError):
    """A facility or user named in a filter does not exist, or is not the caller's to see."""


class WorklistInvalidError(WorklistError):
    """A filter's value is not valid (e.g. a date range that ends before it starts)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorklistQuery:
    """The worklist's filters as the API takes them.

    ``facility`` is a facility code; ``review_states`` review state values (empty:
    any); ``study_date_from`` and ``study_date_to`` inclusive DICOM dates
    (``YYYYMMDD``); ``assigned_to`` a username, or ``me`` for the caller.
    """

    facility: str | None = None
    modality: str | None = None
    review_states: Sequence[ReviewState | str] = ()
    study_date_from: str | None = None
    study_date_to: str | None = None
    assigned_to: str | None = None


def _item(row: WorklistRow) -> WorklistItem:
    identifier = row.patient_identifier
    return WorklistItem(
        study_instance_uid=row.study_instance_uid,
        patient_name=row.patient_name,
        patient_identifier=None
        if identifier is None
        else PatientIdentifierValueOut(kind=IdentifierKind(identifier[0]), value=identifier[1]),
        facility=row.facility_code,
        facility_name=row.facility_name,
        modalities=row.modalities,
        study_date=row.study_date,
        received_at=row.first_received_at,
        waiting_minutes=row.waiting_minutes,
        state=row.state,
        quality_gate=row.quality_gate,
        urgency=int(row.urgency),
        urgency_score=row.urgency_score,
        findings=[
            WorklistFindingOut(label=f.label, probability=f.probability, positive=f.positive)
            for f in row.findings
        ],
        model_name=row.model_name,
        model_version=row.model_version,
        ai_preliminary=row.ai_preliminary,
        review_state=row.review_state,
        assigned_to=row.assigned_to,
    )


def _filter(session: Session, query: WorklistQuery, caller: Caller) -> WorklistFilter:
    """The store's filter for ``query``, with the facility and user looked up.

    Raises
    ------
    WorklistNotFoundError
        An unknown facility, or one the caller may not see (the same answer); an
        unknown user.
    WorklistInvalidError
        ``me`` asked by a caller who is no user, or bad dates.
    """
    facility_id: int | None = None
    if query.facility is not None:
        facility_id = session.scalar(select(Facility.id).where(Facility.code == query.facility))
        if facility_id is None or not caller.may_see(facility_id):
            raise WorklistNotFoundError("Facility not found", f"no facility {query.facility}")
    assigned: int | None = None
    if query.assigned_to == ASSIGNED_TO_ME:
        if caller.user_id is None:
            raise WorklistInvalidError(
                "Invalid filter", f"assigned_to={ASSIGNED_TO_ME} needs a signed-in user"
            )
        assigned = caller.user_id
    elif query.assigned_to is not None:
        assigned = session.scalar(select(User.id).where(User.username == query.assigned_to))
        if assigned is None:
            raise WorklistNotFoundError("User not found", f"no user {query.assigned_to}")
    dates = None
    if query.study_date_from is not None or query.study_date_to is not None:
        dates = (query.study_date_from or "", query.study_date_to or "")
    try:
        return WorklistFilter(
            facility_id=facility_id,
            modality=query.modality,
            review_states=tuple(ReviewState(state) for state in query.review_states),
            study_date=dates,
            assigned_to_user_id=assigned,
        )
    except ValueError as exc:
        raise WorklistInvalidError("Invalid filter", str(exc)) from None


def _audit(
    database: Database, caller: Caller, outcome: AuditOutcome, detail: dict[str, Any]
) -> None:
    with database.write() as session:
        record_caller_event(
            session,
            caller,
            action="worklist.list",
            outcome=outcome,
            detail=detail,
        )


def read_worklist(
    database: Database,
    *,
    caller: Caller,
    query: WorklistQuery,
    limit: int,
    offset: int,
    now: datetime | None = None,
) -> WorklistPageOut:
    """Return a page of the worklist as ``caller`` may see it.

    The read is audited (``worklist.list``: the filters, how many studies, which); a
    refusal or a filter that cannot be used is audited too, then raised.

    Raises
    ------
    WorklistForbiddenError
        When the caller is neither a radiologist nor an administrator.
    WorklistNotFoundError, WorklistInvalidError
        When a filter names a facility or user that cannot be used, or is not valid.
    """
    filters = {
        "facility": query.facility,
        "modality": query.modality,
        "review_states": [str(state) for state in query.review_states],
        "study_date_from": query.study_date_from,
        "study_date_to": query.study_date_to,
        "assigned_to": query.assigned_to,
    }
    if caller.role not in READER_ROLES:
        _audit(
            database,
            caller,
            AuditOutcome.REFUSED,
            {"reason": f"role {caller.role} does not read the worklist", "filters": filters},
        )
        raise WorklistForbiddenError(
            "Forbidden",
            f"the worklist needs the radiologist or admin role; {caller.username} is {caller.role}",
        )
    try:
        with database.read() as session:
            page = worklist_page(
                session,
                facility_ids=caller.facility_ids,
                filters=_filter(session, query, caller),
                limit=limit,
                offset=offset,
                now=now,
            )
    except WorklistError as exc:
        _audit(database, caller, AuditOutcome.FAILURE, {"reason": exc.detail, "filters": filters})
        raise
    items = [_item(row) for row in page.rows]
    _audit(
        database,
        caller,
        AuditOutcome.SUCCESS,
        {
            "count": len(items),
            "total": page.total,
            "limit": limit,
            "offset": offset,
            "filters": filters,
            "studies": [item.study_instance_uid for item in items],
        },
    )
    return WorklistPageOut(total=page.total, limit=limit, offset=offset, items=items)
