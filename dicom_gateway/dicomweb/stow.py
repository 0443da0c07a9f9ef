"""STOW-RS: storing the instances of a ``multipart/related; type="application/dicom"``
request, each through the same ingest as a C-STORE.

Each instance is acknowledged only after its file is fsynced and renamed into place
and its index entry is committed (:class:`~dicom_gateway.ingest.Ingestor`). An
instance of a study, series or instance UID that another facility holds is refused
(Failure Reason 0x0124, not authorized), so that a caller never adds to, or learns
the content of, another facility's study.

References
----------
DICOM PS3.18 section 10.5 (Store Transaction), Annex I (Store Instances Response
Module, Failure Reasons); PS3.10 section 7 (the DICOM file format of each part).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import IO, Any

import structlog
from pydicom import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset

from dicom_gateway.buffers import BufferReader, BytesLike
from dicom_gateway.dicomweb.errors import InvalidRequestError, UnsupportedMediaTypeError
from dicom_gateway.dicomweb.media import DICOM, MULTIPART_RELATED, parse_media_type
from dicom_gateway.dicomweb.multipart import PartSpan, read_part, scan_parts
from dicom_gateway.ingest import Ingestor, Source
from dicom_gateway.instance import ParsedInstance, valid_uid
from dicom_gateway.sop_classes import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES, sop_class_name
from dicom_gateway.status import StoreStatus
from store import facilities_holding

__all__ = ["InstanceResult", "StowReport", "StowService", "check_stow_content_type"]

_log = structlog.get_logger("soi.dicomweb.stow")
_PREAMBLE = 128


@dataclass(frozen=True, slots=True)
class InstanceResult:
    """What happened to one part of a STOW-RS request.

    ``status`` is :attr:`StoreStatus.SUCCESS` or the Failure Reason; ``reason``
    says why in words (empty on success). UIDs are empty when the part could not
    be read far enough to know them.
    """

    part: int
    status: StoreStatus
    reason: str = ""
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    retrieve_url: str = ""

    @property
    def stored(self) -> bool:
        """Whether the instance is kept (newly or already)."""
        return self.status == StoreStatus.SUCCESS


@dataclass(frozen=True, slots=True)
class StowReport:
    """The outcome of a STOW-RS request: its HTTP status and response data set."""

    results: tuple[InstanceResult, ...]
    study_url: str = ""
    warnings: tuple[str, ...] = field(default=())

    @property
    def http_status(self) -> int:
        """200 if every instance is stored, 202 if some are, 409 if none is
        (PS3.18 Table 10.5.3-1)."""
        stored = sum(result.stored for result in self.results)
        if stored == len(self.results):
            return 200
        return 202 if stored else 409

    def dataset(self) -> Dataset:
        """The Store Instances Response Module (PS3.18 Table I.1-1)."""
        response = Dataset()
        response.RetrieveURL = self.study_url
        failed = [result for result in self.results if not result.stored]
        stored = [result for result in self.results if result.stored]
        if failed:
            response.FailedSOPSequence = [_failed_item(result) for result in failed]
        if stored:
            response.ReferencedSOPSequence = [_referenced_item(result) for result in stored]
        return response

    def to_json(self) -> dict[str, Any]:
        """The response data set in the DICOM JSON model."""
        result: dict[str, Any] = self.dataset().to_json_dict()
        return result


def _failed_item(result: InstanceResult) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = result.sop_class_uid
    item.ReferencedSOPInstanceUID = result.sop_instance_uid
    item.FailureReason = int(result.status)
    return item


def _referenced_item(result: InstanceResult) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = result.sop_class_uid
    item.ReferencedSOPInstanceUID = result.sop_instance_uid
    item.RetrieveURL = result.retrieve_url
    return item


def check_stow_content_type(content_type: str | None) -> str:
    """Return the boundary of a STOW-RS request body, or say why it is refused.

    Raises
    ------
    UnsupportedMediaTypeError
        The body is not ``multipart/related`` or its ``type`` is not
        ``application/dicom`` (the metadata-and-bulk-data forms are not supported).
    InvalidRequestError
        The ``Content-Type`` is malformed or has no boundary.
    """
    if not content_type:
        raise UnsupportedMediaTypeError(
            'the request has no Content-Type; send multipart/related; type="application/dicom"'
        )
    media_type, parameters = parse_media_type(content_type)
    part_type = parse_media_type(parameters["type"])[0] if "type" in parameters else DICOM
    if media_type != MULTIPART_RELATED or part_type != DICOM:
        shown = (
            media_type if media_type != MULTIPART_RELATED else f'{media_type}; type="{part_type}"'
        )
        raise UnsupportedMediaTypeError(
            f'{shown} is not supported; send multipart/related; type="application/dicom" '
            "with one DICOM file (PS3.10) per part"
        )
    boundary = parameters.get("boundary", "")
    if not boundary:
        raise InvalidRequestError("the multipart/related Content-Type has no boundary parameter")
    return boundary


class _PartError(Exception):
    """A part cannot be read as a DICOM file; carries the Failure Reason."""

    def __init__(self, status: StoreStatus, reason: str, **uids: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.uids = uids


def _read_file_meta(data: BytesLike) -> tuple[Dataset, int]:
    """Return the File Meta Information of a DICOM file and where its data set starts.

    A file without the 128-byte preamble and ``DICM`` prefix whose first element is
    of group 0002 is accepted too, as some clients send one (pydicom's ``dcmwrite``
    of a data set built in memory).
    """
    if len(data) >= _PREAMBLE + 4 and data[_PREAMBLE : _PREAMBLE + 4] == b"DICM":
        start = _PREAMBLE + 4
    elif data[:2] == b"\x02\x00":
        start = 0
    else:
        raise _PartError(
            StoreStatus.CANNOT_DECODE,
            "not a DICOM file (PS3.10): no 'DICM' prefix after the 128-byte preamble",
        )
    stream = BufferReader(data)
    stream.seek(start)
    try:
        meta = read_dataset(
            stream.as_binary_io(), False, True, stop_when=lambda tag, vr, length: tag.group != 2
        )
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError) as exc:
        raise _PartError(
            StoreStatus.CANNOT_DECODE, f"the File Meta Information cannot be read: {exc}"
        ) from None
    return meta, stream.tell()


def _meta_uid(meta: Dataset, keyword: str) -> str:
    value = meta.get(keyword, "")
    return str(value or "").strip().rstrip("\x00")


class StowService:
    """Stores the instances of STOW-RS requests.

    Parameters
    ----------
    ingestor:
        The ingest shared with the DIMSE listener.
    accepted_sop_classes:
        Storage SOP classes accepted (as for C-STORE).
    transfer_syntaxes:
        Transfer syntaxes accepted (as for C-STORE).
    """

    def __init__(
        self,
        *,
        ingestor: Ingestor,
        accepted_sop_classes: Collection[str] = STORAGE_SOP_CLASSES,
        transfer_syntaxes: Collection[str] = TRANSFER_SYNTAXES,
    ) -> None:
        self.ingestor = ingestor
        self.accepted_sop_classes = frozenset(str(uid) for uid in accepted_sop_classes)
        self.transfer_syntaxes = frozenset(str(uid) for uid in transfer_syntaxes)

    def store(
        self,
        body: IO[bytes],
        *,
        boundary: str,
        source: Source,
        base_url: str,
        study_instance_uid: str | None = None,
    ) -> StowReport:
        """Store every part of a request body; never raises for a bad instance.

        Parameters
        ----------
        body:
            The spooled request body.
        boundary:
            Its multipart boundary (see :func:`check_stow_content_type`).
        source:
            Who sends, and the facility the instances are stored for.
        base_url:
            The service's root URL, for the Retrieve URLs of the response.
        study_instance_uid:
            The study the request targets (``POST /studies/{uid}``): instances of
            another study fail with 0xC409.

        Raises
        ------
        InvalidRequestError
            The body is not a well-formed multipart body, or holds no part: nothing
            is stored.

        References
        ----------
        DICOM PS3.18 sections 10.5.1 (request) and 10.5.3 (response).
        """
        if study_instance_uid is not None and not valid_uid(study_instance_uid):
            raise InvalidRequestError(f"{study_instance_uid[:80]!r} is not a valid UID")
        spans = scan_parts(body, boundary)
        if not spans:
            raise InvalidRequestError("the multipart body holds no part: nothing to store")
        results = [
            self._store_part(body, span, source, base_url, study_instance_uid) for span in spans
        ]
        studies = {result.study_instance_uid for result in results if result.stored}
        target = study_instance_uid or (next(iter(studies)) if len(studies) == 1 else "")
        study_url = f"{base_url}/studies/{target}" if target and studies else ""
        warnings = tuple(
            f"part {result.part}: {result.reason}" for result in results if not result.stored
        )
        return StowReport(results=tuple(results), study_url=study_url, warnings=warnings)

    def _store_part(
        self,
        body: IO[bytes],
        span: PartSpan,
        source: Source,
        base_url: str,
        study_instance_uid: str | None,
    ) -> InstanceResult:
        try:
            return self._store_dicom_part(body, span, source, base_url, study_instance_uid)
        except _PartError as exc:
            _log.warning("STOW-RS part refused", part=span.index, reason=exc.reason)
            return InstanceResult(part=span.index, status=exc.status, reason=exc.reason, **exc.uids)

    def _store_dicom_part(
        self,
        body: IO[bytes],
        span: PartSpan,
        source: Source,
        base_url: str,
        study_instance_uid: str | None,
    ) -> InstanceResult:
        try:
            part_type = parse_media_type(span.content_type)[0]
        except InvalidRequestError as exc:
            raise _PartError(StoreStatus.CANNOT_DECODE, exc.detail) from None
        if part_type != DICOM:
            raise _PartError(StoreStatus.CANNOT_DECODE, f"the part is {part_type}, not {DICOM}")
        data = read_part(body, span)
        meta, start = _read_file_meta(data)
        syntax = _meta_uid(meta, "TransferSyntaxUID")
        sop_class = _meta_uid(meta, "MediaStorageSOPClassUID")
        sop_instance = _meta_uid(meta, "MediaStorageSOPInstanceUID")
        uids = {"sop_class_uid": sop_class[:64], "sop_instance_uid": sop_instance[:64]}
        if not (syntax and sop_class and sop_instance):
            raise _PartError(
                StoreStatus.CANNOT_DECODE,
                "the File Meta Information lacks the Transfer Syntax, Media Storage SOP "
                "Class or Media Storage SOP Instance UID",
                **uids,
            )
        if syntax not in self.transfer_syntaxes:
            raise _PartError(
                StoreStatus.TRANSFER_SYNTAX_NOT_SUPPORTED,
                f"transfer syntax {syntax[:64]} is not supported",
                **uids,
            )
        if sop_class not in self.accepted_sop_classes:
            raise _PartError(
                StoreStatus.SOP_CLASS_NOT_SUPPORTED,
                f"SOP class {sop_class[:64]} ({sop_class_name(sop_class)}) is not accepted",
                **uids,
            )
        parsed_uids: dict[str, str] = {}

        def check(parsed: ParsedInstance) -> tuple[StoreStatus, str] | None:
            parsed_uids["study"] = parsed.study_instance_uid
            parsed_uids["series"] = parsed.series_instance_uid
            return self._check_ownership(parsed, source, study_instance_uid)

        outcome = self.ingestor.store(
            data[start:],
            transfer_syntax_uid=syntax,
            sop_class_uid=sop_class,
            sop_instance_uid=sop_instance,
            source=source,
            check=check,
            own_facility_only=True,
        )
        study = parsed_uids.get("study", "")
        series = parsed_uids.get("series", "")
        if not outcome.ok:
            return InstanceResult(
                part=span.index,
                status=outcome.status,
                reason=outcome.comment,
                study_instance_uid=study,
                series_instance_uid=series,
                **uids,
            )
        return InstanceResult(
            part=span.index,
            status=StoreStatus.SUCCESS,
            study_instance_uid=study,
            series_instance_uid=series,
            retrieve_url=f"{base_url}/studies/{study}/series/{series}/instances/{sop_instance}",
            **uids,
        )

    def _check_ownership(
        self, parsed: ParsedInstance, source: Source, study_instance_uid: str | None
    ) -> tuple[StoreStatus, str] | None:
        """Refuse an instance of another study than the target, or of another facility."""
        if study_instance_uid is not None and parsed.study_instance_uid != study_instance_uid:
            return (
                StoreStatus.STUDY_INSTANCE_UID_MISMATCH,
                f"the instance belongs to study {parsed.study_instance_uid}, not to "
                f"{study_instance_uid} named in the request",
            )
        with self.ingestor.database.read() as session:
            holders = facilities_holding(
                session,
                study_instance_uid=parsed.study_instance_uid,
                series_instance_uid=parsed.series_instance_uid,
                sop_instance_uid=parsed.sop_instance_uid,
            )
        if holders - {source.facility_id}:
            return (
                StoreStatus.NOT_AUTHORIZED,
                "its study, series or SOP instance UID belongs to another facility's study; "
                "it cannot be added to it from this facility",
            )
        return None
