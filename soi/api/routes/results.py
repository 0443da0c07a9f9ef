"""``/studies/{uid}/results``: a study's AI results and their documents, for integrators."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from soi.api.deps import CallerDep, RuntimeDep
from soi.api.problems import Problem, problem_responses
from soi.schemas import StudyResults
from soi.services import (
    DocumentUnavailableError,
    ResultDocument,
    ResultDocumentKind,
    ResultNotFoundError,
    result_document,
    study_results,
)

router = APIRouter(
    prefix="/studies/{study_instance_uid}/results",
    tags=["results"],
    responses=problem_responses(401, 404),
)

_UID = r"^[0-9.]{1,64}$"
_LABEL = r"^[A-Za-z0-9_-]{1,64}$"

StudyUid = Annotated[str, Path(pattern=_UID, max_length=64, description="Study Instance UID")]
ResultId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the result's id")]


def _binary(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": description,
            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
        },
        **problem_responses(409),
    }


@contextmanager
def _problems() -> Iterator[None]:
    """Answer a missing result with 404, a document it cannot give with 409."""
    try:
        yield
    except ResultNotFoundError as exc:
        raise Problem(404, exc.title, exc.detail) from None
    except DocumentUnavailableError as exc:
        raise Problem(409, exc.title, exc.detail) from None


def _reply(document: ResultDocument) -> Response:
    return Response(
        document.content,
        media_type=document.media_type,
        headers={
            "Content-Disposition": f'inline; filename="{document.filename}"',
            "Cache-Control": "no-store",
        },
    )


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("", response_model=StudyResults)
def get_results(
    request: Request, runtime: RuntimeDep, caller: CallerDep, study_instance_uid: StudyUid
) -> StudyResults:
    """A study's AI results: the current one and its history, findings, deliveries, links."""
    with _problems():
        return study_results(
            runtime.database, study_instance_uid, caller=caller, base_url=_base_url(request)
        )


@router.get(
    "/{result_id}/sr",
    response_class=Response,
    responses=_binary("application/dicom", "The DICOM SR (TID 1500), as sent to the PACS."),
)
def get_sr(
    runtime: RuntimeDep, caller: CallerDep, study_instance_uid: StudyUid, result_id: ResultId
) -> Response:
    """The result as a DICOM Structured Report (TID 1500 measurement report)."""
    with _problems():
        document = result_document(
            runtime, study_instance_uid, result_id, ResultDocumentKind.SR, caller=caller
        )
    return _reply(document)


@router.get(
    "/{result_id}/report.pdf",
    response_class=Response,
    responses=_binary("application/pdf", "The printable report."),
)
def get_report_pdf(
    runtime: RuntimeDep,
    caller: CallerDep,
    study_instance_uid: StudyUid,
    result_id: ResultId,
    lang: Annotated[
        Literal["vi", "en"] | None,
        Query(description="the report's language; by default the facility's"),
    ] = None,
) -> Response:
    """The result as a PDF report, in Vietnamese or English."""
    with _problems():
        document = result_document(
            runtime,
            study_instance_uid,
            result_id,
            ResultDocumentKind.PDF,
            caller=caller,
            language=lang,
        )
    return _reply(document)


@router.get(
    "/{result_id}/heatmaps/{label}.png",
    response_class=Response,
    responses=_binary("image/png", "The heatmap overlaid on the image."),
)
def get_heatmap(
    runtime: RuntimeDep,
    caller: CallerDep,
    study_instance_uid: StudyUid,
    result_id: ResultId,
    label: Annotated[str, Path(pattern=_LABEL, description="the finding's label")],
) -> Response:
    """A finding's heatmap overlaid on the image it was read on (PNG)."""
    with _problems():
        document = result_document(
            runtime,
            study_instance_uid,
            result_id,
            ResultDocumentKind.HEATMAP,
            caller=caller,
            label=label,
        )
    return _reply(document)


@router.get(
    "/{result_id}/fhir",
    response_class=Response,
    responses={
        200: {
            "description": "A FHIR R4 Bundle: DiagnosticReport, Observations, Patient, …",
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        },
        **problem_responses(409),
    },
)
def get_fhir(
    runtime: RuntimeDep, caller: CallerDep, study_instance_uid: StudyUid, result_id: ResultId
) -> Response:
    """The result as a FHIR R4 Bundle, as sent to an EMR."""
    with _problems():
        document = result_document(
            runtime, study_instance_uid, result_id, ResultDocumentKind.FHIR, caller=caller
        )
    return _reply(document)
