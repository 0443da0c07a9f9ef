"""``/worklist``: the studies a radiologist may read, most urgent first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from soi.api.deps import CallerDep, RuntimeDep
from soi.api.problems import Problem, problem_responses
from soi.schemas import WorklistPageOut
from soi.services import (
    WorklistForbiddenError,
    WorklistInvalidError,
    WorklistNotFoundError,
    WorklistQuery,
    read_worklist,
)
from store import ReviewState

router = APIRouter(
    prefix="/worklist", tags=["worklist"], responses=problem_responses(401, 403, 404, 422)
)

_DATE = r"^[0-9]{8}$"
_CODE = r"^[A-Za-z0-9._-]{1,32}$"
_MODALITY = r"^[A-Z0-9]{1,16}$"
_USERNAME = r"^[A-Za-z0-9._@-]{1,64}$"
#: The largest offset a database takes (a signed 32-bit integer everywhere).
_MAX_OFFSET = 2**31 - 1


@router.get("", response_model=WorklistPageOut)
def get_worklist(
    runtime: RuntimeDep,
    caller: CallerDep,
    facility: Annotated[
        str | None, Query(pattern=_CODE, description="only this facility's studies (its code)")
    ] = None,
    modality: Annotated[
        str | None, Query(pattern=_MODALITY, description="only studies with a series of it")
    ] = None,
    review_state: Annotated[
        list[ReviewState] | None,
        Query(description="only studies in these review states (repeat for several)"),
    ] = None,
    study_date_from: Annotated[
        str | None, Query(pattern=_DATE, description="study date on or after (YYYYMMDD)")
    ] = None,
    study_date_to: Annotated[
        str | None, Query(pattern=_DATE, description="study date on or before (YYYYMMDD)")
    ] = None,
    assigned_to: Annotated[
        str | None,
        Query(pattern=_USERNAME, description="only studies assigned to this user; me: the caller"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=_MAX_OFFSET)] = 0,
) -> WorklistPageOut:
    """Studies to read, open first, then by AI urgency, probability and waiting time."""
    query = WorklistQuery(
        facility=facility,
        modality=modality,
        review_states=tuple(review_state or ()),
        study_date_from=study_date_from,
        study_date_to=study_date_to,
        assigned_to=assigned_to,
    )
    try:
        return read_worklist(
            runtime.database, caller=caller, query=query, limit=limit, offset=offset
        )
    except WorklistForbiddenError as exc:
        raise Problem(403, exc.title, exc.detail) from None
    except WorklistNotFoundError as exc:
        raise Problem(404, exc.title, exc.detail) from None
    except WorklistInvalidError as exc:
        raise Problem(422, exc.title, exc.detail) from None
