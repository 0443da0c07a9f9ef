"""``/studies/{uid}/review`` and ``/studies/{uid}/reports``: radiologists review AI
findings, sign the report, and anyone who may see the study reads the signed PDF."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Path, Response

from soi.api.deps import CallerDep, RuntimeDep
from soi.api.problems import Problem, problem_responses
from soi.review_schemas import (
    ReviewOut,
    ReviewSavedOut,
    ReviewSaveIn,
    ReviewSignedOut,
    ReviewSignIn,
)
from soi.services.review import (
    ReviewConflictError,
    ReviewError,
    ReviewForbiddenError,
    ReviewInvalidError,
    load_review,
    reports_store,
    save_review_draft,
    signed_report_pdf,
)
from soi.services.review_signing import sign_review_now

router = APIRouter(
    prefix="/studies/{study_instance_uid}",
    tags=["review"],
    responses=problem_responses(401, 403, 404),
)

_UID = r"^[0-9.]{1,64}$"

StudyUid = Annotated[str, Path(pattern=_UID, max_length=64, description="Study Instance UID")]
ReportVersion = Annotated[int, Path(ge=1, le=2**31 - 1, description="the signed version")]


@contextmanager
def _problems() -> Iterator[None]:
    """Answer each review error with its status (403, 404, 409, 422)."""
    try:
        yield
    except ReviewForbiddenError as exc:
        raise Problem(403, exc.title, exc.detail) from None
    except ReviewConflictError as exc:
        raise Problem(409, exc.title, exc.detail) from None
    except ReviewInvalidError as exc:
        raise Problem(422, exc.title, exc.detail) from None
    except ReviewError as exc:
        raise Problem(404, exc.title, exc.detail) from None


@router.get("/review", response_model=ReviewOut)
def get_review(runtime: RuntimeDep, caller: CallerDep, study_instance_uid: StudyUid) -> ReviewOut:
    """The study's AI findings, the saved decisions and impression, and its signed reports."""
    with _problems():
        return load_review(runtime.database, study_instance_uid, caller=caller)


@router.put("/review", response_model=ReviewSavedOut, responses=problem_responses(400, 409, 422))
def put_review(
    runtime: RuntimeDep, caller: CallerDep, study_instance_uid: StudyUid, draft: ReviewSaveIn
) -> ReviewSavedOut:
    """Save the reader's decisions and impression draft (409 when another reader saved first)."""
    with _problems():
        return save_review_draft(runtime.database, study_instance_uid, draft, caller=caller)


@router.post(
    "/review/sign", response_model=ReviewSignedOut, responses=problem_responses(400, 409, 422)
)
def sign_review(
    runtime: RuntimeDep, caller: CallerDep, study_instance_uid: StudyUid, request: ReviewSignIn
) -> ReviewSignedOut:
    """Sign the saved review with the radiologist's certificate: the signed PDF report."""
    with _problems():
        return sign_review_now(runtime, study_instance_uid, request, caller=caller)


@router.get(
    "/reports/{version}.pdf",
    response_class=Response,
    responses={
        200: {
            "description": "The signed report (PAdES).",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def get_signed_report(
    runtime: RuntimeDep, caller: CallerDep, study_instance_uid: StudyUid, version: ReportVersion
) -> Response:
    """A signed version of the study's report, as a PDF."""
    with _problems():
        content = signed_report_pdf(
            runtime.database,
            reports_store(runtime.data_dir),
            study_instance_uid,
            version,
            caller=caller,
        )
    return Response(
        content,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="report-{version}.pdf"',
            "Cache-Control": "no-store",
        },
    )
