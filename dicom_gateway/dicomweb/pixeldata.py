"""Pixel data for WADO-RS: frames as stored or decoded, and data sets transcoded to
Explicit VR Little Endian.

Compressed pixel data is decoded only by plugins that raise on malformed data
(pylibjpeg, Pillow, pydicom's own RLE): GDCM aborts the process on a damaged JPEG
2000 codestream and is never used.

References
----------
DICOM PS3.5 sections 8.2 (encapsulated pixel data), A.4 (frames in fragments) and
10 (transfer syntaxes); PS3.18 section 8.7.3.5 (transfer syntaxes of bulk data).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset, dcmread
from pydicom.encaps import get_frame
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicom_gateway.dicomweb.errors import NotAcceptableError

__all__ = [
    "COMPRESSED_MEDIA_TYPES",
    "SAFE_DECODING_PLUGINS",
    "can_transcode",
    "decoded_frame",
    "number_of_frames",
    "stored_frame",
    "to_explicit_little_endian",
]

#: Decoding plugins tried, in order (never GDCM: see the module documentation).
SAFE_DECODING_PLUGINS = ("pylibjpeg", "pillow", "pydicom")

#: The media type of one compressed frame, by transfer syntax (PS3.18 Table 8.7.4-1).
COMPRESSED_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}

_LITTLE_ENDIAN_NATIVE = frozenset(
    {ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian}
)
_DECODE_ERRORS = (
    RuntimeError,
    ValueError,
    NotImplementedError,
    AttributeError,
    KeyError,
    TypeError,
    IndexError,
    EOFError,
)


def number_of_frames(dataset: Dataset) -> int:
    """Number of Frames, 1 when absent or not a number."""
    try:
        return max(1, int(dataset.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def can_transcode(transfer_syntax_uid: str) -> bool:
    """Whether an instance stored in this transfer syntax can be sent as Explicit VR
    Little Endian (big endian, retired, cannot)."""
    return UID(transfer_syntax_uid) != ExplicitVRBigEndian


def _decode(dataset: Dataset, index: int) -> NDArray[Any]:
    syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    decoder = get_decoder(syntax)
    if decoder.is_native:
        native: NDArray[Any] = decoder.as_array(dataset, index=index)[0]
        return native
    plugins = [name for name in SAFE_DECODING_PLUGINS if name in decoder.available_plugins]
    errors: list[str] = []
    for name in plugins:
        try:
            array: NDArray[Any] = decoder.as_array(dataset, index=index, decoding_plugin=name)[0]
        except _DECODE_ERRORS as exc:
            errors.append(f"{name}: {exc}")
            continue
        return array
    why = "; ".join(errors) or "no decoder that is safe on malformed data is installed"
    raise NotAcceptableError(
        f"the pixel data ({syntax.name}) cannot be decoded here ({why}); ask for "
        "transfer-syntax=* to receive it as stored"
    )


def stored_frame(dataset: Dataset, index: int) -> bytes:
    """Frame ``index`` (0-based) as stored: compressed bytes of an encapsulated
    transfer syntax, or the native little-endian bytes.

    Raises
    ------
    NotAcceptableError
        The native frame is not byte-aligned or not little endian: it can be sent
        decoded only.
    """
    syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    frames = number_of_frames(dataset)
    if syntax.is_encapsulated:
        return get_frame(dataset.PixelData, index, number_of_frames=frames)
    if syntax in _LITTLE_ENDIAN_NATIVE and int(dataset.get("BitsAllocated", 8)) % 8 == 0:
        size = int(get_expected_length(dataset, unit="bytes")) // frames
        data: bytes = dataset.PixelData[index * size : (index + 1) * size]
        return data
    return decoded_frame(dataset, index)


def decoded_frame(dataset: Dataset, index: int) -> bytes:
    """Frame ``index`` (0-based) decoded, as Explicit VR Little Endian pixel bytes
    (colour as RGB, interleaved).

    Raises
    ------
    NotAcceptableError
        The pixel data cannot be decoded by a safe plugin.
    """
    syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    bits = int(dataset.get("BitsAllocated", 8) or 8)
    if not syntax.is_encapsulated and syntax in _LITTLE_ENDIAN_NATIVE and bits % 8 == 0:
        return stored_frame(dataset, index)
    array = _decode(dataset, index)
    if bits == 1:
        return bytes(np.packbits(array.astype(np.uint8).ravel(), bitorder="little"))
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def to_explicit_little_endian(data: bytes) -> bytes:
    """Return a DICOM file re-encoded in Explicit VR Little Endian, decompressed if it
    was compressed, with the same SOP Instance UID.

    Raises
    ------
    NotAcceptableError
        It is big endian, or its pixel data cannot be decoded by a safe plugin.
    """
    dataset = dcmread(io.BytesIO(data))
    syntax = UID(str(dataset.file_meta.TransferSyntaxUID))
    if syntax == ExplicitVRLittleEndian:
        return data
    if not can_transcode(syntax):
        raise NotAcceptableError(
            "the instance is stored in Explicit VR Big Endian (retired); ask for "
            "transfer-syntax=* to receive it as stored"
        )
    if syntax.is_encapsulated:
        errors: list[str] = []
        decoder = get_decoder(syntax)
        for name in [p for p in SAFE_DECODING_PLUGINS if p in decoder.available_plugins]:
            try:
                dataset.decompress(decoding_plugin=name, generate_instance_uid=False)
            except _DECODE_ERRORS as exc:
                errors.append(f"{name}: {exc}")
                continue
            break
        else:
            raise NotAcceptableError(
                f"the pixel data ({syntax.name}) cannot be decoded here "
                f"({'; '.join(errors) or 'no safe decoder'}); ask for transfer-syntax=* "
                "to receive it as stored"
            )
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
