"""A radiologist signs the saved review: the signed (PAdES) report of the study.

Signing takes the newest saved review (every current AI finding must have a decision),
builds the report PDF from the study's newest AI result with the radiologist's
decisions, impression and "Signed by <name>, <time>", signs it with the radiologist's
certificate, writes it durably to ``<data folder>/reports``, then in one transaction
records the next signed report version (``final`` first, ``amended`` after), moves the
study to ``signed`` (or ``amended``) at the next review version and audits
``review.sign``. The update is conditional on the review version the reader loaded, so
of two signatures of the same version only one commits; the other's file is removed.

pyHanko runs its own event loop: call :func:`sign_review_now` from a worker thread (a
synchronous FastAPI route), never from a running event loop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from models import ModelError
from reports import SigningError, SigningIdentity, build_pdf, sign_pdf
from reports.context import DecisionInfo, ReadingInfo, ReportContext
from reports.signing import WrongPassphraseError
from soi.auth import Caller
from soi.review_schemas import ReviewSignedOut, ReviewSignIn
from soi.services.audit import record_caller_event
from soi.services.certificates import CertificateNotFoundError, SigningCertificates
from soi.services.report_context import load_report_context
from soi.services.review import (
    ReviewConflictError,
    ReviewError,
    ReviewForbiddenError,
    ReviewInvalidError,
    not_found,
    refuse,
    report_out,
    reports_store,
    require_radiologist,
    visible_study,
)
from store import (
    CLOSED_REVIEW_STATES,
    AuditOutcome,
    FileStoreError,
    ReportStatus,
    ResultState,
    ReviewState,
    StaleReviewError,
    User,
    current_decisions,
    current_results,
    next_report_version,
    report_document_path,
    sign_review,
    undecided_findings,
    utcnow,
)

if TYPE_CHECKING:
    from soi.runtime import Runtime

__all__ = ["sign_review_now"]

_REASON = {
    "vi": "Bác sĩ xác nhận kết quả chẩn đoán hình ảnh",
    "en": "Radiologist's signed imaging report",
}
_STALE = "the study was changed by another reader since you opened it; reload"


@dataclass(frozen=True, slots=True)
class _Draft:
    """What the signature is made of, read in one transaction."""

    study_id: int
    facility_id: int
    patient_id: int
    result_id: int
    next_version: int
    impression: str
    decisions: tuple[tuple[str, str, float | None, str | None], ...]
    signer_id: int
    signer_name: str


def _read_draft(
    runtime: Runtime, study_instance_uid: str, version: int, caller: Caller, signer_id: int
) -> _Draft:
    """Read the study's saved review for signing.

    Raises
    ------
    ReviewNotFoundError, ReviewConflictError, ReviewInvalidError
        The study is not visible; the version is stale or signed; the review is not
        complete enough to sign.
    """
    with runtime.database.read() as session:
        study = visible_study(session, study_instance_uid, caller)
        if study is None:
            raise not_found(study_instance_uid)
        if study.review_version != version:
            raise ReviewConflictError(
                "Review changed",
                f"{_STALE} (you loaded version {version}, it is now at "
                f"version {study.review_version})",
            )
        if study.review_state in CLOSED_REVIEW_STATES:
            raise ReviewConflictError(
                "Already signed",
                f"version {version} of the review of study {study_instance_uid} is already "
                "signed; save an amendment before signing again",
            )
        results = current_results(session, study.id)
        if not results:
            raise ReviewInvalidError(
                "Nothing to sign", f"study {study_instance_uid} has no AI result to report on"
            )
        undecided = undecided_findings(session, study.id)
        if undecided:
            names = ", ".join(f"{f.label} (finding {f.id})" for f in undecided)
            raise ReviewInvalidError(
                "Review incomplete",
                f"every AI finding needs a decision before signing; save one for {names}",
            )
        complete = [r for r in results if r.state is ResultState.COMPLETE]
        signer = session.get(User, signer_id)
        assert signer is not None
        return _Draft(
            study_id=study.id,
            facility_id=study.facility_id,
            patient_id=study.patient_id,
            result_id=(complete or results)[0].id,
            next_version=next_report_version(session, study.id),
            impression=study.review_impression,
            decisions=tuple(
                (d.label, d.decision.value, d.ai_probability, d.probability_class)
                for d in current_decisions(session, study.id)
            ),
            signer_id=signer.id,
            signer_name=signer.display_name or signer.username,
        )


def _identity(
    certificates: SigningCertificates, caller: Caller, passphrase: str
) -> SigningIdentity:
    """Open the caller's signing key.

    Raises
    ------
    ReviewForbiddenError
        No certificate, a wrong passphrase, or a certificate that cannot sign now.
    """
    try:
        return certificates.identity(caller.username, passphrase)
    except CertificateNotFoundError:
        raise ReviewForbiddenError(
            "No signing certificate",
            f"{caller.username} holds no signing certificate; ask the administrator for "
            "`soi users cert create` or `soi users cert import`",
        ) from None
    except WrongPassphraseError:
        raise ReviewForbiddenError(
            "Wrong passphrase", "wrong passphrase for your signing certificate"
        ) from None
    except SigningError as exc:
        raise ReviewForbiddenError(
            "Signing certificate unusable", f"your signing certificate cannot sign now: {exc}"
        ) from None


def _signed_context(context: ReportContext, draft: _Draft, signed_at: datetime) -> ReportContext:
    names = {f.key: (f.display_en, f.display_vi) for f in context.findings}
    decisions = tuple(
        DecisionInfo(
            display_en=names.get(label, (label, label))[0],
            display_vi=names.get(label, (label, label))[1],
            decision=decision,
            ai_probability=probability,
            probability_class=confidence,
        )
        for label, decision, probability, confidence in draft.decisions
    )
    return replace(
        context,
        status="final" if draft.next_version == 1 else "amended",
        reading=ReadingInfo(
            decisions=decisions,
            impression=draft.impression,
            signer_name=draft.signer_name,
            signed_at=signed_at,
        ),
    )


def sign_review_now(
    runtime: Runtime,
    study_instance_uid: str,
    request: ReviewSignIn,
    *,
    caller: Caller,
    now: datetime | None = None,
) -> ReviewSignedOut:
    """Sign the study's saved review as ``caller``; audited (``review.sign``), refusals too.

    The passphrase opens the caller's key and is neither stored nor logged.

    Raises
    ------
    ReviewForbiddenError
        The caller is not a radiologist, holds no signing certificate, gave a wrong
        passphrase, or their certificate cannot sign now.
    ReviewNotFoundError
        No such study, or one of a facility the caller may not see.
    ReviewConflictError
        The study changed since the caller loaded ``request.version``, or that version
        is already signed.
    ReviewInvalidError
        An AI finding has no decision, the study has no AI result, or the report
        cannot be built (the model version is no longer installed).
    """
    action = "review.sign"
    database = runtime.database
    signer_id = require_radiologist(database, caller, action, study_instance_uid)
    detail: dict[str, Any] = {"version": request.version}
    try:
        draft = _read_draft(runtime, study_instance_uid, request.version, caller, signer_id)
        identity = _identity(
            SigningCertificates(database, runtime.data_dir),
            caller,
            request.passphrase.get_secret_value(),
        )
        signed_at = (now or utcnow()).replace(microsecond=0)
        try:
            context = load_report_context(
                database,
                draft.result_id,
                registry=runtime.registry,
                instance_files=runtime.files,
                result_files=runtime.result_files,
                default_language=runtime.settings.report_language,
            )
        except ModelError as exc:
            raise ReviewInvalidError(
                "Report unavailable", f"the report cannot be built: {exc}"
            ) from None
        context = _signed_context(context, draft, signed_at)
        document = sign_pdf(
            build_pdf(context),
            identity,
            signer_name=draft.signer_name,
            reason=_REASON[context.facility.language],
            location=context.facility.name,
            signed_at=signed_at,
        )
    except ReviewError as exc:
        outcome = AuditOutcome.FAILURE if isinstance(exc, ReviewInvalidError) else None
        raise refuse(
            database,
            caller,
            action,
            study_instance_uid,
            exc,
            outcome=outcome or AuditOutcome.REFUSED,
            detail=detail,
        ) from None
    return _commit(runtime, study_instance_uid, request.version, caller, draft, signed_at, document)


def _commit(
    runtime: Runtime,
    study_instance_uid: str,
    version: int,
    caller: Caller,
    draft: _Draft,
    signed_at: datetime,
    document: bytes,
) -> ReviewSignedOut:
    """Write the signed PDF, then record the signature in one transaction."""
    action = "review.sign"
    digest = hashlib.sha256(document).hexdigest()
    relative = report_document_path(study_instance_uid, draft.next_version, digest)
    store = reports_store(runtime.data_dir)
    detail: dict[str, Any] = {"version": version, "report_version": draft.next_version}
    try:
        store.write(relative, document)
    except FileStoreError as exc:
        raise refuse(
            runtime.database,
            caller,
            action,
            study_instance_uid,
            ReviewConflictError("Report not stored", f"the signed report cannot be stored: {exc}"),
            outcome=AuditOutcome.FAILURE,
            detail=detail,
        ) from None
    error: ReviewError | None = None
    try:
        with runtime.database.write() as session:
            report = sign_review(
                session,
                study_id=draft.study_id,
                version=version,
                signer_user_id=draft.signer_id,
                signed_at=signed_at,
                document_sha256=digest,
            )
            if report.version != draft.next_version:
                raise StaleReviewError(_STALE)
            record_caller_event(
                session,
                caller,
                action=action,
                outcome=AuditOutcome.SUCCESS,
                facility_id=draft.facility_id,
                patient_id=draft.patient_id,
                study_instance_uid=study_instance_uid,
                detail={**detail, "status": report.status.value, "document_sha256": digest},
            )
            signer = session.get(User, report.signed_by_user_id)
            assert signer is not None
            amended = report.status is ReportStatus.AMENDED
            answer = ReviewSignedOut(
                review_state=ReviewState.AMENDED if amended else ReviewState.SIGNED,
                review_version=version + 1,
                report=report_out(report, {signer.id: signer}, study_instance_uid),
            )
    except StaleReviewError as exc:
        error = ReviewConflictError("Review changed", str(exc))
    except IntegrityError:
        error = ReviewConflictError("Review changed", _STALE)
    except ValueError as exc:
        error = ReviewInvalidError("Review incomplete", str(exc))
    if error is not None:
        store.absolute(relative).unlink(missing_ok=True)
        raise refuse(runtime.database, caller, action, study_instance_uid, error, detail=detail)
    return answer
