"""Resumable uploads on disk: the storage behind the tus 1.0.0 routes (``/uploads``).

Each upload is two files in the uploads folder: ``<id>.part`` (the bytes received)
and ``<id>.json`` (its state: owner, length, offset, metadata, and once kept, what
became of each file in it). The state file is replaced atomically (written aside,
fsynced, renamed, folder fsynced), and the offset it records only ever counts bytes
that were fsynced before: after a crash or a ``kill -9`` an upload resumes from the
last recorded offset, and bytes past it in the ``.part`` file are cut off by the
next ``PATCH``. A ``PATCH`` that holds an upload takes an exclusive ``flock`` on its
``.part`` file, so two requests (of this process or another on the same volume)
never write one upload at once.

References
----------
tus resumable upload protocol 1.0.0 (core, creation, termination and expiration
extensions), https://tus.io/protocols/resumable-upload.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import structlog
from starlette.concurrency import run_in_threadpool

from store import utcnow

__all__ = [
    "InvalidUploadError",
    "OffsetMismatchError",
    "Upload",
    "UploadBusyError",
    "UploadError",
    "UploadItem",
    "UploadNotFoundError",
    "UploadState",
    "UploadStorageError",
    "UploadStore",
    "UploadTooLargeError",
    "parse_metadata",
    "valid_batch_id",
]

_log = structlog.get_logger("soi.uploads")

_ID = re.compile(r"^[0-9a-f]{32}$")
_BATCH = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MAX_METADATA_KEYS = 16
_MAX_METADATA_VALUE = 1024
_WRITE_BUFFER = 1 << 20
#: A long PATCH records its progress every this many bytes, so a crash loses less.
_SYNC_EVERY = 8 << 20


class UploadError(Exception):
    """Base class of the errors of resumable uploads."""


class UploadNotFoundError(UploadError):
    """No such upload for this caller (unknown, another user's, expired or removed)."""


class InvalidUploadError(UploadError):
    """A request that does not follow the protocol (missing or malformed header)."""


class UploadTooLargeError(UploadError):
    """An upload longer than the configured maximum."""


class OffsetMismatchError(UploadError):
    """A ``PATCH`` whose ``Upload-Offset`` is not the upload's offset."""


class UploadBusyError(UploadError):
    """Another request holds the upload (writing or keeping it)."""


class UploadStorageError(UploadError):
    """The uploads folder cannot be written (disk full, permissions)."""


class UploadState(StrEnum):
    """Where an upload is."""

    #: Bytes are still to come.
    RECEIVING = "receiving"
    #: Every byte is here; its files are not kept yet.
    RECEIVED = "received"
    #: Its files are kept (or refused); the outcome of each is recorded.
    DONE = "done"


@dataclass(slots=True)
class UploadItem:
    """What became of one file of an upload: the uploaded file, or an entry of its ZIP.

    ``outcome`` is ``stored``, ``already-stored``, ``refused`` or ``skipped``;
    ``code`` says why it is refused or skipped in a word a page can translate,
    ``reason`` in English, ``status`` the DICOM status (``0xC210``) when it has one.
    """

    name: str
    size: int
    outcome: str
    entry: str = ""
    code: str = ""
    reason: str = ""
    status: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    sop_instance_uid: str = ""

    @property
    def kept(self) -> bool:
        """Whether the instance is in Soi now (newly or already)."""
        return self.outcome in ("stored", "already-stored")


@dataclass(slots=True)
class Upload:
    """One resumable upload: a file (a DICOM file or a ZIP) sent in pieces."""

    id: str
    owner: str
    owner_id: int | None
    length: int
    offset: int
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime
    state: UploadState = UploadState.RECEIVING
    completed_at: datetime | None = None
    items: list[UploadItem] = field(default_factory=list)

    @property
    def filename(self) -> str:
        """The file's name as the client gave it (``filename`` or ``name`` metadata)."""
        return self.metadata.get("filename") or self.metadata.get("name") or self.id

    @property
    def relative_path(self) -> str:
        """The file's path within the folder picked (``relativePath``), else its name."""
        return self.metadata.get("relativePath") or self.filename

    @property
    def batch(self) -> str:
        """The batch the file was picked in (``batch`` metadata), else the upload's id."""
        return self.metadata.get("batch") or self.id

    def expires_at(self, expire_after: timedelta) -> datetime:
        """When an unfinished upload, or a finished one's receipt, is removed."""
        return (self.completed_at or self.updated_at) + expire_after

    def to_json(self) -> dict[str, Any]:
        """The state file's content."""
        return {
            "id": self.id,
            "owner": self.owner,
            "owner_id": self.owner_id,
            "length": self.length,
            "offset": self.offset,
            "metadata": self.metadata,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "state": self.state.value,
            "completed_at": None if self.completed_at is None else self.completed_at.isoformat(),
            "items": [asdict(item) for item in self.items],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Upload:
        """Read a state file's content.

        Raises
        ------
        KeyError, TypeError, ValueError
            The content is not that of a state file.
        """
        completed = data.get("completed_at")
        return cls(
            id=str(data["id"]),
            owner=str(data["owner"]),
            owner_id=None if data.get("owner_id") is None else int(data["owner_id"]),
            length=int(data["length"]),
            offset=int(data["offset"]),
            metadata={str(k): str(v) for k, v in dict(data["metadata"]).items()},
            created_at=datetime.fromisoformat(data["created_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
            state=UploadState(data["state"]),
            completed_at=None if completed is None else datetime.fromisoformat(completed),
            items=[UploadItem(**item) for item in data.get("items", [])],
        )


def parse_metadata(header: str | None) -> dict[str, str]:
    """Decode an ``Upload-Metadata`` header: comma-separated ``key base64(value)`` pairs.

    Raises
    ------
    InvalidUploadError
        A key is malformed or repeated, a value is not base64 of UTF-8 text, there
        are more than 16 keys, a value is longer than 1024 characters, or ``batch``
        is not 1 to 64 letters, digits, ``-`` or ``_``.
    """
    metadata: dict[str, str] = {}
    if header is None or not header.strip():
        return metadata
    for pair in header.split(","):
        key, _, encoded = pair.strip().partition(" ")
        if not _METADATA_KEY.match(key) or key in metadata:
            raise InvalidUploadError(f"Upload-Metadata has a malformed or repeated key {key!r}")
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidUploadError(
                f"the Upload-Metadata value of {key!r} is not base64 of UTF-8 text"
            ) from None
        if len(value) > _MAX_METADATA_VALUE or not value.isprintable():
            raise InvalidUploadError(
                f"the Upload-Metadata value of {key!r} is longer than {_MAX_METADATA_VALUE} "
                "characters or holds control characters"
            )
        metadata[key] = value
        if len(metadata) > _MAX_METADATA_KEYS:
            raise InvalidUploadError(f"Upload-Metadata has more than {_MAX_METADATA_KEYS} keys")
    if "batch" in metadata and not _BATCH.match(metadata["batch"]):
        raise InvalidUploadError(
            "the batch id (Upload-Metadata batch) must be 1 to 64 letters, digits, '-' or '_'"
        )
    return metadata


def valid_batch_id(batch_id: str) -> bool:
    """Whether ``batch_id`` can name a batch."""
    return bool(_BATCH.match(batch_id))


def _write(part: IO[bytes], data: bytes) -> None:
    part.write(data)
    part.flush()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class UploadStore:
    """The uploads folder.

    Parameters
    ----------
    directory:
        Where ``.part`` and ``.json`` files are kept (made if missing).
    max_bytes:
        The longest upload accepted.
    expire_after:
        How long an unfinished upload, or a finished one's receipt, is kept after
        its last change.
    """

    def __init__(self, directory: Path, *, max_bytes: int, expire_after: timedelta) -> None:
        if max_bytes < 1:
            raise ValueError(f"`max_bytes` must be a positive number, {max_bytes} is given")
        self.directory = directory
        self.max_bytes = max_bytes
        self.expire_after = expire_after
        self._last_sweep: datetime | None = None

    # -- files -------------------------------------------------------------

    def _state_path(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.json"

    def part_path(self, upload_id: str) -> Path:
        """The ``.part`` file of an upload."""
        return self.directory / f"{upload_id}.part"

    def save(self, upload: Upload) -> None:
        """Replace an upload's state file atomically and durably.

        Raises
        ------
        UploadStorageError
            It cannot be written.
        """
        path = self._state_path(upload.id)
        temporary = path.with_suffix(".json.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="utf-8") as handle:
                json.dump(upload.to_json(), handle, ensure_ascii=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
            _fsync_dir(self.directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise UploadStorageError(f"cannot record the upload's state: {exc}") from exc

    def load(self, upload_id: str) -> Upload | None:
        """An upload's state as recorded, whoever owns it; ``None`` if there is none.

        Raises
        ------
        UploadStorageError
            The state file cannot be read.
        """
        if not _ID.match(upload_id):
            return None
        try:
            text = self._state_path(upload_id).read_text("utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UploadStorageError(f"cannot read the upload's state: {exc}") from exc
        try:
            return Upload.from_json(json.loads(text))
        except (KeyError, TypeError, ValueError) as exc:
            _log.error("unreadable upload state file", upload_id=upload_id, error=str(exc))
            return None

    def _batch_dir(self, batch_id: str) -> Path:
        return self.directory / "batches" / batch_id

    def remove(self, upload: Upload) -> None:
        """Remove an upload's files."""
        batch_dir = self._batch_dir(upload.batch)
        for path in (self.part_path(upload.id), self._state_path(upload.id), batch_dir / upload.id):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with contextlib.suppress(OSError):
            batch_dir.rmdir()  # when it was the batch's last upload

    def drop_part(self, upload: Upload) -> None:
        """Remove a kept upload's bytes (its state file stays, for the receipt)."""
        with contextlib.suppress(FileNotFoundError):
            self.part_path(upload.id).unlink()

    # -- uploads -----------------------------------------------------------

    def create(
        self, *, owner: str, owner_id: int | None, length: int, metadata: Mapping[str, str]
    ) -> Upload:
        """Record a new, empty upload.

        Raises
        ------
        InvalidUploadError
            ``length`` is negative.
        UploadTooLargeError
            ``length`` is over :attr:`max_bytes`.
        UploadStorageError
            The state file cannot be written.
        """
        if length < 0:
            raise InvalidUploadError(f"Upload-Length must not be negative, {length} is given")
        if length > self.max_bytes:
            raise UploadTooLargeError(
                f"the upload of {length} bytes is over the limit of {self.max_bytes} bytes "
                "(setting upload_max_mb)"
            )
        self.sweep_now_and_then()
        now = utcnow()
        upload = Upload(
            id=secrets.token_hex(16),
            owner=owner,
            owner_id=owner_id,
            length=length,
            offset=0,
            metadata=dict(metadata),
            created_at=now,
            updated_at=now,
            state=UploadState.RECEIVING if length else UploadState.RECEIVED,
            completed_at=None,
        )
        # The batch's index entry first: a crash before the state file leaves an entry
        # that the sweep removes, never an upload missing from its receipt.
        batch_dir = self._batch_dir(upload.batch)
        for attempt in range(2):
            try:
                batch_dir.mkdir(parents=True, exist_ok=True)
                (batch_dir / upload.id).touch()
                break
            except FileNotFoundError:  # a sweep removed the empty folder meanwhile
                if attempt:
                    raise UploadStorageError("cannot record the upload's batch") from None
            except OSError as exc:
                raise UploadStorageError(f"cannot record the upload's batch: {exc}") from exc
        self.save(upload)
        return upload

    def get(self, upload_id: str, *, owner: str, owner_id: int | None) -> Upload:
        """An upload of this owner.

        Raises
        ------
        UploadNotFoundError
            Unknown, another owner's, or expired (then removed).
        """
        upload = self.load(upload_id)
        if upload is None or (upload.owner, upload.owner_id) != (owner, owner_id):
            raise UploadNotFoundError(f"no upload {upload_id[:64]}")
        if upload.expires_at(self.expire_after) <= utcnow():
            self.remove(upload)
            raise UploadNotFoundError(f"no upload {upload_id[:64]}: it expired")
        return upload

    def of_batch(self, batch_id: str, *, owner: str, owner_id: int | None) -> list[Upload]:
        """The uploads of one batch of this owner, oldest first."""
        batch_dir = self._batch_dir(batch_id)
        if not valid_batch_id(batch_id) or not batch_dir.is_dir():
            return []
        found = []
        for path in batch_dir.iterdir():
            upload = self.load(path.name)
            if (
                upload is not None
                and upload.batch == batch_id
                and (upload.owner, upload.owner_id) == (owner, owner_id)
            ):
                found.append(upload)
        return sorted(found, key=lambda upload: (upload.created_at, upload.id))

    @contextlib.contextmanager
    def locked(self, upload: Upload) -> Iterator[IO[bytes]]:
        """Hold an upload's ``.part`` file exclusively, open for reading and writing.

        Raises
        ------
        UploadBusyError
            Another request holds it.
        UploadStorageError
            It cannot be opened.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.part_path(upload.id), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UploadStorageError(f"cannot open the upload's bytes: {exc}") from exc
        with os.fdopen(fd, "r+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UploadBusyError(
                    f"upload {upload.id} is being written or kept by another request; "
                    "try again shortly"
                ) from None
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    async def append(self, upload: Upload, *, offset: int, chunks: AsyncIterator[bytes]) -> Upload:
        """Write a ``PATCH`` body at ``offset``; return the upload with its new offset.

        The bytes received are fsynced before the offset is recorded. When the body
        ends early (the client went away), what arrived is kept. When every byte is
        here the upload is :attr:`UploadState.RECEIVED`.

        Raises
        ------
        OffsetMismatchError
            ``offset`` is not the upload's offset, or the upload is complete.
        InvalidUploadError
            The body holds more bytes than the upload has left: none of it is kept.
        UploadBusyError
            Another request holds the upload.
        UploadStorageError
            The bytes cannot be written: none past the last recorded offset count.
        """
        if upload.state is not UploadState.RECEIVING or offset != upload.offset:
            raise OffsetMismatchError(
                f"Upload-Offset {offset} is not the upload's offset {upload.offset}"
                + ("" if upload.state is UploadState.RECEIVING else " (it is complete)")
            )
        with self.locked(upload) as part:
            current = self.load(upload.id)
            if current is None:
                raise UploadNotFoundError(f"no upload {upload.id}")
            if current.offset != offset or current.state is not UploadState.RECEIVING:
                raise OffsetMismatchError(
                    f"Upload-Offset {offset} is not the upload's offset {current.offset}"
                )
            upload = current
            try:
                await run_in_threadpool(part.truncate, offset)
                part.seek(offset)
                await self._receive(upload, part, chunks)
            except OSError as exc:
                raise UploadStorageError(f"cannot write the upload's bytes: {exc}") from exc
        return upload

    async def _receive(self, upload: Upload, part: IO[bytes], chunks: AsyncIterator[bytes]) -> None:
        start = upload.offset
        synced = start
        position = start
        pending = bytearray()

        async def flush(sync: bool) -> None:
            nonlocal pending, synced
            if pending:
                data = bytes(pending)
                pending = bytearray()
                await run_in_threadpool(_write, part, data)
            if sync and position > synced:
                await run_in_threadpool(os.fsync, part.fileno())
                synced = position
                await run_in_threadpool(self._record_offset, upload, position)

        overflow = False
        try:
            async for chunk in chunks:
                if position + len(chunk) > upload.length:
                    overflow = True
                    break
                pending += chunk
                position += len(chunk)
                if len(pending) >= _WRITE_BUFFER:
                    await flush(sync=position - synced >= _SYNC_EVERY)
        finally:
            # Also when the client went away: what is fsynced and recorded counts.
            if not overflow:
                await flush(sync=True)
        if overflow:
            await run_in_threadpool(part.truncate, synced)
            raise InvalidUploadError(
                f"the body holds more bytes than the {upload.length - start} the upload had "
                f"left; its offset stays at {synced}"
            )

    def _record_offset(self, upload: Upload, offset: int) -> None:
        upload.offset = offset
        upload.updated_at = utcnow()
        if offset == upload.length:
            upload.state = UploadState.RECEIVED
        self.save(upload)

    # -- expiry ------------------------------------------------------------

    def sweep_now_and_then(self) -> None:
        """Sweep when the last sweep is more than ten minutes old."""
        now = utcnow()
        if self._last_sweep is None or now - self._last_sweep > timedelta(minutes=10):
            self.sweep(now)

    def sweep(self, now: datetime | None = None) -> int:
        """Remove expired uploads, the bytes of kept ones, and files left by a crash.

        Returns
        -------
        int
            Uploads removed.
        """
        now = now or utcnow()
        self._last_sweep = now
        if not self.directory.is_dir():
            return 0
        removed = 0
        # A temporary file, or bytes with no state yet, may be another receiving
        # process's write in progress: only an old one is a crash's leftover.
        settled = time.time() - 3600
        for path in self.directory.iterdir():
            if path.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < settled:
                        path.unlink()
            elif path.suffix == ".json":
                upload = self.load(path.stem)
                if upload is None:
                    continue
                if upload.expires_at(self.expire_after) <= now:
                    self.remove(upload)
                    removed += 1
                elif upload.state is UploadState.DONE:
                    self.drop_part(upload)
            elif path.suffix == ".part" and not self._state_path(path.stem).exists():
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < settled:
                        path.unlink()
        self._sweep_batches()
        if removed:
            _log.info("expired uploads removed", count=removed)
        return removed

    def _sweep_batches(self) -> None:
        """Remove batch index entries of uploads that are gone, and empty batches.

        An entry younger than an hour is left alone: its upload may be being created.
        """
        batches = self.directory / "batches"
        if not batches.is_dir():
            return
        settled = time.time() - 3600
        for batch_dir in batches.iterdir():
            for entry in batch_dir.iterdir() if batch_dir.is_dir() else ():
                with contextlib.suppress(FileNotFoundError):
                    if (
                        not self._state_path(entry.name).exists()
                        and entry.stat().st_mtime < settled
                    ):
                        entry.unlink()
            with contextlib.suppress(OSError):
                batch_dir.rmdir()
