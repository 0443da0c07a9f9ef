"""Tests for :mod:`inference.gates.header`."""

from __future__ import annotations

import pytest
from pydicom.uid import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
)

from inference.gates import BodyPartGate, CxrGateConfig, ModalityGate
from inference.pixels import display_array
from tests.support.data import make_cr

CONFIG = CxrGateConfig()
LOWER_CASE_CS = pytest.mark.filterwarnings("ignore:Invalid value for VR CS")


def _check_modality(**attributes: object) -> tuple[bool, str, str, dict[str, object]]:
    ds = make_cr()
    for keyword, value in attributes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    outcome = ModalityGate().check(ds, display_array(ds), CONFIG)
    return outcome.passed, outcome.reason_en, outcome.reason_vi, dict(outcome.measurements)


class TestModalityGate:
    @LOWER_CASE_CS
    @pytest.mark.parametrize(
        "attributes",
        [
            {},
            {"Modality": "DX", "SOPClassUID": DigitalXRayImageStorageForPresentation},
            {"Modality": "dx", "SOPClassUID": DigitalXRayImageStorageForProcessing},
            {"SOPClassUID": None},
        ],
    )
    def test_radiographs_pass(self, attributes: dict[str, object]) -> None:
        passed, reason_en, _, measurements = _check_modality(**attributes)

        assert passed, reason_en
        assert measurements["modality"] in ("CR", "DX")

    def test_ct_names_what_was_found(self) -> None:
        passed, reason_en, reason_vi, measurements = _check_modality(
            Modality="CT", SOPClassUID=CTImageStorage
        )

        assert not passed
        assert reason_en == "Modality is CT, not a chest radiograph (CR/DX)"
        assert reason_vi == "Phương thức chụp là CT, không phải X-quang ngực (CR/DX)"
        assert measurements == {"modality": "CT"}

    def test_missing_modality(self) -> None:
        passed, reason_en, _, measurements = _check_modality(Modality=None)

        assert not passed
        assert "Modality (0008,0060) is missing" in reason_en
        assert measurements["modality"] == "absent"

    def test_secondary_capture_labelled_cr_is_refused(self) -> None:
        passed, reason_en, _, _ = _check_modality(SOPClassUID=SecondaryCaptureImageStorage)

        assert not passed
        assert str(SecondaryCaptureImageStorage) in reason_en

    def test_configured_modalities(self) -> None:
        ds = make_cr(modality="CR")
        outcome = ModalityGate().check(ds, display_array(ds), CxrGateConfig(modalities=("DX",)))

        assert not outcome.passed
        assert "Modality is CR" in outcome.reason_en


class TestBodyPartGate:
    @LOWER_CASE_CS
    @pytest.mark.parametrize(
        ("body_part", "passed", "recorded"),
        [
            ("CHEST", True, "CHEST"),
            ("chest", True, "CHEST"),
            ("Thorax", True, "THORAX"),
            ("LUNG", True, "LUNG"),
            ("PORTABLECHEST", True, "PORTABLECHEST"),
            ("", True, "absent"),
            (None, True, "absent"),
            ("HAND", False, "HAND"),
            ("ABDOMEN", False, "ABDOMEN"),
        ],
    )
    def test_table(self, body_part: str | None, passed: bool, recorded: str) -> None:
        ds = make_cr()
        if body_part is None:
            del ds.BodyPartExamined
        else:
            ds.BodyPartExamined = body_part

        outcome = BodyPartGate().check(ds, display_array(ds), CONFIG)

        assert outcome.passed is passed
        assert outcome.measurements["body_part"] == recorded
        if not passed:
            assert outcome.reason_en == f"Body Part Examined is {recorded}, not the chest"
            assert "không phải lồng ngực" in outcome.reason_vi
