"""QIDO-RS query parameters: checked per value representation, then store queries."""

from __future__ import annotations

import pytest

from dicom_gateway.dicomweb import InvalidRequestError, Level, parse_search

UID = "1.2.826.0.1.3680043.8.498.1"


class TestMatchingKeys:
    def test_study_keys_become_a_study_query(self) -> None:
        request = parse_search(
            [
                ("PatientID", "MRN*"),
                ("StudyDate", "20260101-20261231"),
                ("ModalitiesInStudy", "CR\\DX"),
                ("AccessionNumber", "ACC1"),
                ("0020000D", f"{UID},{UID}.2"),
                ("limit", "10"),
                ("offset", "5"),
            ],
            level=Level.STUDY,
        )
        studies = request.studies
        assert studies.patient_id == "MRN*"
        assert studies.study_date == ("20260101", "20261231")
        assert studies.modalities_in_study == ("CR", "DX")
        assert studies.accession_number == "ACC1"
        assert studies.study_instance_uids == (UID, f"{UID}.2")
        assert (request.limit, request.offset) == (10, 5)
        assert request.requested == (
            "PatientID",
            "StudyDate",
            "ModalitiesInStudy",
            "AccessionNumber",
            "StudyInstanceUID",
        )

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("20260102", ("20260102", "20260102")),
            ("-20260102", ("", "20260102")),
            ("20260102-", ("20260102", "")),
        ],
    )
    def test_date_ranges(self, value: str, expected: tuple[str, str]) -> None:
        assert parse_search([("StudyDate", value)], level=Level.STUDY).studies.study_date == (
            expected
        )

    @pytest.mark.parametrize("value", ["", "*"])
    def test_universal_matching_sets_no_condition_but_returns_the_key(self, value: str) -> None:
        request = parse_search([("PatientName", value)], level=Level.STUDY)
        assert request.studies.patient_name is None
        assert request.requested == ("PatientName",)

    def test_series_and_instance_keys_at_their_levels(self) -> None:
        request = parse_search(
            [("Modality", "CT"), ("SeriesNumber", "3"), ("SOPClassUID", UID), ("PatientID", "x")],
            level=Level.INSTANCE,
            study_instance_uid=UID,
        )
        assert request.series.modality == ("CT",)
        assert request.series.series_number == 3
        assert request.instances.sop_class_uids == (UID,)
        assert request.studies.patient_id == "x"

    def test_sql_in_a_text_value_is_just_a_value(self) -> None:
        request = parse_search([("PatientID", "' OR 1=1--")], level=Level.STUDY)
        assert request.studies.patient_id == "' OR 1=1--"


class TestIncludeField:
    def test_keywords_tags_and_all(self) -> None:
        request = parse_search(
            [("includefield", "StudyDescription,00080090"), ("includefield", "all")],
            level=Level.STUDY,
        )
        assert request.requested == ("StudyDescription", "ReferringPhysicianName")
        assert request.include_all

    @pytest.mark.parametrize("value", ["NoSuchKeyword", "<script>", "00091234x", "A.B"])
    def test_unknown_attribute(self, value: str) -> None:
        with pytest.raises(InvalidRequestError):
            parse_search([("includefield", value)], level=Level.STUDY)


class TestFlags:
    def test_fuzzymatching_is_warned_about(self) -> None:
        request = parse_search([("fuzzymatching", "true")], level=Level.STUDY)
        assert "fuzzymatching parameter is not supported" in request.warnings[0]
        assert not parse_search([("fuzzymatching", "false")], level=Level.STUDY).warnings


class TestInvalid:
    @pytest.mark.parametrize(
        ("name", "value", "match"),
        [
            ("StudyDate", "<script>", "a date is YYYYMMDD"),
            ("StudyDate", "20261301", "not a calendar date"),
            ("StudyDate", "20261231-20260101", "ends before it starts"),
            ("StudyDate", "-", "at least one end"),
            ("StudyDate", "2026-01-01", "one '-'"),
            ("StudyTime", "2500", "not a time of day"),
            ("StudyInstanceUID", "1.2.3'; DROP TABLE studies;--", "not a UID"),
            ("ModalitiesInStudy", "' OR '1'='1", "code string"),
            ("AccessionNumber", "<script>alert(1)</script>", "longer than the 16"),
            ("PatientID", "a\\b", "backslash"),
            ("PatientID", "a\x00b", "control character"),
            ("limit", "-1", "unsigned integer"),
            ("offset", "1e3", "unsigned integer"),
            ("fuzzymatching", "yes", "true or false"),
            ("' OR 1=1--", "x", "neither a DICOM keyword"),
            ("ReferringPhysicianName", "X", "not supported"),
            ("Modality", "CT", "not supported in a study search"),
        ],
    )
    def test_is_a_bad_request(self, name: str, value: str, match: str) -> None:
        with pytest.raises(InvalidRequestError, match=match):
            parse_search([(name, value)], level=Level.STUDY)

    def test_integer_key(self) -> None:
        with pytest.raises(InvalidRequestError, match="not an integer"):
            parse_search([("SeriesNumber", "1 OR 1=1")], level=Level.SERIES)

    def test_repeated_key(self) -> None:
        with pytest.raises(InvalidRequestError, match="more than once"):
            parse_search([("PatientID", "a"), ("PatientID", "b")], level=Level.STUDY)

    def test_path_uid(self) -> None:
        with pytest.raises(InvalidRequestError, match="in the path is not a UID"):
            parse_search([], level=Level.SERIES, study_instance_uid="<script>")
