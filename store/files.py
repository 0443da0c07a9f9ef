"""Durable files (instances, result files): temporary file, fsync, atomic rename, folder fsync."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from store.direct_io import AlignedBuffers, DirectIoRefused, write_direct
from store.errors import FileStoreError, InsufficientStorageError

__all__ = ["InstanceFileStore", "ResultFileStore", "StoredFile", "fsync_dir"]

_TMP_SUFFIX = ".part"
_log = structlog.get_logger("soi.store")
#: Files from this size on are written with direct I/O (smaller ones gain nothing).
_DIRECT_FROM_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file that is complete and durable on disk."""

    relative_path: str
    size: int
    sha256: str
    #: The folder whose entry for the file must still be flushed (``sync_dir=False``).
    folder: Path | None = None


class InstanceFileStore:
    """Keeps one file per SOP instance under ``root``.

    File names are derived from a hash of the SOP Instance UID, never from anything the
    sender chose, so no input can steer a write outside ``root``.

    Parameters
    ----------
    root:
        Folder that holds the instance files (created if missing).
    min_free_bytes:
        Free-space floor: a write that would leave less than this is refused with
        :class:`~store.errors.InsufficientStorageError`.
    direct_io:
        Write files of 1 MiB or more around the page cache (:mod:`store.direct_io`),
        where the file system takes it; otherwise every file goes through the page
        cache.
    """

    def __init__(self, root: Path, *, min_free_bytes: int = 0, direct_io: bool = True) -> None:
        if min_free_bytes < 0:
            raise ValueError(f"`min_free_bytes` must be >= 0, {min_free_bytes} is given")
        self.root = root
        self.min_free_bytes = min_free_bytes
        self.direct_io = direct_io
        self._buffers = AlignedBuffers()
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._prepare_fanout()

    def _prepare_fanout(self) -> None:
        """Create the 256 folders files are spread over, once, durably.

        With the folders in place, keeping an instance costs two flushes (its file and
        its folder) however many instances came before.
        """
        created = False
        for index in range(256):
            folder = self.root / f"{index:02x}"
            if not folder.is_dir():
                folder.mkdir(exist_ok=True)
                created = True
        if created:
            fsync_dir(self.root)

    def relative_path_for(self, sop_instance_uid: str) -> str:
        """Return where the instance with ``sop_instance_uid`` is kept, relative to root."""
        digest = hashlib.sha256(sop_instance_uid.encode("ascii", "replace")).hexdigest()
        return f"{digest[:2]}/{digest}.dcm"

    def absolute(self, relative_path: str) -> Path:
        """Return the absolute path of a file kept in this store."""
        path = (self.root / relative_path).resolve()
        if self.root.resolve() not in path.parents:
            raise FileStoreError(f"path {relative_path!r} lies outside the instance store")
        return path

    def free_bytes(self) -> int:
        """Return the free space of the file system that holds the store."""
        return shutil.disk_usage(self.root).free

    def check_space(self, incoming_bytes: int) -> None:
        """Raise if keeping ``incoming_bytes`` more would cross the free-space floor."""
        free = self.free_bytes()
        if free - incoming_bytes < self.min_free_bytes:
            raise InsufficientStorageError(
                f"only {free} bytes free; keeping {incoming_bytes} more would cross the "
                f"floor of {self.min_free_bytes} bytes"
            )

    def write(
        self,
        sop_instance_uid: str,
        chunks: Iterable[bytes | bytearray | memoryview],
        *,
        sync_dir: bool = True,
    ) -> StoredFile:
        """Write an instance durably and return where it lies.

        The bytes go to a temporary file that is fsynced, then renamed into place
        atomically and the folder fsynced, so after a crash the file is either whole
        or absent. A file already present for the same UID is replaced atomically.
        With ``sync_dir=False`` the folder is not flushed here: the caller must flush
        ``StoredFile.folder`` (for example in a group commit) before relying on it.

        Raises
        ------
        InsufficientStorageError
            The disk is (or became) too full.
        FileStoreError
            Any other failure to write; nothing is left behind.
        """
        relative = self.relative_path_for(sop_instance_uid)
        final = self.root / relative
        tmp = self._tmp / f"{uuid.uuid4().hex}{_TMP_SUFFIX}"
        parts = list(chunks)
        digest = hashlib.sha256()
        # The hash and the write both release the GIL: compute them side by side.
        hasher = threading.Thread(target=_hash_into, args=(digest, parts), daemon=True)
        hasher.start()
        try:
            size = self._write_synced(tmp, parts)
            created = _makedirs(final.parent)
            os.replace(tmp, final)
            if sync_dir:
                fsync_dir(final.parent)
            for folder in created:
                fsync_dir(folder.parent)
        except OSError as exc:
            hasher.join()
            tmp.unlink(missing_ok=True)
            if exc.errno == 28:  # ENOSPC
                raise InsufficientStorageError(f"disk full while writing: {exc}") from exc
            raise FileStoreError(f"cannot write instance file: {exc}") from exc
        hasher.join()
        return StoredFile(
            relative_path=relative,
            size=size,
            sha256=digest.hexdigest(),
            folder=None if sync_dir else final.parent,
        )

    def _write_synced(self, path: Path, parts: list[bytes | bytearray | memoryview]) -> int:
        """Create ``path`` with ``parts`` and fsync it: directly when it pays, else buffered."""
        if self.direct_io and sum(len(part) for part in parts) >= _DIRECT_FROM_BYTES:
            try:
                return write_direct(path, parts, self._buffers)
            except DirectIoRefused as exc:
                self.direct_io = False
                _log.info("instance files are written through the page cache", reason=str(exc))
        size = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            for chunk in parts:
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                    size += written
            os.fsync(fd)
        finally:
            os.close(fd)
        return size

    def read(self, relative_path: str) -> bytes:
        """Return the bytes of a stored file."""
        try:
            return self.absolute(relative_path).read_bytes()
        except OSError as exc:
            raise FileStoreError(f"cannot read {relative_path!r}: {exc}") from exc

    def remove(self, relative_path: str) -> None:
        """Remove a stored file if present."""
        try:
            self.absolute(relative_path).unlink(missing_ok=True)
        except OSError as exc:
            raise FileStoreError(f"cannot remove {relative_path!r}: {exc}") from exc

    def clean_temporary(self) -> int:
        """Remove temporary files left by an interrupted write; return how many."""
        removed = 0
        for path in self._tmp.glob(f"*{_TMP_SUFFIX}"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def _hash_into(digest: hashlib._Hash, parts: list[bytes | bytearray | memoryview]) -> None:
    for part in parts:
        digest.update(part)


def _makedirs(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; return the folders created, outermost first."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    created: list[Path] = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        created.append(path)
    return created


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ResultFileStore:
    """Files that belong to results (heatmap arrays, overlay pictures) under ``root``.

    Written like instances: to a temporary file that is fsynced, renamed into place
    and its folder flushed, so a file a committed result names is whole after a crash.
    Paths are kept relative to ``root`` in the database.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def absolute(self, relative_path: str) -> Path:
        """The absolute path of a relative result file path, refusing paths that leave root."""
        path = (self.root / relative_path).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise FileStoreError(f"{relative_path!r} is not inside the result file store")
        return path

    def write(self, relative_path: str, data: bytes) -> Path:
        """Write ``data`` durably at ``relative_path`` and return the absolute path.

        Raises
        ------
        InsufficientStorageError
            The disk is full.
        FileStoreError
            Any other failure; no partial file is left at ``relative_path``.
        """
        final = self.absolute(relative_path)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}{_TMP_SUFFIX}")
        try:
            created = _makedirs(final.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            fsync_dir(final.parent)
            for folder in created:
                fsync_dir(folder.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno == 28:  # ENOSPC
                raise InsufficientStorageError(f"disk full while writing: {exc}") from exc
            raise FileStoreError(f"cannot write result file {relative_path!r}: {exc}") from exc
        return final

    def remove_folder(self, relative_folder: str) -> None:
        """Remove a folder of result files (those of a result that was not committed)."""
        shutil.rmtree(self.absolute(relative_folder), ignore_errors=True)
