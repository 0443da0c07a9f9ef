"""Generated CR data sets for the pixel pipeline tests, built on ``make_cr``."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from tests.support.data import make_cr

__all__ = ["cr_with", "jpeg_baseline", "phantom", "voi_lut_item"]


def phantom(rows: int = 96, columns: int = 80, *, peak: int = 4095) -> NDArray[np.uint16]:
    """A smooth image: a diagonal ramp with a bright disc, values 0..``peak``."""
    yy, xx = np.mgrid[0:rows, 0:columns].astype(np.float64)
    ramp = (yy / max(rows - 1, 1) + xx / max(columns - 1, 1)) / 2.0
    disc = ((yy - rows * 0.4) ** 2 + (xx - columns * 0.6) ** 2) < (min(rows, columns) * 0.2) ** 2
    image = 0.7 * ramp + 0.3 * disc
    return np.round(image * peak).astype(np.uint16)


def cr_with(pixels: NDArray[Any], **attributes: Any) -> Dataset:
    """A CR data set holding ``pixels`` (2-D, or 3-D for frames) and the given attributes."""
    frames = pixels.shape[0] if pixels.ndim == 3 else 1
    rows, columns = pixels.shape[-2:]
    ds = make_cr(rows=rows, columns=columns)
    if frames > 1:
        ds.NumberOfFrames = frames
    if pixels.dtype.itemsize == 1:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def jpeg_baseline(pixels: NDArray[np.uint8], *, quality: int = 95) -> Dataset:
    """An 8-bit CR data set whose pixels are encoded by Pillow as baseline JPEG."""
    ds = cr_with(pixels)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def voi_lut_item(data: list[int], *, first_mapped: int = 0, bits: int = 12) -> Dataset:
    """One VOI LUT Sequence item (PS3.3 C.11.2) with LUT Data as US values."""
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [len(data), first_mapped, bits])
    item.add_new("LUTData", "US", data)
    item.LUTExplanation = "test LUT"
    return item
