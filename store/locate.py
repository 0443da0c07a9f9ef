"""Where the instances of a study lie, and which facilities hold a study, series or
instance UID: for retrieval (WADO-RS) and for refusing an upload into another
facility's study (STOW-RS)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Instance, Series, Study
from store.query import InstanceMatch

__all__ = ["facilities_holding", "locate_instances"]


def locate_instances(
    session: Session,
    *,
    study_instance_uid: str,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    facility_ids: Collection[int] | None = None,
) -> list[InstanceMatch]:
    """Return the instances of a study, series or single instance, for retrieval.

    They come in series and instance number order. A study of a facility not in
    ``facility_ids`` gives an empty list, as a missing one.
    """
    statement = (
        select(Instance, Series, Study)
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Instance.study_id)
        .where(Study.study_instance_uid == study_instance_uid)
        .order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id)
    )
    if series_instance_uid is not None:
        statement = statement.where(Series.series_instance_uid == series_instance_uid)
    if sop_instance_uid is not None:
        statement = statement.where(Instance.sop_instance_uid == sop_instance_uid)
    if facility_ids is not None:
        statement = statement.where(Study.facility_id.in_(list(facility_ids)))
    rows = session.execute(statement).all()
    return [InstanceMatch(instance=row[0], series=row[1], study=row[2]) for row in rows]


def facilities_holding(
    session: Session,
    *,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
) -> set[int]:
    """Return the facilities whose studies hold this study, series or instance UID.

    A new instance may join only a study of its sender's own facility: an empty set
    or that facility alone.
    """
    by_study = select(Study.facility_id).where(Study.study_instance_uid == study_instance_uid)
    by_series = (
        select(Study.facility_id)
        .join(Series, Series.study_id == Study.id)
        .where(Series.series_instance_uid == series_instance_uid)
    )
    by_instance = (
        select(Study.facility_id)
        .join(Instance, Instance.study_id == Study.id)
        .where(Instance.sop_instance_uid == sop_instance_uid)
    )
    rows = session.execute(by_study.union(by_series, by_instance)).all()
    return {int(row[0]) for row in rows}
