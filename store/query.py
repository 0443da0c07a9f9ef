"""Searching studies, series and instances by their indexed attributes (for QIDO-RS and
WADO-RS), always within the facilities a caller may see.

Matching is done in SQL on indexed columns, with bound parameters only: a value is
never part of the statement's text. Wildcards follow DICOM (``*`` any run of
characters, ``?`` one character) and are translated to ``LIKE`` (PostgreSQL) or
``GLOB`` (SQLite), so that matching is case-sensitive on both, except for names.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased, contains_eager

from store.enums import IdentifierKind
from store.models import Facility, Instance, Patient, PatientIdentifier, Series, Study

__all__ = [
    "InstanceMatch",
    "InstanceQuery",
    "SeriesMatch",
    "SeriesQuery",
    "StudyMatch",
    "StudyQuery",
    "count_matches",
    "search_instances",
    "search_series",
    "search_studies",
]

_NATIONAL_KINDS = (
    IdentifierKind.NATIONAL_ID,
    IdentifierKind.HEALTH_INSURANCE,
    IdentifierKind.HEALTH_RECORD,
)
_MRN_SYSTEM = "urn:soi:mrn:"
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class StudyQuery:
    """Conditions on studies; every one given must hold.

    Text values match exactly, or as a pattern when they hold ``*`` or ``?``.
    ``study_date`` and ``study_time`` are inclusive ``(low, high)`` bounds in the
    DICOM DA/TM forms, ``""`` for an open end. ``facility_ids`` limits the search to
    those facilities' studies (``None``: all; empty: none).
    """

    facility_ids: Collection[int] | None = None
    study_instance_uids: tuple[str, ...] = ()
    patient_id: str | None = None
    patient_name: str | None = None
    accession_number: str | None = None
    study_description: str | None = None
    study_date: tuple[str, str] | None = None
    study_time: tuple[str, str] | None = None
    modalities_in_study: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """Conditions on series (``modality``: any of these)."""

    series_instance_uids: tuple[str, ...] = ()
    modality: tuple[str, ...] = ()
    series_number: int | None = None
    series_description: str | None = None


@dataclass(frozen=True, slots=True)
class InstanceQuery:
    """Conditions on instances."""

    sop_instance_uids: tuple[str, ...] = ()
    sop_class_uids: tuple[str, ...] = ()
    instance_number: int | None = None


@dataclass(frozen=True, slots=True)
class StudyMatch:
    """A matching study (with its patient), its series count, and the file of its first
    instance, whose header holds the study's other attributes."""

    study: Study
    number_of_series: int
    file_path: str
    transfer_syntax_uid: str = ""


@dataclass(frozen=True, slots=True)
class SeriesMatch:
    """A matching series with its study, instance count and first instance's file."""

    series: Series
    study: Study
    number_of_instances: int
    file_path: str
    transfer_syntax_uid: str = ""


@dataclass(frozen=True, slots=True)
class InstanceMatch:
    """A matching instance with its series and study."""

    instance: Instance
    series: Series
    study: Study


def _is_pattern(value: str) -> bool:
    return "*" in value or "?" in value


def _matches(
    session: Session, column: SQLColumnExpression[str], value: str, *, ignore_case: bool = False
) -> ColumnElement[bool]:
    """``column`` matches ``value``: equality, or a DICOM wildcard pattern."""
    if ignore_case:
        column = func.lower(column)
        value = value.lower()
    if not _is_pattern(value):
        return column == value
    if session.get_bind().dialect.name == "sqlite" and not ignore_case:
        # GLOB is case-sensitive and knows * and ?; only '[' must be escaped.
        return column.op("GLOB")(value.replace("[", "[[]"))
    like = (
        value.replace("\\", "\\\\")
        .replace("%", "\\%")
        .replace("_", "\\_")
        .replace("*", "%")
        .replace("?", "_")
    )
    return column.like(like, escape="\\")


def _in_range(column: SQLColumnExpression[str], bounds: tuple[str, str]) -> ColumnElement[bool]:
    low, high = bounds
    if low and low == high:
        return column == low
    conditions = [column != ""]
    if low:
        conditions.append(column >= low)
    if high:
        conditions.append(column <= high)
    return and_(*conditions)


def _patient_id_matches(session: Session, value: str) -> ColumnElement[bool]:
    """The study's patient holds ``value`` as a national identifier, or as a record
    number of the facility the study belongs to (never another facility's).

    The patients holding the value are found first (an index on the identifier's
    value serves this), then whose record number it is.
    """
    holders = select(PatientIdentifier.patient_id).where(
        _matches(session, PatientIdentifier.value, value)
    )
    own_system = literal(_MRN_SYSTEM) + Facility.code
    whose = exists(
        select(PatientIdentifier.id)
        .join(Facility, Facility.id == Study.facility_id)
        .where(
            PatientIdentifier.patient_id == Study.patient_id,
            _matches(session, PatientIdentifier.value, value),
            or_(
                PatientIdentifier.kind.in_(_NATIONAL_KINDS),
                PatientIdentifier.system == own_system,
                func.substr(PatientIdentifier.system, 1, func.length(own_system) + 1)
                == own_system + ":",
            ),
        )
    )
    return and_(Study.patient_id.in_(holders), whose)


def _study_conditions(session: Session, query: StudyQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.facility_ids is not None:
        conditions.append(Study.facility_id.in_(list(query.facility_ids)))
    if query.study_instance_uids:
        conditions.append(Study.study_instance_uid.in_(query.study_instance_uids))
    if query.patient_id is not None:
        conditions.append(_patient_id_matches(session, query.patient_id))
    if query.patient_name is not None:
        conditions.append(_matches(session, Patient.name, query.patient_name, ignore_case=True))
    if query.accession_number is not None:
        conditions.append(_matches(session, Study.accession_number, query.accession_number))
    if query.study_description is not None:
        conditions.append(_matches(session, Study.study_description, query.study_description))
    if query.study_date is not None:
        conditions.append(_in_range(Study.study_date, query.study_date))
    if query.study_time is not None:
        conditions.append(_in_range(Study.study_time, query.study_time))
    if query.modalities_in_study:
        # An alias: a series search has Series in its own FROM, which the subquery
        # would otherwise correlate to, leaving it nothing to select from.
        other = aliased(Series)
        conditions.append(
            exists(
                select(other.id).where(
                    other.study_id == Study.id, other.modality.in_(query.modalities_in_study)
                )
            )
        )
    return conditions


def _series_conditions(session: Session, query: SeriesQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.series_instance_uids:
        conditions.append(Series.series_instance_uid.in_(query.series_instance_uids))
    if query.modality:
        conditions.append(Series.modality.in_(query.modality))
    if query.series_number is not None:
        conditions.append(Series.series_number == query.series_number)
    if query.series_description is not None:
        conditions.append(_matches(session, Series.series_description, query.series_description))
    return conditions


def _instance_conditions(query: InstanceQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.sop_instance_uids:
        conditions.append(Instance.sop_instance_uid.in_(query.sop_instance_uids))
    if query.sop_class_uids:
        conditions.append(Instance.sop_class_uid.in_(query.sop_class_uids))
    if query.instance_number is not None:
        conditions.append(Instance.instance_number == query.instance_number)
    return conditions


def _file_paths(session: Session, instance_ids: Sequence[int | None]) -> dict[int, tuple[str, str]]:
    """The file and transfer syntax of each instance."""
    wanted = [i for i in instance_ids if i is not None]
    if not wanted:
        return {}
    rows = session.execute(
        select(Instance.id, Instance.file_path, Instance.transfer_syntax_uid).where(
            Instance.id.in_(wanted)
        )
    ).all()
    return {int(row[0]): (str(row[1]), str(row[2])) for row in rows}


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise ValueError(f"`limit` and `offset` must be >= 0, {limit} and {offset} are given")


def _with_patient(statement: Select[_T], query: StudyQuery) -> Select[_T]:
    """Join the patient where the conditions need it (a name is searched): the join
    costs a lookup per row passed over, which a deep ``offset`` makes many."""
    if query.patient_name is None:
        return statement
    return statement.join(Patient, Patient.id == Study.patient_id)


def search_studies(
    session: Session, query: StudyQuery, *, limit: int, offset: int = 0
) -> list[StudyMatch]:
    """Return the studies matching ``query``, in a stable order (the order they were
    first indexed), from ``offset`` on, at most ``limit``.

    The page is chosen on the studies' ids alone; the studies of the page are then
    read with their patient, series count and first instance.
    """
    first_instance = (
        select(func.min(Instance.id)).where(Instance.study_id == Study.id).scalar_subquery()
    )
    series_count = (
        select(func.count(Series.id)).where(Series.study_id == Study.id).scalar_subquery()
    )
    _check_page(limit, offset)
    page = (
        _with_patient(select(Study.id), query)
        .where(*_study_conditions(session, query))
        .order_by(Study.id)
        .limit(limit)
        .offset(offset)
    )
    statement = (
        select(Study, series_count, first_instance)
        .join(Patient, Patient.id == Study.patient_id)
        .options(contains_eager(Study.patient))
        .where(Study.id.in_(page))
        .order_by(Study.id)
    )
    rows = session.execute(statement).all()
    paths = _file_paths(session, [row[2] for row in rows])
    return [
        StudyMatch(
            study=row[0],
            number_of_series=int(row[1] or 0),
            file_path=paths.get(row[2], ("", ""))[0],
            transfer_syntax_uid=paths.get(row[2], ("", ""))[1],
        )
        for row in rows
    ]


def search_series(
    session: Session,
    *,
    studies: StudyQuery,
    series: SeriesQuery,
    limit: int,
    offset: int = 0,
) -> list[SeriesMatch]:
    """Return the series matching ``series`` in studies matching ``studies``."""
    first_instance = (
        select(func.min(Instance.id)).where(Instance.series_id == Series.id).scalar_subquery()
    )
    instance_count = (
        select(func.count(Instance.id)).where(Instance.series_id == Series.id).scalar_subquery()
    )
    _check_page(limit, offset)
    page = (
        _with_patient(select(Series.id).join(Study, Study.id == Series.study_id), studies)
        .where(*_study_conditions(session, studies), *_series_conditions(session, series))
        .order_by(Series.id)
        .limit(limit)
        .offset(offset)
    )
    statement = (
        select(Series, Study, instance_count, first_instance)
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .options(contains_eager(Study.patient))
        .where(Series.id.in_(page))
        .order_by(Series.id)
    )
    rows = session.execute(statement).all()
    paths = _file_paths(session, [row[3] for row in rows])
    return [
        SeriesMatch(
            series=row[0],
            study=row[1],
            number_of_instances=int(row[2] or 0),
            file_path=paths.get(row[3], ("", ""))[0],
            transfer_syntax_uid=paths.get(row[3], ("", ""))[1],
        )
        for row in rows
    ]


def search_instances(
    session: Session,
    *,
    studies: StudyQuery,
    series: SeriesQuery,
    instances: InstanceQuery,
    limit: int,
    offset: int = 0,
) -> list[InstanceMatch]:
    """Return the instances matching all three queries."""
    _check_page(limit, offset)
    page = select(Instance.id).join(Study, Study.id == Instance.study_id)
    series_conditions = _series_conditions(session, series)
    if series_conditions:
        page = page.join(Series, Series.id == Instance.series_id)
    page = (
        _with_patient(page, studies)
        .where(
            *_study_conditions(session, studies),
            *series_conditions,
            *_instance_conditions(instances),
        )
        .order_by(Instance.id)
        .limit(limit)
        .offset(offset)
    )
    statement = (
        select(Instance, Series, Study)
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Instance.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .options(contains_eager(Study.patient))
        .where(Instance.id.in_(page))
        .order_by(Instance.id)
    )
    rows = session.execute(statement).all()
    return [InstanceMatch(instance=row[0], series=row[1], study=row[2]) for row in rows]


def count_matches(
    session: Session,
    *,
    studies: StudyQuery,
    series: SeriesQuery | None = None,
    instances: InstanceQuery | None = None,
) -> int:
    """Return how many studies (or series, with ``series``; or instances, with
    ``instances``) match, for a search that returns only a first page."""
    conditions = _study_conditions(session, studies)
    statement = select(func.count(Study.id))
    if instances is not None:
        statement = (
            select(func.count(Instance.id))
            .join(Series, Series.id == Instance.series_id)
            .join(Study, Study.id == Instance.study_id)
        )
        conditions += _series_conditions(session, series or SeriesQuery())
        conditions += _instance_conditions(instances)
    elif series is not None:
        statement = select(func.count(Series.id)).join(Study, Study.id == Series.study_id)
        conditions += _series_conditions(session, series)
    return int(session.scalar(_with_patient(statement, studies).where(*conditions)) or 0)
