"""Readers' agreement with each model, as administrators read it; each read is audited
(``agreement.read``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from soi.agreement_schemas import AgreementOut, AgreementRowOut
from soi.auth import Caller
from soi.services.audit import record_caller_event
from store import AgreementRow, AuditOutcome, Database, Facility, agreement

__all__ = [
    "AgreementError",
    "AgreementNotFoundError",
    "model_agreement",
]


class AgreementError(Exception):
    """An agreement view that cannot be given; ``title`` and ``detail`` say why."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail


class AgreementNotFoundError(AgreementError):
    """The facility named in the filter does not exist."""


def _row(row: AgreementRow) -> AgreementRowOut:
    return AgreementRowOut(
        model_name=row.model_name,
        model_version=row.model_version,
        label=row.label,
        facility=row.facility_code,
        accepted=row.accepted,
        rejected=row.rejected,
        edited=row.edited,
        added=row.added,
        decided=row.decided,
        agreement_rate=row.rate,
        ci95_low=row.rate_low,
        ci95_high=row.rate_high,
    )


def model_agreement(
    database: Database,
    *,
    caller: Caller,
    model: str | None = None,
    facility: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> AgreementOut:
    """Count the current decisions per model version, label and facility.

    Parameters
    ----------
    database:
        The store.
    caller:
        Who asks (an administrator; the route checks it).
    model:
        Only this model's findings (its name, every version).
    facility:
        Only this facility's studies (its code).
    since:
        Only decisions made on or after this day (UTC).
    until:
        Only decisions made on or before this day (UTC); a day before ``since`` leaves
        an empty period, with no decisions in it.

    Raises
    ------
    AgreementNotFoundError
        No facility has the code ``facility``.
    """
    start = datetime.combine(since, time(), tzinfo=UTC) if since is not None else None
    end = (
        datetime.combine(until + timedelta(days=1), time(), tzinfo=UTC)
        if until is not None and until < date.max  # the last day has no day after it
        else None
    )
    with database.read() as session:
        facility_ids: list[int] | None = None
        if facility is not None:
            facility_id = session.scalar(select(Facility.id).where(Facility.code == facility))
            if facility_id is None:
                raise AgreementNotFoundError("Facility not found", f"no facility {facility}")
            facility_ids = [facility_id]
        empty = start is not None and end is not None and end <= start
        rows = (
            []
            if empty
            else agreement(session, facility_ids=facility_ids, model=model, since=start, until=end)
        )
    items = [_row(row) for row in rows]
    with database.write() as session:
        record_caller_event(
            session,
            caller,
            action="agreement.read",
            outcome=AuditOutcome.SUCCESS,
            detail={
                "filters": {
                    key: value
                    for key, value in (
                        ("model", model),
                        ("facility", facility),
                        ("since", since.isoformat() if since is not None else None),
                        ("until", until.isoformat() if until is not None else None),
                    )
                    if value is not None
                },
                "count": len(items),
            },
        )
    return AgreementOut(model=model, facility=facility, since=since, until=until, items=items)
