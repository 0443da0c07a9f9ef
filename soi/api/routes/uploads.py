"""``/uploads``: resumable uploads (tus 1.0.0) of DICOM files and ZIPs, and batch receipts.

The tus core protocol with the creation, termination and expiration extensions:
``OPTIONS /uploads`` says what the server supports, ``POST /uploads`` starts an
upload (``Upload-Length``, ``Upload-Metadata`` with ``filename``, ``relativePath``
and ``batch``), ``HEAD /uploads/{id}`` gives its offset, ``PATCH /uploads/{id}``
(``Content-Type: application/offset+octet-stream``) appends at ``Upload-Offset``,
``DELETE /uploads/{id}`` removes it. ``GET /uploads/batches/{batch}`` is Soi's own:
the receipt of the files picked at once. Errors are problem details.

References
----------
tus resumable upload protocol 1.0.0, https://tus.io/protocols/resumable-upload.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from soi.api.deps import CallerDep, RuntimeDep
from soi.api.problems import Problem
from soi.services.upload_store import (
    InvalidUploadError,
    OffsetMismatchError,
    Upload,
    UploadBusyError,
    UploadError,
    UploadNotFoundError,
    UploadStorageError,
    UploadStore,
    UploadTooLargeError,
    parse_metadata,
)
from soi.services.uploads import (
    Receipt,
    UploadForbiddenError,
    batch_receipt,
    create_upload,
    find_upload,
    receive_upload,
    terminate_upload,
)

router = APIRouter(prefix="/uploads", tags=["uploads"])

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,expiration"
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
_STATUSES: tuple[tuple[type[UploadError], int, str], ...] = (
    (UploadNotFoundError, 404, "Upload not found"),
    (InvalidUploadError, 400, "Invalid upload request"),
    (UploadTooLargeError, 413, "Upload too large"),
    (OffsetMismatchError, 409, "Upload-Offset mismatch"),
    (UploadBusyError, 423, "Upload busy"),
    (UploadStorageError, 507, "Insufficient storage"),
    (UploadForbiddenError, 403, "Forbidden"),
)
_BATCH = r"^[A-Za-z0-9_-]{1,64}$"


def get_upload_store(request: Request) -> UploadStore:
    """Return the process's uploads folder."""
    store: UploadStore = request.app.state.uploads
    return store


UploadStoreDep = Annotated[UploadStore, Depends(get_upload_store)]


def _tus_headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}


@contextmanager
def _problems() -> Iterator[None]:
    """Answer an upload error with problem details (and ``Tus-Resumable``)."""
    try:
        yield
    except UploadError as exc:
        for kind, status, title in _STATUSES:
            if isinstance(exc, kind):
                raise Problem(status, title, str(exc), headers=_tus_headers()) from None
        raise Problem(500, "Upload failed", str(exc), headers=_tus_headers()) from None


def _check_version(request: Request) -> None:
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        raise Problem(
            412,
            "Unsupported tus version",
            f"send Tus-Resumable: {TUS_VERSION}; {str(version)[:40]!r} is given",
            headers={"Tus-Version": TUS_VERSION},
        )


def _integer_header(request: Request, name: str) -> int:
    value = request.headers.get(name)
    if value is None or not value.isdigit() or len(value) > 20:
        raise Problem(
            400,
            "Invalid upload request",
            f"{name} must be a non-negative integer, {str(value)[:40]!r} is given",
            headers=_tus_headers(),
        )
    return int(value)


def _expires(store: UploadStore, upload: Upload) -> str:
    return format_datetime(upload.expires_at(store.expire_after), usegmt=True)


def _encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode('utf-8')).decode('ascii')}"
        for key, value in metadata.items()
    )


def _base_url(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/dicomweb"


@router.options("", status_code=204)
def discover(store: UploadStoreDep) -> Response:
    """What the tus server supports: version, extensions, maximum size."""
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(store.max_bytes),
        },
    )


@router.post("", status_code=201, responses={400: {}, 401: {}, 403: {}, 412: {}, 413: {}, 507: {}})
def create(
    request: Request, runtime: RuntimeDep, caller: CallerDep, store: UploadStoreDep
) -> Response:
    """Start an upload (tus creation): Upload-Length, Upload-Metadata; 201 with Location."""
    _check_version(request)
    if "upload-defer-length" in request.headers:
        raise Problem(
            400,
            "Invalid upload request",
            "Upload-Defer-Length is not supported; send Upload-Length",
            headers=_tus_headers(),
        )
    length = _integer_header(request, "upload-length")
    with _problems():
        metadata = parse_metadata(request.headers.get("upload-metadata"))
        if length > store.max_bytes:
            raise UploadTooLargeError(
                f"the upload of {length} bytes is over the limit of {store.max_bytes} bytes "
                "(setting upload_max_mb)"
            )
        upload = create_upload(runtime, caller, store, length=length, metadata=metadata)
    root = request.scope.get("root_path", "").rstrip("/")
    return Response(
        status_code=201,
        headers=_tus_headers(
            Location=f"{root}/uploads/{upload.id}", **{"Upload-Expires": _expires(store, upload)}
        ),
    )


@router.head("/{upload_id}", responses={401: {}, 404: {}, 412: {}})
def offset(upload_id: str, request: Request, caller: CallerDep, store: UploadStoreDep) -> Response:
    """An upload's offset (tus core): Upload-Offset and Upload-Length."""
    _check_version(request)
    with _problems():
        upload = find_upload(store, caller, upload_id)
    headers = _tus_headers(
        **{
            "Upload-Offset": str(upload.offset),
            "Upload-Length": str(upload.length),
            "Upload-Expires": _expires(store, upload),
        }
    )
    if upload.metadata:
        headers["Upload-Metadata"] = _encode_metadata(upload.metadata)
    return Response(status_code=200, headers=headers)


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request body; a client that goes away ends it early (what came is kept)."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        return


@router.patch(
    "/{upload_id}",
    status_code=204,
    responses={400: {}, 401: {}, 403: {}, 404: {}, 409: {}, 412: {}, 415: {}, 423: {}, 507: {}},
)
async def append(
    upload_id: str,
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    store: UploadStoreDep,
) -> Response:
    """Append bytes at Upload-Offset (tus core); the last ones make Soi keep the file."""
    _check_version(request)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != OFFSET_OCTET_STREAM:
        raise Problem(
            415,
            "Unsupported media type",
            f"a PATCH body is {OFFSET_OCTET_STREAM}, not {media_type[:80] or 'untyped'}",
            headers=_tus_headers(),
        )
    offset = _integer_header(request, "upload-offset")
    declared = request.headers.get("content-length")
    with _problems():
        upload = await run_in_threadpool(find_upload, store, caller, upload_id)
        if declared is not None and declared.isdigit() and offset + int(declared) > upload.length:
            raise InvalidUploadError(
                f"Content-Length {declared} at offset {offset} goes past the upload's length "
                f"{upload.length}"
            )
        upload = await receive_upload(
            runtime,
            caller,
            store,
            upload_id,
            offset=offset,
            chunks=_body(request),
            base_url=_base_url(request),
        )
    return Response(
        status_code=204,
        headers=_tus_headers(
            **{"Upload-Offset": str(upload.offset), "Upload-Expires": _expires(store, upload)}
        ),
    )


@router.delete("/{upload_id}", status_code=204, responses={401: {}, 403: {}, 404: {}, 423: {}})
def terminate(
    upload_id: str,
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    store: UploadStoreDep,
) -> Response:
    """Remove an upload (tus termination); instances already kept stay."""
    _check_version(request)
    with _problems():
        terminate_upload(runtime, caller, store, upload_id)
    return Response(status_code=204, headers=_tus_headers())


class UploadItemOut(BaseModel):
    """What became of one file, or one entry of a ZIP."""

    name: str = Field(description="the file's path in the folder picked")
    entry: str = Field(description="the entry's name in the ZIP; empty for a file")
    size: int
    outcome: str = Field(description="stored, already-stored, refused or skipped")
    code: str = Field(
        description="why refused or skipped: not-dicom, path-traversal, zip-bomb, "
        "nested-archive, too-large, too-many-entries, encrypted, damaged, sop-class, "
        "transfer-syntax, other-facility, invalid-dicom, out-of-space, failure, dicomdir"
    )
    reason: str = Field(description="why, in words")
    status: str = Field(description="the DICOM status (0xC210), when there is one")
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str


class UploadOut(BaseModel):
    """One uploaded file and what became of it."""

    id: str
    name: str
    relative_path: str
    length: int
    offset: int
    state: str = Field(description="receiving, received (being kept) or done")
    created_at: datetime
    completed_at: datetime | None
    expires_at: datetime
    items: list[UploadItemOut]


class ReceiptOut(BaseModel):
    """What became of the files of one batch."""

    batch_id: str
    complete: bool = Field(description="every file is received and kept (or refused)")
    totals: dict[str, int] = Field(
        description="files, pending (not done yet), and items by outcome"
    )
    studies: list[str] = Field(description="studies the kept instances belong to")
    uploads: list[UploadOut]


def _receipt_out(receipt: Receipt, store: UploadStore) -> ReceiptOut:
    totals = {"files": len(receipt.uploads), "pending": 0}
    for outcome in ("stored", "already-stored", "refused", "skipped"):
        totals[outcome] = 0
    uploads = []
    for upload in receipt.uploads:
        if upload.state.value != "done":
            totals["pending"] += 1
        for item in upload.items:
            totals[item.outcome] = totals.get(item.outcome, 0) + 1
        uploads.append(
            UploadOut(
                id=upload.id,
                name=upload.filename,
                relative_path=upload.relative_path,
                length=upload.length,
                offset=upload.offset,
                state=upload.state.value,
                created_at=upload.created_at,
                completed_at=upload.completed_at,
                expires_at=upload.expires_at(store.expire_after),
                items=[
                    UploadItemOut.model_validate(item, from_attributes=True)
                    for item in upload.items
                ],
            )
        )
    return ReceiptOut(
        batch_id=receipt.batch_id,
        complete=receipt.complete,
        totals=totals,
        studies=receipt.studies,
        uploads=uploads,
    )


@router.get("/batches/{batch_id}", response_model=ReceiptOut, responses={401: {}, 404: {}})
def receipt(
    request: Request,
    runtime: RuntimeDep,
    caller: CallerDep,
    store: UploadStoreDep,
    batch_id: Annotated[str, Path(pattern=_BATCH)],
) -> ReceiptOut:
    """The receipt of a batch: each file stored, already stored, refused (why) or skipped."""
    with _problems():
        found = batch_receipt(runtime, caller, store, batch_id, base_url=_base_url(request))
    return _receipt_out(found, store)
