"""Heatmap secondary captures: valid (dciodvfy), the overlay's pixels, the source's patient."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import SecondaryCaptureImageStorage

from reports.context import FindingInfo, ReportContext
from reports.heatmap_sc import (
    HEATMAP_SC_SERIES_DESCRIPTION,
    HEATMAP_SC_SERIES_NUMBER,
    PRELIMINARY_LABEL,
    build_heatmap_sc,
)
from tests.support.dcmtk import dciodvfy

PATIENT_NAME = "NGUYỄN^THỊ HƯƠNG"
FACILITY_NAME = "Bệnh viện Đa khoa tỉnh Hà Giang"


def _finding(context: ReportContext, key: str) -> FindingInfo:
    return next(f for f in context.findings if f.key == key)


def _save(dataset: pydicom.Dataset, folder: Path, name: str) -> Path:
    path = folder / f"{name}.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


class TestValidDicom:
    @pytest.mark.parametrize("key", ["cardiomegaly", "pleural_effusion"])
    def test_dciodvfy_reports_no_error(
        self, key: str, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        path = _save(
            build_heatmap_sc(complete_context, _finding(complete_context, key)), tmp_path, key
        )
        result = dciodvfy(path)
        assert result.errors == [], result.output

    def test_secondary_capture_rgb_8_bit(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        finding = _finding(complete_context, "cardiomegaly")
        image = pydicom.dcmread(_save(build_heatmap_sc(complete_context, finding), tmp_path, "sc"))
        assert image.SOPClassUID == SecondaryCaptureImageStorage
        assert image.PhotometricInterpretation == "RGB"
        assert image.SamplesPerPixel == 3
        assert (image.BitsAllocated, image.BitsStored) == (8, 8)
        assert list(image.ImageType) == ["DERIVED", "SECONDARY"]
        assert image.BurnedInAnnotation == "YES"
        assert image.SpecificCharacterSet == "ISO_IR 192"
        assert image.SeriesNumber == HEATMAP_SC_SERIES_NUMBER == 9002
        assert image.SeriesDescription == HEATMAP_SC_SERIES_DESCRIPTION
        assert len(image.SeriesDescription.encode("utf-8")) <= 64

    def test_labelled_preliminary_in_both_languages(self, complete_context: ReportContext) -> None:
        image = build_heatmap_sc(complete_context, _finding(complete_context, "cardiomegaly"))
        assert PRELIMINARY_LABEL == "AI — preliminary / AI — sơ bộ"
        assert image.ImageComments.startswith(PRELIMINARY_LABEL)
        assert "Cardiomegaly / Bóng tim to 0.91" in image.ImageComments


class TestPixels:
    @pytest.mark.parametrize("key", ["cardiomegaly", "pleural_effusion"])
    def test_the_overlay_png_unchanged(
        self, key: str, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        finding = _finding(complete_context, key)
        assert finding.overlay_path is not None
        image = pydicom.dcmread(_save(build_heatmap_sc(complete_context, finding), tmp_path, key))
        with Image.open(finding.overlay_path) as picture:
            expected = np.asarray(picture.convert("RGB"))
        assert (image.Rows, image.Columns) == expected.shape[:2]
        np.testing.assert_array_equal(image.pixel_array, expected)


class TestSourceAttributes:
    def test_patient_and_study_copied_from_the_source(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        finding = _finding(complete_context, "pleural_effusion")
        path = _save(build_heatmap_sc(complete_context, finding), tmp_path, "sc")
        image = pydicom.dcmread(path)
        source = pydicom.dcmread(complete_context.images[0].path, stop_before_pixels=True)
        for keyword in (
            "PatientName",
            "PatientID",
            "IssuerOfPatientID",
            "PatientBirthDate",
            "PatientSex",
            "StudyInstanceUID",
            "StudyID",
            "StudyDate",
            "StudyTime",
            "AccessionNumber",
            "StudyDescription",
            "PatientOrientation",
        ):
            assert image[keyword].value == source[keyword].value, keyword
        assert image.OtherPatientIDsSequence == source.OtherPatientIDsSequence
        assert image.SeriesInstanceUID != source.SeriesInstanceUID
        (reference,) = image.SourceImageSequence
        assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert reference.ReferencedSOPClassUID == source.SOPClassUID

    def test_vietnamese_text_round_trips_exactly(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        finding = _finding(complete_context, "cardiomegaly")
        path = _save(build_heatmap_sc(complete_context, finding), tmp_path, "sc")
        image = pydicom.dcmread(path)
        assert str(image.PatientName) == PATIENT_NAME
        assert image.InstitutionName == FACILITY_NAME
        raw = path.read_bytes()
        assert PATIENT_NAME.encode("utf-8") in raw
        assert FACILITY_NAME.encode("utf-8") in raw


class TestDeterministicIdentifiers:
    def test_the_same_image_twice_is_the_same_file(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        finding = _finding(complete_context, "cardiomegaly")
        first = build_heatmap_sc(complete_context, finding)
        second = build_heatmap_sc(complete_context, finding)
        assert first.SOPInstanceUID == second.SOPInstanceUID
        assert pydicom.uid.UID(first.SOPInstanceUID).is_valid
        assert _save(first, tmp_path, "1").read_bytes() == _save(second, tmp_path, "2").read_bytes()

    def test_one_series_one_instance_per_finding(self, complete_context: ReportContext) -> None:
        images = [build_heatmap_sc(complete_context, f) for f in complete_context.positive_findings]
        assert len({str(i.SeriesInstanceUID) for i in images}) == 1
        assert len({str(i.SOPInstanceUID) for i in images}) == len(images) == 2
        assert [int(i.InstanceNumber) for i in images] == [1, 2]

    def test_another_result_gets_other_uids(self, complete_context: ReportContext) -> None:
        finding = _finding(complete_context, "cardiomegaly")
        first = build_heatmap_sc(complete_context, finding)
        other = build_heatmap_sc(replace(complete_context, result_id=18), finding)
        assert first.SOPInstanceUID != other.SOPInstanceUID
        assert first.SeriesInstanceUID != other.SeriesInstanceUID

    def test_the_status_does_not_change_the_picture_or_its_uid(
        self, complete_context: ReportContext
    ) -> None:
        finding = _finding(complete_context, "cardiomegaly")
        preliminary = build_heatmap_sc(complete_context, finding)
        final = build_heatmap_sc(replace(complete_context, status="final"), finding)
        assert preliminary.SOPInstanceUID == final.SOPInstanceUID


class TestRefusals:
    def test_a_finding_without_an_overlay(self, complete_context: ReportContext) -> None:
        with pytest.raises(ValueError, match="'pneumothorax' has no overlay"):
            build_heatmap_sc(complete_context, _finding(complete_context, "pneumothorax"))

    def test_a_finding_of_another_result(self, complete_context: ReportContext) -> None:
        stranger = replace(_finding(complete_context, "cardiomegaly"), key="fracture")
        with pytest.raises(ValueError, match="'fracture' is not a finding of result 17"):
            build_heatmap_sc(complete_context, stranger)

    def test_a_finding_read_on_an_image_the_result_does_not_name(
        self, complete_context: ReportContext
    ) -> None:
        finding = replace(_finding(complete_context, "cardiomegaly"), sop_instance_uid="1.2.3")
        context = replace(
            complete_context,
            findings=tuple(
                finding if f.key == finding.key else f for f in complete_context.findings
            ),
        )
        with pytest.raises(ValueError, match="not among the images of the result"):
            build_heatmap_sc(context, finding)
