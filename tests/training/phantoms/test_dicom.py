"""Phantoms as CR and DX instances: valid IODs, pixel encodings, identifiers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.support.data import write_dataset
from tests.support.dcmtk import dciodvfy
from training.labels import CxrFinding
from training.phantoms import (
    NATIONAL_ID_ISSUER,
    Phantom,
    generate_cxr,
    phantom_to_dicom,
    random_patient,
)


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return generate_cxr(
        np.random.default_rng(3), findings=frozenset({CxrFinding.PNEUMOTHORAX}), size=128
    )


def _roundtrip(ds: pydicom.Dataset, tmp_path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(write_dataset(ds, tmp_path / "image.dcm"))


class TestPhantomToDicom:
    @pytest.mark.parametrize("modality", ["CR", "DX"])
    @pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
    @pytest.mark.parametrize(
        ("bits_stored", "window"), [(12, "present"), (14, "multiple"), (16, "present")]
    )
    def test_dciodvfy_reports_no_error(
        self,
        phantom: Phantom,
        tmp_path: Path,
        modality: str,
        photometric: str,
        bits_stored: int,
        window: str,
    ) -> None:
        ds = phantom_to_dicom(
            phantom,
            np.random.default_rng(0),
            modality=modality,
            photometric=photometric,
            bits_stored=bits_stored,
            window=window,
        )
        result = dciodvfy(write_dataset(ds, tmp_path / "image.dcm"))
        assert result.ok, result.output

    @pytest.mark.parametrize("window", ["absent", "multiple"])
    def test_cr_with_rescale_and_window_variants(
        self, phantom: Phantom, tmp_path: Path, window: str
    ) -> None:
        ds = phantom_to_dicom(
            phantom,
            np.random.default_rng(0),
            modality="CR",
            bits_stored=16,
            rescale=(0.5, -1024.0),
            window=window,
        )
        path = write_dataset(ds, tmp_path / "image.dcm")
        assert dciodvfy(path).ok
        back = pydicom.dcmread(path)
        assert (float(back.RescaleSlope), float(back.RescaleIntercept)) == (0.5, -1024.0)
        assert ("WindowCenter" in back) == (window != "absent")
        if window == "multiple":
            assert list(back.WindowCenterWidthExplanation) == ["DEFAULT", "LUNG"]

    def test_monochrome1_inverts_the_stored_values(self, phantom: Phantom, tmp_path: Path) -> None:
        pixels = {}
        for photometric in ("MONOCHROME1", "MONOCHROME2"):
            ds = phantom_to_dicom(phantom, np.random.default_rng(0), photometric=photometric)
            pixels[photometric] = _roundtrip(ds, tmp_path).pixel_array.astype(np.int32)
        np.testing.assert_array_equal(pixels["MONOCHROME1"], 4095 - pixels["MONOCHROME2"])
        correlation = np.corrcoef(pixels["MONOCHROME2"].ravel(), phantom.image.ravel())[0, 1]
        assert correlation > 0.99

    def test_upsampled_to_the_detector_size(self, phantom: Phantom, tmp_path: Path) -> None:
        ds = phantom_to_dicom(phantom, np.random.default_rng(0), rows=1024, bits_stored=14)
        back = _roundtrip(ds, tmp_path)
        assert (back.Rows, back.Columns) == (1024, 1024)
        assert back.pixel_array.max() < 2**14
        spacing = phantom.pixel_spacing_mm * phantom.size / 1024
        assert [float(v) for v in back.PixelSpacing] == pytest.approx([spacing, spacing])
        assert [float(v) for v in back.ImagerPixelSpacing] == pytest.approx([spacing, spacing])

    def test_patient_identifiers(self, phantom: Phantom, tmp_path: Path) -> None:
        patient = random_patient(np.random.default_rng(5))
        ds = phantom_to_dicom(phantom, np.random.default_rng(0), patient=patient)
        back = _roundtrip(ds, tmp_path)
        assert back.SpecificCharacterSet == "ISO_IR 192"
        assert str(back.PatientName) == patient.patient_name
        assert back.PatientID == patient.patient_id
        assert back.IssuerOfPatientID
        (national,) = back.OtherPatientIDsSequence
        assert national.IssuerOfPatientID == NATIONAL_ID_ISSUER
        assert national.PatientID == patient.national_id
        assert len(patient.national_id) == 12
        assert patient.national_id.isdigit()
        assert patient.national_id[4:6] == f"{patient.birth_date.year % 100:02d}"

    def test_vietnamese_name_survives_encoding(self, phantom: Phantom, tmp_path: Path) -> None:
        patient = random_patient(np.random.default_rng(1))
        patient = dataclasses.replace(patient, patient_name="Đặng^Thị Ánh Tuyết")
        ds = phantom_to_dicom(phantom, np.random.default_rng(0), patient=patient)
        path = write_dataset(ds, tmp_path / "image.dcm")
        assert "Đặng".encode() in path.read_bytes()
        assert str(pydicom.dcmread(path).PatientName) == "Đặng^Thị Ánh Tuyết"

    def test_chest_attributes_and_view(self, phantom: Phantom, tmp_path: Path) -> None:
        ds = phantom_to_dicom(phantom, np.random.default_rng(0), modality="DX", view_position="AP")
        back = _roundtrip(ds, tmp_path)
        assert back.BodyPartExamined == "CHEST"
        assert back.ViewPosition == "AP"
        assert back.Modality == "DX"
        assert back.PresentationIntentType == "FOR PRESENTATION"
        assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"

    def test_lateral_is_ll(self, tmp_path: Path) -> None:
        lateral = generate_cxr(np.random.default_rng(0), size=64, view="LATERAL")
        ds = phantom_to_dicom(lateral, np.random.default_rng(0), modality="CR")
        assert ds.ViewPosition == "LL"
        assert dciodvfy(write_dataset(ds, tmp_path / "image.dcm")).ok

    def test_deterministic(self, phantom: Phantom) -> None:
        a = phantom_to_dicom(phantom, np.random.default_rng(9))
        b = phantom_to_dicom(phantom, np.random.default_rng(9))
        assert a.SOPInstanceUID == b.SOPInstanceUID
        assert a.PatientName == b.PatientName
        assert a.PixelData == b.PixelData

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"bits_stored": 10}, "`bits_stored` must be one of 12, 14, 16, 10 is given"),
            ({"photometric": "RGB"}, "`photometric` must be one of"),
            ({"modality": "CT"}, "`modality` must be one of 'CR', 'DX', 'CT' is given"),
            ({"modality": "DX", "window": "absent"}, "requires a VOI window"),
            ({"modality": "DX", "rescale": (2.0, 0.0)}, "fixed at 1 and 0"),
            ({"view_position": "RAO"}, "`view_position` must be one of"),
        ],
    )
    def test_errors(self, phantom: Phantom, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            phantom_to_dicom(phantom, np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]
