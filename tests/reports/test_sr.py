"""The AI result SR: valid (dciodvfy), rendered (dsrdump), read back by highdicom."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from highdicom.sr import CodedConcept, ValueTypeValues
from highdicom.sr.utils import find_content_items
from pydicom.sr.codedict import codes
from pydicom.uid import Comprehensive3DSRStorage, SecondaryCaptureImageStorage

from reports.context import ReportContext
from reports.heatmap_sc import build_heatmap_sc
from reports.sr import (
    ABSENT,
    BEST_ILLUSTRATION_OF_FINDING,
    CAD_PROCESSING_AND_FINDINGS_SUMMARY,
    COMMENT,
    ENGLISH,
    LANGUAGE_OF_VALUE,
    NO_ALGORITHMS_SUCCEEDED_WITHOUT_FINDINGS,
    OPERATING_POINT,
    PRESENT,
    PROBABILITY,
    PROBABILITY_UNIT,
    QUALITATIVE_EVALUATIONS,
    QUALITY_ASSESSMENT,
    SR_SERIES_NUMBER,
    SUCCEEDED_WITH_FINDINGS,
    SUCCEEDED_WITHOUT_FINDINGS,
    UNUSABLE_QUALITY,
    VIETNAMESE,
    build_sr,
    sr_series_description,
)
from tests.support.dcmtk import dciodvfy
from tests.support.tools import require_binary

PATIENT_NAME = "NGUYỄN^THỊ HƯƠNG"
FACILITY_NAME = "Bệnh viện Đa khoa tỉnh Hà Giang"
VERIFIER = ("TRẦN^VĂN AN", "Bệnh viện Đa khoa tỉnh Hà Giang")
VERIFIED_AT = datetime(2026, 11, 23, 9, 15, tzinfo=UTC)


@pytest.fixture
def heatmaps(complete_context: ReportContext) -> dict[str, pydicom.Dataset]:
    return {
        f.key: build_heatmap_sc(complete_context, f) for f in complete_context.positive_findings
    }


@pytest.fixture
def failed_context(ungradable_context: ReportContext) -> ReportContext:
    return replace(
        ungradable_context,
        state="failed",
        reason_en="the model runtime failed three times: out of memory",
        reason_vi="mô hình lỗi ba lần: hết bộ nhớ",
        gates=(),
    )


@pytest.fixture
def final_context(complete_context: ReportContext) -> ReportContext:
    return replace(complete_context, status="final")


def _save(dataset: pydicom.Dataset, folder: Path, name: str) -> Path:
    path = folder / f"{name}.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


def _read(path: Path) -> hd.sr.Comprehensive3DSR:
    document = hd.sr.srread(path)
    assert isinstance(document, hd.sr.Comprehensive3DSR)
    return document


def _dsrdump(path: Path) -> subprocess.CompletedProcess[str]:
    """``dsrdump`` with values converted to UTF-8 and printed in full."""
    return subprocess.run(
        [str(require_binary("dsrdump")), "+U8", "+Pl", str(path)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def _report(document: hd.sr.Comprehensive3DSR) -> hd.sr.MeasurementReport:
    report = document.content
    assert isinstance(report, hd.sr.MeasurementReport)
    return report


def _statements(document: hd.sr.Comprehensive3DSR) -> dict[str, str]:
    """The Qualitative Evaluations' TEXT items by the language of their value."""
    root = _report(document)[0]
    (container,) = find_content_items(root, name=QUALITATIVE_EVALUATIONS)
    texts: dict[str, str] = {}
    for item in find_content_items(container, name=COMMENT, value_type=ValueTypeValues.TEXT):
        (language,) = find_content_items(item, name=LANGUAGE_OF_VALUE)
        texts[language.value.value] = item.value
    return texts


def _coded(document: hd.sr.Comprehensive3DSR, name: CodedConcept) -> list[CodedConcept]:
    root = _report(document)[0]
    (container,) = find_content_items(root, name=QUALITATIVE_EVALUATIONS)
    return [
        item.value
        for item in find_content_items(container, name=name, value_type=ValueTypeValues.CODE)
    ]


class TestValidDicom:
    @pytest.mark.parametrize(
        "variant", ["complete", "complete+heatmaps", "ungradable", "failed", "final-verified"]
    )
    def test_dciodvfy_reports_no_error(
        self,
        variant: str,
        complete_context: ReportContext,
        ungradable_context: ReportContext,
        failed_context: ReportContext,
        final_context: ReportContext,
        heatmaps: dict[str, pydicom.Dataset],
        tmp_path: Path,
    ) -> None:
        document = {
            "complete": lambda: build_sr(complete_context),
            "complete+heatmaps": lambda: build_sr(complete_context, heatmap_sc=heatmaps),
            "ungradable": lambda: build_sr(ungradable_context),
            "failed": lambda: build_sr(failed_context),
            "final-verified": lambda: build_sr(
                final_context, verifier=VERIFIER, verified_at=VERIFIED_AT
            ),
        }[variant]()
        result = dciodvfy(_save(document, tmp_path, variant))
        assert result.errors == [], result.output

    def test_sop_class_series_and_character_set(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        document = _read(_save(build_sr(complete_context), tmp_path, "sr"))
        source = complete_context.images[0]
        assert document.SOPClassUID == Comprehensive3DSRStorage
        assert document.Modality == "SR"
        assert document.SpecificCharacterSet == "ISO_IR 192"
        assert document.StudyInstanceUID == complete_context.study.study_instance_uid
        assert document.SeriesInstanceUID != source.series_instance_uid
        assert document.SeriesNumber == SR_SERIES_NUMBER == 9001
        assert document.SeriesDescription == "AI results — preliminary / Kết quả AI — sơ bộ"
        assert document.Manufacturer == "Soi"
        assert document.get_evidence() == [
            (
                complete_context.study.study_instance_uid,
                source.series_instance_uid,
                source.sop_instance_uid,
                source.sop_class_uid,
            )
        ]

    @pytest.mark.parametrize("status", ["preliminary", "final", "amended"])
    def test_series_descriptions_fit_a_long_string(self, status: str) -> None:
        assert len(sr_series_description(status).encode("utf-8")) <= 64


class TestDsrdump:
    def test_renders_the_findings_and_the_status(
        self,
        complete_context: ReportContext,
        heatmaps: dict[str, pydicom.Dataset],
        tmp_path: Path,
    ) -> None:
        done = _dsrdump(_save(build_sr(complete_context, heatmap_sc=heatmaps), tmp_path, "sr"))
        assert done.returncode == 0, done.stderr
        for finding in complete_context.findings:
            assert f'"{finding.code_meaning}"' in done.stdout
        assert "PARTIAL" in done.stdout
        assert "UNVERIFIED" in done.stdout
        assert "PRELIMINARY" in done.stdout
        assert PATIENT_NAME in done.stdout
        assert '"Best illustration of finding")=(SC image' in done.stdout
        assert "Dương tính: Bóng tim to 0,91, Tràn dịch màng phổi 0,97." in done.stdout

    def test_renders_the_reason_of_an_ungradable_result(
        self, ungradable_context: ReportContext, tmp_path: Path
    ) -> None:
        done = _dsrdump(_save(build_sr(ungradable_context), tmp_path, "sr"))
        assert done.returncode == 0, done.stderr
        assert ungradable_context.reason_en in done.stdout
        assert ungradable_context.reason_vi in done.stdout
        assert "No algorithms succeeded; without findings" in done.stdout

    def test_renders_a_verified_final_document(
        self, final_context: ReportContext, tmp_path: Path
    ) -> None:
        document = build_sr(final_context, verifier=VERIFIER, verified_at=VERIFIED_AT)
        done = _dsrdump(_save(document, tmp_path, "sr"))
        assert done.returncode == 0, done.stderr
        assert "COMPLETE" in done.stdout
        assert "Verification Flag   : VERIFIED" in done.stdout
        assert "FINAL" in done.stdout


class TestReadBack:
    def test_one_measurement_group_per_finding(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        document = _read(_save(build_sr(complete_context), tmp_path, "sr"))
        groups = _report(document).get_image_measurement_groups()
        assert len(groups) == len(complete_context.findings) == 5
        for group, finding in zip(groups, complete_context.findings, strict=True):
            concept = CodedConcept(finding.code_value, finding.code_scheme, finding.code_meaning)
            assert group.tracking_identifier == finding.display_en
            assert group.finding_type == concept
            (evaluation,) = group.get_qualitative_evaluations(name=concept)
            assert evaluation.value == (PRESENT if finding.positive else ABSENT)
            (probability,) = group.get_measurements(name=PROBABILITY)
            assert probability.value == pytest.approx(finding.probability)
            assert probability.unit == PROBABILITY_UNIT
            (threshold,) = group.get_measurements(name=OPERATING_POINT)
            assert threshold.value == pytest.approx(finding.threshold)
            (source,) = group.source_images
            assert source.referenced_sop_instance_uid == finding.sop_instance_uid

    def test_present_and_absent_as_in_the_result(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        document = _read(_save(build_sr(complete_context), tmp_path, "sr"))
        values = {}
        for group in _report(document).get_image_measurement_groups():
            concept = group.finding_type
            assert concept is not None
            (evaluation,) = group.get_qualitative_evaluations(name=concept)
            values[concept.meaning] = evaluation.value
        assert values == {
            "Cardiomegaly": PRESENT,
            "Pleural effusion": PRESENT,
            "Pneumothorax": ABSENT,
            "Lung consolidation": ABSENT,
            "Solitary nodule of lung": ABSENT,
        }
        assert _coded(document, CAD_PROCESSING_AND_FINDINGS_SUMMARY) == [SUCCEEDED_WITH_FINDINGS]

    def test_no_positive_finding(self, complete_context: ReportContext, tmp_path: Path) -> None:
        negative = tuple(
            replace(f, positive=False, heatmap_path=None, overlay_path=None)
            for f in complete_context.findings
        )
        document = _read(
            _save(build_sr(replace(complete_context, findings=negative)), tmp_path, "sr")
        )
        assert _coded(document, CAD_PROCESSING_AND_FINDINGS_SUMMARY) == [SUCCEEDED_WITHOUT_FINDINGS]
        assert _statements(document)["en"].endswith("No finding reaches its operating point.")

    def test_the_device_is_the_observer(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        document = _read(_save(build_sr(complete_context), tmp_path, "sr"))
        report = _report(document)
        assert report.get_observer_contexts(observer_type=codes.DCM.Person) == []
        (observer,) = report.get_observer_contexts(observer_type=codes.DCM.Device)
        device = observer.observer_identifying_attributes
        assert isinstance(device, hd.sr.DeviceObserverIdentifyingAttributes)
        assert device.name == "cxr 0.2.0"
        assert device.manufacturer_name == "Soi"
        assert device.model_name == "cxr"
        assert pydicom.uid.UID(device.uid).is_valid

    def test_algorithm_identification_in_each_group(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        document = _read(_save(build_sr(complete_context), tmp_path, "sr"))
        for group in _report(document).get_image_measurement_groups():
            (name,) = find_content_items(group[0], name=codes.DCM.AlgorithmName)
            (version,) = find_content_items(group[0], name=codes.DCM.AlgorithmVersion)
            assert (name.value, version.value) == ("cxr", "0.2.0")

    def test_heatmap_references_for_positive_findings(
        self,
        complete_context: ReportContext,
        heatmaps: dict[str, pydicom.Dataset],
        tmp_path: Path,
    ) -> None:
        document = _read(_save(build_sr(complete_context, heatmap_sc=heatmaps), tmp_path, "sr"))
        groups = _report(document).get_image_measurement_groups()
        for group, finding in zip(groups, complete_context.findings, strict=True):
            references = find_content_items(
                group[0], name=BEST_ILLUSTRATION_OF_FINDING, value_type=ValueTypeValues.IMAGE
            )
            if finding.key in heatmaps:
                (reference,) = references
                referenced = reference.ReferencedSOPSequence[0]
                assert referenced.ReferencedSOPClassUID == SecondaryCaptureImageStorage
                assert referenced.ReferencedSOPInstanceUID == heatmaps[finding.key].SOPInstanceUID
            else:
                assert references == []
        evidence = {uid for _, _, uid, _ in document.get_evidence()}
        assert {str(sc.SOPInstanceUID) for sc in heatmaps.values()} <= evidence

    def test_vietnamese_text_round_trips_exactly(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        path = _save(build_sr(complete_context), tmp_path, "sr")
        document = _read(path)
        assert str(document.PatientName) == PATIENT_NAME
        assert document.InstitutionName == FACILITY_NAME
        assert document.SeriesDescription.endswith("Kết quả AI — sơ bộ")
        assert _statements(document) == {
            "en": "AI — preliminary, not reviewed by a physician. "
            "Positive: Cardiomegaly 0.91, Pleural effusion 0.97.",
            "vi": "AI — sơ bộ, chưa được bác sĩ xem xét. "
            "Dương tính: Bóng tim to 0,91, Tràn dịch màng phổi 0,97.",
        }
        raw = path.read_bytes()
        assert PATIENT_NAME.encode("utf-8") in raw
        assert FACILITY_NAME.encode("utf-8") in raw

    def test_languages_of_the_statements(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        document = _read(_save(build_sr(complete_context), tmp_path, "sr"))
        root = _report(document)[0]
        (container,) = find_content_items(root, name=QUALITATIVE_EVALUATIONS)
        languages = [
            find_content_items(item, name=LANGUAGE_OF_VALUE)[0].value
            for item in find_content_items(container, name=COMMENT)
        ]
        assert languages == [ENGLISH, VIETNAMESE]


class TestStatus:
    def test_preliminary_is_partial_and_unverified(self, complete_context: ReportContext) -> None:
        document = build_sr(complete_context)
        assert document.CompletionFlag == "PARTIAL"
        assert document.VerificationFlag == "UNVERIFIED"
        assert document.PreliminaryFlag == "PRELIMINARY"
        assert "VerifyingObserverSequence" not in document

    def test_final_without_a_verifier_is_complete_and_unverified(
        self, final_context: ReportContext
    ) -> None:
        document = build_sr(final_context)
        assert document.CompletionFlag == "COMPLETE"
        assert document.VerificationFlag == "UNVERIFIED"
        assert document.PreliminaryFlag == "FINAL"
        assert document.SeriesDescription == "AI results — final / Kết quả AI — chính thức"

    def test_final_with_a_verifier_is_verified(
        self, final_context: ReportContext, tmp_path: Path
    ) -> None:
        path = _save(
            build_sr(final_context, verifier=VERIFIER, verified_at=VERIFIED_AT), tmp_path, "sr"
        )
        document = _read(path)
        assert document.CompletionFlag == "COMPLETE"
        assert document.VerificationFlag == "VERIFIED"
        (observer,) = document.VerifyingObserverSequence
        assert str(observer.VerifyingObserverName) == VERIFIER[0]
        assert observer.VerifyingOrganization == VERIFIER[1]
        assert observer.VerificationDateTime == "20261123091500+0000"

    def test_a_preliminary_result_cannot_be_verified(self, complete_context: ReportContext) -> None:
        with pytest.raises(ValueError, match="preliminary result cannot be verified"):
            build_sr(complete_context, verifier=VERIFIER, verified_at=VERIFIED_AT)

    def test_verifier_and_time_go_together(self, final_context: ReportContext) -> None:
        with pytest.raises(ValueError, match="must be given together"):
            build_sr(final_context, verifier=VERIFIER)
        with pytest.raises(ValueError, match="must be given together"):
            build_sr(final_context, verified_at=VERIFIED_AT)

    def test_verification_time_needs_a_timezone(self, final_context: ReportContext) -> None:
        with pytest.raises(ValueError, match="timezone"):
            build_sr(final_context, verifier=VERIFIER, verified_at=datetime(2026, 11, 23, 9))


class TestDeterministicIdentifiers:
    def test_the_same_document_twice_is_the_same_file(
        self,
        complete_context: ReportContext,
        heatmaps: dict[str, pydicom.Dataset],
        tmp_path: Path,
    ) -> None:
        first = build_sr(complete_context, heatmap_sc=heatmaps)
        second = build_sr(complete_context, heatmap_sc=heatmaps)
        assert first.SOPInstanceUID == second.SOPInstanceUID
        assert first.SeriesInstanceUID == second.SeriesInstanceUID
        assert pydicom.uid.UID(first.SOPInstanceUID).is_valid
        assert _save(first, tmp_path, "1").read_bytes() == _save(second, tmp_path, "2").read_bytes()

    def test_status_result_and_verification_make_new_instances(
        self, complete_context: ReportContext, final_context: ReportContext
    ) -> None:
        documents = [
            build_sr(complete_context),
            build_sr(final_context),
            build_sr(final_context, verifier=VERIFIER, verified_at=VERIFIED_AT),
            build_sr(replace(complete_context, result_id=18)),
            build_sr(replace(complete_context, status="amended")),
        ]
        assert len({str(d.SOPInstanceUID) for d in documents}) == len(documents)
        assert len({str(d.SeriesInstanceUID) for d in documents}) == len(documents)

    def test_tracking_uids_follow_the_finding_across_statuses(
        self, complete_context: ReportContext, final_context: ReportContext
    ) -> None:
        def tracking(context: ReportContext) -> list[str]:
            groups = _report(
                hd.sr.Comprehensive3DSR.from_dataset(build_sr(context))
            ).get_image_measurement_groups()
            return [str(group.tracking_uid) for group in groups]

        assert tracking(complete_context) == tracking(final_context)


class TestUngradableAndFailed:
    def test_ungradable_has_no_findings_and_the_reason_in_both_languages(
        self, ungradable_context: ReportContext, tmp_path: Path
    ) -> None:
        document = _read(_save(build_sr(ungradable_context), tmp_path, "sr"))
        assert _report(document).get_image_measurement_groups() == []
        assert _coded(document, CAD_PROCESSING_AND_FINDINGS_SUMMARY) == [
            NO_ALGORITHMS_SUCCEEDED_WITHOUT_FINDINGS
        ]
        assert _coded(document, QUALITY_ASSESSMENT) == [UNUSABLE_QUALITY]
        statements = _statements(document)
        assert ungradable_context.reason_en in statements["en"]
        assert ungradable_context.reason_vi in statements["vi"]
        assert "view: lateral view" in statements["en"]
        assert "view: phim nghiêng" in statements["vi"]
        assert document.CompletionFlag == "PARTIAL"
        assert document.VerificationFlag == "UNVERIFIED"

    def test_failed_has_the_reason_in_both_languages(
        self, failed_context: ReportContext, tmp_path: Path
    ) -> None:
        document = _read(_save(build_sr(failed_context), tmp_path, "sr"))
        assert _report(document).get_image_measurement_groups() == []
        assert _coded(document, CAD_PROCESSING_AND_FINDINGS_SUMMARY) == [
            NO_ALGORITHMS_SUCCEEDED_WITHOUT_FINDINGS
        ]
        assert _coded(document, QUALITY_ASSESSMENT) == []
        assert _statements(document) == {
            "en": "AI — preliminary, not reviewed by a physician. "
            "The AI analysis failed: the model runtime failed three times: out of memory.",
            "vi": "AI — sơ bộ, chưa được bác sĩ xem xét. "
            "Phân tích AI thất bại: mô hình lỗi ba lần: hết bộ nhớ.",
        }


class TestRefusals:
    def test_a_heatmap_for_a_negative_finding(
        self, complete_context: ReportContext, heatmaps: dict[str, pydicom.Dataset]
    ) -> None:
        with pytest.raises(ValueError, match="'pneumothorax', which is not a positive finding"):
            build_sr(complete_context, heatmap_sc={"pneumothorax": heatmaps["cardiomegaly"]})

    def test_a_heatmap_of_another_study(
        self, complete_context: ReportContext, heatmaps: dict[str, pydicom.Dataset]
    ) -> None:
        stranger = heatmaps["cardiomegaly"].copy()
        stranger.StudyInstanceUID = pydicom.uid.generate_uid()
        with pytest.raises(ValueError, match="belongs to study"):
            build_sr(complete_context, heatmap_sc={"cardiomegaly": stranger})

    def test_findings_in_an_ungradable_result(
        self, ungradable_context: ReportContext, complete_context: ReportContext
    ) -> None:
        with pytest.raises(ValueError, match="ungradable result has no findings"):
            build_sr(replace(ungradable_context, findings=complete_context.findings))

    def test_an_unknown_status(self, complete_context: ReportContext) -> None:
        with pytest.raises(ValueError, match=r"`context\.status` must be one of"):
            build_sr(replace(complete_context, status="signed"))

    def test_an_image_file_of_another_study(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        source = pydicom.dcmread(complete_context.images[0].path)
        source.StudyInstanceUID = pydicom.uid.generate_uid()
        moved = tmp_path / "other-study.dcm"
        source.save_as(moved, enforce_file_format=True)
        image = replace(complete_context.images[0], path=moved)
        with pytest.raises(ValueError, match="belongs to study"):
            build_sr(replace(complete_context, images=(image,)))
