"""Signed reports: one row per signature of a study's review, never changed afterwards.

The first signature gives version 1 (``final``); each later one (an amendment) the next
version (``amended``), naming the version it supersedes. A signed report row is never
updated or deleted: the ORM refuses it (:class:`~store.errors.SignedReportImmutableError`)
whether through an object in the session or a bulk ``UPDATE``/``DELETE`` statement.
The signed PDF lies in the reports folder at :func:`report_document_path`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Mapper, ORMExecuteState, Session

from store.enums import ReportStatus
from store.errors import NotFoundError, SignedReportImmutableError
from store.models import Report

__all__ = [
    "add_signed_report",
    "get_signed_report",
    "list_signed_reports",
    "next_report_version",
    "report_document_path",
]

_SHA256_LENGTH = 64


def report_document_path(study_instance_uid: str, version: int, document_sha256: str) -> str:
    """Where a signed report's PDF lies, relative to the reports folder.

    The file name carries the document's hash, so two readers signing the same version
    at once never write the same file (only one of them commits).

    Raises
    ------
    ValueError
        When ``version`` is not positive or ``document_sha256`` is not 64 hex digits.
    """
    if version < 1:
        raise ValueError(f"`version` must be a positive number, {version} is given")
    if len(document_sha256) != _SHA256_LENGTH or any(
        c not in "0123456789abcdef" for c in document_sha256
    ):
        raise ValueError(
            f"`document_sha256` must be 64 lower-case hex digits, {document_sha256!r} is given"
        )
    return f"{study_instance_uid}/v{version}-{document_sha256[:16]}.pdf"


def list_signed_reports(session: Session, study_id: int) -> Sequence[Report]:
    """The study's signed reports, oldest version first."""
    return session.scalars(
        select(Report).where(Report.study_id == study_id).order_by(Report.version)
    ).all()


def get_signed_report(session: Session, study_id: int, version: int) -> Report:
    """Version ``version`` of the study's signed report.

    Raises
    ------
    NotFoundError
        When the study has no report of that version.
    """
    report = session.scalars(
        select(Report).where(Report.study_id == study_id, Report.version == version)
    ).one_or_none()
    if report is None:
        raise NotFoundError(f"study {study_id} has no signed report version {version}")
    return report


def add_signed_report(
    session: Session,
    *,
    study_id: int,
    impression: str,
    signed_by_user_id: int,
    signed_at: datetime,
    document_sha256: str,
) -> Report:
    """Add the next version of the study's signed report to the current transaction.

    Version 1 is ``final``; a later one is ``amended`` and supersedes the version before.
    Two signatures racing for the same version meet the unique constraint on
    ``(study_id, version)``: only one commits.

    Parameters
    ----------
    session:
        A session inside a write transaction.
    study_id:
        The study signed.
    impression:
        The impression as signed.
    signed_by_user_id:
        The radiologist who signed.
    signed_at:
        When (with a time zone).
    document_sha256:
        The SHA-256 of the signed PDF, in hex.

    Raises
    ------
    ValueError
        When ``signed_at`` has no time zone or ``document_sha256`` is not a SHA-256.
    """
    if signed_at.tzinfo is None:
        raise ValueError(f"`signed_at` must have a time zone, {signed_at.isoformat()} is given")
    if len(document_sha256) != _SHA256_LENGTH:
        raise ValueError(
            f"`document_sha256` must be 64 hex digits, {len(document_sha256)} are given"
        )
    previous = session.scalars(
        select(Report).where(Report.study_id == study_id).order_by(Report.version.desc()).limit(1)
    ).one_or_none()
    report = Report(
        study_id=study_id,
        version=1 if previous is None else previous.version + 1,
        status=ReportStatus.FINAL if previous is None else ReportStatus.AMENDED,
        impression=impression,
        signed_by_user_id=signed_by_user_id,
        signed_at=signed_at,
        document_sha256=document_sha256,
        supersedes_report_id=None if previous is None else previous.id,
    )
    session.add(report)
    session.flush()
    return report


def next_report_version(session: Session, study_id: int) -> int:
    """The version the study's next signature gives."""
    highest = session.scalar(select(func.max(Report.version)).where(Report.study_id == study_id))
    return 1 if highest is None else int(highest) + 1


def _refuse_change(mapper: Mapper[Any], connection: Any, target: Report) -> None:
    raise SignedReportImmutableError(
        f"signed report version {target.version} of study {target.study_id} cannot be "
        "changed or deleted; sign an amended version instead"
    )


def _refuse_bulk_change(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ is Report:
        raise SignedReportImmutableError(
            "signed reports cannot be changed or deleted; sign an amended version instead"
        )


event.listen(Report, "before_update", _refuse_change)
event.listen(Report, "before_delete", _refuse_change)
event.listen(Session, "do_orm_execute", _refuse_bulk_change)
