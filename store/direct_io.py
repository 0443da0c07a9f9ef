"""Writing a large file around the page cache (``O_DIRECT``), then fsyncing it.

A received radiograph is written once and, most of the time, not read again soon. A
buffered write copies it into the page cache first: on a virtual machine whose
fresh memory pages are faulted in from the host, that copy costs more CPU than
everything else Soi does with the instance (20 ms of 57 for an 8 MB radiograph on
the 2-core development machine). With ``O_DIRECT`` the device reads the bytes from
an aligned buffer of Soi's own, which is reused from one file to the next, and the
CPU cost of writing is that of one copy into it.

The file system must accept direct I/O (ext4, XFS and Btrfs do; tmpfs does not): where
it refuses, :func:`write_direct` says so and the caller writes through the page cache.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: What is written: bytes, or views of received bytes.
Chunks = Sequence[bytes | bytearray | memoryview]

__all__ = ["ALIGNMENT", "AlignedBuffers", "DirectIoRefused", "write_direct"]

#: Alignment of buffer addresses, lengths and file offsets for direct I/O: the page
#: size, a multiple of every logical block size in use.
ALIGNMENT = mmap.PAGESIZE
_O_DIRECT = getattr(os, "O_DIRECT", 0)


class DirectIoRefused(Exception):
    """The file system (or the platform) does not take direct I/O; nothing was written."""


class AlignedBuffers:
    """A small pool of page-aligned buffers (anonymous memory maps) of ``size`` bytes.

    Buffers are reused, so their pages are faulted in once; at most ``keep`` are held
    while idle (one per concurrent writer is made when needed).
    """

    def __init__(self, size: int = 8 << 20, keep: int = 4) -> None:
        if size <= 0 or size % ALIGNMENT:
            raise ValueError(f"`size` must be a positive multiple of {ALIGNMENT}, {size} is given")
        self.size = size
        self.keep = keep
        self._idle: list[mmap.mmap] = []
        self._lock = threading.Lock()

    @contextmanager
    def take(self) -> Iterator[mmap.mmap]:
        """Lend one buffer for the duration of the block."""
        with self._lock:
            buffer = self._idle.pop() if self._idle else None
        if buffer is None:
            buffer = mmap.mmap(-1, self.size)
        try:
            yield buffer
        finally:
            with self._lock:
                if len(self._idle) < self.keep:
                    self._idle.append(buffer)
                    buffer = None
            if buffer is not None:
                buffer.close()


def write_direct(path: Path, parts: Chunks, buffers: AlignedBuffers) -> int:
    """Create ``path`` holding ``parts`` one after the other, written with direct I/O and
    fsynced; return its size.

    The bytes are copied into an aligned buffer a buffer-full at a time and written
    from there; the last block is padded to the alignment and the file then cut to
    its size before the fsync.

    Raises
    ------
    DirectIoRefused
        Direct I/O is not available here: ``path`` was not created (or was removed).
    OSError
        Any other failure (disk full, I/O error); ``path`` may be left behind.
    """
    if not _O_DIRECT:
        raise DirectIoRefused("this platform has no O_DIRECT")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_DIRECT, 0o640)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise DirectIoRefused(f"{path.parent} does not take O_DIRECT: {exc}") from exc
        raise
    try:
        with buffers.take() as buffer:
            size = _copy_and_write(fd, parts, buffer)
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        if exc.errno == errno.EINVAL:  # accepted at open, refused at write (some FUSE)
            path.unlink(missing_ok=True)
            raise DirectIoRefused(f"{path.parent} refused an O_DIRECT write: {exc}") from exc
        raise
    os.close(fd)
    return size


def _copy_and_write(fd: int, parts: Chunks, buffer: mmap.mmap) -> int:
    """Fill ``buffer`` from ``parts`` and write it out each time it is full; return the size."""
    capacity = len(buffer)
    filled = 0
    size = 0
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            count = min(len(view), capacity - filled)
            buffer[filled : filled + count] = view[:count]
            filled += count
            size += count
            view = view[count:]
            if filled == capacity:
                _write_all(fd, buffer, capacity)
                filled = 0
    if filled:
        padded = -(-filled // ALIGNMENT) * ALIGNMENT
        buffer[filled:padded] = bytes(padded - filled)
        _write_all(fd, buffer, padded)
    return size


def _write_all(fd: int, buffer: mmap.mmap, length: int) -> None:
    with memoryview(buffer) as whole:
        view = whole[:length]
        try:
            while view:
                written = os.write(fd, view)
                if written % ALIGNMENT and written != len(view):
                    raise OSError(errno.EIO, f"short unaligned direct write of {written} bytes")
                view = view[written:]
        finally:
            view.release()
