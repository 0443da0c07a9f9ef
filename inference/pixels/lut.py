"""Modality and VOI transforms of grey images, ending in display values in [0, 1]."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_voi

from inference.errors import PixelDataError

__all__ = ["PERCENTILE_WINDOW", "VoiSource", "VoiWindow", "apply_modality", "apply_voi_window"]

PERCENTILE_WINDOW = (0.5, 99.5)
_PERCENTILE_SAMPLE = 1 << 18
_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


class VoiSource(StrEnum):
    """Where the values-of-interest transform came from."""

    VOI_LUT_SEQUENCE = "voi_lut_sequence"
    WINDOW = "window"
    PERCENTILE = "percentile"
    BIT_DEPTH = "bit_depth"


@dataclass(frozen=True, slots=True)
class VoiWindow:
    """The VOI transform used to make the display image, for the record.

    ``center`` and ``width`` are in modality units (after Rescale Slope and
    Intercept); both are ``None`` for a VOI LUT or a colour image's bit depth.
    ``explanation`` is the data set's Window Center & Width Explanation or LUT
    Explanation, or why Soi chose the window itself.
    """

    source: VoiSource
    center: float | None = None
    width: float | None = None
    function: str = "LINEAR"
    explanation: str = ""


def apply_modality(array: NDArray[Any], dataset: Dataset) -> NDArray[Any]:
    """Apply the Modality LUT Sequence or Rescale Slope and Intercept.

    A missing Rescale Slope counts as 1 and a missing Rescale Intercept as 0
    (pydicom applies the rescale only when both are present).

    Raises
    ------
    PixelDataError
        When values are not finite (NaN or infinity) after the transform.

    References
    ----------
    DICOM PS3.3 section C.11.1 (Modality LUT Module).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        result = _modality(array, dataset)
    if result.dtype.kind == "f":
        finite = np.isfinite(result)
        if not finite.all():
            count = int(finite.size - np.count_nonzero(finite))
            raise PixelDataError(
                f"{count} pixel values are not finite (NaN or infinity) after the Modality LUT "
                "or Rescale Slope and Intercept",
                f"Có {count} giá trị điểm ảnh không hữu hạn (NaN hoặc vô cực) sau khi áp dụng "
                "Modality LUT hoặc Rescale Slope và Rescale Intercept",
            )
    return result


def _modality(array: NDArray[Any], dataset: Dataset) -> NDArray[Any]:
    if "ModalityLUTSequence" in dataset:
        lut_values: NDArray[Any] = apply_modality_lut(array, dataset)
        return lut_values
    slope = _first_number(dataset, "RescaleSlope", finite=False)
    intercept = _first_number(dataset, "RescaleIntercept", finite=False)
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    if slope == 1.0 and intercept == 0.0:
        return array
    if "RescaleSlope" in dataset and "RescaleIntercept" in dataset:
        rescaled: NDArray[Any] = apply_modality_lut(array, dataset)
        return rescaled
    return array.astype(np.float64) * slope + intercept


def apply_voi_window(
    values: NDArray[Any], dataset: Dataset
) -> tuple[NDArray[np.float32], VoiWindow]:
    """Map modality values to display values in [0, 1] (0 is the lowest value, black).

    The VOI LUT Sequence's first item when present, else the first Window Center
    and Window Width pair (with VOI LUT Function), else a window between the
    0.5th and 99.5th percentiles of the image.

    References
    ----------
    DICOM PS3.3 section C.11.2 (VOI LUT Module) and C.11.2.1.2 (Window Center
    and Window Width).
    """
    if dataset.get("VOILUTSequence"):
        return _apply_voi_lut(values, dataset)
    center = _first_number(dataset, "WindowCenter")
    width = _first_number(dataset, "WindowWidth")
    if center is None or width is None:
        return _percentile(values, "no Window Center and Width")
    function = str(dataset.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    if function not in _FUNCTIONS:
        function = "LINEAR"
    usable = width >= 1.0 if function == "LINEAR" else width > 0.0
    if not usable:
        return _percentile(values, f"Window Width {width:g} is not valid for {function}")
    explanation = _first_text(dataset, "WindowCenterWidthExplanation")
    record = VoiWindow(VoiSource.WINDOW, center, width, function, explanation)
    if function == "SIGMOID":
        scaled = _affine(values, center, width / -4.0)
        np.clip(scaled, -80.0, 80.0, out=scaled)
        np.exp(scaled, out=scaled)
        scaled += 1.0
        np.reciprocal(scaled, out=scaled)
        return scaled, record
    if function == "LINEAR" and width == 1.0:
        return (values > center - 0.5).astype(np.float32), record
    if function == "LINEAR":
        return _clipped(_affine(values, center - 0.5, width - 1.0, offset=0.5)), record
    return _clipped(_affine(values, center, width, offset=0.5)), record


def _apply_voi_lut(values: NDArray[Any], dataset: Dataset) -> tuple[NDArray[np.float32], VoiWindow]:
    item = dataset.VOILUTSequence[0]
    entries, first_mapped, bits = (int(value) for value in item.LUTDescriptor)
    entries = entries or 1 << 16
    indices = np.clip(np.rint(values), first_mapped, first_mapped + entries - 1).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mapped = apply_voi(indices, dataset, index=0)
    largest = int(mapped.max(initial=0))
    if bits > 4 and largest < 1 << (bits - 4):
        bits = max(largest.bit_length(), 1)  # entries declared wider than they are
    display = mapped.astype(np.float32)
    display *= np.float32(1.0 / ((1 << bits) - 1))
    explanation = _first_text(item, "LUTExplanation")
    return _clipped(display), VoiWindow(
        VoiSource.VOI_LUT_SEQUENCE, function="LUT", explanation=explanation
    )


def _percentile(values: NDArray[Any], why: str) -> tuple[NDArray[np.float32], VoiWindow]:
    step = max(1, math.ceil(math.sqrt(values.size / _PERCENTILE_SAMPLE)))
    sample = values[::step, ::step]
    low, high = (float(value) for value in np.percentile(sample, PERCENTILE_WINDOW))
    low_q, high_q = PERCENTILE_WINDOW
    record = VoiWindow(
        VoiSource.PERCENTILE,
        center=(low + high) / 2.0,
        width=high - low,
        function="LINEAR_EXACT",
        explanation=f"{why}: {low_q:g}th to {high_q:g}th percentile",
    )
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32), record
    return _clipped(_affine(values, low, high - low)), record


def _affine(
    values: NDArray[Any], subtract: float, divide: float, *, offset: float = 0.0
) -> NDArray[np.float32]:
    """Return ``(values - subtract) / divide + offset`` in float32 (one new array)."""
    out: NDArray[np.float32] = np.subtract(values, subtract, dtype=np.float32, casting="unsafe")
    out *= np.float32(1.0 / divide)
    if offset:
        out += np.float32(offset)
    return out


def _clipped(values: NDArray[np.float32]) -> NDArray[np.float32]:
    np.clip(values, 0.0, 1.0, out=values)
    return values


def _first_number(dataset: Dataset, keyword: str, *, finite: bool = True) -> float | None:
    """The first value of a possibly multi-valued DS/IS element, or None (also when
    it is not finite, unless ``finite`` is false)."""
    value = dataset.get(keyword)
    if value is None or value == "":
        return None
    if not isinstance(value, str | bytes) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) or not finite else None


def _first_text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__len__"):
        value = value[0] if len(value) else ""
    return str(value).strip()
