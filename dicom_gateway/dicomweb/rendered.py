"""WADO-RS rendered resources: query parameters, media type and PNG/JPEG encoding.

The display values themselves (Modality LUT, VOI window or LUT, MONOCHROME1
inversion) come from a :data:`Renderer` the composition root provides: the same
pixel pipeline the models read from, so a 12- or 16-bit image is shown as the AI
saw it. This module turns its output into 8-bit pictures a browser shows.

References
----------
DICOM PS3.18 sections 8.3.5.1 (rendered query parameters: ``window``,
``quality``, ``viewport``, ``annotation``), 8.7.4 (rendered media types) and 10.4
(Retrieve Transaction, rendered resources).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import Dataset

from dicom_gateway.dicomweb.errors import InvalidRequestError, NotAcceptableError
from dicom_gateway.dicomweb.media import parse_accept

__all__ = [
    "JPEG",
    "PNG",
    "RenderRequest",
    "Renderer",
    "Window",
    "WindowFunction",
    "encode_rendered",
    "parse_rendered",
]

JPEG = "image/jpeg"
PNG = "image/png"
_DEFAULT_QUALITY = 90
_MAX_VIEWPORT = 8192


class WindowFunction(StrEnum):
    """The VOI LUT Function of a ``window`` parameter (PS3.3 C.11.2.1.3)."""

    LINEAR = "linear"
    LINEAR_EXACT = "linear-exact"
    SIGMOID = "sigmoid"

    @property
    def dicom(self) -> str:
        """The defined term of VOI LUT Function (0028,1056)."""
        return self.value.upper().replace("-", "_")


@dataclass(frozen=True, slots=True)
class Window:
    """A window in modality units (after Rescale Slope and Intercept)."""

    center: float
    width: float
    function: WindowFunction = WindowFunction.LINEAR

    def __post_init__(self) -> None:
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            raise ValueError(f"window center and width must be finite, {self} is given")
        minimum = 1.0 if self.function == WindowFunction.LINEAR else 0.0
        if self.width < minimum or (minimum == 0.0 and self.width == 0.0):
            raise ValueError(
                f"`width` must be {'>= 1' if minimum else '> 0'} for {self.function.value}, "
                f"{self.width:g} is given"
            )


#: Display values of an image's first frame in [0, 1], (rows, columns) grey or
#: (rows, columns, 3) RGB, with ``window`` replacing the data set's own VOI.
Renderer = Callable[[Dataset, Window | None], NDArray[np.floating]]


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """A checked rendered request."""

    media_type: str = JPEG
    window: Window | None = None
    quality: int = _DEFAULT_QUALITY
    viewport: tuple[int, int] | None = None
    warnings: tuple[str, ...] = ()


def _numbers(name: str, value: str, count: int) -> list[float]:
    parts = value.split(",")
    if len(parts) != count:
        raise InvalidRequestError(f"{name}={value[:80]!r}: expected {count} comma-separated values")
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        raise InvalidRequestError(f"{name}={value[:80]!r}: not numbers") from None
    if not all(math.isfinite(number) for number in numbers):
        raise InvalidRequestError(f"{name}={value[:80]!r}: not finite numbers")
    return numbers


def _window(value: str) -> Window:
    parts = value.split(",")
    function = WindowFunction.LINEAR
    if len(parts) == 3:
        try:
            function = WindowFunction(parts[2].strip().lower())
        except ValueError:
            raise InvalidRequestError(
                f"window={value[:80]!r}: the function is linear, linear-exact or sigmoid"
            ) from None
        parts = parts[:2]
    center, width = _numbers("window", ",".join(parts), 2)
    try:
        return Window(center, width, function)
    except ValueError as exc:
        raise InvalidRequestError(f"window={value[:80]!r}: {exc}") from None


def _media_type(accept: str | None) -> str:
    for media_range in parse_accept(accept):
        if media_range.media_type in (JPEG, PNG):
            return media_range.media_type
        if media_range.matches(JPEG):
            return JPEG
    raise NotAcceptableError(f"a rendered image is sent as {JPEG} or {PNG}; Accept: {accept!r}")


def parse_rendered(params: Sequence[tuple[str, str]], accept: str | None) -> RenderRequest:
    """Check the query parameters and ``Accept`` of a rendered request.

    Raises
    ------
    InvalidRequestError
        ``window``, ``quality`` or ``viewport`` is malformed or given twice.
    NotAcceptableError
        ``Accept`` allows neither JPEG nor PNG.
    """
    seen: set[str] = set()
    window: Window | None = None
    quality = _DEFAULT_QUALITY
    viewport: tuple[int, int] | None = None
    warnings: list[str] = []
    for name, value in params:
        if name in ("window", "quality", "viewport"):
            if name in seen:
                raise InvalidRequestError(f"{name} is given more than once")
            seen.add(name)
        if name == "window":
            window = _window(value)
        elif name == "quality":
            if not value.strip().isdigit() or not 1 <= int(value) <= 100:
                raise InvalidRequestError(f"quality={value[:40]!r}: an integer from 1 to 100")
            quality = int(value)
        elif name == "viewport":
            sizes = _numbers("viewport", value, 2)
            if not all(s.is_integer() and 1 <= s <= _MAX_VIEWPORT for s in sizes):
                raise InvalidRequestError(
                    f"viewport={value[:80]!r}: width and height are integers from 1 to "
                    f"{_MAX_VIEWPORT} (source rectangles are not supported)"
                )
            viewport = (int(sizes[0]), int(sizes[1]))
        elif name == "annotation":
            warnings.append("The annotation parameter is not supported; nothing is burned in.")
    return RenderRequest(
        media_type=_media_type(accept),
        window=window,
        quality=quality,
        viewport=viewport,
        warnings=tuple(warnings),
    )


def encode_rendered(display: NDArray[np.floating], request: RenderRequest) -> bytes:
    """Encode display values in [0, 1] as an 8-bit PNG or JPEG, fitted in the viewport."""
    pixels = np.rint(np.clip(display, 0.0, 1.0) * 255.0).astype(np.uint8)
    image = Image.fromarray(pixels)  # L for grey, RGB for three samples
    if request.viewport is not None:
        width, height = request.viewport
        scale = min(width / image.width, height / image.height)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if request.media_type == PNG:
        image.save(buffer, format="PNG", compress_level=6)
    else:
        image.save(buffer, format="JPEG", quality=request.quality)
    return buffer.getvalue()
