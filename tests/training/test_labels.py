"""The CXR label set and its table."""

from __future__ import annotations

import re
import unicodedata

import pytest

from training.labels import CXR_FINDINGS, CXR_LABELS, CxrFinding, cxr_label, is_normal


class TestCxrFinding:
    def test_output_order(self) -> None:
        assert [f.value for f in CXR_FINDINGS] == [
            "cardiomegaly",
            "pleural_effusion",
            "pneumothorax",
            "consolidation",
            "nodule_mass",
        ]

    def test_normal_is_not_an_output(self) -> None:
        assert "normal" not in {f.value for f in CxrFinding}


class TestLabelTable:
    def test_one_row_per_finding_in_order(self) -> None:
        assert list(CXR_LABELS) == list(CXR_FINDINGS)
        assert all(row.finding is finding for finding, row in CXR_LABELS.items())

    @pytest.mark.parametrize(
        ("finding", "vietnamese"),
        [
            (CxrFinding.CARDIOMEGALY, "Bóng tim to"),
            (CxrFinding.PLEURAL_EFFUSION, "Tràn dịch màng phổi"),
            (CxrFinding.PNEUMOTHORAX, "Tràn khí màng phổi"),
            (CxrFinding.CONSOLIDATION, "Đông đặc phổi"),
            (CxrFinding.NODULE_MASS, "Nốt / khối u phổi"),
        ],
    )
    def test_vietnamese_names_are_precomposed(self, finding: CxrFinding, vietnamese: str) -> None:
        name = CXR_LABELS[finding].display_vi
        assert name == vietnamese
        assert unicodedata.normalize("NFC", name) == name

    @pytest.mark.parametrize(
        ("finding", "code"),
        [
            (CxrFinding.CARDIOMEGALY, "8186001"),
            (CxrFinding.PLEURAL_EFFUSION, "60046008"),
            (CxrFinding.PNEUMOTHORAX, "36118008"),
            (CxrFinding.CONSOLIDATION, "95436008"),
            (CxrFinding.NODULE_MASS, "427359005"),
        ],
    )
    def test_snomed_codes(self, finding: CxrFinding, code: str) -> None:
        concept = CXR_LABELS[finding].concept
        assert concept.snomed_code == code
        assert concept.snomed_meaning

    def test_radlex_ids_are_well_formed_or_empty(self) -> None:
        for row in CXR_LABELS.values():
            concept = row.concept
            assert (concept.radlex_id == "") == (concept.radlex_meaning == "")
            assert concept.radlex_id == "" or re.fullmatch(r"RID\d+", concept.radlex_id)


class TestCxrLabel:
    def test_accepts_value(self) -> None:
        assert cxr_label("pneumothorax").display_en == "Pneumothorax"

    def test_unknown_names_the_value(self) -> None:
        with pytest.raises(ValueError, match="unknown CXR finding 'edema'"):
            cxr_label("edema")


class TestIsNormal:
    def test_all_zero_is_normal(self) -> None:
        assert is_normal(dict.fromkeys(CxrFinding, 0)) is True

    def test_any_positive_is_abnormal(self) -> None:
        labels: dict[CxrFinding, int | None] = dict.fromkeys(CxrFinding, None)
        labels[CxrFinding.PNEUMOTHORAX] = 1
        assert is_normal(labels) is False

    def test_unlabelled_is_unknown(self) -> None:
        labels: dict[CxrFinding, int | None] = dict.fromkeys(CxrFinding, 0)
        labels[CxrFinding.NODULE_MASS] = None
        assert is_normal(labels) is None
