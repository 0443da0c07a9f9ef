"""DIMSE service class user: C-ECHO and C-STORE to another application entity."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pynetdicom import AE, build_context

from dicom_gateway.errors import GatewayError
from dicom_gateway.sop_classes import VERIFICATION_SOP_CLASS

__all__ = ["FileResult", "SendReport", "Target", "collect_files", "echo", "send"]

_MAX_CONTEXTS = 128
_TARGET_RE = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True, slots=True)
class Target:
    """A remote application entity: ``AE@host:port``."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse ``AE@host:port``; raise ``ValueError`` naming the text if it is not one."""
        match = _TARGET_RE.match(text.strip())
        if match is None:
            raise ValueError(f"expected AE@host:port, {text!r} is given")
        port = int(match["port"])
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1 to 65535, {port} is given")
        return cls(match["ae"].strip(), match["host"].strip("[]"), port)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class FileResult:
    """What happened to one file."""

    path: Path
    status: int | None
    comment: str = ""

    @property
    def ok(self) -> bool:
        """Whether the receiver kept it (success or warning)."""
        return self.status is not None and (self.status == 0 or self.status >> 12 == 0xB)


@dataclass
class SendReport:
    """The outcome of sending files."""

    results: list[FileResult] = field(default_factory=list)
    skipped: list[FileResult] = field(default_factory=list)

    @property
    def sent(self) -> int:
        """How many files the receiver kept."""
        return sum(1 for result in self.results if result.ok)

    @property
    def failed(self) -> list[FileResult]:
        """Files the receiver refused or that could not be sent."""
        return [result for result in self.results if not result.ok]


def _ae(calling_ae: str) -> AE:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = 30
    ae.dimse_timeout = 120
    ae.network_timeout = 60
    return ae


def _check_reachable(target: Target) -> None:
    """Raise a clear error when nothing listens at the target's address."""
    try:
        with socket.create_connection((target.host, target.port), timeout=10):
            pass
    except OSError as exc:
        raise GatewayError(f"cannot reach {target}: {exc.strerror or exc}") from None


def echo(target: Target, *, calling_ae: str = "SOI-SCU") -> int:
    """Send a C-ECHO and return its status.

    Raises
    ------
    GatewayError
        The association was rejected or the peer could not be reached.
    """
    _check_reachable(target)
    ae = _ae(calling_ae)
    ae.add_requested_context(VERIFICATION_SOP_CLASS)
    assoc = ae.associate(target.host, target.port, ae_title=target.ae_title)
    if not assoc.is_established:
        raise GatewayError(_association_failure(assoc, target))
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if "Status" not in status:
        raise GatewayError(f"{target} gave no C-ECHO response")
    return int(status.Status)


def collect_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Yield the files named, and the files inside folders named, in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def send(
    paths: Sequence[Path],
    target: Target,
    *,
    calling_ae: str = "SOI-SCU",
    on_file: Callable[[FileResult], None] | None = None,
) -> SendReport:
    """Send DICOM files with C-STORE, each as it is on disk (no re-encoding).

    Files that are not DICOM are skipped and listed in the report.

    Raises
    ------
    GatewayError
        The association was rejected or the peer could not be reached.
    """
    _check_reachable(target)
    report = SendReport()
    batches: list[list[tuple[Path, str, str]]] = [[]]
    contexts: list[set[tuple[str, str]]] = [set()]
    for path in collect_files(paths):
        try:
            meta = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
            sop_class = str(meta.file_meta.MediaStorageSOPClassUID or meta.SOPClassUID)
            syntax = str(meta.file_meta.TransferSyntaxUID)
        except (InvalidDicomError, AttributeError, OSError, ValueError, EOFError) as exc:
            skipped = FileResult(path, None, f"not a DICOM file: {exc}")
            report.skipped.append(skipped)
            if on_file is not None:
                on_file(skipped)
            continue
        key = (sop_class, syntax)
        if key not in contexts[-1] and len(contexts[-1]) >= _MAX_CONTEXTS:
            batches.append([])
            contexts.append(set())
        contexts[-1].add(key)
        batches[-1].append((path, sop_class, syntax))

    for batch, batch_contexts in zip(batches, contexts, strict=True):
        if not batch:
            continue
        ae = _ae(calling_ae)
        requested = [build_context(sop, [syntax]) for sop, syntax in sorted(batch_contexts)]
        assoc = ae.associate(target.host, target.port, contexts=requested, ae_title=target.ae_title)
        if not assoc.is_established:
            raise GatewayError(_association_failure(assoc, target))
        try:
            for path, _sop, _syntax in batch:
                result = _store_one(assoc, path)
                report.results.append(result)
                if on_file is not None:
                    on_file(result)
        finally:
            if assoc.is_established:
                assoc.release()
    return report


def _store_one(assoc: object, path: Path) -> FileResult:
    try:
        status = assoc.send_c_store(path)  # type: ignore[attr-defined]
    except (ValueError, AttributeError, OSError, RuntimeError, EOFError) as exc:
        return FileResult(path, None, f"not sent: {exc}")
    except NameError:
        # pynetdicom reaches an unset name when pydicom reads the file into an empty
        # data set: nothing readable follows the file meta (a truncated file).
        return FileResult(path, None, "not sent: no data set can be read after the file meta")
    if "Status" not in status:
        return FileResult(path, None, "no response (association lost)")
    return FileResult(path, int(status.Status), str(status.get("ErrorComment", "")))


def _association_failure(assoc: object, target: Target) -> str:
    if getattr(assoc, "is_rejected", False):
        return f"{target} rejected the association (check that it lists this AE as a peer)"
    if getattr(assoc, "is_aborted", False):
        return f"{target} aborted the association"
    return f"cannot reach {target}"
