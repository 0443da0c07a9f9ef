"""Resumable uploads behind ``/uploads``: create, resume, keep, and the batch receipt.

A technician's browser (or any tus client) sends each picked file as one upload.
When its last byte is fsynced the upload is kept: a DICOM file (PS3.10, with or
without the preamble) goes through the same STOW-RS service and ingest as a
DICOMweb request (:func:`soi.services.dicomweb.store_instances`: the caller's
facility, SOP class and ownership checks, fsync and commit before success, each
store audited); a ZIP is read entry by entry within limits
(:func:`dicom_gateway.read_zip`) and each entry kept the same way. What became of
each file or entry is recorded in the upload's state file, for the receipt, and the
upload's outcome is audited (``upload.keep``).

Uploads are the caller's own: another user's upload is answered as if it did not
exist.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from dicom_gateway import (
    ArchiveError,
    ArchiveLimits,
    EntryOutcome,
    StoreStatus,
    is_zip,
    read_zip,
)
from dicom_gateway.dicomweb import InstanceResult, build_multipart, new_boundary
from soi.auth import Caller
from soi.runtime import Runtime
from soi.services.audit import record_caller_event
from soi.services.dicomweb import store_instances
from soi.services.upload_store import (
    Upload,
    UploadBusyError,
    UploadError,
    UploadItem,
    UploadNotFoundError,
    UploadState,
    UploadStorageError,
    UploadStore,
)
from soi.settings import Settings
from store import AuditOutcome, Instance, InsufficientStorageError, UserRole, utcnow

__all__ = [
    "Receipt",
    "UploadForbiddenError",
    "batch_receipt",
    "create_upload",
    "find_upload",
    "keep_upload",
    "make_upload_store",
    "receive_upload",
    "terminate_upload",
]

_MIB = 1024 * 1024
_HEAD = 132
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_MAX_AUDITED_REFUSALS = 100
_NOT_DICOM = "not a DICOM file (PS3.10): no 'DICM' prefix after the 128-byte preamble"
_CODES = {
    StoreStatus.SOP_CLASS_NOT_SUPPORTED: "sop-class",
    StoreStatus.TRANSFER_SYNTAX_NOT_SUPPORTED: "transfer-syntax",
    StoreStatus.NOT_AUTHORIZED: "other-facility",
    StoreStatus.OUT_OF_RESOURCES: "out-of-space",
    StoreStatus.PROCESSING_FAILURE: "failure",
}


class UploadForbiddenError(UploadError):
    """The caller's role may not upload instances."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of the files of one batch (the files picked at once)."""

    batch_id: str
    uploads: list[Upload]

    @property
    def studies(self) -> list[str]:
        """Study Instance UIDs of the instances kept, in the order first met."""
        seen: dict[str, None] = {}
        for upload in self.uploads:
            for item in upload.items:
                if item.kept and item.study_instance_uid:
                    seen.setdefault(item.study_instance_uid, None)
        return list(seen)

    @property
    def complete(self) -> bool:
        """Whether every upload of the batch is kept."""
        return all(upload.state is UploadState.DONE for upload in self.uploads)


def make_upload_store(settings: Settings) -> UploadStore:
    """The uploads folder of ``settings``, swept of expired uploads."""
    store = UploadStore(
        settings.uploads_dir,
        max_bytes=settings.upload_max_mb * _MIB,
        expire_after=timedelta(hours=settings.upload_expire_hours),
    )
    store.sweep()
    return store


def _audit(
    runtime: Runtime, caller: Caller, action: str, outcome: AuditOutcome, **fields: Any
) -> None:
    with runtime.database.write() as session:
        record_caller_event(
            session,
            caller,
            action=action,
            outcome=outcome,
            facility_id=caller.facility_id,
            **fields,
        )


def create_upload(
    runtime: Runtime,
    caller: Caller,
    store: UploadStore,
    *,
    length: int,
    metadata: dict[str, str],
) -> Upload:
    """Start an upload of ``length`` bytes for the caller; audited as ``upload.create``.

    Raises
    ------
    UploadForbiddenError
        The caller is a researcher (researchers do not store instances).
    UploadTooLargeError, InvalidUploadError
        ``length`` is over the limit, or negative.
    UploadStorageError
        The disk has not room for it above the free-space floor, or the upload
        cannot be recorded.
    """
    if caller.role == UserRole.RESEARCHER:
        raise UploadForbiddenError(
            f"{caller.username} is a researcher: researchers work on de-identified exports "
            "and do not store instances"
        )
    try:
        runtime.files.check_space(length)
    except InsufficientStorageError as exc:
        raise UploadStorageError(f"no room for the upload: {exc}") from None
    upload = store.create(
        owner=caller.username, owner_id=caller.user_id, length=length, metadata=metadata
    )
    _audit(
        runtime,
        caller,
        "upload.create",
        AuditOutcome.SUCCESS,
        detail={
            "upload_id": upload.id,
            "name": upload.relative_path[:256],
            "bytes": length,
            "batch": upload.batch,
        },
    )
    return upload


def find_upload(store: UploadStore, caller: Caller, upload_id: str) -> Upload:
    """One of the caller's uploads.

    Raises
    ------
    UploadNotFoundError
        Unknown, another user's, or expired.
    """
    return store.get(upload_id, owner=caller.username, owner_id=caller.user_id)


async def receive_upload(
    runtime: Runtime,
    caller: Caller,
    store: UploadStore,
    upload_id: str,
    *,
    offset: int,
    chunks: AsyncIterator[bytes],
    base_url: str,
) -> Upload:
    """Write a ``PATCH`` body; once the last byte is here, keep the upload's files.

    Raises
    ------
    UploadNotFoundError, OffsetMismatchError, InvalidUploadError, UploadBusyError,
    UploadStorageError
        See :meth:`UploadStore.append`.
    """
    upload = find_upload(store, caller, upload_id)
    upload = await store.append(upload, offset=offset, chunks=chunks)
    if upload.state is UploadState.RECEIVED:
        upload = await run_in_threadpool(
            keep_upload, runtime, caller, store, upload, base_url=base_url
        )
    return upload


def terminate_upload(runtime: Runtime, caller: Caller, store: UploadStore, upload_id: str) -> None:
    """Remove one of the caller's uploads (tus termination); what was kept stays kept.

    Raises
    ------
    UploadNotFoundError
        Unknown, another user's, or expired.
    UploadBusyError
        A request is writing or keeping it.
    """
    upload = find_upload(store, caller, upload_id)
    with store.locked(upload):
        store.remove(upload)
    _audit(
        runtime,
        caller,
        "upload.terminate",
        AuditOutcome.SUCCESS,
        detail={"upload_id": upload.id, "offset": upload.offset, "state": upload.state.value},
    )


def batch_receipt(
    runtime: Runtime, caller: Caller, store: UploadStore, batch_id: str, *, base_url: str
) -> Receipt:
    """The receipt of one of the caller's batches; audited as ``upload.receipt``.

    An upload whose bytes are all here but that is not kept yet (its keeping was
    cut short by a restart) is kept now.

    Raises
    ------
    UploadNotFoundError
        The caller has no upload in that batch.
    """
    uploads = store.of_batch(batch_id, owner=caller.username, owner_id=caller.user_id)
    if not uploads:
        raise UploadNotFoundError(f"no upload in batch {batch_id[:64]}")
    uploads = [
        keep_upload(runtime, caller, store, upload, base_url=base_url)
        if upload.state is UploadState.RECEIVED
        else upload
        for upload in uploads
    ]
    receipt = Receipt(batch_id=batch_id, uploads=uploads)
    studies = receipt.studies
    _audit(
        runtime,
        caller,
        "upload.receipt",
        AuditOutcome.SUCCESS,
        study_instance_uid=studies[0] if len(studies) == 1 else "",
        detail={"batch": batch_id, "uploads": len(uploads), "studies": studies[:200]},
    )
    return receipt


# -- keeping ------------------------------------------------------------------


def keep_upload(
    runtime: Runtime, caller: Caller, store: UploadStore, upload: Upload, *, base_url: str
) -> Upload:
    """Keep the files of a received upload and record what became of each.

    Idempotent: a kept upload is returned as it is; one that another request is
    keeping is returned unchanged (still received). Instances kept by an attempt cut
    short by a crash are found already stored by the next.
    """
    if upload.state is not UploadState.RECEIVED:
        return upload
    try:
        with store.locked(upload) as part:
            current = store.load(upload.id)
            if current is None or current.state is not UploadState.RECEIVED:
                return current or upload
            started = utcnow()
            current.items = _keep_bytes(runtime, caller, current, part, base_url, started)
            current.state = UploadState.DONE
            current.completed_at = current.updated_at = utcnow()
            store.save(current)
    except UploadBusyError:
        return upload
    store.drop_part(current)
    _audit_keep(runtime, caller, current)
    return current


def _audit_keep(runtime: Runtime, caller: Caller, upload: Upload) -> None:
    counts: dict[str, int] = {}
    for item in upload.items:
        counts[item.outcome] = counts.get(item.outcome, 0) + 1
    studies = {item.study_instance_uid for item in upload.items if item.kept}
    refusals = [
        {"name": item.entry or item.name, "code": item.code, "reason": item.reason[:200]}
        for item in upload.items
        if item.outcome == "refused"
    ]
    _audit(
        runtime,
        caller,
        "upload.keep",
        AuditOutcome.SUCCESS if studies else AuditOutcome.REFUSED,
        study_instance_uid=next(iter(studies)) if len(studies) == 1 else "",
        detail={
            "upload_id": upload.id,
            "name": upload.relative_path[:256],
            "batch": upload.batch,
            "bytes": upload.length,
            "outcomes": counts,
            "studies": sorted(studies)[:200],
            "refused": refusals[:_MAX_AUDITED_REFUSALS],
        },
    )


def _archive_limits(settings: Settings) -> ArchiveLimits:
    return ArchiveLimits(
        max_entries=settings.upload_zip_max_entries,
        max_entry_bytes=settings.dicomweb_max_request_mb * _MIB,
        max_total_bytes=settings.upload_zip_max_unpacked_mb * _MIB,
        max_ratio=settings.upload_zip_max_ratio,
    )


def _keep_bytes(
    runtime: Runtime,
    caller: Caller,
    upload: Upload,
    part: IO[bytes],
    base_url: str,
    started: datetime,
) -> list[UploadItem]:
    part.seek(0)
    head = part.read(_HEAD)
    part.seek(0)
    name = upload.relative_path
    if is_zip(head):
        return _keep_zip(runtime, caller, upload, part, base_url, started)
    keeper = _Keeper(runtime, caller, base_url, started)
    return [keeper.keep(name=name, size=upload.length, head=head, read=part.read)]


def _keep_zip(
    runtime: Runtime,
    caller: Caller,
    upload: Upload,
    part: IO[bytes],
    base_url: str,
    started: datetime,
) -> list[UploadItem]:
    keeper = _Keeper(runtime, caller, base_url, started)
    name = upload.relative_path
    items: list[UploadItem] = []
    try:
        for entry in read_zip(part, _archive_limits(runtime.settings)):
            if entry.outcome is EntryOutcome.READ:
                data = entry.data
                items.append(
                    keeper.keep(
                        name=name,
                        entry=entry.name,
                        size=entry.size,
                        head=data[:_HEAD],
                        read=lambda data=data: data,  # type: ignore[misc]
                    )
                )
            else:
                items.append(
                    UploadItem(
                        name=name,
                        entry=entry.name,
                        size=entry.size,
                        outcome="skipped" if entry.outcome is EntryOutcome.SKIPPED else "refused",
                        code="dicomdir"
                        if entry.outcome is EntryOutcome.SKIPPED
                        else str(entry.code or ""),
                        reason=entry.reason,
                    )
                )
    except ArchiveError as exc:
        items.append(
            UploadItem(
                name=name,
                size=upload.length,
                outcome="refused",
                code=exc.code.value,
                reason=f"the ZIP archive is refused whole: {exc.reason}",
            )
        )
    return items


def _looks_like_dicom(head: bytes) -> bool:
    """A PS3.10 file (``DICM`` after the preamble), or one without the preamble that
    starts with a File Meta Information element (group 0002)."""
    return head[128:132] == b"DICM" or head[:2] == b"\x02\x00"


class _Keeper:
    """Keeps one DICOM file after another through the STOW-RS service."""

    def __init__(self, runtime: Runtime, caller: Caller, base_url: str, started: datetime) -> None:
        self.runtime = runtime
        self.caller = caller
        self.base_url = base_url
        self.started = started
        self.max_bytes = runtime.settings.dicomweb_max_request_mb * _MIB

    def keep(
        self, *, name: str, size: int, head: bytes, read: Callable[[], bytes], entry: str = ""
    ) -> UploadItem:
        """Keep one file (or ZIP entry) and say what became of it."""
        shown = entry or name
        item = UploadItem(name=name, entry=entry, size=size, outcome="refused")
        if posixpath.basename(shown.replace("\\", "/")).upper() == "DICOMDIR":
            item.outcome, item.code = "skipped", "dicomdir"
            item.reason = "DICOMDIR: the file-set's index, not an image"
            return item
        if size == 0 or not _looks_like_dicom(head):
            item.code, item.status = "not-dicom", f"0x{StoreStatus.CANNOT_DECODE:04X}"
            item.reason = "the file is empty" if size == 0 else _NOT_DICOM
            return item
        if size > self.max_bytes:
            item.code = "too-large"
            item.reason = (
                f"the file of {size} bytes is over the limit of {self.max_bytes} bytes for one "
                "instance (setting dicomweb_max_request_mb)"
            )
            return item
        result = self._store(read())
        item.study_instance_uid = result.study_instance_uid
        item.series_instance_uid = result.series_instance_uid
        item.sop_instance_uid = result.sop_instance_uid
        if result.stored:
            item.outcome = "already-stored" if self._stored_before(result) else "stored"
            return item
        item.status = f"0x{int(result.status):04X}"
        item.reason = result.reason
        if result.sop_class_uid == _DICOMDIR_SOP_CLASS:
            item.outcome, item.code = "skipped", "dicomdir"
            item.reason = "DICOMDIR: the file-set's index, not an image"
        else:
            item.code = _CODES.get(result.status, "invalid-dicom")
        return item

    def _store(self, data: bytes) -> InstanceResult:
        boundary = new_boundary()
        parts: Iterable[tuple[dict[str, str], list[bytes]]] = [
            ({"Content-Type": "application/dicom"}, [data])
        ]
        body = io.BytesIO(b"".join(build_multipart(parts, boundary)))
        report = store_instances(
            self.runtime, self.caller, body=body, boundary=boundary, base_url=self.base_url
        )
        return report.results[0]

    def _stored_before(self, result: InstanceResult) -> bool:
        """Whether the instance was in Soi before this upload was kept."""
        with self.runtime.database.read() as session:
            received = session.scalar(
                select(Instance.received_at).where(
                    Instance.sop_instance_uid == result.sop_instance_uid
                )
            )
        return received is not None and received < self.started
