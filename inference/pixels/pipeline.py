"""From a DICOM data set to the model's input tensor (numpy, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset

from inference.pixels.decode import MIN_SIDE
from inference.pixels.display import DisplayImage, ImageInfo, display_array, to_grey
from inference.pixels.geometry import Letterbox, letterbox
from inference.pixels.spec import InputSpec

__all__ = ["Prepared", "prepare", "prepare_display"]


@dataclass(frozen=True, slots=True, eq=False)
class Prepared:
    """A model input with what it was made from and where the image lies in it.

    ``array`` is float32 (channels, size, size), C-contiguous; ``was_color`` says
    the display image was colour and was turned to grey for the model.
    """

    array: NDArray[np.float32]
    info: ImageInfo
    geometry: Letterbox
    was_color: bool

    @property
    def scale(self) -> float:
        """Factor from original pixels to model input pixels."""
        return self.geometry.scale

    @property
    def pad_top(self) -> int:
        """Padding rows above the image in the model input."""
        return self.geometry.pad_top

    @property
    def pad_left(self) -> int:
        """Padding columns left of the image in the model input."""
        return self.geometry.pad_left

    @property
    def resized_rows(self) -> int:
        """Rows of the resized image inside the model input."""
        return self.geometry.resized_rows

    @property
    def resized_columns(self) -> int:
        """Columns of the resized image inside the model input."""
        return self.geometry.resized_columns

    def to_original(self, heatmap: NDArray[np.floating]) -> NDArray[np.float32]:
        """Map a (h, w) map over the model input onto the original (rows, columns) grid.

        See :meth:`Letterbox.to_original`.
        """
        return self.geometry.to_original(heatmap)


def prepare(dataset: Dataset, spec: InputSpec, *, min_side: int = MIN_SIDE) -> Prepared:
    """Turn the first frame of ``dataset`` into the input ``spec`` describes.

    :func:`display_array`, then :func:`prepare_display`. Deterministic: the same data
    set and spec give the same bytes.

    Raises
    ------
    PixelDataError
        As :func:`display_array` does.
    """
    return prepare_display(display_array(dataset, min_side=min_side), spec)


def prepare_display(display: DisplayImage, spec: InputSpec) -> Prepared:
    """Turn a display image into the input ``spec`` describes (no second decode).

    Grey (luma of a colour image; quality gates decide whether a colour image may be
    used), an aspect-preserving resize so the longer side is ``spec.size``, centred
    padding with ``spec.pad_value``, and per-channel normalisation
    ``(value - mean) / std``.
    """
    grey = to_grey(display)
    square, geometry = letterbox(
        grey.array, size=spec.size, interpolation=spec.interpolation, pad_value=spec.pad_value
    )
    array = np.empty((spec.channels, spec.size, spec.size), dtype=np.float32)
    for channel, (mean, std) in enumerate(zip(spec.mean, spec.std, strict=True)):
        np.subtract(square, np.float32(mean), out=array[channel])
        array[channel] *= np.float32(1.0 / std)
    return Prepared(array=array, info=display.info, geometry=geometry, was_color=display.is_color)
