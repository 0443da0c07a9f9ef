"""Reading received bytes in place.

A radiograph arrives as one buffer of several megabytes. ``io.BytesIO`` copies any
buffer other than a ``bytes`` object it is given, and slicing ``bytes`` copies too;
each copy of an 8 MB instance costs milliseconds of CPU (and as many page faults).
:class:`BufferReader` reads a buffer where it lies, and parts of it are handed on as
``memoryview`` slices.
"""

from __future__ import annotations

import io
from typing import BinaryIO, cast

__all__ = ["BufferReader", "BytesLike"]

#: Bytes received, or a view of part of them.
BytesLike = bytes | bytearray | memoryview


class BufferReader(io.BufferedIOBase):
    """A read-only, seekable binary stream over ``data``, which it never copies.

    ``read`` returns a copy of only the bytes asked for; :meth:`view` returns a
    slice of the buffer without copying it.
    """

    def __init__(self, data: BytesLike) -> None:
        super().__init__()
        self.data = data
        self._view = memoryview(data).cast("B")
        self._position = 0

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = len(self._view) + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def read(self, size: int | None = -1) -> bytes:
        start = min(self._position, len(self._view))
        end = len(self._view) if size is None or size < 0 else min(start + size, len(self._view))
        self._position = max(self._position, end)
        return bytes(self._view[start:end])

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def view(self, start: int = 0, end: int | None = None) -> memoryview:
        """Return ``data[start:end]`` without copying it."""
        return self._view[start:end]

    def find(self, pattern: bytes, start: int = 0) -> int:
        """Return the offset of ``pattern`` at or after ``start``, or -1."""
        if isinstance(self.data, bytes | bytearray):
            return self.data.find(pattern, start)
        return bytes(self._view).find(pattern, start)

    def as_binary_io(self) -> BinaryIO:
        """This stream, typed as the ``BinaryIO`` that readers such as pydicom's expect."""
        return cast(BinaryIO, self)
