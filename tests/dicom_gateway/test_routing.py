"""Routing rules: readable TOML, AND within a rule, OR within a condition and across rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicom_gateway import InstanceAttributes, Router, RoutingConfigError

CR = "1.2.840.10008.5.1.4.1.1.1"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
OP8 = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
VL_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1.4"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"


class TestShippedRules:
    @pytest.mark.parametrize(
        ("attributes", "expected"),
        [
            (
                InstanceAttributes(CR, modality="CR", body_part="CHEST", view_position="PA"),
                ("cxr",),
            ),
            (InstanceAttributes(DX, modality="DX", body_part="chest"), ("cxr",)),
            (InstanceAttributes(CR, modality="CR", body_part=""), ("cxr",)),
            (InstanceAttributes(CR, modality="CR", body_part="HAND"), ()),
            (InstanceAttributes(OP8, modality="OP"), ("fundus",)),
            (InstanceAttributes(VL_PHOTO, modality="XC", body_part="EYE"), ("fundus",)),
            (InstanceAttributes(VL_PHOTO, modality="XC", body_part="SKIN"), ()),
            (InstanceAttributes(CT, modality="CT", body_part="CHEST"), ("ct-chest",)),
            (
                InstanceAttributes(
                    CT, modality="CT", body_part="CHEST", image_type=("ORIGINAL", "LOCALIZER")
                ),
                (),
            ),
            (InstanceAttributes(CT, modality="CT", body_part="HEAD"), ()),
            (InstanceAttributes(RT_PLAN, modality="RTPLAN"), ()),
        ],
    )
    def test_pipelines_for(self, attributes: InstanceAttributes, expected: tuple[str, ...]) -> None:
        assert Router.from_file().pipelines_for(attributes) == expected

    def test_every_pipeline_is_named(self) -> None:
        assert Router.from_file().pipelines == {"cxr", "fundus", "ct-chest"}


class TestRulesFile:
    def test_keywords_and_uids_both_name_sop_classes(self, tmp_path: Path) -> None:
        path = tmp_path / "rules.toml"
        path.write_text(
            '[[rules]]\npipeline = "a"\nsop_class = ["CTImageStorage"]\n'
            f'[[rules]]\npipeline = "b"\nsop_class = ["{CR}"]\nview_position = ["AP", "PA"]\n'
        )
        router = Router.from_file(path)
        assert router.pipelines_for(InstanceAttributes(CT)) == ("a",)
        assert router.pipelines_for(InstanceAttributes(CR, view_position="ap")) == ("b",)
        assert router.pipelines_for(InstanceAttributes(CR, view_position="LL")) == ()

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("[[rules]]\nname = 'x'\n", "`pipeline` must be a non-empty string"),
            ("[[rules]]\npipeline = 'x'\nseries_description = ['CHEST']\n", "unknown key"),
            ("[[rules]]\npipeline = 'x'\nsop_class = ['NoSuchStorage']\n", "neither a SOP class"),
            ("[[rules]]\npipeline = 'x'\nmodality = 3\n", "must be a list of strings"),
            ("rules = 'x'\n", "array of tables"),
            ("[[rules]\n", "not valid TOML"),
        ],
    )
    def test_invalid_rules_are_refused_with_the_reason(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        path = tmp_path / "rules.toml"
        path.write_text(text)
        with pytest.raises(RoutingConfigError, match=message):
            Router.from_file(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(RoutingConfigError, match="cannot read routing rules"):
            Router.from_file(tmp_path / "absent.toml")
