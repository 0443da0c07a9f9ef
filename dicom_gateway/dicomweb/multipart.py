"""``multipart/related`` message bodies: spooling, parsing and building, in bounded memory.

A request body is first spooled (in memory up to a few MiB, then to a temporary file)
with a hard maximum size, so that an oversized upload is refused before anything of
it is kept. Its structure is then checked in one pass that holds only a small
window in memory, and each part is read on its own when it is used.

References
----------
RFC 2387 (``multipart/related``), RFC 2046 section 5.1 (multipart syntax: delimiters,
close delimiter, transport padding); DICOM PS3.18 section 8.6.1.2 (multipart payloads).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dicom_gateway.buffers import BufferReader
from dicom_gateway.dicomweb.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    StorageUnavailableError,
)

__all__ = [
    "PartSpan",
    "build_multipart",
    "multipart_content_type",
    "new_boundary",
    "read_part",
    "scan_parts",
    "spool_body",
]

_CRLF = b"\r\n"
_CHUNK = 1 << 20
_MAX_HEADER_BYTES = 16 * 1024
_MAX_BOUNDARY = 70  # RFC 2046 section 5.1.1
_SPOOL_IN_MEMORY = 4 << 20
_DECLARED_IN_MEMORY = 16 << 20
_BOUNDARY_CHARS = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
)


@dataclass(frozen=True, slots=True)
class PartSpan:
    """Where one part's content lies in the spooled body, with its header fields.

    ``headers`` has lower-case names; ``start`` and ``end`` are byte offsets of the
    content (``end`` excluded).
    """

    index: int
    headers: Mapping[str, str]
    start: int
    end: int

    @property
    def size(self) -> int:
        """Bytes of content."""
        return self.end - self.start

    @property
    def content_type(self) -> str:
        """The part's ``Content-Type`` (RFC 2046: ``text/plain`` when absent)."""
        return self.headers.get("content-type", "text/plain")


def new_boundary() -> str:
    """Return a fresh boundary that no DICOM content is expected to contain."""
    return f"soi-{uuid.uuid4().hex}"


def check_boundary(boundary: str) -> bytes:
    """Return ``boundary`` as bytes, checked against RFC 2046's syntax.

    Raises
    ------
    InvalidRequestError
        It is empty, longer than 70 characters, or has characters RFC 2046 forbids.
    """
    if not 0 < len(boundary) <= _MAX_BOUNDARY or not set(boundary) <= _BOUNDARY_CHARS:
        raise InvalidRequestError(
            f"multipart boundary {boundary[:100]!r} is not 1 to 70 characters of the "
            "RFC 2046 boundary alphabet"
        )
    return boundary.encode("ascii")


async def spool_body(
    chunks: AsyncIterator[bytes],
    *,
    max_bytes: int,
    directory: Path | None = None,
    declared_length: int | None = None,
) -> IO[bytes]:
    """Receive a request body into a temporary file, refusing it past ``max_bytes``.

    A body whose ``declared_length`` is at most 16 MiB (one radiograph, or a few
    smaller instances) is kept in memory, as a :class:`BufferReader` whose parts are
    then read in place. Any other is kept in memory up to 4 MiB,
    then on disk in ``directory``, and removed when closed. It is returned
    positioned at its start.

    Raises
    ------
    PayloadTooLargeError
        ``declared_length`` (``Content-Length``) or the bytes received exceed
        ``max_bytes``; nothing is kept.
    StorageUnavailableError
        The temporary file cannot be written (disk full).
    """
    if declared_length is not None and declared_length > max_bytes:
        raise PayloadTooLargeError(
            f"the request body of {declared_length} bytes exceeds the limit of {max_bytes} "
            "bytes (setting dicomweb_max_request_mb); send the instances in smaller requests"
        )
    in_memory = declared_length is not None and declared_length <= _DECLARED_IN_MEMORY
    if in_memory:
        # Writing the body to a file and reading it back twice costs more than the
        # memory of one request of this size; its chunks are joined once at the end.
        return await _receive_in_memory(chunks, min(max_bytes, declared_length or 0))
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - returned open
        max_size=_SPOOL_IN_MEMORY, dir=None if directory is None else str(directory)
    )
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            _check_size(received, max_bytes)
            spool.write(chunk)
        spool.seek(0)
    except OSError as exc:
        spool.close()
        raise StorageUnavailableError(f"cannot buffer the request body: {exc}") from exc
    except BaseException:
        spool.close()
        raise
    return spool


async def _receive_in_memory(chunks: AsyncIterator[bytes], max_bytes: int) -> IO[bytes]:
    parts: list[bytes] = []
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        _check_size(received, max_bytes)
        parts.append(chunk)
    return BufferReader(b"".join(parts)).as_binary_io()


def _check_size(received: int, max_bytes: int) -> None:
    if received > max_bytes:
        raise PayloadTooLargeError(
            f"the request body exceeds the limit of {max_bytes} bytes "
            "(setting dicomweb_max_request_mb); send the instances in smaller requests"
        )


def _find_all(stream: IO[bytes], pattern: bytes) -> Iterator[int]:
    """Yield the offsets of ``pattern`` in ``stream``, reading 1 MiB at a time."""
    if isinstance(stream, BufferReader):  # in memory: search it where it lies
        position = stream.find(pattern)
        while position != -1:
            yield position
            position = stream.find(pattern, position + 1)
        return
    stream.seek(0)
    carry = b""
    base = 0  # offset of carry[0]
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return
        window = carry + chunk
        position = window.find(pattern)
        while position != -1:
            yield base + position
            position = window.find(pattern, position + 1)
        keep = len(pattern) - 1
        carry = window[-keep:] if keep else b""
        base += len(window) - len(carry)


def _read_at(stream: IO[bytes], offset: int, size: int) -> bytes:
    stream.seek(offset)
    return stream.read(size)


def _parse_headers(block: bytes, index: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    try:
        text = block.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"the header fields of part {index} are not ASCII") from None
    for line in text.split("\r\n"):
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise InvalidRequestError(f"part {index} has a malformed header field {line[:100]!r}")
        headers[name.lower()] = value.strip()
    return headers


def scan_parts(stream: IO[bytes], boundary: str) -> list[PartSpan]:
    """Check the structure of a multipart body and return where each part lies.

    Parameters
    ----------
    stream:
        The body, e.g. from :func:`spool_body`.
    boundary:
        The ``boundary`` parameter of its ``Content-Type``.

    Raises
    ------
    InvalidRequestError
        The boundary is malformed, the body has no delimiter, no close delimiter, a
        part without a blank line after its header fields, or header fields that
        are not ASCII ``name: value`` lines.
    """
    delimiter = b"--" + check_boundary(boundary)
    positions: list[int] = []
    if _read_at(stream, 0, len(delimiter)) == delimiter:
        positions.append(0)
    positions += [offset + 2 for offset in _find_all(stream, _CRLF + delimiter)]
    if not positions:
        raise InvalidRequestError(
            f"the body holds no multipart delimiter '--{boundary[:80]}'; is the boundary "
            "parameter that of this body?"
        )
    spans: list[PartSpan] = []
    for number, position in enumerate(positions):
        after = position + len(delimiter)
        line = _read_at(stream, after, 2 + 1024)
        if line.startswith(b"--"):
            return spans
        padding = len(line) - len(line.lstrip(b" \t"))
        if line[padding : padding + 2] != _CRLF:
            raise InvalidRequestError(f"delimiter {number + 1} is not followed by a line break")
        if number + 1 == len(positions):
            break
        index = number + 1
        start = after + padding + 2
        end = positions[number + 1] - 2
        head = _read_at(stream, start, min(end - start, _MAX_HEADER_BYTES + 4))
        if head.startswith(_CRLF):
            headers: dict[str, str] = {}
            content_start = start + 2
        else:
            blank = head.find(_CRLF + _CRLF)
            if blank == -1:
                raise InvalidRequestError(
                    f"part {index} has no blank line after its header fields (within "
                    f"{_MAX_HEADER_BYTES} bytes)"
                )
            headers = _parse_headers(head[:blank], index)
            content_start = start + blank + 4
        spans.append(PartSpan(index, headers, content_start, max(end, content_start)))
    raise InvalidRequestError(
        f"the body ends without the close delimiter '--{boundary[:80]}--': it is truncated"
    )


def read_part(stream: IO[bytes], span: PartSpan) -> bytes | memoryview:
    """Return the content of one part (a view of it, not a copy, for a body in memory)."""
    if isinstance(stream, BufferReader):
        return stream.view(span.start, span.end)
    return _read_at(stream, span.start, span.size)


def multipart_content_type(part_type: str, boundary: str, **parameters: str) -> str:
    """Return the ``Content-Type`` of a ``multipart/related`` body of ``part_type`` parts."""
    extra = "".join(f"; {name.replace('_', '-')}={value}" for name, value in parameters.items())
    return f'multipart/related; type="{part_type}"{extra}; boundary={boundary}'


def build_multipart(
    parts: Iterable[tuple[Mapping[str, str], Iterable[bytes]]], boundary: str
) -> Iterator[bytes]:
    """Yield a ``multipart/related`` body part by part (content is not copied whole).

    Parameters
    ----------
    parts:
        Each part's header fields and its content as chunks.
    boundary:
        The boundary, as in the ``Content-Type`` of the response.
    """
    delimiter = b"--" + check_boundary(boundary)
    for headers, content in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        yield delimiter + _CRLF + head.encode("ascii") + _CRLF
        yield from content
        yield _CRLF
    yield delimiter + b"--" + _CRLF
