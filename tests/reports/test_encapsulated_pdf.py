"""The PDF report as a DICOM Encapsulated PDF instance of the study."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from reports.context import ReportContext
from reports.encapsulated_pdf import (
    ENCAPSULATED_PDF_STORAGE,
    PDF_SERIES_NUMBER,
    build_encapsulated_pdf,
    encapsulated_pdf_uid,
)
from reports.pdf import build_pdf
from tests.support.dcmtk import dciodvfy

#: A stand-in for the report where only the wrapping matters (15 bytes: an odd length).
SMALL_PDF = b"%PDF-1.4\n%%EOF\n"


def _saved(document: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    document.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _round_trip(document: pydicom.Dataset, path: Path) -> pydicom.Dataset:
    path.write_bytes(_saved(document))
    return pydicom.dcmread(path)


class TestConformance:
    @pytest.mark.parametrize(
        ("fixture", "status"),
        [("complete_context", "preliminary"), ("ungradable_context", "final")],
    )
    def test_passes_dciodvfy(
        self, request: pytest.FixtureRequest, tmp_path: Path, fixture: str, status: str
    ) -> None:
        context = replace(request.getfixturevalue(fixture), status=status)
        path = tmp_path / "report.dcm"
        path.write_bytes(_saved(build_encapsulated_pdf(context, build_pdf(context))))

        result = dciodvfy(path)

        assert result.errors == [], result.output
        assert "EncapsulatedPDF" in result.output


class TestDocument:
    def test_encapsulated_document_is_the_pdf(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        built = build_pdf(complete_context)

        for pdf in (built, built + b"\n"):  # one of them has an odd length
            document = build_encapsulated_pdf(complete_context, pdf)
            read = _round_trip(document, tmp_path / "r.dcm")

            stored = read.EncapsulatedDocument
            assert read.EncapsulatedDocumentLength == len(pdf)
            assert stored[: read.EncapsulatedDocumentLength] == pdf
            assert stored == document.EncapsulatedDocument
            assert len(stored) == len(pdf) + len(pdf) % 2
            assert stored[len(pdf) :] == b"\x00" * (len(pdf) % 2)
            assert read.MIMETypeOfEncapsulatedDocument == "application/pdf"

    def test_only_an_odd_document_gets_a_pad_byte(self, complete_context: ReportContext) -> None:
        odd, even = SMALL_PDF, SMALL_PDF + b"\n"
        assert len(odd) % 2 == 1

        padded = build_encapsulated_pdf(complete_context, odd)
        unpadded = build_encapsulated_pdf(complete_context, even)

        assert padded.EncapsulatedDocument == odd + b"\x00"
        assert padded.EncapsulatedDocumentLength == len(odd)
        assert unpadded.EncapsulatedDocument == even
        assert unpadded.EncapsulatedDocumentLength == len(even)

    def test_files_into_the_patient_and_study_of_the_source(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        source = pydicom.dcmread(complete_context.images[0].path, stop_before_pixels=True)

        read = _round_trip(build_encapsulated_pdf(complete_context, SMALL_PDF), tmp_path / "r.dcm")

        assert read.SOPClassUID == ENCAPSULATED_PDF_STORAGE
        assert read.file_meta.MediaStorageSOPClassUID == ENCAPSULATED_PDF_STORAGE
        assert read.SpecificCharacterSet == "ISO_IR 192"
        for keyword in (
            "PatientName",
            "PatientID",
            "IssuerOfPatientID",
            "PatientBirthDate",
            "PatientSex",
            "StudyInstanceUID",
            "StudyDate",
            "StudyTime",
            "StudyID",
            "AccessionNumber",
            "StudyDescription",
        ):
            assert read[keyword].value == source[keyword].value, keyword
        assert str(read.PatientName) == "NGUYỄN^THỊ HƯƠNG"
        assert read.OtherPatientIDsSequence[0].PatientID == (
            source.OtherPatientIDsSequence[0].PatientID
        )
        assert read.SeriesInstanceUID != source.SeriesInstanceUID
        assert read.SeriesNumber == PDF_SERIES_NUMBER == 9003
        assert read.Modality == "DOC"
        reference = read.SourceInstanceSequence[0]
        assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert reference.ReferencedSOPClassUID == source.SOPClassUID

    def test_describes_the_document(self, complete_context: ReportContext, tmp_path: Path) -> None:
        english = replace(
            complete_context, facility=replace(complete_context.facility, language="en")
        )

        read = _round_trip(build_encapsulated_pdf(complete_context, SMALL_PDF), tmp_path / "r.dcm")

        assert read.DocumentTitle == "Kết quả đọc phim X-quang ngực bằng AI — SƠ BỘ"
        concept = read.ConceptNameCodeSequence[0]
        assert (concept.CodeValue, concept.CodingSchemeDesignator) == ("18748-4", "LN")
        assert concept.CodeMeaning == "Diagnostic imaging study"
        assert read.BurnedInAnnotation == "YES"
        assert read.VerificationFlag == "UNVERIFIED"
        assert read.InstitutionName == "Bệnh viện Đa khoa tỉnh Hà Giang"
        assert (read.ContentDate, read.ContentTime) == ("20261123", "083000")
        assert read.AcquisitionDateTime == "20261123083000+0000"
        assert read.InstanceNumber == 1
        title = build_encapsulated_pdf(english, SMALL_PDF).DocumentTitle
        assert title == "AI chest X-ray result — PRELIMINARY"


class TestIdentity:
    def test_uids_derive_from_study_result_and_status(
        self, complete_context: ReportContext
    ) -> None:
        expected = generate_uid(
            entropy_srcs=[complete_context.study.study_instance_uid, "17", "pdf", "preliminary"]
        )

        document = build_encapsulated_pdf(complete_context, SMALL_PDF)
        other = build_encapsulated_pdf(replace(complete_context, result_id=18), SMALL_PDF)

        assert document.SOPInstanceUID == expected
        assert document.file_meta.MediaStorageSOPInstanceUID == expected
        assert encapsulated_pdf_uid(complete_context) == expected
        assert other.SeriesInstanceUID != document.SeriesInstanceUID
        assert other.SOPInstanceUID != document.SOPInstanceUID

    def test_building_again_gives_the_same_bytes(self, complete_context: ReportContext) -> None:
        first = _saved(build_encapsulated_pdf(complete_context, build_pdf(complete_context)))
        second = _saved(build_encapsulated_pdf(complete_context, build_pdf(complete_context)))

        assert first == second

    def test_a_signed_report_is_a_new_instance_of_the_same_series(
        self, complete_context: ReportContext
    ) -> None:
        final = replace(complete_context, status="final")

        preliminary_doc = build_encapsulated_pdf(complete_context, SMALL_PDF)
        final_doc = build_encapsulated_pdf(final, SMALL_PDF)

        assert final_doc.SOPInstanceUID != preliminary_doc.SOPInstanceUID
        assert final_doc.SeriesInstanceUID == preliminary_doc.SeriesInstanceUID
        assert final_doc.InstanceNumber == 2
        assert final_doc.VerificationFlag == "VERIFIED"
        assert final_doc.DocumentTitle == "Kết quả đọc phim X-quang ngực bằng AI — CHÍNH THỨC"


def test_refuses_inconsistent_input(complete_context: ReportContext) -> None:
    elsewhere = replace(
        complete_context,
        study=replace(complete_context.study, study_instance_uid=generate_uid()),
    )

    with pytest.raises(ValueError, match="PDF"):
        build_encapsulated_pdf(complete_context, b"<html></html>")
    with pytest.raises(ValueError, match="status"):
        build_encapsulated_pdf(replace(complete_context, status="draft"), SMALL_PDF)
    with pytest.raises(ValueError, match="belongs to study"):
        build_encapsulated_pdf(elsewhere, SMALL_PDF)
