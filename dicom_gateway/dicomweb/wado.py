"""WADO-RS: instances, metadata, frames, pixel bulk data and rendered images.

Only what the caller's facilities hold is found; anything else is 404, the same as
what does not exist. Instances are sent as stored with ``transfer-syntax=*``, else
in Explicit VR Little Endian (the default of PS3.18), decompressed when needed.

References
----------
DICOM PS3.18 sections 8.7.3 (acceptable media types and transfer syntaxes), 10.4
(Retrieve Transaction: instances, metadata, frames, bulk data, rendered) and Annex
F.2 (DICOM JSON model, BulkDataURI).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicom_gateway.dicomweb.errors import (
    InvalidRequestError,
    NotAcceptableError,
    ResourceNotFoundError,
    StorageUnavailableError,
)
from dicom_gateway.dicomweb.media import DICOM, OCTET_STREAM, parse_accept
from dicom_gateway.dicomweb.multipart import build_multipart, multipart_content_type, new_boundary
from dicom_gateway.dicomweb.pixeldata import (
    COMPRESSED_MEDIA_TYPES,
    can_transcode,
    decoded_frame,
    number_of_frames,
    stored_frame,
    to_explicit_little_endian,
)
from dicom_gateway.dicomweb.rendered import Renderer, RenderRequest, encode_rendered
from dicom_gateway.instance import valid_uid
from store import Database, FileStoreError, InstanceFileStore, locate_instances

__all__ = ["PIXEL_DATA_TAGS", "Payload", "StoredInstance", "WadoService"]

_log = structlog.get_logger("soi.dicomweb.wado")

#: Pixel Data, Float Pixel Data and Double Float Pixel Data: sent as bulk data.
PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_EVLE = str(ExplicitVRLittleEndian)
_CHUNK = 1 << 20
_MAX_FRAMES_ASKED = 10_000
_FRAME_LIST = re.compile(r"^\d{1,9}(,\d{1,9})*$")
_INLINE_LIMIT = 10 << 20


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """An instance the caller may retrieve, and where its file lies."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path
    patient_id: int
    facility_id: int

    def url(self, base_url: str) -> str:
        """The instance's WADO-RS URL."""
        return (
            f"{base_url}/studies/{self.study_instance_uid}/series/{self.series_instance_uid}"
            f"/instances/{self.sop_instance_uid}"
        )


@dataclass(frozen=True, slots=True)
class Payload:
    """A response body: its ``Content-Type`` and its bytes, produced lazily."""

    content_type: str
    chunks: Iterable[bytes]
    warnings: tuple[str, ...] = ()


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            yield chunk


def _frame_numbers(frame_list: str) -> list[int]:
    if not _FRAME_LIST.match(frame_list):
        raise InvalidRequestError(
            f"frame list {frame_list[:80]!r} is not comma-separated frame numbers"
        )
    numbers = [int(item) for item in frame_list.split(",")]
    if 0 in numbers or len(numbers) > _MAX_FRAMES_ASKED:
        raise InvalidRequestError(
            f"frame numbers start at 1, and at most {_MAX_FRAMES_ASKED} can be asked at once"
        )
    return numbers


class WadoService:
    """Answers WADO-RS retrievals.

    Parameters
    ----------
    database:
        The index.
    files:
        The instance files.
    renderer:
        Display values of an image for rendered resources; without one, rendered
        requests are not acceptable.
    """

    def __init__(
        self, *, database: Database, files: InstanceFileStore, renderer: Renderer | None = None
    ) -> None:
        self.database = database
        self.files = files
        self.renderer = renderer

    def locate(
        self,
        *,
        facility_ids: Collection[int] | None,
        study_instance_uid: str,
        series_instance_uid: str | None = None,
        sop_instance_uid: str | None = None,
    ) -> list[StoredInstance]:
        """Return the instances of a study, series or instance the caller may see.

        Raises
        ------
        InvalidRequestError
            A UID in the path is not a UID.
        ResourceNotFoundError
            Nothing matches, or it belongs to a facility the caller may not see.
        """
        named = [study_instance_uid, series_instance_uid, sop_instance_uid]
        for uid in named:
            if uid is not None and not valid_uid(uid):
                raise InvalidRequestError(f"{uid[:80]!r} in the path is not a UID")
        with self.database.read() as session:
            matches = locate_instances(
                session,
                study_instance_uid=study_instance_uid,
                series_instance_uid=series_instance_uid,
                sop_instance_uid=sop_instance_uid,
                facility_ids=facility_ids,
            )
        if not matches:
            what = " / ".join(uid for uid in named if uid is not None)
            raise ResourceNotFoundError(f"no instance under {what}")
        try:
            return [
                StoredInstance(
                    study_instance_uid=m.study.study_instance_uid,
                    series_instance_uid=m.series.series_instance_uid,
                    sop_instance_uid=m.instance.sop_instance_uid,
                    sop_class_uid=m.instance.sop_class_uid,
                    transfer_syntax_uid=m.instance.transfer_syntax_uid,
                    path=self.files.absolute(m.instance.file_path),
                    patient_id=m.study.patient_id,
                    facility_id=m.study.facility_id,
                )
                for m in matches
            ]
        except FileStoreError as exc:
            raise StorageUnavailableError(str(exc)) from exc

    def retrieve(self, instances: list[StoredInstance], accept: str | None) -> Payload:
        """The instances as ``multipart/related; type="application/dicom"``.

        Raises
        ------
        NotAcceptableError
            No acceptable transfer syntax can be sent for every instance.
        """
        syntax = self._retrieve_syntax(instances, accept)
        boundary = new_boundary()

        def parts() -> Iterator[tuple[dict[str, str], Iterable[bytes]]]:
            for instance in instances:
                served = syntax or instance.transfer_syntax_uid
                headers = {"Content-Type": f"{DICOM}; transfer-syntax={served}"}
                if served == instance.transfer_syntax_uid:
                    yield headers, _file_chunks(instance.path)
                else:
                    yield headers, [to_explicit_little_endian(self._read_bytes(instance))]

        chunks: Iterable[bytes] = build_multipart(parts(), boundary)
        if len(instances) == 1:
            chunks = [b"".join(chunks)]  # a transcoding error is then still a 406
        return Payload(multipart_content_type(DICOM, boundary), chunks)

    def _retrieve_syntax(self, instances: list[StoredInstance], accept: str | None) -> str | None:
        """The transfer syntax to send (``None``: each as stored)."""
        for media_range in parse_accept(accept):
            inner = media_range.inner
            if not inner.matches(DICOM):
                continue
            asked = inner.parameters.get("transfer-syntax")
            if asked == "*":
                return None
            wanted = asked or _EVLE
            if all(
                i.transfer_syntax_uid == wanted
                or (wanted == _EVLE and can_transcode(i.transfer_syntax_uid))
                for i in instances
            ):
                return wanted
        raise NotAcceptableError(
            f"instances are sent as {DICOM}, as stored (transfer-syntax=*) or in Explicit VR "
            f"Little Endian; Accept: {accept!r}"
        )

    def metadata(self, instances: list[StoredInstance], base_url: str) -> list[dict[str, Any]]:
        """Each instance's header in the DICOM JSON model; pixel data as a BulkDataURI."""
        return [self._metadata(instance, base_url) for instance in instances]

    def _metadata(self, instance: StoredInstance, base_url: str) -> dict[str, Any]:
        dataset = self._read(instance, defer_size=1024)
        syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
        bulk: dict[str, dict[str, str]] = {}
        for tag in PIXEL_DATA_TAGS:
            if tag not in dataset:
                continue
            raw = dataset.get_item(tag, keep_deferred=True)
            vr = getattr(raw, "VR", None) or (
                "OB"
                if syntax.is_encapsulated or int(dataset.get("BitsAllocated", 8)) <= 8
                else "OW"
            )
            bulk[f"{tag:08X}"] = {
                "vr": vr,
                "BulkDataURI": f"{instance.url(base_url)}/bulk/{tag:08X}",
            }
            del dataset[tag]
        result: dict[str, Any] = dataset.to_json_dict(
            bulk_data_threshold=_INLINE_LIMIT, suppress_invalid_tags=True
        )
        result.update(bulk)
        return dict(sorted(result.items()))

    def frames(self, instance: StoredInstance, *, frame_list: str, accept: str | None) -> Payload:
        """Frames of an instance as ``multipart/related``, one part per frame.

        Raises
        ------
        InvalidRequestError
            The frame list is malformed.
        ResourceNotFoundError
            The instance has no pixel data, or not that many frames.
        NotAcceptableError
            ``Accept`` allows neither the stored form nor uncompressed frames.
        """
        numbers = _frame_numbers(frame_list)
        dataset = self._read(instance)
        if "PixelData" not in dataset:
            raise ResourceNotFoundError(f"instance {instance.sop_instance_uid} has no frames")
        count = number_of_frames(dataset)
        missing = [n for n in numbers if n > count]
        if missing:
            raise ResourceNotFoundError(
                f"frame {missing[0]} does not exist: instance {instance.sop_instance_uid} has "
                f"{count} frame(s)"
            )
        return self._frame_payload(dataset, [n - 1 for n in numbers], accept)

    def bulk_data(self, instance: StoredInstance, *, tag: str, accept: str | None) -> Payload:
        """The pixel data of an instance (the BulkDataURI of its metadata).

        Raises
        ------
        ResourceNotFoundError
            ``tag`` is not a pixel data tag of this instance.
        """
        dataset = self._read(instance)
        if tag.upper() not in {f"{t:08X}" for t in PIXEL_DATA_TAGS} or int(tag, 16) not in dataset:
            raise ResourceNotFoundError(f"no bulk data {tag[:16]} in {instance.sop_instance_uid}")
        syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
        if syntax.is_encapsulated:
            return self._frame_payload(dataset, list(range(number_of_frames(dataset))), accept)
        value = bytes(dataset[int(tag, 16)].value)
        if not syntax.is_little_endian:
            value = b"".join(decoded_frame(dataset, i) for i in range(number_of_frames(dataset)))
        boundary = new_boundary()
        headers = {"Content-Type": f"{OCTET_STREAM}; transfer-syntax={_EVLE}"}
        chunks = build_multipart([(headers, [value])], boundary)
        return Payload(
            multipart_content_type(OCTET_STREAM, boundary, transfer_syntax=_EVLE), chunks
        )

    def _frame_payload(self, dataset: Dataset, indexes: list[int], accept: str | None) -> Payload:
        stored = str(dataset.file_meta.TransferSyntaxUID)
        media_type, syntax = _frame_form(stored, accept)
        frames = [
            decoded_frame(dataset, i) if syntax == _EVLE else stored_frame(dataset, i)
            for i in indexes
        ]
        boundary = new_boundary()
        headers = {"Content-Type": f"{media_type}; transfer-syntax={syntax}"}
        chunks = build_multipart(((headers, [frame]) for frame in frames), boundary)
        return Payload(multipart_content_type(media_type, boundary, transfer_syntax=syntax), chunks)

    def rendered(self, instance: StoredInstance, request: RenderRequest) -> Payload:
        """The first frame as a PNG or JPEG picture.

        Raises
        ------
        NotAcceptableError
            The instance is not an image that can be rendered.
        """
        if self.renderer is None:
            raise NotAcceptableError("rendered images are not available on this server")
        display = self.renderer(self._read(instance), request.window)
        return Payload(request.media_type, [encode_rendered(display, request)], request.warnings)

    def _read(self, instance: StoredInstance, *, defer_size: int | None = None) -> Dataset:
        try:
            return dcmread(instance.path, defer_size=defer_size)
        except (OSError, InvalidDicomError, EOFError, ValueError) as exc:
            _log.error("cannot read a stored instance", path=str(instance.path), error=str(exc))
            raise StorageUnavailableError(
                f"instance {instance.sop_instance_uid} cannot be read from storage"
            ) from exc

    def _read_bytes(self, instance: StoredInstance) -> bytes:
        try:
            return instance.path.read_bytes()
        except OSError as exc:
            raise StorageUnavailableError(
                f"instance {instance.sop_instance_uid} cannot be read from storage"
            ) from exc


def _frame_form(stored: str, accept: str | None) -> tuple[str, str]:
    """The media type and transfer syntax to send frames in, per ``Accept``."""
    compressed = COMPRESSED_MEDIA_TYPES.get(stored)
    for media_range in parse_accept(accept):
        inner = media_range.inner
        asked = inner.parameters.get("transfer-syntax")
        if inner.media_type in (OCTET_STREAM, "*/*", "application/*"):
            if asked in (None, _EVLE):
                return OCTET_STREAM, _EVLE
            if asked == "*" or asked == stored:
                if compressed is None:
                    return OCTET_STREAM, _EVLE
                return (compressed if inner.media_type == "*/*" else OCTET_STREAM), stored
            continue
        if compressed is not None and inner.matches(compressed) and asked in (None, "*", stored):
            return compressed, stored
    raise NotAcceptableError(
        f"frames are sent as {OCTET_STREAM} (uncompressed, or as stored with "
        f"transfer-syntax=*){f' or {compressed}' if compressed else ''}; Accept: {accept!r}"
    )
