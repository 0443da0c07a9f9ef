"""Tests for :mod:`inference.pixels.spec`."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from inference.pixels import InputSpec, Interpolation

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


class TestInputSpec:
    @pytest.mark.parametrize(
        "spec",
        [
            InputSpec(size=224),
            InputSpec(size=256, channels=3, **IMAGENET),
            InputSpec(size=320, mean=(0.5,), std=(0.25,), interpolation="bicubic", pad_value=1),
            InputSpec(size=32, interpolation=Interpolation.BILINEAR, pad_value=0.5),
        ],
    )
    def test_round_trips_through_json(self, spec: InputSpec) -> None:
        data = json.loads(json.dumps(spec.to_dict()))

        assert InputSpec.from_dict(data) == spec

    def test_to_dict_is_plain_json(self) -> None:
        spec = InputSpec(size=256, channels=3, **IMAGENET)

        assert spec.to_dict() == {
            "size": 256,
            "channels": 3,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "interpolation": "area",
            "pad_value": 0.0,
        }

    def test_converts_values_once(self) -> None:
        spec = InputSpec(size=64, mean=[1], std=[2], interpolation="bilinear", pad_value=1)  # type: ignore[arg-type]

        assert spec.mean == (1.0,)
        assert spec.std == (2.0,)
        assert spec.interpolation is Interpolation.BILINEAR
        assert isinstance(spec.pad_value, float)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"size": 31}, "`size` must be >= 32, 31 is given"),
            ({"size": 0}, "`size` must be >= 32, 0 is given"),
            ({"size": 224.0}, "`size` must be an integer, 224.0 is given"),
            ({"size": True}, "`size` must be an integer, True is given"),
            ({"size": 224, "channels": 2}, "`channels` must be 1 or 3, 2 is given"),
            ({"size": 224, "channels": 3}, "`mean` must have one value per channel (3), 1 are"),
            (
                {"size": 224, "mean": (0.5, 0.5), "std": (1.0,)},
                "`mean` must have one value per channel (1), 2 are given: [0.5, 0.5]",
            ),
            ({"size": 224, "std": (1.0, 1.0)}, "`std` must have one value per channel (1)"),
            ({"size": 224, "std": (0.0,)}, "`std` values must be > 0, [0.0] is given"),
            ({"size": 224, "std": (-1.0,)}, "`std` values must be > 0, [-1.0] is given"),
            ({"size": 224, "mean": (float("nan"),)}, "`mean` values must be finite, nan"),
            ({"size": 224, "mean": ("0.5",)}, "`mean` values must be numbers, '0.5' is given"),
            ({"size": 224, "mean": 0.5}, "`mean` must be a sequence of numbers, 0.5 is given"),
            ({"size": 224, "interpolation": "nearest"}, "`interpolation` must be one of 'area'"),
            ({"size": 224, "pad_value": 2}, "`pad_value` must be in [0, 1], 2.0 is given"),
            ({"size": 224, "pad_value": -0.1}, "`pad_value` must be in [0, 1], -0.1 is given"),
        ],
    )
    def test_refuses_invalid_values(self, kwargs: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            InputSpec(**kwargs)

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"size": 224, "colour": True}, "unknown input spec keys ['colour']"),
            ({"channels": 1}, "`size` is missing from the input spec"),
            ({"size": 16}, "`size` must be >= 32, 16 is given"),
        ],
    )
    def test_from_dict_refuses_invalid_data(self, data: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            InputSpec.from_dict(data)

    def test_is_frozen(self) -> None:
        spec = InputSpec(size=224)

        with pytest.raises(AttributeError):
            spec.size = 256  # type: ignore[misc]
