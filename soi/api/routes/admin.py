"""``/admin``: what administrators read: the audit log, readers' agreement with the models."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from soi.agreement_schemas import AgreementOut
from soi.api.deps import AdminDep, RuntimeDep
from soi.api.problems import Problem, problem_responses
from soi.schemas import AuditTrail
from soi.services import MAX_AUDIT_EVENTS, audit_trail
from soi.services.agreement import AgreementNotFoundError, model_agreement

router = APIRouter(prefix="/admin", tags=["admin"])

_UID = r"^[0-9.]{1,64}$"
_CODE = r"^[A-Za-z0-9._-]{1,32}$"
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_day(value: object) -> object:
    """Let only ``YYYY-MM-DD`` through to the date parser (which also takes numbers as
    Unix times)."""
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise ValueError(f"{value!r} is not a day as YYYY-MM-DD")
    return value


#: A day of the calendar, written YYYY-MM-DD.
Day = Annotated[date, BeforeValidator(_iso_day)]


@router.get("/audit", response_model=AuditTrail, responses={401: {}, 403: {}})
def audit(
    runtime: RuntimeDep,
    caller: AdminDep,
    patient: Annotated[
        str | None,
        Query(max_length=64, description="an identifier value of the patient (CCCD, BHYT, …)"),
    ] = None,
    study: Annotated[str | None, Query(pattern=_UID, max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_EVENTS)] = 100,
    before_id: Annotated[
        int | None,
        Query(
            ge=1,
            le=2**31 - 1,  # the id column is a 32-bit integer on PostgreSQL
            description="only events older than this id: the previous page's next_before_id",
        ),
    ] = None,
) -> AuditTrail:
    """Audit events, newest first, by patient identifier, study, actor or action (admin)."""
    return audit_trail(
        runtime.database,
        caller=caller,
        patient=patient,
        study_instance_uid=study,
        actor=actor,
        action=action,
        limit=limit,
        before_id=before_id,
    )


@router.get(
    "/agreement", response_model=AgreementOut, responses=problem_responses(401, 403, 404, 422)
)
def get_agreement(
    runtime: RuntimeDep,
    caller: AdminDep,
    model: Annotated[
        str | None, Query(min_length=1, max_length=64, description="only this model (its name)")
    ] = None,
    facility: Annotated[
        str | None, Query(pattern=_CODE, description="only this facility's studies (its code)")
    ] = None,
    since: Annotated[
        Day | None, Query(description="decisions made on or after this day (UTC, YYYY-MM-DD)")
    ] = None,
    until: Annotated[
        Day | None, Query(description="decisions made on or before this day (UTC, YYYY-MM-DD)")
    ] = None,
) -> AgreementOut:
    """How often readers accept each model's findings, per version, label and facility."""
    try:
        return model_agreement(
            runtime.database,
            caller=caller,
            model=model,
            facility=facility,
            since=since,
            until=until,
        )
    except AgreementNotFoundError as exc:
        raise Problem(404, exc.title, exc.detail) from None
