"""How often readers agree with each model: the current decisions on its findings, per
model version, label and facility, with the agreement rate's Wilson score interval.

Only the current decisions count: those of each study's newest saved review (the rows at
the study's highest ``review_version``, as :func:`store.reviews.current_decisions` reads
them); older saves are history. The agreement rate is ``accepted / (accepted + rejected +
edited)``: the share of the AI's findings a reader kept as they were. Findings a reader
``added`` are counted but are not part of the rate (the AI gave nothing to agree with).

References
----------
E. B. Wilson, "Probable inference, the law of succession, and statistical inference",
Journal of the American Statistical Association 22(158), 1927, pp. 209-212.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from store.enums import ReviewDecision
from store.models import Facility, Finding, FindingReview, Result, Study

__all__ = ["WILSON_Z95", "AgreementRow", "agreement", "wilson_interval"]

#: The standard normal quantile of a two-sided 95 % interval.
WILSON_Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreementRow:
    """The current decisions on one model version's findings of one label at one facility.

    ``label`` is the AI finding's label (for an ``added`` finding: the reader's);
    ``decided`` counts every decision (``added`` included); ``rate`` is ``accepted /
    (accepted + rejected + edited)`` and ``rate_low``/``rate_high`` its 95 % Wilson
    score interval, all ``None`` when no AI finding was decided on.
    """

    model_name: str
    model_version: str
    label: str
    facility_id: int
    facility_code: str
    accepted: int
    rejected: int
    edited: int
    added: int
    decided: int
    rate: float | None
    rate_low: float | None
    rate_high: float | None


def wilson_interval(successes: int, trials: int, *, z: float = WILSON_Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion ``successes / trials``.

    Parameters
    ----------
    successes:
        How many of the trials succeeded, 0 to ``trials``.
    trials:
        How many trials, at least 1.
    z:
        The standard normal quantile of the interval's confidence (1.96 for 95 %).

    Returns
    -------
    tuple[float, float]
        The interval's lower and upper bound, within [0, 1].

    Raises
    ------
    ValueError
        When ``trials`` is below 1, ``successes`` is outside 0 to ``trials``, or ``z``
        is not positive.
    """
    if trials < 1:
        raise ValueError(f"`trials` must be a positive number, {trials} is given")
    if not 0 <= successes <= trials:
        raise ValueError(f"`successes` must be 0 to {trials}, {successes} is given")
    if not z > 0:
        raise ValueError(f"`z` must be positive, {z} is given")
    p, z2 = successes / trials, z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def _count(decision: ReviewDecision) -> ColumnElement[int]:
    return func.sum(case((FindingReview.decision == decision, 1), else_=0))


def agreement(
    session: Session,
    *,
    facility_ids: Sequence[int] | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AgreementRow]:
    """Count the current decisions per model version, label and facility.

    Parameters
    ----------
    session:
        A session.
    facility_ids:
        Only the studies of these facilities (``None``: every facility).
    model:
        Only the findings of this model (its name, any version).
    since:
        Only decisions made at or after this moment (timezone-aware).
    until:
        Only decisions made before this moment (timezone-aware).

    Returns
    -------
    list[AgreementRow]
        One row per model name, model version, label and facility with a current
        decision, in that order.

    Raises
    ------
    ValueError
        When ``since`` or ``until`` has no timezone, or ``until`` is not after ``since``.
    """
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(f"`{name}` must be timezone-aware, {moment.isoformat()} is given")
    if since is not None and until is not None and until <= since:
        raise ValueError(
            f"`until` ({until.isoformat()}) must be after `since` ({since.isoformat()})"
        )
    newest = (
        select(
            FindingReview.study_id.label("study_id"),
            func.max(FindingReview.review_version).label("review_version"),
        )
        .group_by(FindingReview.study_id)
        .subquery()
    )
    # An edited decision carries the reader's label; it counts against the AI's.
    label = func.coalesce(Finding.label, FindingReview.label)
    accepted = _count(ReviewDecision.ACCEPTED)
    rejected = _count(ReviewDecision.REJECTED)
    edited = _count(ReviewDecision.EDITED)
    added = _count(ReviewDecision.ADDED)
    statement = (
        select(
            Result.model_name,
            Result.model_version,
            label,
            Facility.id,
            Facility.code,
            accepted,
            rejected,
            edited,
            added,
            func.count(FindingReview.id),
        )
        .join(
            newest,
            and_(
                newest.c.study_id == FindingReview.study_id,
                newest.c.review_version == FindingReview.review_version,
            ),
        )
        .join(Result, Result.id == FindingReview.result_id)
        .outerjoin(Finding, Finding.id == FindingReview.finding_id)
        .join(Study, Study.id == FindingReview.study_id)
        .join(Facility, Facility.id == Study.facility_id)
        .group_by(Result.model_name, Result.model_version, label, Facility.id, Facility.code)
        .order_by(Result.model_name, Result.model_version, label, Facility.code)
    )
    if facility_ids is not None:
        statement = statement.where(Study.facility_id.in_(list(facility_ids)))
    if model is not None:
        statement = statement.where(Result.model_name == model)
    if since is not None:
        statement = statement.where(FindingReview.created_at >= since)
    if until is not None:
        statement = statement.where(FindingReview.created_at < until)
    rows: list[AgreementRow] = []
    for row in session.execute(statement):
        name, version, label_value, facility_id, code, n_acc, n_rej, n_edit, n_add, n = row
        kept, judged = int(n_acc), int(n_acc) + int(n_rej) + int(n_edit)
        low, high = wilson_interval(kept, judged) if judged else (None, None)
        rows.append(
            AgreementRow(
                model_name=name,
                model_version=version,
                label=label_value,
                facility_id=int(facility_id),
                facility_code=code,
                accepted=kept,
                rejected=int(n_rej),
                edited=int(n_edit),
                added=int(n_add),
                decided=int(n),
                rate=kept / judged if judged else None,
                rate_low=low,
                rate_high=high,
            )
        )
    return rows
