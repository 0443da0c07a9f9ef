"""Reading and checking a received data set before anything is kept."""

from __future__ import annotations

import re
import warnings
import zlib
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_file_meta_info
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import VR

from dicom_gateway.buffers import BufferReader, BytesLike
from dicom_gateway.errors import InvalidInstanceError
from dicom_gateway.sop_classes import is_image_storage, sop_class_name
from dicom_gateway.status import StoreStatus

__all__ = ["ParsedInstance", "file_meta_bytes", "parse_instance", "valid_uid"]

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel, Float, Double Float Pixel Data
_IMPLEMENTATION_VERSION = "SOI_010"
_VALID_VRS = frozenset(vr.value for vr in VR)
_DEFER_BYTES = 1 << 20


def valid_uid(uid: str) -> bool:
    """Return whether ``uid`` is a valid DICOM UID (PS3.5 section 9.1)."""
    return 0 < len(uid) <= 64 and _UID_RE.match(uid) is not None


@dataclass(frozen=True, slots=True)
class ParsedInstance:
    """A received data set that passed the checks, with the bytes to keep on disk.

    ``dataset`` holds the header: values over 1 MiB (the pixel data) are not loaded
    from it; read the kept file for those.
    """

    dataset: Dataset
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    preamble_and_meta: bytes
    encoded_dataset: BytesLike

    @property
    def size(self) -> int:
        """Size in bytes of the file that will be written."""
        return len(self.preamble_and_meta) + len(self.encoded_dataset)


def file_meta_bytes(
    *, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str, source_ae: str = ""
) -> bytes:
    """Return the 128-byte preamble, ``DICM`` and the File Meta Information group.

    References
    ----------
    DICOM PS3.10 section 7.1 (DICOM File Meta Information).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = _IMPLEMENTATION_VERSION
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae[:16]
    buffer = DicomBytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue()


def parse_instance(
    encoded_dataset: BytesLike,
    *,
    transfer_syntax_uid: str,
    affected_sop_class_uid: str,
    affected_sop_instance_uid: str,
    source_ae: str = "",
) -> ParsedInstance:
    """Decode the header of a received data set and check it can be kept.

    Parameters
    ----------
    encoded_dataset:
        The data set as received, encoded in ``transfer_syntax_uid``, without file meta
        (read in place, not copied).
    transfer_syntax_uid:
        The transfer syntax of the presentation context it came on.
    affected_sop_class_uid, affected_sop_instance_uid:
        The UIDs named in the C-STORE request.

    Raises
    ------
    InvalidInstanceError
        With the DIMSE status and a precise comment: the bytes do not decode
        (0xC210), the data set disagrees with the request (0xC211), a UID is invalid
        (0xC212), the data set is truncated (0xC213), or a required attribute or the
        pixel data is missing (0xA900).
    """
    if not valid_uid(affected_sop_instance_uid):
        raise InvalidInstanceError(
            StoreStatus.INVALID_UID,
            f"Affected SOP Instance UID {affected_sop_instance_uid[:80]!r} is not a valid UID",
        )
    if not encoded_dataset:
        raise InvalidInstanceError(StoreStatus.CANNOT_DECODE, "the data set is empty")
    preamble_and_meta = file_meta_bytes(
        sop_class_uid=affected_sop_class_uid,
        sop_instance_uid=affected_sop_instance_uid,
        transfer_syntax_uid=transfer_syntax_uid,
        source_ae=source_ae,
    )
    syntax = UID(transfer_syntax_uid)
    body = (
        _inflate(encoded_dataset) if syntax == DeflatedExplicitVRLittleEndian else encoded_dataset
    )
    dataset = _read_header(body, syntax)
    _check_complete(dataset, body, explicit_vr=not syntax.is_implicit_VR)

    sop_class_uid = _text(dataset, 0x00080016)
    sop_instance_uid = _text(dataset, 0x00080018)
    study_uid = _text(dataset, 0x0020000D)
    series_uid = _text(dataset, 0x0020000E)
    for keyword, value in (
        ("SOPClassUID", sop_class_uid),
        ("SOPInstanceUID", sop_instance_uid),
        ("StudyInstanceUID", study_uid),
        ("SeriesInstanceUID", series_uid),
    ):
        if not value:
            raise InvalidInstanceError(
                StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS, f"{keyword} is missing or empty"
            )
        if not valid_uid(value):
            raise InvalidInstanceError(
                StoreStatus.INVALID_UID, f"{keyword} {value[:80]!r} is not a valid UID"
            )
    if sop_class_uid != affected_sop_class_uid:
        raise InvalidInstanceError(
            StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            f"SOPClassUID {sop_class_uid} ({sop_class_name(sop_class_uid)}) in the data set "
            f"differs from the request's {affected_sop_class_uid} "
            f"({sop_class_name(affected_sop_class_uid)})",
        )
    if sop_instance_uid != affected_sop_instance_uid:
        raise InvalidInstanceError(
            StoreStatus.REQUEST_MISMATCH,
            f"SOPInstanceUID {sop_instance_uid} in the data set differs from the request's "
            f"{affected_sop_instance_uid}",
        )
    if is_image_storage(sop_class_uid):
        _check_pixel_data(dataset, body, sop_class_uid=sop_class_uid, syntax=syntax)
    return ParsedInstance(
        dataset=dataset,
        sop_class_uid=sop_class_uid,
        sop_instance_uid=sop_instance_uid,
        transfer_syntax_uid=transfer_syntax_uid,
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        preamble_and_meta=preamble_and_meta,
        encoded_dataset=encoded_dataset,
    )


def _text(dataset: Dataset, tag: int) -> str:
    if tag not in dataset:
        return ""
    value = dataset[tag].value
    if value is None:
        return ""
    return str(value).strip().rstrip("\x00").strip()


def _inflate(encoded_dataset: BytesLike) -> bytes:
    try:
        return zlib.decompress(encoded_dataset, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise InvalidInstanceError(
            StoreStatus.CANNOT_DECODE, f"the deflated data set does not inflate: {exc}"
        ) from None


def _read_header(body: BytesLike, syntax: UID) -> Dataset:
    """Read the data set's elements; values over 1 MiB (pixel data) stay unread in ``body``."""
    buffer = BufferReader(body)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = read_dataset(
                buffer.as_binary_io(),
                syntax.is_implicit_VR,
                syntax.is_little_endian,
                defer_size=_DEFER_BYTES,
            )
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError) as exc:
        raise InvalidInstanceError(
            StoreStatus.CANNOT_DECODE, f"the data set cannot be decoded: {exc}"
        ) from exc
    except Exception as exc:
        raise InvalidInstanceError(
            StoreStatus.CANNOT_DECODE, f"the data set cannot be decoded: {type(exc).__name__}"
        ) from exc
    position = buffer.tell()
    if position < len(body):
        raise InvalidInstanceError(
            StoreStatus.CANNOT_DECODE,
            f"decoding stopped {len(body) - position} bytes before the end: the data set is "
            "malformed",
        )
    return dataset


def _check_complete(dataset: Dataset, body: BytesLike, *, explicit_vr: bool) -> None:
    """Refuse bytes that are not elements, or elements that promise more than was received."""
    for tag in list(dataset.keys()):
        element = dataset.get_item(tag, keep_deferred=True)
        if not isinstance(element, RawDataElement):
            continue
        if explicit_vr and element.VR not in _VALID_VRS:
            raise InvalidInstanceError(
                StoreStatus.CANNOT_DECODE,
                f"element {tag} has no valid value representation ({element.VR!r}): "
                "the data set is not DICOM, or not in the negotiated transfer syntax",
            )
        length = element.length
        if length == _UNDEFINED_LENGTH:
            continue
        received = (
            min(length, len(body) - element.value_tell)
            if element.value is None
            else len(element.value)
        )
        if received < length:
            raise InvalidInstanceError(
                StoreStatus.TRUNCATED,
                f"element {tag} declares {length} bytes but only {max(received, 0)} were received",
            )


def _check_pixel_data(
    dataset: Dataset, body: BytesLike, *, sop_class_uid: str, syntax: UID
) -> None:
    present = [tag for tag in _PIXEL_TAGS if tag in dataset]
    if not present:
        raise InvalidInstanceError(
            StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            f"Pixel Data (7FE0,0010) is missing; {sop_class_name(sop_class_uid)} requires it",
        )
    tag = present[0]
    element = dataset.get_item(tag, keep_deferred=True)
    if isinstance(element, RawDataElement) and element.value is None:
        start = element.value_tell
        size = element.length
        head = bytes(body[start : start + 4])
    else:
        value = element.value if isinstance(element, RawDataElement) else dataset[tag].value
        size = 0 if value is None else len(value)
        head = bytes(value[:4]) if value else b""
    if size == 0:
        raise InvalidInstanceError(
            StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS, "Pixel Data (7FE0,0010) is empty"
        )
    if syntax.is_compressed:
        if head != b"\xfe\xff\x00\xe0":
            raise InvalidInstanceError(
                StoreStatus.CANNOT_DECODE,
                "compressed Pixel Data does not start with an item (FFFE,E000)",
            )
        return
    if tag != 0x7FE00010:
        return
    expected = _native_pixel_bytes(dataset)
    if expected is not None and size < expected:
        raise InvalidInstanceError(
            StoreStatus.TRUNCATED,
            f"Pixel Data holds {size} bytes; Rows, Columns, Samples per Pixel, "
            f"Bits Allocated and Number of Frames require {expected}",
        )


def _native_pixel_bytes(dataset: Dataset) -> int | None:
    """Bytes the native Pixel Data must hold (PS3.5 section 8), e.g. 2 per pixel for
    YBR_FULL_422."""
    try:
        rows = int(dataset.Rows)
        columns = int(dataset.Columns)
        bits = int(dataset.BitsAllocated)
        samples = int(dataset.get("SamplesPerPixel", 1) or 1)
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        raise InvalidInstanceError(
            StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            "Rows, Columns or Bits Allocated is missing or not a number",
        ) from None
    if rows <= 0 or columns <= 0 or bits <= 0 or samples <= 0 or frames <= 0:
        raise InvalidInstanceError(
            StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            f"image size {rows}x{columns}, {bits} bits, {samples} samples, {frames} frames "
            "is not valid",
        )
    try:
        return int(get_expected_length(dataset, unit="bytes"))
    except (AttributeError, TypeError, ValueError, KeyError):
        return None
