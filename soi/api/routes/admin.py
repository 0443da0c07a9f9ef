"""``/admin``: what administrators read; the audit log for now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from soi.api.deps import AdminDep, RuntimeDep
from soi.schemas import AuditTrail
from soi.services import MAX_AUDIT_EVENTS, audit_trail

router = APIRouter(prefix="/admin", tags=["admin"])

_UID = r"^[0-9.]{1,64}$"


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
