"""``/studies``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from soi.api.deps import CallerDep, RuntimeDep
from soi.api.problems import Problem
from soi.schemas import Page, StudyDetail
from soi.services import list_study_page, study_detail

router = APIRouter(prefix="/studies", tags=["studies"])

_UID = r"^[0-9.]{1,64}$"
#: The largest offset a database takes (a signed 32-bit integer everywhere).
_MAX_OFFSET = 2**31 - 1


@router.get("", response_model=Page, responses={401: {}})
def list_studies(
    runtime: RuntimeDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=_MAX_OFFSET)] = 0,
) -> Page:
    """Studies the caller may see, most recently received first, with their state and jobs."""
    return list_study_page(runtime.database, caller=caller, limit=limit, offset=offset)


@router.get("/{study_instance_uid}", response_model=StudyDetail, responses={401: {}, 404: {}})
def get_study(
    runtime: RuntimeDep,
    caller: CallerDep,
    study_instance_uid: Annotated[str, Path(pattern=_UID, max_length=64)],
) -> StudyDetail:
    """One study: its series, instances, jobs and states."""
    detail = study_detail(runtime.database, study_instance_uid, caller=caller)
    if detail is None:
        raise Problem(404, "Study not found", f"no study {study_instance_uid}")
    return detail
