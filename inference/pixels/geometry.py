"""Aspect-preserving resize into a padded square, and the way back for heatmaps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from inference.pixels.spec import Interpolation

__all__ = ["Letterbox", "letterbox"]

_REDUCING = {
    Interpolation.AREA: Image.Resampling.BOX,
    Interpolation.BILINEAR: Image.Resampling.BILINEAR,
    Interpolation.BICUBIC: Image.Resampling.BICUBIC,
}
_ENLARGING = {
    Interpolation.AREA: Image.Resampling.BILINEAR,
    Interpolation.BILINEAR: Image.Resampling.BILINEAR,
    Interpolation.BICUBIC: Image.Resampling.BICUBIC,
}


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where the original image lies in the square model input.

    The image (``rows`` × ``columns``) is scaled by ``scale`` so that its longer
    side equals ``size``, giving ``resized_rows`` × ``resized_columns`` (rounded),
    and placed ``pad_top`` rows and ``pad_left`` columns from the square's corner.
    """

    size: int
    rows: int
    columns: int
    scale: float
    resized_rows: int
    resized_columns: int
    pad_top: int
    pad_left: int

    @classmethod
    def fit(cls, *, rows: int, columns: int, size: int) -> Letterbox:
        """Return the placement of a ``rows`` × ``columns`` image in a ``size`` square."""
        scale = size / max(rows, columns)
        resized_rows = min(size, max(1, round(rows * scale)))
        resized_columns = min(size, max(1, round(columns * scale)))
        return cls(
            size=size,
            rows=rows,
            columns=columns,
            scale=scale,
            resized_rows=resized_rows,
            resized_columns=resized_columns,
            pad_top=(size - resized_rows) // 2,
            pad_left=(size - resized_columns) // 2,
        )

    def to_original(self, heatmap: NDArray[np.floating]) -> NDArray[np.float32]:
        """Map a (h, w) map over the model input back onto the original (rows, columns) grid.

        ``heatmap`` may have the model input's resolution or a coarser one (e.g. a
        14 × 14 class activation map); the padding is cropped and the rest resized
        bilinearly.

        Raises
        ------
        ValueError
            When ``heatmap`` is not a non-empty 2-D array.
        """
        array = np.asarray(heatmap)
        if array.ndim != 2 or array.size == 0:
            raise ValueError(f"`heatmap` must be a non-empty 2-D array, shape {array.shape} given")
        height, width = array.shape
        y_factor = height / self.size
        x_factor = width / self.size
        box = (
            self.pad_left * x_factor,
            self.pad_top * y_factor,
            (self.pad_left + self.resized_columns) * x_factor,
            (self.pad_top + self.resized_rows) * y_factor,
        )
        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32))
        resized = image.resize((self.columns, self.rows), Image.Resampling.BILINEAR, box=box)
        return np.asarray(resized, dtype=np.float32)


def letterbox(
    image: NDArray[np.float32],
    *,
    size: int,
    interpolation: Interpolation = Interpolation.AREA,
    pad_value: float = 0.0,
) -> tuple[NDArray[np.float32], Letterbox]:
    """Resize a (rows, columns) image so its longer side is ``size`` and pad it to a square.

    Parameters
    ----------
    image:
        Grey display values.
    size:
        Side of the output square.
    interpolation:
        ``AREA`` averages the pixels each output pixel covers (Pillow's box filter,
        exact for any factor); enlarging uses bilinear interpolation.
    pad_value:
        Value of the padding, centred on both sides.

    Returns
    -------
    tuple
        The (size, size) float32 image and where the original lies in it.
    """
    rows, columns = image.shape
    placement = Letterbox.fit(rows=rows, columns=columns, size=size)
    target = (placement.resized_columns, placement.resized_rows)
    if target == (columns, rows):
        resized = image
    elif placement.scale < 1.0:
        resized = _reduce(image, target, _REDUCING[interpolation])
    else:
        source = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
        resized = np.asarray(source.resize(target, _ENLARGING[interpolation]), dtype=np.float32)
    square = np.full((size, size), pad_value, dtype=np.float32)
    top, left = placement.pad_top, placement.pad_left
    square[top : top + placement.resized_rows, left : left + placement.resized_columns] = resized
    return square, placement


def _reduce(
    image: NDArray[np.float32], target: tuple[int, int], method: Image.Resampling
) -> NDArray[np.float32]:
    """Reduce by the largest integer factor with a block mean, then resample the rest.

    The block mean is the box filter's result for that factor and keeps Pillow
    from copying the full-resolution image; the remaining factor (below 2) goes
    through Pillow's resize over the exact extent of the original image.
    """
    rows, columns = image.shape
    width, height = target
    factor = min(rows // height, columns // width)
    if factor < 2:
        source = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
        return np.asarray(source.resize(target, method), dtype=np.float32)
    reduced = _block_mean(image, factor)
    if reduced.shape == (height, width) and rows % factor == 0 and columns % factor == 0:
        return reduced
    box = (0.0, 0.0, columns / factor, rows / factor)
    source = Image.fromarray(reduced)
    return np.asarray(source.resize(target, method, box=box), dtype=np.float32)


def _block_mean(image: NDArray[np.float32], factor: int) -> NDArray[np.float32]:
    """Mean of each ``factor`` × ``factor`` block; blocks cut by the edge average what they hold."""
    rows, columns = image.shape
    whole_rows, whole_columns = rows // factor, columns // factor
    out_rows, out_columns = -(-rows // factor), -(-columns // factor)
    strips = np.empty((out_rows, columns), dtype=np.float32)
    body = image[: whole_rows * factor].reshape(whole_rows, factor, columns)
    np.sum(body, axis=1, dtype=np.float32, out=strips[:whole_rows])
    if out_rows > whole_rows:
        np.sum(image[whole_rows * factor :], axis=0, dtype=np.float32, out=strips[whole_rows])
    reduced = np.empty((out_rows, out_columns), dtype=np.float32)
    blocks = strips[:, : whole_columns * factor].reshape(out_rows, whole_columns, factor)
    np.sum(blocks, axis=2, dtype=np.float32, out=reduced[:, :whole_columns])
    if out_columns > whole_columns:
        np.sum(strips[:, whole_columns * factor :], axis=1, dtype=np.float32, out=reduced[:, -1])
    row_counts = np.full(out_rows, factor, dtype=np.float32)
    row_counts[whole_rows:] = rows - whole_rows * factor
    column_counts = np.full(out_columns, factor, dtype=np.float32)
    column_counts[whole_columns:] = columns - whole_columns * factor
    reduced /= np.outer(row_counts, column_counts)
    return reduced
