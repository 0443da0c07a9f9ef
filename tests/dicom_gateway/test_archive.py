"""Reading uploaded ZIPs: entries within limits, hostile names, bombs, nested archives."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from dicom_gateway import (
    ArchiveEntry,
    ArchiveError,
    ArchiveLimits,
    EntryOutcome,
    RefusalCode,
    is_zip,
    read_zip,
)
from tests.support.data import make_cr

_MIB = 1024 * 1024
_CENTRAL = b"PK\x01\x02"


def _zip(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buffer.getvalue()


def _part10() -> bytes:
    buffer = io.BytesIO()
    make_cr().save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _patch_central(data: bytes, *, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite a field of the (first) central directory header."""
    start = data.index(_CENTRAL)
    patched = bytearray(data)
    struct.pack_into(fmt, patched, start + offset, value)
    return bytes(patched)


def _read(data: bytes, limits: ArchiveLimits | None = None) -> dict[str, ArchiveEntry]:
    return {entry.name: entry for entry in read_zip(io.BytesIO(data), limits)}


class TestGoodArchives:
    def test_entries_come_out_with_their_content(self, tmp_path: Path) -> None:
        dicom = _part10()
        path = tmp_path / "study.zip"
        path.write_bytes(
            _zip({"IMG/0001.dcm": dicom, "notes.txt": b"hello", "IMG/": b"", "DICOMDIR": b"x"})
        )
        entries = list(read_zip(path))
        assert [(e.name, e.outcome) for e in entries] == [
            ("IMG/0001.dcm", EntryOutcome.READ),
            ("notes.txt", EntryOutcome.READ),  # not DICOM: the keeper refuses it
            ("DICOMDIR", EntryOutcome.SKIPPED),
        ]
        assert entries[0].data == dicom
        assert entries[0].size == len(dicom)
        assert entries[1].data == b"hello"
        assert entries[2].data == b""

    @pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
    def test_other_compression_methods_are_read(self, method: int) -> None:
        dicom = _part10()
        [entry] = read_zip(io.BytesIO(_zip({"a.dcm": dicom}, method)))
        assert entry.data == dicom

    def test_is_zip_knows_the_signature(self) -> None:
        assert is_zip(_zip({"a": b"1"}))
        assert is_zip(_zip({}))  # an empty archive is its end record only
        assert not is_zip(b"\0" * 128 + b"DICM")


class TestHostileNames:
    @pytest.mark.parametrize(
        "name",
        [
            "../evil.dcm",
            "a/../../evil.dcm",
            "/etc/passwd",
            "\\\\server\\share\\x",
            "C:/x.dcm",
            "..\\x",
        ],
    )
    def test_path_traversal_is_refused_unread(self, name: str) -> None:
        [entry] = read_zip(io.BytesIO(_zip({name: _part10()})))
        assert entry.outcome is EntryOutcome.REFUSED
        assert entry.code is RefusalCode.PATH_TRAVERSAL
        assert entry.data == b""
        assert "path traversal" in entry.reason

    def test_dots_inside_a_name_are_fine(self) -> None:
        [entry] = read_zip(io.BytesIO(_zip({"a..b/x..dcm": b"1"})))
        assert entry.outcome is EntryOutcome.READ

    def test_control_characters_are_not_shown(self) -> None:
        [entry] = read_zip(io.BytesIO(_zip({"a\x1b[31mred.dcm": b"1"})))
        assert entry.name == "a?[31mred.dcm"


class TestNestedArchives:
    def test_a_zip_inside_is_refused_by_name_and_by_content(self) -> None:
        inner = _zip({"x.dcm": _part10()})
        entries = _read(_zip({"inner.zip": inner, "disguised.dcm": inner, "x.tar.gz": b"1"}))
        for name in ("inner.zip", "disguised.dcm", "x.tar.gz"):
            entry = entries[name]
            assert entry.outcome is EntryOutcome.REFUSED
            assert entry.code is RefusalCode.NESTED_ARCHIVE
            assert entry.data == b""

    @pytest.mark.parametrize(
        "head", [b"\x1f\x8b\x08\x00", b"7z\xbc\xaf\x27\x1c\x00", b"Rar!\x1a\x07\x00", b"BZh91AY"]
    )
    def test_other_archive_formats_are_refused(self, head: bytes) -> None:
        [entry] = read_zip(io.BytesIO(_zip({"a.dcm": head + b"\0" * 600})))
        assert entry.code is RefusalCode.NESTED_ARCHIVE

    def test_a_tar_is_refused(self) -> None:
        import tarfile

        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo("x.dcm")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
        [entry] = read_zip(io.BytesIO(_zip({"a.dcm": buffer.getvalue()})))
        assert entry.code is RefusalCode.NESTED_ARCHIVE


class TestBombs:
    def test_a_high_compression_ratio_is_refused_before_reading(self) -> None:
        data = _zip({"bomb.dcm": b"\0" * (20 * _MIB), "ok.dcm": b"1"})
        assert len(data) < 100_000
        entries = _read(data)
        bomb = entries["bomb.dcm"]
        assert bomb.code is RefusalCode.ZIP_BOMB
        assert "to 1" in bomb.reason
        assert entries["ok.dcm"].outcome is EntryOutcome.READ

    def test_small_entries_that_compress_well_are_fine(self) -> None:
        [entry] = read_zip(io.BytesIO(_zip({"zeros.dcm": b"\0" * 500_000})))
        assert entry.outcome is EntryOutcome.READ

    def test_a_header_that_lies_about_the_size_stops_the_reading(self) -> None:
        # 16 MiB of zeros whose central directory claims 1000 bytes: the reader stops
        # after 1000 bytes and the CRC check refuses the entry.
        data = _zip({"liar.dcm": b"\0" * (16 * _MIB)})
        liar = _patch_central(data, offset=24, fmt="<I", value=1000)
        [entry] = read_zip(io.BytesIO(liar))
        assert entry.outcome is EntryOutcome.REFUSED
        assert entry.code is RefusalCode.DAMAGED
        assert entry.size <= 1000
        assert "CRC" in entry.reason

    def test_an_entry_over_the_size_limit_is_refused(self) -> None:
        limits = ArchiveLimits(max_entry_bytes=1000)
        entries = _read(_zip({"big.dcm": bytes(range(256)) * 8, "small.dcm": b"1"}), limits)
        assert entries["big.dcm"].code is RefusalCode.TOO_LARGE
        assert entries["small.dcm"].outcome is EntryOutcome.READ

    def test_a_declared_total_over_the_limit_refuses_the_archive_whole(self) -> None:
        limits = ArchiveLimits(max_total_bytes=3000)
        data = _zip({f"{n}.dcm": bytes(range(256)) * 4 for n in range(3)})
        with pytest.raises(ArchiveError, match="declares 3072 unpacked bytes") as caught:
            list(read_zip(io.BytesIO(data), limits))
        assert caught.value.code is RefusalCode.ZIP_BOMB

    def test_too_many_entries_refuse_the_archive_whole(self) -> None:
        data = _zip({f"{n}.dcm": b"1" for n in range(11)})
        with pytest.raises(ArchiveError, match="11 entries") as caught:
            list(read_zip(io.BytesIO(data), ArchiveLimits(max_entries=10)))
        assert caught.value.code is RefusalCode.TOO_MANY_ENTRIES


class TestBrokenArchives:
    def test_not_a_zip_is_refused_whole(self) -> None:
        with pytest.raises(ArchiveError, match="not a readable ZIP") as caught:
            list(read_zip(io.BytesIO(b"PK\x03\x04 but then nothing")))
        assert caught.value.code is RefusalCode.DAMAGED

    def test_an_encrypted_entry_is_refused(self) -> None:
        data = _patch_central(_zip({"secret.dcm": b"1" * 100}), offset=8, fmt="<H", value=1)
        [entry] = read_zip(io.BytesIO(data))
        assert entry.code is RefusalCode.ENCRYPTED

    def test_a_corrupted_entry_is_refused_and_the_next_one_read(self) -> None:
        data = bytearray(_zip({"a.dcm": bytes(range(256)) * 64, "b.dcm": b"fine"}))
        start = data.index(b"a.dcm") + len("a.dcm")
        data[start + 10 : start + 40] = b"\xff" * 30  # inside a.dcm's compressed bytes
        entries = _read(bytes(data))
        assert entries["a.dcm"].code is RefusalCode.DAMAGED
        assert entries["b.dcm"].data == b"fine"


class TestLimits:
    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("max_entries", 0, "`max_entries` must be a positive number, 0 is given"),
            ("max_entry_bytes", -1, "`max_entry_bytes` must be a positive number"),
            ("max_ratio", 1.0, "`max_ratio` must be above 1"),
        ],
    )
    def test_limits_are_checked(self, field: str, value: float, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            ArchiveLimits(**{field: value})
