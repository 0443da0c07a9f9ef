"""Thresholds of the chest X-ray quality gates, as they go into a model manifest."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["CxrGateConfig"]

_CODE_TUPLES = ("modalities", "chest_body_parts", "frontal_views", "lateral_views")


@dataclass(frozen=True, slots=True)
class CxrGateConfig:
    """What a study must show to be read by a chest X-ray model.

    Attributes
    ----------
    modalities:
        Accepted Modality (0008,0060) values.
    chest_body_parts:
        Accepted Body Part Examined (0018,0015) values, compared case-insensitively;
        an absent Body Part Examined is accepted.
    frontal_views:
        View Position (0018,5101) values that pass.
    lateral_views:
        View Position values refused as lateral views. Any other value (or none)
        leaves the decision to the image heuristic of :mod:`inference.gates.view`.
    min_side:
        Smallest accepted number of pixels on the image's shorter side.
    min_contrast:
        Smallest accepted standard deviation of the display image averaged down to
        32 pixels on its shorter side; below it the image is blank.
    max_saturated_fraction:
        Largest accepted fraction of pixels that are pure black or white (within
        1/255 of 0 or 1).
    max_color_fraction:
        Largest accepted fraction of pixels whose colour samples differ by more
        than ``chroma_tolerance``.
    chroma_tolerance:
        Largest difference between a pixel's R, G and B (display units) that still
        counts as grey, to allow for lossy compression.
    min_symmetry:
        Smallest left-right mirror correlation for an image without a View
        Position to count as frontal.
    min_lung_contrast:
        Smallest contrast between the mediastinum and the darker of the two lung
        fields (in either polarity) for an image to count as frontal; also the
        smallest reversed contrast that marks an image as inverted.
    """

    modalities: tuple[str, ...] = ("CR", "DX")
    chest_body_parts: tuple[str, ...] = ("CHEST", "THORAX", "LUNG", "PORTABLECHEST")
    frontal_views: tuple[str, ...] = ("PA", "AP")
    lateral_views: tuple[str, ...] = ("LL", "RL", "LATERAL", "LAT")
    min_side: int = 256
    min_contrast: float = 0.04
    max_saturated_fraction: float = 0.5
    max_color_fraction: float = 0.01
    chroma_tolerance: float = 0.04
    min_symmetry: float = 0.585
    min_lung_contrast: float = 0.25

    def __post_init__(self) -> None:
        for name in _CODE_TUPLES:
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, tuple):
                raise ValueError(f"`{name}` must be a tuple of strings, {value!r} is given")
            if not all(isinstance(item, str) and item.strip() for item in value):
                raise ValueError(f"`{name}` must hold non-empty strings, {value!r} is given")
        if not self.modalities:
            raise ValueError("`modalities` must name at least one modality, () is given")
        if not self.frontal_views:
            raise ValueError("`frontal_views` must name at least one view, () is given")
        overlap = {v.upper() for v in self.frontal_views} & {v.upper() for v in self.lateral_views}
        if overlap:
            raise ValueError(
                f"`frontal_views` and `lateral_views` must not share values, {sorted(overlap)} "
                "are in both"
            )
        if isinstance(self.min_side, bool) or not isinstance(self.min_side, int):
            raise ValueError(f"`min_side` must be an integer, {self.min_side!r} is given")
        if self.min_side < 1:
            raise ValueError(f"`min_side` must be a positive number, {self.min_side} is given")
        _check_range("min_contrast", self.min_contrast, 0.0, 1.0)
        _check_range("max_saturated_fraction", self.max_saturated_fraction, 0.0, 1.0)
        _check_range("max_color_fraction", self.max_color_fraction, 0.0, 1.0)
        _check_range("chroma_tolerance", self.chroma_tolerance, 0.0, 1.0)
        _check_range("min_symmetry", self.min_symmetry, -1.0, 1.0)
        _check_range("min_lung_contrast", self.min_lung_contrast, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Return the thresholds as JSON-ready values (tuples become lists)."""
        result: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            result[item.name] = list(value) if isinstance(value, tuple) else value
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CxrGateConfig:
        """Build a config from :meth:`to_dict` output; missing keys keep their defaults.

        Raises
        ------
        ValueError
            When a key is unknown or a value is out of range.
        """
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown gate config keys {unknown}; known keys: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in _CODE_TUPLES and isinstance(value, list | tuple):
                values[key] = tuple(value)
            else:
                values[key] = value
        return cls(**values)


def _check_range(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"`{name}` must be a number, {value!r} is given")
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"`{name}` must be between {low:g} and {high:g}, {value!r} is given")
