"""Reading a DICOM file and decoding the first frame of its pixel data."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from numpy.typing import NDArray
from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_color_lut, convert_color_space
from pydicom.uid import UID

from inference.errors import PixelDataError

__all__ = [
    "COLOR_INTERPRETATIONS",
    "GREY_INTERPRETATIONS",
    "MIN_SIDE",
    "check_size",
    "decode_first_frame",
    "photometric_interpretation",
    "read_dataset",
]

MIN_SIDE = 64
GREY_INTERPRETATIONS = frozenset({"MONOCHROME1", "MONOCHROME2"})
COLOR_INTERPRETATIONS = frozenset(
    {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"}
)
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
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


def read_dataset(path: str | PathLike[str]) -> Dataset:
    """Read a DICOM file (with its File Meta Information) from ``path``.

    Raises
    ------
    PixelDataError
        When the file is not DICOM (no ``DICM`` prefix) or cannot be parsed.
    OSError
        When the file cannot be read (e.g. it does not exist).
    """
    name = Path(path).name
    try:
        return dcmread(path, force=False)
    except InvalidDicomError as exc:
        raise PixelDataError(
            f"{name!r} is not a DICOM file: {exc}",
            f"Tệp {name!r} không phải là tệp DICOM",
        ) from None
    except (EOFError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise PixelDataError(
            f"{name!r} is a damaged DICOM file: {type(exc).__name__}: {exc}",
            f"Tệp DICOM {name!r} bị hỏng, không đọc được",
        ) from None


def photometric_interpretation(dataset: Dataset) -> str:
    """Return the dataset's Photometric Interpretation, checked to be one Soi can display.

    Raises
    ------
    PixelDataError
        When it is missing or not one of :data:`GREY_INTERPRETATIONS` and
        :data:`COLOR_INTERPRETATIONS`.
    """
    value = str(dataset.get("PhotometricInterpretation", "") or "").strip()
    if not value:
        raise PixelDataError(
            "Photometric Interpretation (0028,0004) is missing",
            "Thiếu thẻ Photometric Interpretation (0028,0004) (kiểu biểu diễn điểm ảnh)",
        )
    if value not in GREY_INTERPRETATIONS | COLOR_INTERPRETATIONS:
        supported = ", ".join(sorted(GREY_INTERPRETATIONS | COLOR_INTERPRETATIONS))
        raise PixelDataError(
            f"Photometric Interpretation {value!r} is not supported (supported: {supported})",
            f"Không hỗ trợ kiểu biểu diễn điểm ảnh (Photometric Interpretation) {value!r}",
        )
    return value


def check_size(dataset: Dataset, *, min_side: int = MIN_SIDE) -> tuple[int, int]:
    """Return (Rows, Columns), checked to be at least ``min_side`` each.

    Raises
    ------
    PixelDataError
        When Rows or Columns is missing, or either is smaller than ``min_side``.
    """
    try:
        rows = int(dataset.Rows)
        columns = int(dataset.Columns)
    except (AttributeError, TypeError, ValueError):
        raise PixelDataError(
            "Rows (0028,0010) or Columns (0028,0011) is missing or not a number",
            "Thiếu hoặc sai giá trị Rows (0028,0010) hay Columns (0028,0011)",
        ) from None
    if rows < min_side or columns < min_side:
        raise PixelDataError(
            f"Rows {rows} × Columns {columns} is smaller than {min_side} × {min_side}",
            f"Ảnh {rows} × {columns} điểm ảnh nhỏ hơn {min_side} × {min_side}",
        )
    return rows, columns


#: Decoding plugins tried, in order. GDCM is left out on purpose: on a malformed
#: JPEG 2000 codestream it aborts the whole process (an uncaught C++ exception)
#: instead of raising, and every compressed syntax has another decoder.
SAFE_DECODING_PLUGINS = ("pylibjpeg", "pillow", "pydicom")


def _decode(decoder: Any, dataset: Dataset) -> tuple[NDArray[Any], dict[str, Any]]:
    """Decode frame 0 with the first safe plugin that succeeds (native data: no plugin)."""
    if decoder.is_native:
        result: tuple[NDArray[Any], dict[str, Any]] = decoder.as_array(dataset, index=0)
        return result
    plugins = [name for name in SAFE_DECODING_PLUGINS if name in decoder.available_plugins]
    if not plugins:
        raise NotImplementedError(
            f"no decoder that is safe on malformed data is installed for {decoder.UID.name} "
            "(install pylibjpeg with its openjpeg, libjpeg and rle plugins)"
        )
    errors: list[str] = []
    for name in plugins:
        try:
            result = decoder.as_array(dataset, index=0, decoding_plugin=name)
        except _DECODE_ERRORS as exc:
            errors.append(f"{name}: {exc}")
            continue
        return result
    raise RuntimeError("; ".join(errors))


def decode_first_frame(dataset: Dataset, photometric: str) -> NDArray[Any]:
    """Decode the first frame: (rows, columns) grey, or (rows, columns, 3) RGB.

    Compressed transfer syntaxes go through pydicom's decoders (pylibjpeg, GDCM);
    Bits Stored and Pixel Representation are applied by the decoder, planar
    configuration is undone, YBR colour is converted to RGB and PALETTE COLOR is
    looked up to RGB.

    Raises
    ------
    PixelDataError
        When the data set has no pixel data or it cannot be decoded.
    """
    if not any(keyword in dataset for keyword in _PIXEL_KEYWORDS):
        raise PixelDataError(
            "the data set has no Pixel Data (7FE0,0010)",
            "Tập dữ liệu không có dữ liệu điểm ảnh (Pixel Data 7FE0,0010)",
        )
    meta = getattr(dataset, "file_meta", None)
    syntax = UID(str(getattr(meta, "TransferSyntaxUID", "") or ""))
    if not syntax:
        raise PixelDataError(
            "the Transfer Syntax UID (0002,0010) is missing, so the pixel data cannot be decoded",
            "Thiếu Transfer Syntax UID (0002,0010), không giải mã được dữ liệu điểm ảnh",
        )
    try:
        decoder = get_decoder(syntax)
        array, info = _decode(decoder, dataset)
        if photometric == "PALETTE COLOR":
            array = apply_color_lut(array, dataset)
    except _DECODE_ERRORS as exc:
        raise PixelDataError(
            f"the pixel data cannot be decoded ({syntax.name}): {type(exc).__name__}: {exc}",
            f"Không giải mã được dữ liệu điểm ảnh (cú pháp truyền {syntax.name})",
        ) from None
    decoded_as = str(info.get("photometric_interpretation", photometric))
    if decoded_as in ("YBR_FULL", "YBR_FULL_422"):
        array = convert_color_space(array, decoded_as, "RGB")
    expected_ndim = 2 if photometric in GREY_INTERPRETATIONS else 3
    if array.ndim != expected_ndim:
        raise PixelDataError(
            f"decoded pixel data has shape {array.shape}, expected {expected_ndim} dimensions "
            f"for {photometric}",
            f"Dữ liệu điểm ảnh sau giải mã có kích thước {array.shape}, "
            f"không phù hợp với {photometric}",
        )
    return array
