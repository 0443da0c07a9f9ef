"""Readers' decisions on AI findings: the labelled cases that retraining learns from."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from store.enums import ReviewDecision
from store.errors import NotFoundError
from store.models import Finding, FindingReview, Result, User

__all__ = ["record_finding_review"]

_LABEL_LENGTH = 64


def record_finding_review(
    session: Session,
    *,
    result_id: int,
    label: str,
    decision: ReviewDecision | str,
    reader_user_id: int,
    finding_id: int | None = None,
    probability_class: str | None = None,
    region: dict[str, Any] | None = None,
) -> FindingReview:
    """Add a reader's decision on one finding of a result to the current transaction.

    The study and the AI's probability are taken from the result and the finding.

    Parameters
    ----------
    session:
        A session inside a write transaction.
    result_id:
        The result the reader reviewed.
    label:
        The finding's label (for an edited finding: the label the reader chose).
    decision:
        ``accepted``, ``rejected``, ``edited`` or ``added``.
    reader_user_id:
        The radiologist who decided.
    finding_id:
        The AI finding decided on; ``None`` only for a finding the reader ``added``.
    probability_class:
        The reader's confidence in words (e.g. ``definite``, ``possible``).
    region:
        Where the finding lies, as JSON (e.g. a bounding box on an instance).

    Raises
    ------
    ValueError
        When ``label`` is empty or too long, ``decision`` is unknown, an ``added``
        finding names an AI finding, or another decision names none.
    NotFoundError
        When the result, the finding (or a finding of another result) or the reader
        does not exist.
    """
    checked = ReviewDecision(decision)
    if not label or len(label) > _LABEL_LENGTH:
        raise ValueError(f"`label` must be 1 to {_LABEL_LENGTH} characters, {len(label)} are given")
    if checked is ReviewDecision.ADDED and finding_id is not None:
        raise ValueError(f"an 'added' finding is the reader's own; `finding_id` {finding_id} given")
    if checked is not ReviewDecision.ADDED and finding_id is None:
        raise ValueError(f"a {checked.value!r} decision needs the `finding_id` it is about")
    result = session.get(Result, result_id)
    if result is None:
        raise NotFoundError(f"no result with id {result_id}")
    if session.get(User, reader_user_id) is None:
        raise NotFoundError(f"no user with id {reader_user_id}")
    ai_probability: float | None = None
    if finding_id is not None:
        finding = session.get(Finding, finding_id)
        if finding is None or finding.result_id != result_id:
            raise NotFoundError(f"result {result_id} has no finding with id {finding_id}")
        ai_probability = finding.probability
    review = FindingReview(
        study_id=result.study_id,
        result_id=result_id,
        finding_id=finding_id,
        label=label,
        ai_probability=ai_probability,
        decision=checked,
        probability_class=probability_class,
        region=region,
        reader_user_id=reader_user_id,
    )
    session.add(review)
    session.flush()
    return review
