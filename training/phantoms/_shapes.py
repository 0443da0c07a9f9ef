"""Vectorised drawing primitives for the phantoms: soft shapes, smooth noise, resampling.

Coordinates are normalised: ``y`` runs from 0 (top) to 1 (bottom) and ``x`` from 0 (image
left) to 1 (image right). Every function works on whole arrays; none loops over pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "FloatImage",
    "Grid",
    "as_image",
    "blur",
    "resize_bilinear",
    "smooth_noise",
    "soft_band",
    "soft_ellipse",
    "soft_step",
]

FloatImage = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Grid:
    """Pixel-centre coordinates of a square image, as broadcastable column and row."""

    size: int
    y: FloatImage
    x: FloatImage

    @classmethod
    def square(cls, size: int) -> Grid:
        """Return the grid of a ``size`` × ``size`` image."""
        centres = (np.arange(size, dtype=np.float32) + 0.5) / np.float32(size)
        return cls(size=size, y=centres[:, None], x=centres[None, :])

    @property
    def pixel(self) -> float:
        """The width of one pixel in normalised units."""
        return 1.0 / self.size

    def zeros(self) -> FloatImage:
        """Return an image of zeros on this grid."""
        return np.zeros((self.size, self.size), dtype=np.float32)


def as_image(values: ArrayLike) -> FloatImage:
    """Return ``values`` as a float32 image."""
    return np.asarray(values, dtype=np.float32)


def soft_step(signed: FloatImage, width: float) -> FloatImage:
    """Map a signed distance (positive inside) to a 0-1 edge ``width`` wide."""
    return as_image(np.clip(signed / np.float32(max(width, 1e-6)) + np.float32(0.5), 0.0, 1.0))


def soft_ellipse(
    grid: Grid, *, cy: float, cx: float, ry: float, rx: float, edge: float
) -> FloatImage:
    """Return an ellipse that is 1 inside and falls to 0 across an ``edge`` wide border."""
    dy = (grid.y - np.float32(cy)) / np.float32(ry)
    dx = (grid.x - np.float32(cx)) / np.float32(rx)
    radius = np.sqrt(dy * dy + dx * dx)
    return soft_step((np.float32(1.0) - radius) * np.float32(min(ry, rx)), edge)


def soft_band(distance: FloatImage, half_width: float, edge: float) -> FloatImage:
    """Return a band around the zero set of ``distance``, ``2 * half_width`` wide."""
    return soft_step(np.float32(half_width) - np.abs(distance), edge)


def resize_bilinear(image: FloatImage, rows: int, columns: int) -> FloatImage:
    """Resample ``image`` to ``rows`` × ``columns`` by bilinear interpolation.

    Pixel centres are aligned, as in ``cv2.resize`` with ``INTER_LINEAR``.
    """
    in_rows, in_columns = image.shape
    ys = (np.arange(rows, dtype=np.float32) + 0.5) * (in_rows / rows) - 0.5
    xs = (np.arange(columns, dtype=np.float32) + 0.5) * (in_columns / columns) - 0.5
    ys = np.clip(ys, 0.0, in_rows - 1.0)
    xs = np.clip(xs, 0.0, in_columns - 1.0)
    y0 = np.minimum(ys.astype(np.intp), in_rows - 2) if in_rows > 1 else np.zeros_like(ys, np.intp)
    x0 = (
        np.minimum(xs.astype(np.intp), in_columns - 2)
        if in_columns > 1
        else np.zeros_like(xs, np.intp)
    )
    y1 = np.minimum(y0 + 1, in_rows - 1)
    x1 = np.minimum(x0 + 1, in_columns - 1)
    wy = (ys - y0)[:, None].astype(np.float32)
    wx = (xs - x0)[None, :].astype(np.float32)
    top = image[y0][:, x0] * (1 - wx) + image[y0][:, x1] * wx
    bottom = image[y1][:, x0] * (1 - wx) + image[y1][:, x1] * wx
    return as_image(top * (1 - wy) + bottom * wy)


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> FloatImage:
    """Return smooth random texture with about ``cells`` features across, roughly in [-1, 1]."""
    coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    return resize_bilinear(coarse, size, size) / np.float32(1.5)


def _box(image: FloatImage, radius: int, axis: int) -> FloatImage:
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius + 1, radius)
    padded = np.pad(image, pad, mode="edge")
    summed = np.cumsum(padded, axis=axis, dtype=np.float32)
    upper = np.take(summed, np.arange(2 * radius + 1, summed.shape[axis]), axis=axis)
    lower = np.take(summed, np.arange(0, summed.shape[axis] - 2 * radius - 1), axis=axis)
    return ((upper - lower) / np.float32(2 * radius + 1)).astype(np.float32)


def blur(image: FloatImage, radius: int, *, passes: int = 2) -> FloatImage:
    """Smooth ``image`` with ``passes`` separable box filters (close to a Gaussian)."""
    if radius < 1:
        return image
    out = image
    for _ in range(passes):
        out = _box(_box(out, radius, 0), radius, 1)
    return out
