"""Gates on the pixels: size, colour, exposure and inversion."""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import Dataset

from inference.gates.base import GateOutcome
from inference.gates.config import CxrGateConfig
from inference.gates.messages import reason
from inference.gates.view import measure_frontal_pattern
from inference.pixels import DisplayImage, to_grey

__all__ = [
    "ColorGate",
    "ExposureGate",
    "InvertedGate",
    "SizeGate",
    "color_fraction",
    "image_contrast",
    "saturated_fraction",
]

_CONTRAST_SIDE: Final = 32
_SATURATION_TOLERANCE: Final = 1.0 / 255.0


def color_fraction(image: DisplayImage, *, tolerance: float) -> float:
    """Fraction of pixels whose R, G and B differ by more than ``tolerance``; 0 for grey."""
    if not image.is_color:
        return 0.0
    array = image.array
    chroma = array.max(axis=2) - array.min(axis=2)
    return float(np.count_nonzero(chroma > tolerance)) / float(chroma.size)


def image_contrast(grey: NDArray[np.float32]) -> float:
    """Standard deviation of ``grey`` box-averaged to 32 pixels on its shorter side.

    Averaging first keeps pixel noise out: an image of pure noise, which a
    percentile window stretches to full range, has almost no contrast left.
    """
    rows, columns = grey.shape
    scale = _CONTRAST_SIDE / min(rows, columns)
    size = (max(1, round(columns * scale)), max(1, round(rows * scale)))
    picture = Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32), mode="F")
    small = np.asarray(picture.resize(size, Image.Resampling.BOX), dtype=np.float32)
    return float(small.std())


def saturated_fraction(grey: NDArray[np.float32]) -> float:
    """Fraction of pixels within 1/255 of pure black (0) or pure white (1)."""
    saturated = (grey <= _SATURATION_TOLERANCE) | (grey >= 1.0 - _SATURATION_TOLERANCE)
    return float(np.count_nonzero(saturated)) / float(grey.size)


class SizeGate:
    """The shorter side of the image must have at least ``config.min_side`` pixels."""

    code: Final = "size"

    def check(self, dataset: Dataset, display: DisplayImage, config: CxrGateConfig) -> GateOutcome:
        """Refuse an image too small to read."""
        rows, columns = display.rows, display.columns
        measurements: dict[str, float | str] = {"rows": rows, "columns": columns}
        if min(rows, columns) < config.min_side:
            texts = reason("size", rows=rows, columns=columns, min_side=config.min_side)
            return GateOutcome.refused(self.code, texts, **measurements)
        return GateOutcome.ok(self.code, **measurements)


class ColorGate:
    """A colour image with real chroma is not a radiograph; R = G = B passes.

    References
    ----------
    DICOM PS3.3 section C.7.6.3.1.2 (Photometric Interpretation).
    """

    code: Final = "color"

    def check(self, dataset: Dataset, display: DisplayImage, config: CxrGateConfig) -> GateOutcome:
        """Refuse an image whose pixels carry colour."""
        photometric = display.photometric_interpretation
        fraction = color_fraction(display, tolerance=config.chroma_tolerance)
        measurements: dict[str, float | str] = {
            "photometric_interpretation": photometric,
            "color_fraction": round(fraction, 6),
        }
        if fraction > config.max_color_fraction:
            texts = reason("color", color_percent=100.0 * fraction, photometric=photometric)
            return GateOutcome.refused(self.code, texts, **measurements)
        return GateOutcome.ok(self.code, **measurements)


class ExposureGate:
    """The display image must not be blank nor mostly pure black or white."""

    code: Final = "exposure"

    def check(self, dataset: Dataset, display: DisplayImage, config: CxrGateConfig) -> GateOutcome:
        """Refuse a blank or saturated image."""
        grey = to_grey(display).array
        contrast = image_contrast(grey)
        saturated = saturated_fraction(grey)
        measurements: dict[str, float | str] = {
            "contrast": round(contrast, 6),
            "saturated_fraction": round(saturated, 6),
        }
        if contrast < config.min_contrast:
            texts = reason("exposure_blank", contrast=contrast, min_contrast=config.min_contrast)
            return GateOutcome.refused(self.code, texts, **measurements)
        if saturated > config.max_saturated_fraction:
            texts = reason(
                "exposure_saturated",
                saturated_percent=100.0 * saturated,
                max_percent=100.0 * config.max_saturated_fraction,
            )
            return GateOutcome.refused(self.code, texts, **measurements)
        return GateOutcome.ok(self.code, **measurements)


class InvertedGate:
    """A frontal chest image must show dark lungs either side of a bright mediastinum.

    Run after :class:`~inference.gates.view.ViewGate`, on an image known to be
    frontal. It refuses an image whose reversed lung-field contrast (lungs brighter
    than the mediastinum) beats the normal one and reaches ``min_lung_contrast``:
    the sign of a Photometric Interpretation that does not match the pixels (for
    example MONOCHROME2 on MONOCHROME1 data). On the synthetic phantoms of
    :mod:`inference.gates.view` the two contrasts never cross: a correctly labelled
    frontal image has a lung contrast of at least 0.349 and a reversed contrast of
    at most 0.002, and a mislabelled one the other way round. Validated on phantoms
    and on pydicom's one real chest radiograph only.
    """

    code: Final = "inverted"

    def check(self, dataset: Dataset, display: DisplayImage, config: CxrGateConfig) -> GateOutcome:
        """Refuse an image whose grey scale looks reversed."""
        pattern = measure_frontal_pattern(display)
        photometric = display.photometric_interpretation
        measurements: dict[str, float | str] = {
            "photometric_interpretation": photometric,
            "lung_contrast": round(pattern.lung_contrast, 4),
            "inverted_contrast": round(pattern.inverted_contrast, 4),
        }
        if pattern.looks_inverted(config):
            texts = reason(
                "inverted", inverted_contrast=pattern.inverted_contrast, photometric=photometric
            )
            return GateOutcome.refused(self.code, texts, **measurements)
        return GateOutcome.ok(self.code, **measurements)
