"""Chest phantoms and small data sets for the gate tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset

from inference.pixels import DisplayImage, display_array
from tests.support.data import make_cr
from training.labels import CxrFinding
from training.phantoms import generate_cxr, phantom_to_dicom

__all__ = ["ALL_FINDINGS", "chest", "grey_dataset", "rgb_dataset"]

ALL_FINDINGS = tuple(CxrFinding)


def chest(
    view: str = "PA",
    *,
    seed: int = 0,
    photometric: str = "MONOCHROME2",
    findings: tuple[CxrFinding, ...] = (),
    size: int = 256,
    **options: Any,
) -> tuple[Dataset, DisplayImage]:
    """A phantom chest radiograph as DICOM, and its display image."""
    rng = np.random.default_rng(seed)
    phantom = generate_cxr(rng, findings=findings, size=size, view=view)
    dataset = phantom_to_dicom(phantom, rng, photometric=photometric, **options)
    return dataset, display_array(dataset)


def grey_dataset(pixels: NDArray[np.uint16], **attributes: Any) -> Dataset:
    """A 12-bit MONOCHROME2 CR data set holding ``pixels``."""
    rows, columns = pixels.shape
    ds = make_cr(rows=rows, columns=columns)
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def rgb_dataset(pixels: NDArray[np.uint8]) -> Dataset:
    """An 8-bit RGB (interleaved) CR-headed data set holding ``pixels`` (rows, columns, 3)."""
    rows, columns, _ = pixels.shape
    ds = make_cr(rows=rows, columns=columns)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    return ds
