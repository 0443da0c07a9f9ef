"""ZIP archives of DICOM files, read entry by entry within limits, never extracted by name.

An uploaded ZIP is read in place: each entry's content is decompressed into memory,
at most :attr:`ArchiveLimits.max_entry_bytes` of it, and handed over with the
entry's name, which is only ever shown, never used as a path. Entries that must not
be kept are handed over refused, with a :class:`RefusalCode` and a reason:

- names that are absolute or climb out of the archive with ``..`` (path traversal);
- nested archives (a ZIP, gzip, 7-Zip, RAR, bzip2, xz or tar inside the ZIP);
- encrypted entries and compression methods Python cannot read;
- entries larger than the limit, or compressed more than ``max_ratio`` to 1, whether
  the header says so or the bytes read show it (a header that lies about the size
  stops the reading at the declared size, and the CRC check then fails);
- entries past the archive's total unpacked limit: reading stops there.

An archive whose central directory cannot be read, that has too many entries, or
whose declared unpacked size is over the total limit is refused whole
(:class:`ArchiveError`) before any entry is read.

References
----------
PKWARE APPNOTE.TXT 6.3 (the ZIP format); DICOM PS3.10 section 8 (DICOMDIR in a
file-set), PS3.12 (media formats).
"""

from __future__ import annotations

import lzma
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO

from dicom_gateway.errors import GatewayError

__all__ = [
    "ArchiveEntry",
    "ArchiveError",
    "ArchiveLimits",
    "EntryOutcome",
    "RefusalCode",
    "is_zip",
    "read_zip",
]

_MIB = 1024 * 1024
_READ_CHUNK = 256 * 1024
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
#: Magic numbers of archive and compressed formats, which are not opened inside a ZIP.
_NESTED_MAGICS = (
    *_ZIP_MAGICS,
    b"\x1f\x8b",  # gzip
    b"7z\xbc\xaf\x27\x1c",  # 7-Zip
    b"Rar!\x1a\x07",  # RAR
    b"BZh",  # bzip2
    b"\xfd7zXZ\x00",  # xz
)
_NESTED_SUFFIXES = (
    ".zip",
    ".gz",
    ".tgz",
    ".tar",
    ".7z",
    ".rar",
    ".bz2",
    ".xz",
    ".zst",
)
_TAR_MAGIC_OFFSET = 257
_DRIVE = re.compile(r"^[A-Za-z]:")
_ENCRYPTED = 0x1


class ArchiveError(GatewayError):
    """An archive is refused whole: nothing of it is read.

    Parameters
    ----------
    code:
        Why, as a code a client can translate.
    reason:
        Why, in words.
    """

    def __init__(self, code: RefusalCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class RefusalCode(StrEnum):
    """Why an entry or an archive is refused."""

    PATH_TRAVERSAL = "path-traversal"
    NESTED_ARCHIVE = "nested-archive"
    ZIP_BOMB = "zip-bomb"
    TOO_LARGE = "too-large"
    TOO_MANY_ENTRIES = "too-many-entries"
    ENCRYPTED = "encrypted"
    DAMAGED = "damaged"


class EntryOutcome(StrEnum):
    """What the reader did with an entry."""

    #: Read; its content is to be checked as a DICOM file.
    READ = "read"
    #: Left out on purpose: a DICOMDIR (the file-set's index, not an instance).
    SKIPPED = "skipped"
    #: Not read, or read and refused; see the code and reason.
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """How much an archive may hold.

    Attributes
    ----------
    max_entries:
        Most entries (directories included) of one archive.
    max_entry_bytes:
        Largest unpacked entry.
    max_total_bytes:
        Most unpacked bytes of the whole archive.
    max_ratio:
        Highest compression ratio (unpacked to packed) of an entry.
    ratio_floor_bytes:
        The ratio is checked for entries larger than this only (a small file of
        zeros compresses well and harms nothing).
    """

    max_entries: int = 10_000
    max_entry_bytes: int = 512 * _MIB
    max_total_bytes: int = 8 * 1024 * _MIB
    max_ratio: float = 100.0
    ratio_floor_bytes: int = _MIB

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_entry_bytes", "max_total_bytes"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"`{name}` must be a positive number, {value} is given")
        if self.max_ratio <= 1:
            raise ValueError(f"`max_ratio` must be above 1, {self.max_ratio} is given")


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One file of an archive, and what the reader did with it.

    Attributes
    ----------
    name:
        The entry's name in the archive (for people; never used as a path).
    size:
        Unpacked bytes: those read, or the declared size of an entry not read.
    outcome:
        Read, skipped or refused.
    data:
        The content of a read entry; empty otherwise.
    code:
        Why it is refused (``None`` unless refused).
    reason:
        Why it is refused or skipped, in words.
    """

    name: str
    size: int
    outcome: EntryOutcome
    data: bytes = b""
    code: RefusalCode | None = None
    reason: str = ""


def is_zip(head: bytes) -> bool:
    """Whether the first bytes of a file are those of a ZIP archive."""
    return head[:4] in _ZIP_MAGICS


def _is_nested_archive(name: str, head: bytes) -> bool:
    if name.lower().endswith(_NESTED_SUFFIXES):
        return True
    if any(head.startswith(magic) for magic in _NESTED_MAGICS):
        return True
    return head[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] == b"ustar"


def _traversal(name: str) -> bool:
    """Whether a name is absolute or climbs out of the archive's root."""
    path = name.replace("\\", "/")
    if path.startswith("/") or _DRIVE.match(path):
        return True
    return ".." in path.split("/")


def _shown(name: str) -> str:
    """The name without control characters, cut to 512 characters, for the receipt."""
    return "".join(c if c.isprintable() else "?" for c in name)[:512]


def _refused(info: zipfile.ZipInfo, code: RefusalCode, reason: str, size: int = -1) -> ArchiveEntry:
    return ArchiveEntry(
        name=_shown(info.filename),
        size=info.file_size if size < 0 else size,
        outcome=EntryOutcome.REFUSED,
        code=code,
        reason=reason,
    )


def _open(source: Path | IO[bytes]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ArchiveError(
            RefusalCode.DAMAGED, f"not a readable ZIP archive: {exc}".rstrip(": ")
        ) from None


class _Budget:
    """The unpacked bytes the archive has left."""

    def __init__(self, total: int) -> None:
        self.left = total


def read_zip(
    source: Path | IO[bytes], limits: ArchiveLimits | None = None
) -> Iterator[ArchiveEntry]:
    """Read the entries of a ZIP archive within ``limits``, in the archive's order.

    Directories are left out. A DICOMDIR is skipped. Every other entry comes out
    read (with its content) or refused (with a code and a reason); once the total
    unpacked limit is crossed, reading stops and the entries left come out refused.

    Parameters
    ----------
    source:
        The archive's path, or a seekable binary file.
    limits:
        The limits (default: :class:`ArchiveLimits`'s).

    Raises
    ------
    ArchiveError
        The archive cannot be read, has more than ``max_entries`` entries, or
        declares more than ``max_total_bytes`` unpacked: no entry is read.
    """
    limits = limits or ArchiveLimits()
    with _open(source) as archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise ArchiveError(
                RefusalCode.TOO_MANY_ENTRIES,
                f"the archive has {len(infos)} entries, more than the limit of "
                f"{limits.max_entries}",
            )
        declared = sum(info.file_size for info in infos)
        if declared > limits.max_total_bytes:
            raise ArchiveError(
                RefusalCode.ZIP_BOMB,
                f"the archive declares {declared} unpacked bytes, more than the limit of "
                f"{limits.max_total_bytes}",
            )
        budget = _Budget(limits.max_total_bytes)
        for info in infos:
            if info.is_dir():
                continue
            if budget.left <= 0:
                yield _refused(
                    info,
                    RefusalCode.ZIP_BOMB,
                    "not read: the archive's unpacked size crossed the limit of "
                    f"{limits.max_total_bytes} bytes before this entry",
                )
                continue
            yield _read_entry(archive, info, limits, budget)


def _check_declared(info: zipfile.ZipInfo, limits: ArchiveLimits) -> ArchiveEntry | None:
    """Refuse an entry on what its header says, before reading it."""
    name = info.filename
    if _traversal(name):
        return _refused(
            info,
            RefusalCode.PATH_TRAVERSAL,
            "path traversal: the name is absolute or climbs out of the archive with '..'",
        )
    if info.flag_bits & _ENCRYPTED:
        return _refused(info, RefusalCode.ENCRYPTED, "the entry is encrypted")
    if name.lower().endswith(_NESTED_SUFFIXES):
        return _refused(
            info, RefusalCode.NESTED_ARCHIVE, "nested archive: archives inside are not opened"
        )
    if info.file_size > limits.max_entry_bytes:
        return _refused(
            info,
            RefusalCode.TOO_LARGE,
            f"the entry declares {info.file_size} bytes, more than the limit of "
            f"{limits.max_entry_bytes}",
        )
    packed = max(info.compress_size, 1)
    if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * packed:
        return _refused(
            info,
            RefusalCode.ZIP_BOMB,
            f"ZIP bomb: compressed {info.file_size / packed:.0f} to 1, more than "
            f"{limits.max_ratio:.0f} to 1",
        )
    return None


def _read_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ArchiveLimits, budget: _Budget
) -> ArchiveEntry:
    refusal = _check_declared(info, limits)
    if refusal is not None:
        return refusal
    if posixpath.basename(info.filename.replace("\\", "/")).upper() == "DICOMDIR":
        return ArchiveEntry(
            name=_shown(info.filename),
            size=info.file_size,
            outcome=EntryOutcome.SKIPPED,
            reason="DICOMDIR: the file-set's index, not an image",
        )
    packed = max(info.compress_size, 1)
    chunks: list[bytes] = []
    read = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_READ_CHUNK):
                read += len(chunk)
                budget.left -= len(chunk)
                if read > limits.max_entry_bytes:
                    return _refused(
                        info,
                        RefusalCode.TOO_LARGE,
                        f"the entry unpacks to more than the limit of {limits.max_entry_bytes} "
                        "bytes",
                        read,
                    )
                if read > limits.ratio_floor_bytes and read > limits.max_ratio * packed:
                    return _refused(
                        info,
                        RefusalCode.ZIP_BOMB,
                        f"ZIP bomb: unpacks to more than {limits.max_ratio:.0f} times its "
                        f"{packed} compressed bytes",
                        read,
                    )
                if budget.left < 0:
                    return _refused(
                        info,
                        RefusalCode.ZIP_BOMB,
                        "the archive unpacks to more than the limit of "
                        f"{limits.max_total_bytes} bytes",
                        read,
                    )
                chunks.append(chunk)
    except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required"
        return _refused(info, RefusalCode.ENCRYPTED, f"the entry cannot be read: {exc}", read)
    except NotImplementedError as exc:
        return _refused(info, RefusalCode.DAMAGED, f"compression method not supported: {exc}", read)
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError) as exc:
        return _refused(info, RefusalCode.DAMAGED, f"the entry is damaged: {exc}", read)
    data = b"".join(chunks)
    if _is_nested_archive(info.filename, data[: _TAR_MAGIC_OFFSET + 8]):
        return _refused(
            info,
            RefusalCode.NESTED_ARCHIVE,
            "nested archive: archives inside are not opened",
            read,
        )
    return ArchiveEntry(name=_shown(info.filename), size=read, outcome=EntryOutcome.READ, data=data)
