"""The radiologists' worklist: the studies to read, most urgent first.

The order is: open studies (unread and in review) before closed ones (signed and
amended); then urgency (critical, positive, normal, no AI result); then the highest
probability among the positive findings; then waiting time (received first, first);
then the row id, so that the order is total and pages never overlap.

A page is chosen on the studies' ids alone, one review bucket (open, closed) at a time,
each read in the order of the worklist indexes (``ix_studies_worklist``,
``ix_studies_facility_worklist``), which end with the review state so that both open
states come out of one ordered pass; the page's studies are then read with their
patient, facility, assigned reader and current results.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session, selectinload

from store.enums import IdentifierKind, ResultState, ResultStatus, ReviewState, Urgency
from store.models import Facility, Patient, PatientIdentifier, Result, Series, Study, User
from store.types import utcnow

__all__ = [
    "CLOSED_REVIEW_STATES",
    "OPEN_REVIEW_STATES",
    "WorklistFilter",
    "WorklistFinding",
    "WorklistPage",
    "WorklistRow",
    "worklist_page",
]

#: Studies still to be read; listed before the closed ones.
OPEN_REVIEW_STATES = (ReviewState.UNREAD, ReviewState.IN_REVIEW)
#: Studies with a signed report.
CLOSED_REVIEW_STATES = (ReviewState.SIGNED, ReviewState.AMENDED)
#: How many findings a row shows.
TOP_FINDINGS = 3
#: Identifier kinds shown with a patient, in order of preference.
_IDENTIFIER_ORDER = (
    IdentifierKind.NATIONAL_ID,
    IdentifierKind.HEALTH_INSURANCE,
    IdentifierKind.HEALTH_RECORD,
    IdentifierKind.MRN,
)
_MRN_SYSTEM = "urn:soi:mrn:"
_DATE_LENGTH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class WorklistFilter:
    """Conditions on the worklist's studies; every one given must hold.

    Attributes
    ----------
    facility_id:
        Only this facility's studies (within those the caller may see).
    modality:
        Only studies with a series of this modality (e.g. ``CR``, ``DX``).
    review_states:
        Only studies in one of these review states (empty: any).
    study_date:
        Inclusive ``(low, high)`` bounds of the Study Date (DICOM DA, ``YYYYMMDD``),
        ``""`` for an open end.
    assigned_to_user_id:
        Only studies assigned to this user.

    Raises
    ------
    ValueError
        When a date bound is not 8 digits, or the low bound is after the high one.
    """

    facility_id: int | None = None
    modality: str | None = None
    review_states: tuple[ReviewState, ...] = ()
    study_date: tuple[str, str] | None = None
    assigned_to_user_id: int | None = None

    def __post_init__(self) -> None:
        if self.study_date is None:
            return
        low, high = self.study_date
        for name, value in (("low", low), ("high", high)):
            if value and not (len(value) == _DATE_LENGTH and value.isdigit()):
                raise ValueError(
                    f"`study_date` {name} bound must be a DICOM date YYYYMMDD, {value!r} is given"
                )
        if low and high and low > high:
            raise ValueError(f"`study_date` low bound {low} is after the high bound {high}")


@dataclass(frozen=True, slots=True)
class WorklistFinding:
    """A finding as the worklist shows it."""

    label: str
    probability: float
    positive: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class WorklistRow:
    """One study on the worklist.

    ``patient_identifier`` is ``(kind, value)`` of the patient's national identifier,
    else a record number the study's facility issued (``None`` without either).
    ``quality_gate`` is ``passed`` or ``failed`` when the newest result says so.
    ``ai_preliminary`` says whether a current AI result is still preliminary.
    """

    study_id: int
    study_instance_uid: str
    patient_name: str
    patient_identifier: tuple[str, str] | None
    facility_code: str
    facility_name: str
    modalities: str
    study_date: str
    first_received_at: datetime
    waiting_minutes: int
    state: str
    quality_gate: str | None
    findings: tuple[WorklistFinding, ...]
    model_name: str | None
    model_version: str | None
    ai_preliminary: bool
    urgency: Urgency
    urgency_score: float
    review_state: ReviewState
    assigned_to: str | None


@dataclass(frozen=True, slots=True)
class WorklistPage:
    """A page of the worklist and how many studies match in all."""

    total: int
    limit: int
    offset: int
    rows: tuple[WorklistRow, ...]


def _conditions(
    facility_ids: Collection[int] | None, filters: WorklistFilter
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if facility_ids is not None:
        conditions.append(Study.facility_id.in_(list(facility_ids)))
    if filters.facility_id is not None:
        conditions.append(Study.facility_id == filters.facility_id)
    if filters.modality is not None:
        conditions.append(
            exists(
                select(Series.id).where(
                    Series.study_id == Study.id, Series.modality == filters.modality
                )
            )
        )
    if filters.review_states:
        conditions.append(Study.review_state.in_(filters.review_states))
    if filters.study_date is not None:
        low, high = filters.study_date
        conditions.append(Study.study_date != "")
        if low:
            conditions.append(Study.study_date >= low)
        if high:
            conditions.append(Study.study_date <= high)
    if filters.assigned_to_user_id is not None:
        conditions.append(Study.assigned_to_user_id == filters.assigned_to_user_id)
    return conditions


def _bucket_ids(
    session: Session,
    conditions: Sequence[ColumnElement[bool]],
    states: Sequence[ReviewState],
    *,
    limit: int,
    offset: int,
) -> list[int]:
    """The ids of one review bucket's studies, in worklist order."""
    statement = (
        select(Study.id)
        .where(*conditions, Study.review_state.in_(states))
        .order_by(Study.urgency, Study.urgency_score.desc(), Study.first_received_at, Study.id)
        .limit(limit)
        .offset(offset)
    )
    return [int(i) for i in session.scalars(statement)]


def _page_ids(
    session: Session,
    conditions: Sequence[ColumnElement[bool]],
    counts: dict[ReviewState, int],
    *,
    limit: int,
    offset: int,
) -> list[int]:
    """The page's ids: from the open bucket, then (past its end) the closed one."""
    opened = sum(counts.get(state, 0) for state in OPEN_REVIEW_STATES)
    closed = sum(counts.get(state, 0) for state in CLOSED_REVIEW_STATES)
    ids: list[int] = []
    if offset < opened:
        ids = _bucket_ids(session, conditions, OPEN_REVIEW_STATES, limit=limit, offset=offset)
    if len(ids) < limit and closed and offset + len(ids) >= opened:
        ids += _bucket_ids(
            session,
            conditions,
            CLOSED_REVIEW_STATES,
            limit=limit - len(ids),
            offset=max(0, offset - opened),
        )
    return ids


def _identifier(
    identifiers: Sequence[PatientIdentifier], facility_code: str
) -> tuple[str, str] | None:
    own = f"{_MRN_SYSTEM}{facility_code}"
    shown = [
        i
        for i in identifiers
        if i.kind is not IdentifierKind.MRN or i.system == own or i.system.startswith(f"{own}:")
    ]
    shown.sort(key=lambda i: (_IDENTIFIER_ORDER.index(i.kind), i.id))
    return (shown[0].kind.value, shown[0].value) if shown else None


def _quality_gate(result: Result) -> str | None:
    """``failed`` for an ungradable result or a failed gate, ``passed`` when every gate
    recorded in the result passed, ``None`` when it records none."""
    if result.state is ResultState.UNGRADABLE:
        return "failed"
    details: dict[str, Any] = result.details or {}
    outcomes = [
        bool(gate.get("passed", False))
        for entry in details.get("instances", [])
        if isinstance(entry, dict)
        for gate in entry.get("gates", [])
        if isinstance(gate, dict)
    ]
    if not outcomes:
        return None
    return "passed" if all(outcomes) else "failed"


def _current_results(session: Session, study_ids: Sequence[int]) -> dict[int, list[Result]]:
    """Each study's current results (the newest of each job), newest first."""
    if not study_ids:
        return {}
    newest = (
        select(func.max(Result.id))
        .where(Result.study_id.in_(study_ids))
        .group_by(Result.study_id, Result.job_id)
    )
    results = session.scalars(
        select(Result)
        .where(Result.id.in_(newest))
        .options(selectinload(Result.findings))
        .order_by(Result.id.desc())
    ).all()
    by_study: dict[int, list[Result]] = {}
    for result in results:
        by_study.setdefault(result.study_id, []).append(result)
    return by_study


def _top_findings(results: Sequence[Result]) -> tuple[WorklistFinding, ...]:
    findings = [f for r in results if r.state is ResultState.COMPLETE for f in r.findings]
    findings.sort(key=lambda f: (not f.positive, -f.probability, f.id))
    return tuple(
        WorklistFinding(f.label, float(f.probability), bool(f.positive))
        for f in findings[:TOP_FINDINGS]
    )


def _read_rows(session: Session, ids: Sequence[int], now: datetime) -> list[WorklistRow]:
    if not ids:
        return []
    rows = session.execute(
        select(Study, Patient, Facility, User.username)
        .join(Patient, Patient.id == Study.patient_id)
        .join(Facility, Facility.id == Study.facility_id)
        .outerjoin(User, User.id == Study.assigned_to_user_id)
        .where(Study.id.in_(ids))
    ).all()
    patient_ids = {row[1].id for row in rows}
    identifiers: dict[int, list[PatientIdentifier]] = {}
    for ident in session.scalars(
        select(PatientIdentifier).where(PatientIdentifier.patient_id.in_(patient_ids))
    ):
        identifiers.setdefault(ident.patient_id, []).append(ident)
    results = _current_results(session, ids)
    by_id: dict[int, WorklistRow] = {}
    for study, patient, facility, username in rows:
        current = results.get(study.id, [])
        newest = current[0] if current else None
        waited = max(0.0, (now - study.first_received_at).total_seconds())
        by_id[study.id] = WorklistRow(
            study_id=study.id,
            study_instance_uid=study.study_instance_uid,
            patient_name=patient.name,
            patient_identifier=_identifier(identifiers.get(patient.id, []), facility.code),
            facility_code=facility.code,
            facility_name=facility.name,
            modalities=study.modalities,
            study_date=study.study_date,
            first_received_at=study.first_received_at,
            waiting_minutes=int(waited // 60),
            state=study.state.value,
            quality_gate=None if newest is None else _quality_gate(newest),
            findings=_top_findings(current),
            model_name=None if newest is None else newest.model_name,
            model_version=None if newest is None else newest.model_version,
            ai_preliminary=any(r.status is ResultStatus.PRELIMINARY for r in current),
            urgency=Urgency(study.urgency),
            urgency_score=float(study.urgency_score),
            review_state=study.review_state,
            assigned_to=username,
        )
    return [by_id[i] for i in ids if i in by_id]


def worklist_page(
    session: Session,
    *,
    facility_ids: Collection[int] | None,
    filters: WorklistFilter | None = None,
    limit: int,
    offset: int = 0,
    now: datetime | None = None,
) -> WorklistPage:
    """Return a page of the worklist: the matching studies in worklist order, from
    ``offset`` on, at most ``limit``, with the number of matching studies.

    Parameters
    ----------
    session:
        An open session.
    facility_ids:
        The facilities whose studies the reader may see (``None``: all; empty: none).
    filters:
        Further conditions (facility, modality, review state, study date, assignee).
    limit, offset:
        The page.
    now:
        The time waiting minutes are counted to (default: now).

    Raises
    ------
    ValueError
        When ``limit`` is not positive or ``offset`` is negative.
    """
    if limit < 1:
        raise ValueError(f"`limit` must be a positive number, {limit} is given")
    if offset < 0:
        raise ValueError(f"`offset` must be >= 0, {offset} is given")
    conditions = _conditions(facility_ids, filters or WorklistFilter())
    counts = {
        ReviewState(state): int(count)
        for state, count in session.execute(
            select(Study.review_state, func.count(Study.id))
            .where(*conditions)
            .group_by(Study.review_state)
        ).all()
    }
    ids = _page_ids(session, conditions, counts, limit=limit, offset=offset)
    rows = _read_rows(session, ids, now or utcnow())
    return WorklistPage(total=sum(counts.values()), limit=limit, offset=offset, rows=tuple(rows))
