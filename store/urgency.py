"""How urgently a study should be read, from its current AI results.

A study's current results are the newest result of each of its jobs (one per
pipeline). The urgency is the most urgent of them: ``critical`` when a positive
finding's label is one of the critical labels, ``positive`` for any other positive
finding, ``normal`` for a complete result without one, and ``none`` while there is no
result, or only results that could not be read (ungradable, failed). The score is the
highest probability among the current positive findings (0 without any), which orders
studies of the same urgency.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.enums import ResultState, Urgency
from store.errors import NotFoundError
from store.models import Finding, Result, Study

__all__ = [
    "DEFAULT_CRITICAL_LABELS",
    "StudyUrgency",
    "refresh_study_urgency",
    "study_urgency",
]

#: The labels whose positive finding makes a study critical, unless configured otherwise.
DEFAULT_CRITICAL_LABELS: tuple[str, ...] = ("pneumothorax",)


@dataclass(frozen=True, slots=True)
class StudyUrgency:
    """A study's urgency and the score that orders studies of the same urgency."""

    urgency: Urgency
    score: float


def study_urgency(
    session: Session, study_id: int, *, critical_labels: Collection[str]
) -> StudyUrgency:
    """Compute the urgency of a study from its current results.

    Parameters
    ----------
    session:
        An open session (the results flushed in it count).
    study_id:
        The study's row id.
    critical_labels:
        Finding labels whose positive finding makes the study critical.
    """
    current = select(func.max(Result.id)).where(Result.study_id == study_id).group_by(Result.job_id)
    states = session.execute(select(Result.id, Result.state).where(Result.id.in_(current))).all()
    complete = [int(row[0]) for row in states if row[1] is ResultState.COMPLETE]
    if not complete:
        return StudyUrgency(Urgency.NONE, 0.0)
    positives = session.execute(
        select(Finding.label, Finding.probability).where(
            Finding.result_id.in_(complete), Finding.positive.is_(True)
        )
    ).all()
    if not positives:
        return StudyUrgency(Urgency.NORMAL, 0.0)
    critical = set(critical_labels)
    score = max(float(row[1]) for row in positives)
    if any(row[0] in critical for row in positives):
        return StudyUrgency(Urgency.CRITICAL, score)
    return StudyUrgency(Urgency.POSITIVE, score)


def refresh_study_urgency(
    session: Session, study_id: int, *, critical_labels: Collection[str]
) -> StudyUrgency:
    """Recompute a study's urgency and store it in the current transaction.

    Raises
    ------
    NotFoundError
        When there is no study ``study_id``.
    """
    study = session.get(Study, study_id)
    if study is None:
        raise NotFoundError(f"no study with id {study_id}")
    computed = study_urgency(session, study_id, critical_labels=critical_labels)
    study.urgency = int(computed.urgency)
    study.urgency_score = computed.score
    session.flush()
    return computed
