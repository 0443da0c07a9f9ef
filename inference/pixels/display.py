"""From a DICOM data set to the image a reader would see, as float32 in [0, 1]."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset

from inference.pixels.decode import (
    GREY_INTERPRETATIONS,
    MIN_SIDE,
    check_size,
    decode_first_frame,
    photometric_interpretation,
)
from inference.pixels.lut import VoiSource, VoiWindow, apply_modality, apply_voi_window

__all__ = ["DisplayImage", "ImageInfo", "display_array", "to_grey"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the display image was made from, for the record.

    ``rows`` and ``columns`` are the original image's; ``pixel_spacing`` is
    (row, column) spacing in mm from Pixel Spacing, else Imager Pixel Spacing,
    else ``None``; ``voi`` says which window or LUT made the display values.
    """

    rows: int
    columns: int
    photometric_interpretation: str
    pixel_spacing: tuple[float, float] | None
    voi: VoiWindow
    number_of_frames: int = 1


@dataclass(frozen=True, slots=True, eq=False)
class DisplayImage:
    """The first frame as displayed: float32 in [0, 1], bright is dense (bone).

    ``array`` is (rows, columns) for grey images and (rows, columns, 3) RGB for
    colour ones.
    """

    array: NDArray[np.float32]
    info: ImageInfo

    @property
    def is_color(self) -> bool:
        """Whether the image has three colour samples per pixel."""
        return self.array.ndim == 3

    @property
    def rows(self) -> int:
        """Rows of the original image."""
        return self.info.rows

    @property
    def columns(self) -> int:
        """Columns of the original image."""
        return self.info.columns

    @property
    def photometric_interpretation(self) -> str:
        """The data set's Photometric Interpretation."""
        return self.info.photometric_interpretation

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        """(row, column) spacing in mm, or ``None`` when the data set gives none."""
        return self.info.pixel_spacing

    @property
    def voi(self) -> VoiWindow:
        """The window or LUT that made the display values."""
        return self.info.voi


def display_array(dataset: Dataset, *, min_side: int = MIN_SIDE) -> DisplayImage:
    """Decode the first frame of ``dataset`` and apply the display transforms.

    Grey images: Modality LUT (or Rescale Slope and Intercept), then the VOI LUT
    Sequence, else the first Window Center and Width pair, else a window between
    the 0.5th and 99.5th percentiles; MONOCHROME1 is inverted so that bone is
    always bright. Colour images are scaled by their Bits Stored and keep their
    three samples (see :func:`to_grey`).

    Parameters
    ----------
    dataset:
        An image data set with its file meta (for the transfer syntax).
    min_side:
        Smallest Rows and Columns accepted.

    Returns
    -------
    DisplayImage
        float32 values in [0, 1], shape (rows, columns) or (rows, columns, 3).

    Raises
    ------
    PixelDataError
        When the image is smaller than ``min_side``, its photometric interpretation is
        not supported, the pixel data is missing or cannot be decoded, or values are
        not finite after rescaling.

    References
    ----------
    DICOM PS3.3 sections C.7.6.3.1.2 (Photometric Interpretation), C.11.1
    (Modality LUT Module), C.11.2 (VOI LUT Module); PS3.4 section N.2.1 (grayscale
    transformations).
    """
    photometric = photometric_interpretation(dataset)
    rows, columns = check_size(dataset, min_side=min_side)
    decoded = decode_first_frame(dataset, photometric)
    if photometric in GREY_INTERPRETATIONS:
        values = apply_modality(decoded, dataset)
        display, voi = apply_voi_window(values, dataset)
        if photometric == "MONOCHROME1":
            np.subtract(np.float32(1.0), display, out=display)
    else:
        display, voi = _color_display(decoded, dataset, photometric)
    info = ImageInfo(
        rows=rows,
        columns=columns,
        photometric_interpretation=photometric,
        pixel_spacing=_pixel_spacing(dataset),
        voi=voi,
        number_of_frames=_number_of_frames(dataset),
    )
    return DisplayImage(np.ascontiguousarray(display, dtype=np.float32), info)


def to_grey(image: DisplayImage) -> DisplayImage:
    """Return ``image`` as grey: luma (ITU-R BT.601 weights) of a colour image, else itself."""
    if not image.is_color:
        return image
    grey = np.tensordot(image.array, _LUMA, axes=([2], [0])).astype(np.float32)
    np.clip(grey, 0.0, 1.0, out=grey)
    return replace(image, array=grey)


def _color_display(
    decoded: NDArray[Any], dataset: Dataset, photometric: str
) -> tuple[NDArray[np.float32], VoiWindow]:
    if photometric == "PALETTE COLOR":
        peak = float(np.iinfo(decoded.dtype).max) if decoded.dtype.kind in "ui" else 1.0
        explanation = f"palette lookup, {decoded.dtype.itemsize * 8}-bit entries"
    else:
        bits = int(dataset.get("BitsStored", decoded.dtype.itemsize * 8) or 8)
        peak = float((1 << bits) - 1)
        explanation = f"Bits Stored {bits}"
    display = decoded.astype(np.float32)
    display *= np.float32(1.0 / peak)
    np.clip(display, 0.0, 1.0, out=display)
    return display, VoiWindow(VoiSource.BIT_DEPTH, function="", explanation=explanation)


def _pixel_spacing(dataset: Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = dataset.get(keyword)
        if isinstance(value, str | bytes) or not hasattr(value, "__len__") or len(value) != 2:
            continue
        try:
            row, column = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            continue
        if all(math.isfinite(item) and item > 0 for item in (row, column)):
            return row, column
    return None


def _number_of_frames(dataset: Dataset) -> int:
    try:
        return max(1, int(dataset.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1
