"""multipart/related bodies: spooled with a size limit, scanned, read and built."""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO

import pytest

from dicom_gateway.buffers import BufferReader
from dicom_gateway.dicomweb import (
    InvalidRequestError,
    PayloadTooLargeError,
    build_multipart,
    read_part,
    scan_parts,
    spool_body,
)


def _body(parts: list[bytes], boundary: str = "b0undary") -> bytes:
    built = build_multipart(
        [({"Content-Type": "application/dicom"}, [part]) for part in parts], boundary
    )
    return b"".join(built)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


#: A body as spooled to a file (read through its stream) and as kept in memory (read in place).
STREAMS: list[Callable[[bytes], IO[bytes]]] = [io.BytesIO, lambda data: BufferReader(data)]


class TestScanParts:
    @pytest.mark.parametrize("stream_of", STREAMS, ids=["spooled", "in-memory"])
    def test_round_trip(self, stream_of: Callable[[bytes], IO[bytes]]) -> None:
        contents = [b"first", b"", b"\r\n--not-the-boundary\r\n", bytes(range(256)) * 5000]
        stream = stream_of(_body(contents))
        spans = scan_parts(stream, "b0undary")
        assert [bytes(read_part(stream, span)) for span in spans] == contents
        assert [span.index for span in spans] == [1, 2, 3, 4]
        assert spans[0].content_type == "application/dicom"

    def test_preamble_epilogue_and_padding(self) -> None:
        data = (
            b"ignored preamble\r\n--xyz  \r\ncontent-type: text/plain\r\n\r\nhello"
            b"\r\n--xyz--\r\nignored epilogue --xyz\r\n"
        )
        stream = io.BytesIO(data)
        [span] = scan_parts(stream, "xyz")
        assert read_part(stream, span) == b"hello"
        assert span.headers == {"content-type": "text/plain"}

    def test_part_without_headers_is_text(self) -> None:
        stream = io.BytesIO(b"--q\r\n\r\nbody\r\n--q--")
        [span] = scan_parts(stream, "q")
        assert span.content_type == "text/plain"
        assert read_part(stream, span) == b"body"

    @pytest.mark.parametrize("stream_of", STREAMS, ids=["spooled", "in-memory"])
    def test_delimiter_split_across_reads(self, stream_of: Callable[[bytes], IO[bytes]]) -> None:
        # The first part ends exactly where the 1 MiB read window ends.
        head = b"--bb\r\n\r\n"
        filler = b"x" * ((1 << 20) - len(head) - 3)
        data = head + filler + b"\r\n--bb\r\n\r\ny\r\n--bb--\r\n"
        stream = stream_of(data)
        spans = scan_parts(stream, "bb")
        assert [bytes(read_part(stream, s)) for s in spans] == [filler, b"y"]

    def test_parts_of_a_body_in_memory_are_views_not_copies(self) -> None:
        stream = BufferReader(_body([b"first", b"second"]))
        parts = [read_part(stream, span) for span in scan_parts(stream, "b0undary")]
        assert all(isinstance(part, memoryview) for part in parts)
        assert [bytes(part) for part in parts] == [b"first", b"second"]

    @pytest.mark.parametrize(
        ("data", "match"),
        [
            (b"no delimiter at all", "no multipart delimiter"),
            (b"--b\r\n\r\ntruncated", "close delimiter"),
            (b"--b\r\nContent-Type: a/b\r\nno blank line\r\n--b--", "no blank line"),
            (b"--bX\r\n\r\n\r\n--b--", "not followed by a line break"),
            (b"--b\r\nbad header\r\n\r\nx\r\n--b--", "malformed header"),
            (b"--b\r\nName: \xff\r\n\r\nx\r\n--b--", "not ASCII"),
        ],
    )
    def test_malformed(self, data: bytes, match: str) -> None:
        with pytest.raises(InvalidRequestError, match=match):
            scan_parts(io.BytesIO(data), "b")

    @pytest.mark.parametrize("boundary", ["", "x" * 71, "a\r\nb", "é"])
    def test_bad_boundary(self, boundary: str) -> None:
        with pytest.raises(InvalidRequestError, match="boundary"):
            scan_parts(io.BytesIO(b"--x--"), boundary)

    def test_empty_body_has_no_part(self) -> None:
        assert scan_parts(io.BytesIO(b"--b--\r\n"), "b") == []


class TestSpoolBody:
    def test_keeps_the_body(self, tmp_path: object) -> None:
        data = bytes(range(256)) * 40_000  # 10 MB: spills to disk
        spool = asyncio.run(spool_body(_chunks(data, 65536), max_bytes=len(data)))
        try:
            assert spool.read() == data
        finally:
            spool.close()

    def test_a_body_of_declared_length_up_to_16_mib_is_kept_in_memory(self) -> None:
        data = bytes(range(256)) * 40_000  # 10 MB, as one radiograph
        spool = asyncio.run(
            spool_body(_chunks(data, 65536), max_bytes=1 << 30, declared_length=len(data))
        )
        try:
            assert isinstance(spool, BufferReader)
            assert spool.read() == data
        finally:
            spool.close()

    def test_a_larger_declared_body_is_spooled(self, tmp_path: Path) -> None:
        data = b"\x5a" * ((16 << 20) + 1)
        spool = asyncio.run(
            spool_body(
                _chunks(data, 1 << 20),
                max_bytes=1 << 30,
                directory=tmp_path,
                declared_length=len(data),
            )
        )
        try:
            assert isinstance(spool, tempfile.SpooledTemporaryFile)
            assert spool.read() == data
        finally:
            spool.close()

    def test_no_more_than_the_declared_length_is_kept(self) -> None:
        with pytest.raises(PayloadTooLargeError, match="exceeds the limit of 1000 bytes"):
            asyncio.run(
                spool_body(_chunks(b"x" * 1001, 100), max_bytes=1 << 30, declared_length=1000)
            )

    def test_refuses_a_declared_length_over_the_limit(self) -> None:
        with pytest.raises(PayloadTooLargeError, match="of 2049 bytes"):
            asyncio.run(spool_body(_chunks(b"", 1), max_bytes=2048, declared_length=2049))

    def test_refuses_a_stream_over_the_limit(self) -> None:
        with pytest.raises(PayloadTooLargeError, match="exceeds the limit of 1000 bytes"):
            asyncio.run(spool_body(_chunks(b"x" * 1001, 100), max_bytes=1000))
