"""``/dicomweb``: STOW-RS, QIDO-RS and WADO-RS (DICOM PS3.18 sections 10.4 to 10.6).

Errors are problem details, except a STOW-RS request's per-instance failures, which
are in its response data set (PS3.18 Annex I).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from dicom_gateway.dicomweb import (
    DICOM_JSON,
    DicomWebError,
    Level,
    NotAcceptableError,
    Payload,
    check_stow_content_type,
    parse_accept,
    spool_body,
)
from soi.api.deps import CallerDep, RuntimeDep
from soi.api.problems import Problem, problem_responses
from soi.auth import Caller
from soi.runtime import Runtime
from soi.services import dicomweb as service

router = APIRouter(
    prefix="/dicomweb", tags=["dicomweb"], responses=problem_responses(400, 401, 403, 404)
)

_MIB = 1024 * 1024
_JSON_TYPES = (DICOM_JSON, "application/json")

# Path parameters as the OpenAPI schema describes them. They are checked by the services,
# which answer 400 as PS3.18 says (FastAPI's own check would answer 422).
_UID_SCHEMA: dict[str, Any] = {"pattern": r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$", "maxLength": 64}
StudyUid = Annotated[str, Path(description="Study Instance UID", json_schema_extra=_UID_SCHEMA)]
SeriesUid = Annotated[str, Path(description="Series Instance UID", json_schema_extra=_UID_SCHEMA)]
SopUid = Annotated[str, Path(description="SOP Instance UID", json_schema_extra=_UID_SCHEMA)]
FrameList = Annotated[
    str,
    Path(
        description="frame numbers, from 1, comma-separated",
        json_schema_extra={"pattern": r"^[1-9][0-9]{0,8}(,[1-9][0-9]{0,8}){0,99}$"},
    ),
]
BulkTag = Annotated[
    str,
    Path(
        description="the pixel data tag, as the metadata's BulkDataURI names it",
        json_schema_extra={"pattern": "^[0-9A-Fa-f]{8}$"},
    ),
]

# What the OpenAPI schema says each kind of operation answers.
_BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}
_DICOM_JSON_LIST: dict[str, Any] = {
    "schema": {"type": "array", "items": {"type": "object"}},
}
_STOW_RESPONSE: dict[str, Any] = {"schema": {"type": "object"}}
_STORE: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {"description": "Every instance stored", "content": {DICOM_JSON: _STOW_RESPONSE}},
        202: {
            "description": "Some instances stored; FailedSOPSequence says why the others not",
            "content": {DICOM_JSON: _STOW_RESPONSE},
        },
        409: {
            "description": "No instance stored; FailedSOPSequence says why",
            "content": {DICOM_JSON: _STOW_RESPONSE},
        },
        **problem_responses(413, 415),
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "description": 'multipart/related; type="application/dicom"; boundary=…, '
            "one DICOM PS3.10 file per part",
            "content": {"multipart/related": _BINARY},
        }
    },
}
_SEARCH: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {
            "description": "The matches, as DICOM JSON",
            "content": {DICOM_JSON: _DICOM_JSON_LIST},
        },
        204: {"description": "No match"},
        **problem_responses(406),
    },
}
_METADATA: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {
            "description": "DICOM JSON, bulk data by URI",
            "content": {DICOM_JSON: _DICOM_JSON_LIST},
        },
        **problem_responses(406),
    },
}
_RETRIEVE: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {"description": "multipart/related parts", "content": {"multipart/related": _BINARY}},
        **problem_responses(406),
    },
}
_RENDERED: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {
            "description": "The first frame, rendered",
            "content": {"image/jpeg": _BINARY, "image/png": _BINARY},
        },
        **problem_responses(406),
    },
}


@contextmanager
def _problems() -> Iterator[None]:
    """Answer a DICOMweb error with problem details."""
    try:
        yield
    except DicomWebError as exc:
        raise Problem(exc.http_status, exc.title, exc.detail) from None


def _base_url(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/dicomweb"


def _warning_headers(request: Request, warnings: tuple[str, ...]) -> dict[str, str]:
    """``Warning: 299 {service}: text`` (PS3.18 section 8.4.3), several comma-joined."""
    if not warnings:
        return {}
    service_url = _base_url(request)
    texts = [
        "".join(c if 32 <= ord(c) < 127 and c != "," else " " for c in warning)[:300]
        for warning in warnings[:20]
    ]
    return {"Warning": ", ".join(f"299 {service_url}: {text}" for text in texts)}


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _stream(request: Request, payload: Payload) -> StreamingResponse:
    return StreamingResponse(
        iter(payload.chunks),
        media_type=payload.content_type,
        headers=_warning_headers(request, payload.warnings),
    )


async def _store(
    request: Request, runtime: Runtime, caller: Caller, study_instance_uid: str | None
) -> JSONResponse:
    with _problems():
        boundary = check_stow_content_type(request.headers.get("content-type"))
        body = await spool_body(
            request.stream(),
            max_bytes=runtime.settings.dicomweb_max_request_mb * _MIB,
            directory=runtime.settings.data_dir / "tmp",
            declared_length=_content_length(request),
        )
    try:
        with _problems():
            report = await run_in_threadpool(
                service.store_instances,
                runtime,
                caller,
                body=body,
                boundary=boundary,
                base_url=_base_url(request),
                study_instance_uid=study_instance_uid,
            )
    finally:
        body.close()
    return JSONResponse(
        report.to_json(),
        status_code=report.http_status,
        media_type=DICOM_JSON,
        headers=_warning_headers(request, report.warnings),
    )


@router.post("/studies", **_STORE)
async def store_instances(request: Request, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """Store instances (STOW-RS): multipart/related; type="application/dicom"."""
    return await _store(request, runtime, caller, None)


@router.post("/studies/{study_instance_uid}", **_STORE)
async def store_study_instances(
    study_instance_uid: StudyUid, request: Request, runtime: RuntimeDep, caller: CallerDep
) -> Response:
    """Store instances of one study (STOW-RS)."""
    return await _store(request, runtime, caller, study_instance_uid)


def _search(
    request: Request,
    runtime: Runtime,
    caller: Caller,
    level: Level,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> Response:
    with _problems():
        ranges = parse_accept(request.headers.get("accept"))
        if not any(r.matches(media_type) for r in ranges for media_type in _JSON_TYPES):
            raise NotAcceptableError(f"search results are sent as {DICOM_JSON} only")
        result = service.search(
            runtime,
            caller,
            params=request.query_params.multi_items(),
            level=level,
            base_url=_base_url(request),
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
        )
    headers = _warning_headers(request, result.warnings)
    if not result.items:
        return Response(status_code=204, headers=headers)
    return JSONResponse(result.items, media_type=DICOM_JSON, headers=headers)


@router.get("/studies", **_SEARCH)
def search_for_studies(request: Request, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """Search for studies (QIDO-RS)."""
    return _search(request, runtime, caller, Level.STUDY)


@router.get("/series", **_SEARCH)
def search_for_series(request: Request, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """Search for series (QIDO-RS)."""
    return _search(request, runtime, caller, Level.SERIES)


@router.get("/instances", **_SEARCH)
def search_for_instances(request: Request, runtime: RuntimeDep, caller: CallerDep) -> Response:
    """Search for instances (QIDO-RS)."""
    return _search(request, runtime, caller, Level.INSTANCE)


@router.get("/studies/{study_instance_uid}/series", **_SEARCH)
def search_for_study_series(
    study_instance_uid: StudyUid, request: Request, runtime: RuntimeDep, caller: CallerDep
) -> Response:
    """Search for the series of a study (QIDO-RS)."""
    return _search(request, runtime, caller, Level.SERIES, study_instance_uid)


@router.get("/studies/{study_instance_uid}/instances", **_SEARCH)
def search_for_study_instances(
    study_instance_uid: StudyUid, request: Request, runtime: RuntimeDep, caller: CallerDep
) -> Response:
    """Search for the instances of a study (QIDO-RS)."""
    return _search(request, runtime, caller, Level.INSTANCE, study_instance_uid)


@router.get("/studies/{study_instance_uid}/series/{series_instance_uid}/instances", **_SEARCH)
def search_for_series_instances(
    study_instance_uid: StudyUid,
    series_instance_uid: SeriesUid,
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
) -> Response:
    """Search for the instances of a series (QIDO-RS)."""
    return _search(
        request, runtime, caller, Level.INSTANCE, study_instance_uid, series_instance_uid
    )


def _retrieve(
    request: Request,
    runtime: Runtime,
    caller: Caller,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> Response:
    with _problems():
        payload = service.retrieve_instances(
            runtime,
            caller,
            accept=request.headers.get("accept"),
            study_instance_uid=study,
            series_instance_uid=series,
            sop_instance_uid=instance,
        )
    return _stream(request, payload)


def _metadata(
    request: Request,
    runtime: Runtime,
    caller: Caller,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> Response:
    with _problems():
        ranges = parse_accept(request.headers.get("accept"))
        if not any(r.matches(media_type) for r in ranges for media_type in _JSON_TYPES):
            raise NotAcceptableError(f"metadata is sent as {DICOM_JSON} only")
        items = service.retrieve_metadata(
            runtime,
            caller,
            base_url=_base_url(request),
            study_instance_uid=study,
            series_instance_uid=series,
            sop_instance_uid=instance,
        )
    return JSONResponse(items, media_type=DICOM_JSON)


@router.get("/studies/{study_instance_uid}", **_RETRIEVE)
def retrieve_study(
    study_instance_uid: StudyUid, request: Request, runtime: RuntimeDep, caller: CallerDep
) -> Response:
    """Retrieve a study's instances (WADO-RS)."""
    return _retrieve(request, runtime, caller, study_instance_uid)


@router.get("/studies/{study_instance_uid}/metadata", **_METADATA)
def retrieve_study_metadata(
    study_instance_uid: StudyUid, request: Request, runtime: RuntimeDep, caller: CallerDep
) -> Response:
    """Retrieve a study's metadata (WADO-RS)."""
    return _metadata(request, runtime, caller, study_instance_uid)


@router.get("/studies/{study_instance_uid}/series/{series_instance_uid}", **_RETRIEVE)
def retrieve_series(
    study_instance_uid: StudyUid,
    series_instance_uid: SeriesUid,
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
) -> Response:
    """Retrieve a series' instances (WADO-RS)."""
    return _retrieve(request, runtime, caller, study_instance_uid, series_instance_uid)


@router.get("/studies/{study_instance_uid}/series/{series_instance_uid}/metadata", **_METADATA)
def retrieve_series_metadata(
    study_instance_uid: StudyUid,
    series_instance_uid: SeriesUid,
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
) -> Response:
    """Retrieve a series' metadata (WADO-RS)."""
    return _metadata(request, runtime, caller, study_instance_uid, series_instance_uid)


_INSTANCE = (
    "/studies/{study_instance_uid}/series/{series_instance_uid}/instances/{sop_instance_uid}"
)


@router.get(_INSTANCE, **_RETRIEVE)
def retrieve_instance(
    study_instance_uid: StudyUid,
    series_instance_uid: SeriesUid,
    sop_instance_uid: SopUid,
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
) -> Response:
    """Retrieve an instance (WADO-RS)."""
    return _retrieve(
        request, runtime, caller, study_instance_uid, series_instance_uid, sop_instance_uid
    )


@router.get(f"{_INSTANCE}/metadata", **_METADATA)
def retrieve_instance_metadata(
    study_instance_uid: StudyUid,
    series_instance_uid: SeriesUid,
    sop_instance_uid: SopUid,
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
) -> Response:
    """Retrieve an instance's metadata (WADO-RS)."""
    return _metadata(
        request, runtime, caller, study_instance_uid, series_instance_uid, sop_instance_uid
    )


@router.get(f"{_INSTANCE}/frames/{{frame_list}}", **_RETRIEVE)
def retrieve_frames(
    study_instance_uid: StudyUid,
    series_instance_uid: SeriesUid,
    sop_instance_uid: SopUid,
    frame_list: FrameList,
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
) -> Response:
    """Retrieve frames of an instance (WADO-RS)."""
    with _problems():
        payload = service.retrieve_frames(
            runtime,
            caller,
            accept=request.headers.get("accept"),
            frame_list=frame_list,
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            sop_instance_uid=sop_instance_uid,
        )
    return _stream(request, payload)


@router.get(f"{_INSTANCE}/bulk/{{tag}}", **_RETRIEVE)
def retrieve_bulk_data(
    study_instance_uid: StudyUid,
    series_instance_uid: SeriesUid,
    sop_instance_uid: SopUid,
    tag: BulkTag,
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
) -> Response:
    """Retrieve an instance's pixel data, as its metadata's BulkDataURI names it (WADO-RS)."""
    with _problems():
        payload = service.retrieve_bulk_data(
            runtime,
            caller,
            accept=request.headers.get("accept"),
            tag=tag,
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            sop_instance_uid=sop_instance_uid,
        )
    return _stream(request, payload)


@router.get(f"{_INSTANCE}/rendered", **_RENDERED)
def retrieve_rendered_instance(
    study_instance_uid: StudyUid,
    series_instance_uid: SeriesUid,
    sop_instance_uid: SopUid,
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
) -> Response:
    """Retrieve an instance rendered as JPEG or PNG, with window=center,width,function."""
    with _problems():
        payload = service.retrieve_rendered(
            runtime,
            caller,
            params=request.query_params.multi_items(),
            accept=request.headers.get("accept"),
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            sop_instance_uid=sop_instance_uid,
        )
    return _stream(request, payload)
