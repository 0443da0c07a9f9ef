"""What a model expects as input: side, channels, normalisation, resampling."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["MIN_INPUT_SIZE", "InputSpec", "Interpolation"]

MIN_INPUT_SIZE = 32
_FIELDS = ("size", "channels", "mean", "std", "interpolation", "pad_value")


class Interpolation(StrEnum):
    """How the display image is resampled to the model's side.

    ``AREA`` averages the source pixels each output pixel covers when reducing
    (bilinear when enlarging), as OpenCV's ``INTER_AREA`` does.
    """

    AREA = "area"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSpec:
    """The input a model expects; written into the model manifest.

    Parameters
    ----------
    size:
        Side in pixels of the square input, e.g. 224, 256 or 320; at least 32.
    channels:
        1, or 3 for backbones pretrained on colour images (the grey image repeated).
    mean, std:
        Per channel: the model sees ``(display - mean) / std``, with ``display`` in [0, 1].
    interpolation:
        How the image is resampled to ``size``.
    pad_value:
        Display value in [0, 1] of the padding that makes the image square,
        before normalisation (0 is black).

    Raises
    ------
    ValueError
        Naming the field and the value that is not valid.
    """

    size: int
    channels: int = 1
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    interpolation: Interpolation = Interpolation.AREA
    pad_value: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise ValueError(f"`size` must be an integer, {self.size!r} is given")
        if self.size < MIN_INPUT_SIZE:
            raise ValueError(f"`size` must be >= {MIN_INPUT_SIZE}, {self.size} is given")
        if isinstance(self.channels, bool) or self.channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3, {self.channels!r} is given")
        object.__setattr__(self, "mean", _floats("mean", self.mean))
        object.__setattr__(self, "std", _floats("std", self.std))
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != self.channels:
                raise ValueError(
                    f"`{name}` must have one value per channel ({self.channels}), "
                    f"{len(values)} are given: {list(values)}"
                )
        for value in self.std:
            if not value > 0:
                raise ValueError(f"`std` values must be > 0, {list(self.std)} is given")
        try:
            object.__setattr__(self, "interpolation", Interpolation(self.interpolation))
        except ValueError:
            allowed = ", ".join(repr(item.value) for item in Interpolation)
            raise ValueError(
                f"`interpolation` must be one of {allowed}, {self.interpolation!r} is given"
            ) from None
        pad_value = _float("pad_value", self.pad_value)
        if not 0.0 <= pad_value <= 1.0:
            raise ValueError(f"`pad_value` must be in [0, 1], {pad_value} is given")
        object.__setattr__(self, "pad_value", pad_value)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as JSON-ready values, the inverse of :meth:`from_dict`."""
        return {
            "size": self.size,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation.value,
            "pad_value": self.pad_value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        """Build a spec from :meth:`to_dict`'s output (e.g. read from a manifest).

        Raises
        ------
        ValueError
            When a key is unknown, ``size`` is missing, or a value is not valid.
        """
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ValueError(f"unknown input spec keys {unknown}; known keys are {list(_FIELDS)}")
        if "size" not in data:
            raise ValueError("`size` is missing from the input spec")
        return cls(**dict(data))


def _float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"`{name}` values must be numbers, {value!r} is given")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"`{name}` values must be finite, {value!r} is given")
    return result


def _floats(name: str, values: object) -> tuple[float, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError(f"`{name}` must be a sequence of numbers, {values!r} is given")
    return tuple(_float(name, value) for value in values)
