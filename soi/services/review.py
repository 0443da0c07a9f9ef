"""Radiologists review AI findings: load a study's review, save drafts, read signed reports.

Only radiologists and administrators load a review; only radiologists save one (and
sign it, :mod:`soi.services.review_signing`). A study of a facility the caller may not
see is not found, exactly as one that does not exist (scoped in the query, as
``GET /studies/{uid}``). Each save is a conditional update on the study's
``review_version`` (:func:`store.save_review`): a reader whose version is stale is told
to reload. Every read, save and refusal is written to the audit log (``review.read``,
``review.save``, ``document.read``).

Review states: ``unread`` → (save) ``in_review`` → (sign) ``signed``. A save after a
signature starts an amendment: the study is ``in_review`` again (the signed report
stays valid and served) until the amendment is signed, which makes it ``amended``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from soi.auth import Caller
from soi.review_schemas import (
    ReviewDecisionOut,
    ReviewFindingOut,
    ReviewOut,
    ReviewSavedOut,
    ReviewSaveIn,
    SignedReportOut,
)
from soi.services.audit import record_caller_event
from store import (
    AuditOutcome,
    Database,
    DecisionRecord,
    FileStoreError,
    NotFoundError,
    Report,
    ResultFileStore,
    ResultState,
    StaleReviewError,
    Study,
    User,
    UserRole,
    current_decisions,
    current_results,
    get_signed_report,
    list_signed_reports,
    locate_study,
    report_document_path,
    save_review,
)

__all__ = [
    "REPORTS_FOLDER",
    "REVIEW_READER_ROLES",
    "ReviewConflictError",
    "ReviewError",
    "ReviewForbiddenError",
    "ReviewInvalidError",
    "ReviewNotFoundError",
    "load_review",
    "reports_store",
    "save_review_draft",
    "signed_report_pdf",
]

#: The roles that load a review.
REVIEW_READER_ROLES = frozenset({UserRole.ADMIN, UserRole.RADIOLOGIST})
#: The folder of the data folder that holds the signed reports' PDFs.
REPORTS_FOLDER = "reports"


class ReviewError(Exception):
    """A review action that cannot be done; ``title`` and ``detail`` say why."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail


class ReviewForbiddenError(ReviewError):
    """The caller's role may not do this (or holds no usable signing certificate)."""


class ReviewNotFoundError(ReviewError):
    """No such study (or another facility's), or no such signed report."""


class ReviewConflictError(ReviewError):
    """The review changed since the reader loaded it, or this version is signed."""


class ReviewInvalidError(ReviewError):
    """The decisions or impression cannot be saved or signed as they are."""


def reports_store(data_dir: Path) -> ResultFileStore:
    """The durable file store of the signed reports (``<data folder>/reports``)."""
    return ResultFileStore(data_dir / REPORTS_FOLDER)


def visible_study(session: Session, study_instance_uid: str, caller: Caller) -> Study | None:
    """The study if ``caller`` may see it (its facility is theirs), else ``None``."""
    statement = select(Study).where(Study.study_instance_uid == study_instance_uid)
    if caller.facility_ids is not None:
        statement = statement.where(Study.facility_id.in_(list(caller.facility_ids)))
    return session.scalars(statement).one_or_none()


def audit(
    database: Database,
    caller: Caller,
    *,
    action: str,
    outcome: AuditOutcome,
    study_instance_uid: str,
    study: tuple[int, int] | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a review event; ``study`` is ``(facility_id, patient_id)`` when known
    (else looked up, so that a refusal names whose study was asked for)."""
    with database.write() as session:
        located = study if study is not None else locate_study(session, study_instance_uid)
        record_caller_event(
            session,
            caller,
            action=action,
            outcome=outcome,
            facility_id=None if located is None else located[0],
            patient_id=None if located is None else located[1],
            study_instance_uid=study_instance_uid,
            detail=detail or {},
        )


def refuse(
    database: Database,
    caller: Caller,
    action: str,
    study_instance_uid: str,
    error: ReviewError,
    *,
    outcome: AuditOutcome = AuditOutcome.REFUSED,
    detail: dict[str, Any] | None = None,
) -> ReviewError:
    """Audit a refusal and return the error to raise."""
    audit(
        database,
        caller,
        action=action,
        outcome=outcome,
        study_instance_uid=study_instance_uid,
        detail={**(detail or {}), "reason": error.detail[:500]},
    )
    return error


def not_found(study_instance_uid: str) -> ReviewNotFoundError:
    """The answer for a study that is absent or another facility's."""
    return ReviewNotFoundError("Study not found", f"no study {study_instance_uid}")


def report_out(report: Report, users: dict[int, User], study_instance_uid: str) -> SignedReportOut:
    """A signed report as the API shows it (``users`` by id; ``supersedes`` resolved)."""
    signer = users[report.signed_by_user_id]
    superseded = report.version - 1 if report.supersedes_report_id is not None else None
    return SignedReportOut(
        version=report.version,
        status=report.status,
        signed_by=signer.username,
        signer_name=signer.display_name or signer.username,
        signed_at=report.signed_at,
        document_sha256=report.document_sha256,
        supersedes_version=superseded,
        pdf=f"/studies/{study_instance_uid}/reports/{report.version}.pdf",
    )


def _users(session: Session, ids: set[int]) -> dict[int, User]:
    if not ids:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))}


def _review(session: Session, study: Study) -> ReviewOut:
    results = current_results(session, study.id)
    findings = [
        ReviewFindingOut(
            finding_id=finding.id,
            result_id=result.id,
            model_name=result.model_name,
            model_version=result.model_version,
            label=finding.label,
            probability=float(finding.probability),
            threshold=finding.threshold,
            positive=bool(finding.positive),
        )
        for result in results
        if result.state is ResultState.COMPLETE
        for finding in sorted(result.findings, key=lambda f: f.id)
    ]
    decisions = current_decisions(session, study.id)
    reports = list_signed_reports(session, study.id)
    users = _users(
        session,
        {d.reader_user_id for d in decisions} | {r.signed_by_user_id for r in reports},
    )
    uid = study.study_instance_uid
    return ReviewOut(
        study_instance_uid=uid,
        review_state=study.review_state,
        review_version=study.review_version,
        findings=findings,
        decisions=[
            ReviewDecisionOut(
                finding_id=d.finding_id,
                result_id=d.result_id,
                label=d.label,
                decision=d.decision,
                ai_probability=d.ai_probability,
                probability_class=d.probability_class,
                region=d.region,
                reader=users[d.reader_user_id].username,
                decided_at=d.created_at,
            )
            for d in decisions
        ],
        impression=study.review_impression,
        ai_preliminary=not reports,
        reports=[report_out(r, users, uid) for r in reports],
    )


def load_review(database: Database, study_instance_uid: str, *, caller: Caller) -> ReviewOut:
    """Return the study's review as ``caller`` loads it, audited (``review.read``).

    Raises
    ------
    ReviewForbiddenError
        The caller is neither a radiologist nor an administrator.
    ReviewNotFoundError
        No such study, or one of a facility the caller may not see.
    """
    action = "review.read"
    if caller.role not in REVIEW_READER_ROLES:
        raise refuse(
            database,
            caller,
            action,
            study_instance_uid,
            ReviewForbiddenError(
                "Forbidden",
                f"reviews need the radiologist or admin role; {caller.username} is {caller.role}",
            ),
        )
    with database.read() as session:
        study = visible_study(session, study_instance_uid, caller)
        review = _review(session, study) if study is not None else None
        scope = (study.facility_id, study.patient_id) if study is not None else None
    if review is None or scope is None:
        raise refuse(database, caller, action, study_instance_uid, not_found(study_instance_uid))
    audit(
        database,
        caller,
        action=action,
        outcome=AuditOutcome.SUCCESS,
        study_instance_uid=study_instance_uid,
        study=scope,
        detail={"review_version": review.review_version, "review_state": review.review_state},
    )
    return review


def require_radiologist(
    database: Database, caller: Caller, action: str, study_instance_uid: str
) -> int:
    """The caller's user id when they are a radiologist; else a refusal, audited.

    Raises
    ------
    ReviewForbiddenError
        The caller is not a radiologist signed in as a user.
    """
    if caller.role != UserRole.RADIOLOGIST or caller.user_id is None:
        raise refuse(
            database,
            caller,
            action,
            study_instance_uid,
            ReviewForbiddenError(
                "Forbidden",
                f"only a radiologist may do this; {caller.username} is {caller.role}",
            ),
        )
    return caller.user_id


def save_review_draft(
    database: Database, study_instance_uid: str, draft: ReviewSaveIn, *, caller: Caller
) -> ReviewSavedOut:
    """Save the caller's decisions and impression draft, audited (``review.save``).

    Raises
    ------
    ReviewForbiddenError
        The caller is not a radiologist.
    ReviewNotFoundError
        No such study, or one of a facility the caller may not see.
    ReviewConflictError
        The study changed since the caller loaded ``draft.version``.
    ReviewInvalidError
        A decision cannot be saved (e.g. it names a finding that is not current).
    """
    action = "review.save"
    reader = require_radiologist(database, caller, action, study_instance_uid)
    records = [
        DecisionRecord(
            label=d.label,
            decision=d.decision,
            finding_id=d.finding_id,
            probability_class=d.probability_class,
            region=d.region,
        )
        for d in draft.decisions
    ]
    detail: dict[str, Any] = {"version": draft.version, "decisions": len(records)}
    error: ReviewError | None = None
    try:
        with database.write() as session:
            study = visible_study(session, study_instance_uid, caller)
            if study is None:
                raise not_found(study_instance_uid)
            scope = (study.facility_id, study.patient_id)
            new_version = save_review(
                session,
                study_id=study.id,
                version=draft.version,
                reader_user_id=reader,
                decisions=records,
                impression=draft.impression,
            )
            record_caller_event(
                session,
                caller,
                action=action,
                outcome=AuditOutcome.SUCCESS,
                facility_id=scope[0],
                patient_id=scope[1],
                study_instance_uid=study_instance_uid,
                detail={**detail, "review_version": new_version},
            )
            state = study.review_state
    except ReviewError as exc:
        error = exc
    except StaleReviewError as exc:
        error = ReviewConflictError("Review changed", str(exc))
    except (ValueError, NotFoundError) as exc:
        error = ReviewInvalidError("Invalid review", str(exc))
    if error is not None:
        outcome = AuditOutcome.FAILURE if isinstance(error, ReviewInvalidError) else None
        raise refuse(
            database,
            caller,
            action,
            study_instance_uid,
            error,
            outcome=outcome or AuditOutcome.REFUSED,
            detail=detail,
        )
    return ReviewSavedOut(review_state=state, review_version=new_version)


def signed_report_pdf(
    database: Database,
    reports: ResultFileStore,
    study_instance_uid: str,
    version: int,
    *,
    caller: Caller,
) -> bytes:
    """The signed PDF of version ``version`` of the study's report, audited
    (``document.read``, kind ``signed-report``).

    Raises
    ------
    ReviewNotFoundError
        No such study (or another facility's), or no such signed version.
    """
    action = "document.read"
    detail: dict[str, Any] = {"kind": "signed-report", "version": version}
    relative: str | None = None
    with database.read() as session:
        study = visible_study(session, study_instance_uid, caller)
        scope = (study.facility_id, study.patient_id) if study is not None else None
        try:
            if study is not None:
                report = get_signed_report(session, study.id, version)
                relative = report_document_path(
                    study_instance_uid, report.version, report.document_sha256
                )
        except NotFoundError:
            relative = None
    if scope is None:
        raise refuse(database, caller, action, study_instance_uid, not_found(study_instance_uid))
    problem: ReviewError | None = None
    content = b""
    if relative is None:
        problem = ReviewNotFoundError(
            "Report not found", f"study {study_instance_uid} has no signed report {version}"
        )
    else:
        try:
            content = reports.absolute(relative).read_bytes()
        except (OSError, FileStoreError) as exc:
            problem = ReviewNotFoundError(
                "Report unavailable",
                f"the signed PDF of report {version} of study {study_instance_uid} cannot be read",
            )
            detail["cause"] = str(exc)[:300]
    audit(
        database,
        caller,
        action=action,
        outcome=AuditOutcome.SUCCESS if problem is None else AuditOutcome.FAILURE,
        study_instance_uid=study_instance_uid,
        study=scope,
        detail=detail if problem is None else {**detail, "reason": problem.detail},
    )
    if problem is not None:
        raise problem
    return content
