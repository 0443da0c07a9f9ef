"""Tests for :mod:`inference.gates.config`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inference.gates import CxrGateConfig


class TestCxrGateConfig:
    def test_round_trip_through_json(self) -> None:
        config = CxrGateConfig(min_side=512, min_symmetry=0.6, modalities=("DX",))

        restored = CxrGateConfig.from_dict(json.loads(json.dumps(config.to_dict())))

        assert restored == config
        assert config.to_dict()["modalities"] == ["DX"]

    def test_defaults_round_trip(self) -> None:
        assert CxrGateConfig.from_dict(CxrGateConfig().to_dict()) == CxrGateConfig()

    def test_missing_keys_keep_defaults(self) -> None:
        assert CxrGateConfig.from_dict({"min_side": 300}).min_contrast == 0.04

    def test_unknown_key_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown gate config keys"):
            CxrGateConfig.from_dict({"min_sise": 300})

    @pytest.mark.parametrize(
        ("values", "message"),
        [
            ({"min_side": 0}, "`min_side` must be a positive number"),
            ({"min_side": 2.5}, "`min_side` must be an integer"),
            ({"min_side": True}, "`min_side` must be an integer"),
            ({"min_contrast": -0.1}, "`min_contrast` must be between 0 and 1"),
            ({"max_saturated_fraction": 1.5}, "`max_saturated_fraction` must be between"),
            ({"max_color_fraction": float("nan")}, "`max_color_fraction` must be between"),
            ({"chroma_tolerance": "0.1"}, "`chroma_tolerance` must be a number"),
            ({"min_symmetry": 1.2}, "`min_symmetry` must be between -1 and 1"),
            ({"min_lung_contrast": -1.0}, "`min_lung_contrast` must be between 0 and 1"),
            ({"modalities": ()}, "`modalities` must name at least one"),
            ({"modalities": "CR"}, "`modalities` must be a tuple of strings"),
            ({"chest_body_parts": ("CHEST", "")}, "`chest_body_parts` must hold non-empty"),
            ({"frontal_views": ()}, "`frontal_views` must name at least one"),
            ({"lateral_views": ("PA",)}, "must not share values"),
        ],
    )
    def test_invalid_values(self, values: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            CxrGateConfig(**values)

    def test_from_dict_validates(self) -> None:
        with pytest.raises(ValueError, match="`min_side` must be a positive number"):
            CxrGateConfig.from_dict({"min_side": -1})
