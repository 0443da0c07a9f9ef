"""Study queries: assembly (quiet studies) and listings for people and the API."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from store.enums import Applicability, StudyState
from store.models import Instance, Series, Study
from store.types import utcnow

__all__ = [
    "count_studies",
    "get_study",
    "list_studies",
    "locate_study",
    "mark_stable",
    "quiet_studies",
    "study_pipelines",
]


def quiet_studies(session: Session, *, received_before: datetime, limit: int = 100) -> list[Study]:
    """Return receiving studies with no new instance since ``received_before``."""
    return list(
        session.scalars(
            select(Study)
            .where(Study.state == StudyState.RECEIVING, Study.last_received_at < received_before)
            .order_by(Study.last_received_at)
            .limit(limit)
        ).all()
    )


def study_pipelines(session: Session, study_id: int) -> dict[str, list[str]]:
    """Return, per pipeline, the SOP Instance UIDs of a study that it applies to."""
    rows = session.execute(
        select(Instance.sop_instance_uid, Instance.pipelines)
        .where(Instance.study_id == study_id, Instance.applicability == Applicability.APPLICABLE)
        .order_by(Instance.id)
    ).all()
    by_pipeline: dict[str, list[str]] = {}
    for uid, pipelines in rows:
        for pipeline in pipelines or ():
            by_pipeline.setdefault(pipeline, []).append(uid)
    return by_pipeline


def mark_stable(session: Session, study: Study, *, reason: str) -> None:
    """Record that a study is assembled."""
    study.state = StudyState.STABLE
    study.state_reason = reason[:500]
    study.stable_at = utcnow()


def list_studies(
    session: Session,
    *,
    limit: int = 50,
    offset: int = 0,
    facility_ids: Collection[int] | None = None,
) -> Sequence[Study]:
    """Return studies, most recently received first, with patient, facility and jobs.

    ``facility_ids`` limits them to those facilities' studies (``None``: all; an empty
    collection: none).
    """
    statement = (
        select(Study)
        .options(
            selectinload(Study.patient),
            selectinload(Study.facility),
            selectinload(Study.jobs),
        )
        .order_by(Study.last_received_at.desc(), Study.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if facility_ids is not None:
        statement = statement.where(Study.facility_id.in_(list(facility_ids)))
    return session.scalars(statement).all()


def count_studies(session: Session, *, facility_ids: Collection[int] | None = None) -> int:
    """Return how many studies there are (of ``facility_ids`` only, unless ``None``)."""
    statement = select(func.count()).select_from(Study)
    if facility_ids is not None:
        statement = statement.where(Study.facility_id.in_(list(facility_ids)))
    return int(session.scalar(statement) or 0)


def get_study(
    session: Session, study_instance_uid: str, *, facility_ids: Collection[int] | None = None
) -> Study | None:
    """Return a study with its patient, facility, series, instances and jobs.

    With ``facility_ids``, a study of another facility is ``None``, as a missing one.
    """
    statement = (
        select(Study)
        .options(
            selectinload(Study.patient),
            selectinload(Study.facility),
            selectinload(Study.jobs),
            selectinload(Study.series).selectinload(Series.instances),
        )
        .where(Study.study_instance_uid == study_instance_uid)
    )
    if facility_ids is not None:
        statement = statement.where(Study.facility_id.in_(list(facility_ids)))
    return session.scalars(statement).one_or_none()


def locate_study(session: Session, study_instance_uid: str) -> tuple[int, int] | None:
    """Return the facility and patient ids of a study, or ``None`` if there is none.

    For the audit log of a refused read: whose study someone asked for.
    """
    row = session.execute(
        select(Study.facility_id, Study.patient_id).where(
            Study.study_instance_uid == study_instance_uid
        )
    ).one_or_none()
    return None if row is None else (int(row[0]), int(row[1]))
