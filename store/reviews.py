"""Readers' decisions on AI findings (the labelled cases that retraining learns from),
review drafts and their signature.

A review round goes: the reader loads the study at its ``review_version``, saves drafts
(:func:`save_review`: the decisions and the impression, each save a new version) and
signs (:func:`sign_review`: a new signed report and a new version). Each change is a
conditional ``UPDATE ... WHERE review_version = :loaded``, so of two readers who loaded
the same version only the first to save or sign succeeds; the other gets
:class:`~store.errors.StaleReviewError` and reloads. The decisions of the newest save are
the current ones (:func:`current_decisions`); older saves stay as history.

A save after a signature starts an amendment: the study goes back to ``in_review``
(the signed report stays valid and served) until the amendment is signed, which makes
the study ``amended``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from store.enums import ResultState, ReviewDecision, ReviewState
from store.errors import NotFoundError, StaleReviewError
from store.models import Finding, FindingReview, Report, Result, Study, User
from store.signed_reports import add_signed_report

__all__ = [
    "MAX_IMPRESSION_LENGTH",
    "DecisionRecord",
    "current_decisions",
    "current_results",
    "record_finding_review",
    "save_review",
    "sign_review",
    "undecided_findings",
]

_LABEL_LENGTH = 64
_PROBABILITY_CLASS_LENGTH = 64
#: The longest impression a review takes, in characters.
MAX_IMPRESSION_LENGTH = 10_000
_SIGNED_STATES = (ReviewState.SIGNED, ReviewState.AMENDED)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRecord:
    """A reader's decision on one finding, as a save takes it.

    ``finding_id`` names the AI finding decided on (``None`` for a finding the reader
    ``added``); ``label`` is the finding's label (for ``edited``: the reader's label);
    ``probability_class`` the reader's confidence in words; ``region`` where the
    finding lies, as JSON.
    """

    label: str
    decision: ReviewDecision | str
    finding_id: int | None = None
    probability_class: str | None = None
    region: dict[str, Any] | None = None


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
    review_version: int | None = None,
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
    review_version:
        The study's review version the save recording it produced.

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
        review_version=review_version,
    )
    session.add(review)
    session.flush()
    return review


def current_results(session: Session, study_id: int) -> list[Result]:
    """The study's current results (the newest of each job), newest first, with their
    findings."""
    newest = select(func.max(Result.id)).where(Result.study_id == study_id).group_by(Result.job_id)
    return list(
        session.scalars(
            select(Result)
            .where(Result.id.in_(newest))
            .options(selectinload(Result.findings))
            .order_by(Result.id.desc())
        ).all()
    )


def _current_findings(results: Sequence[Result]) -> list[Finding]:
    """The AI findings of the complete results among ``results``, in result then
    model order."""
    return [
        finding
        for result in results
        if result.state is ResultState.COMPLETE
        for finding in sorted(result.findings, key=lambda f: f.id)
    ]


def current_decisions(session: Session, study_id: int) -> list[FindingReview]:
    """The decisions of the study's newest saved review, in the order they were given
    (empty before the first save)."""
    newest = (
        select(func.max(FindingReview.review_version))
        .where(FindingReview.study_id == study_id)
        .scalar_subquery()
    )
    return list(
        session.scalars(
            select(FindingReview)
            .where(FindingReview.study_id == study_id, FindingReview.review_version == newest)
            .order_by(FindingReview.id)
        ).all()
    )


def undecided_findings(session: Session, study_id: int) -> list[Finding]:
    """The current AI findings that the newest saved review has no decision on."""
    decided = {d.finding_id for d in current_decisions(session, study_id)}
    return [f for f in _current_findings(current_results(session, study_id)) if f.id not in decided]


def _bump(
    session: Session,
    study_id: int,
    version: int,
    *,
    values: dict[str, Any],
    refuse_signed: bool,
) -> int:
    """Move the study's review from ``version`` to the next, setting ``values``; the
    new version.

    Raises
    ------
    NotFoundError
        No study with that id.
    StaleReviewError
        The study is at another version (or, with ``refuse_signed``, this version is
        already signed).
    """
    statement = update(Study).where(Study.id == study_id, Study.review_version == version)
    if refuse_signed:
        statement = statement.where(Study.review_state.not_in(_SIGNED_STATES))
    done = session.execute(
        statement.values(review_version=version + 1, **values).execution_options(
            synchronize_session="fetch"
        )
    )
    if getattr(done, "rowcount", 0) == 1:
        return version + 1
    row = session.execute(
        select(Study.review_version, Study.review_state).where(Study.id == study_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no study with id {study_id}")
    current, state = int(row[0]), ReviewState(row[1])
    if current == version:
        raise StaleReviewError(
            f"version {version} of the study's review is already signed ({state.value}); "
            "save an amendment before signing again"
        )
    raise StaleReviewError(
        "the study was changed by another reader since you opened it "
        f"(you loaded version {version}, it is now at version {current}); reload"
    )


def save_review(
    session: Session,
    *,
    study_id: int,
    version: int,
    reader_user_id: int,
    decisions: Sequence[DecisionRecord],
    impression: str,
) -> int:
    """Save a review draft: the decisions (one finding review each) and the impression.

    The study goes to ``in_review`` at the next version; after a signature this starts
    an amendment. Nothing is saved unless the study is still at ``version``.

    Parameters
    ----------
    session:
        A session inside a write transaction.
    study_id:
        The study reviewed.
    version:
        The review version the reader loaded.
    reader_user_id:
        The radiologist saving.
    decisions:
        At most one per AI finding of the current results, and any findings the reader
        added (recorded against the newest current result).
    impression:
        The impression draft, kept exactly as written.

    Returns
    -------
    int
        The study's new review version.

    Raises
    ------
    ValueError
        When a decision names a finding that is not one of the study's current AI
        findings, two decisions name the same finding, a finding is added to a study
        without an AI result, the impression is over :data:`MAX_IMPRESSION_LENGTH`
        characters, or a decision is not valid (see :func:`record_finding_review`).
    NotFoundError
        When the study or the reader does not exist.
    StaleReviewError
        When the study is no longer at ``version``.
    """
    if len(impression) > MAX_IMPRESSION_LENGTH:
        raise ValueError(
            f"`impression` must be at most {MAX_IMPRESSION_LENGTH} characters, "
            f"{len(impression)} are given"
        )
    results = current_results(session, study_id)
    findings = {f.id: f for f in _current_findings(results)}
    seen: set[int] = set()
    for record in decisions:
        if record.probability_class is not None and (
            len(record.probability_class) > _PROBABILITY_CLASS_LENGTH
        ):
            raise ValueError(
                f"`probability_class` must be at most {_PROBABILITY_CLASS_LENGTH} characters, "
                f"{len(record.probability_class)} are given"
            )
        if record.finding_id is None:
            if not results:
                raise ValueError(
                    f"study {study_id} has no AI result to add the finding {record.label!r} to"
                )
            continue
        if record.finding_id not in findings:
            raise ValueError(
                f"finding {record.finding_id} is not one of the study's current AI findings"
            )
        if record.finding_id in seen:
            raise ValueError(f"finding {record.finding_id} has more than one decision")
        seen.add(record.finding_id)
    new_version = _bump(
        session,
        study_id,
        version,
        values={"review_state": ReviewState.IN_REVIEW, "review_impression": impression},
        refuse_signed=False,
    )
    for record in decisions:
        result_id = (
            results[0].id if record.finding_id is None else findings[record.finding_id].result_id
        )
        record_finding_review(
            session,
            result_id=result_id,
            label=record.label,
            decision=record.decision,
            reader_user_id=reader_user_id,
            finding_id=record.finding_id,
            probability_class=record.probability_class,
            region=record.region,
            review_version=new_version,
        )
    return new_version


def sign_review(
    session: Session,
    *,
    study_id: int,
    version: int,
    signer_user_id: int,
    signed_at: datetime,
    document_sha256: str,
) -> Report:
    """Record the signature of the study's review at ``version``: the next signed report
    (``final`` first, ``amended`` after) with the saved impression, the study ``signed``
    (or ``amended``) at the next version.

    Raises
    ------
    ValueError
        When a current AI finding has no decision in the newest saved review, or
        ``signed_at`` or ``document_sha256`` is not valid.
    NotFoundError
        When the study does not exist.
    StaleReviewError
        When the study is no longer at ``version``, or that version is already signed.
    """
    study = session.get(Study, study_id)
    if study is None:
        raise NotFoundError(f"no study with id {study_id}")
    undecided = undecided_findings(session, study_id)
    if undecided:
        names = ", ".join(f"{f.label} (finding {f.id})" for f in undecided)
        raise ValueError(f"every AI finding needs a decision before signing; none for {names}")
    amending = session.scalar(select(func.count(Report.id)).where(Report.study_id == study_id))
    impression = study.review_impression
    _bump(
        session,
        study_id,
        version,
        values={"review_state": ReviewState.AMENDED if amending else ReviewState.SIGNED},
        refuse_signed=True,
    )
    return add_signed_report(
        session,
        study_id=study_id,
        impression=impression,
        signed_by_user_id=signer_user_id,
        signed_at=signed_at,
        document_sha256=document_sha256,
    )
