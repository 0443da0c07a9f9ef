"""Searching studies, series and instances within facilities (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from store import (
    Applicability,
    Database,
    IdentifierKind,
    IdentifierRecord,
    InstanceQuery,
    InstanceRecord,
    PatientRecord,
    SeriesQuery,
    StoredFile,
    StudyQuery,
    add_facility,
    count_matches,
    facilities_holding,
    get_facility,
    index_instance,
    locate_instances,
    search_instances,
    search_series,
    search_studies,
)

ROOT = "1.2.826.0.1.3680043.8.498.5"


def _index(
    database: Database,
    study: str,
    *,
    facility: str = "LOCAL",
    series: str = "1",
    number: int = 1,
    patient_id: str = "MRN-1",
    national_id: str | None = None,
    modality: str = "CR",
    study_date: str = "20260115",
    accession: str = "ACC1",
    name: str = "NGUYEN^VAN AN",
) -> None:
    identifiers = [IdentifierRecord(IdentifierKind.MRN, f"urn:soi:mrn:{facility}", patient_id)]
    if national_id:
        identifiers.append(IdentifierRecord(IdentifierKind.NATIONAL_ID, "urn:vn:cccd", national_id))
    with database.write() as session:
        facility_id = get_facility(session, facility).id
        index_instance(
            session,
            InstanceRecord(
                sop_instance_uid=f"{ROOT}.{study}.{series}.{number}",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                series_instance_uid=f"{ROOT}.{study}.{series}",
                study_instance_uid=f"{ROOT}.{study}",
                patient=PatientRecord(tuple(identifiers), name=name),
                facility_id=facility_id,
                applicability=Applicability.APPLICABLE,
                modality=modality,
                accession_number=accession,
                study_date=study_date,
                instance_number=number,
            ),
            StoredFile(relative_path=f"x/{study}.{series}.{number}.dcm", size=1, sha256="0" * 64),
        )


@pytest.fixture
def hospitals(database: Database) -> tuple[int, int]:
    with database.write() as session:
        a = add_facility(session, code="BV_A", name="A").id
        b = add_facility(session, code="BVXA", name="B").id
    _index(database, "1", facility="BV_A", patient_id="MRN-1", national_id="001099012345")
    _index(database, "1", facility="BV_A", series="2", modality="DX", number=1)
    _index(database, "1", facility="BV_A", series="2", modality="DX", number=2)
    _index(
        database,
        "2",
        facility="BV_A",
        patient_id="mrn-2",
        study_date="20250301",
        accession="ACC2",
        name="Lê^Thị Hoa",
    )
    _index(database, "3", facility="BVXA", patient_id="MRN-1", study_date="", accession="X_1")
    return a, b


def _uids(matches: Sequence[object]) -> list[str]:
    return [m.study.study_instance_uid.removeprefix(f"{ROOT}.") for m in matches]  # type: ignore[attr-defined]


class TestSearchStudies:
    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (StudyQuery(), ["1", "2", "3"]),
            (StudyQuery(patient_id="MRN-1"), ["1", "3"]),
            (StudyQuery(patient_id="mrn-1"), []),
            (StudyQuery(patient_id="MRN-?"), ["1", "3"]),
            (StudyQuery(patient_id="001099012345"), ["1"]),
            (StudyQuery(patient_name="lê^*"), ["2"]),
            (StudyQuery(patient_name="nguyen^van an"), ["1", "3"]),
            (StudyQuery(accession_number="ACC*"), ["1", "2"]),
            (StudyQuery(accession_number="X_1"), ["3"]),
            (StudyQuery(accession_number="X%1"), []),
            (StudyQuery(accession_number="acc1"), []),
            (StudyQuery(study_date=("20260101", "20261231")), ["1"]),
            (StudyQuery(study_date=("", "20251231")), ["2"]),
            (StudyQuery(study_date=("20250301", "20250301")), ["2"]),
            (StudyQuery(modalities_in_study=("DX",)), ["1"]),
            (StudyQuery(modalities_in_study=("CT", "CR")), ["1", "2", "3"]),
            (StudyQuery(study_instance_uids=(f"{ROOT}.2", f"{ROOT}.3")), ["2", "3"]),
        ],
    )
    def test_matching(
        self, database: Database, hospitals: tuple[int, int], query: StudyQuery, expected: list[str]
    ) -> None:
        with database.read() as session:
            assert _uids(search_studies(session, query, limit=10)) == expected
            assert count_matches(session, studies=query) == len(expected)

    def test_a_facility_sees_its_own_only(
        self, database: Database, hospitals: tuple[int, int]
    ) -> None:
        _, b = hospitals
        with database.read() as session:
            assert _uids(search_studies(session, StudyQuery(facility_ids={b}), limit=10)) == ["3"]
            assert search_studies(session, StudyQuery(facility_ids=set()), limit=10) == []

    def test_another_facility_s_record_number_does_not_match(
        self, database: Database, hospitals: tuple[int, int]
    ) -> None:
        # Study 3's patient (MRN-1 at BVXA) is another person than MRN-1 at BV_A; the
        # facility code BV_A, read as a LIKE pattern, would also match BVXA.
        _index(database, "4", facility="BVXA", patient_id="only-at-bvxa")
        with database.read() as session:
            query = StudyQuery(patient_id="only-at-bvxa")
            assert _uids(search_studies(session, query, limit=10)) == ["4"]

    def test_paging_is_stable(self, database: Database, hospitals: tuple[int, int]) -> None:
        with database.read() as session:
            first = _uids(search_studies(session, StudyQuery(), limit=2))
            rest = _uids(search_studies(session, StudyQuery(), limit=2, offset=2))
            match = search_studies(session, StudyQuery(study_instance_uids=(f"{ROOT}.1",)), limit=1)
        assert first + rest == ["1", "2", "3"]
        assert match[0].number_of_series == 2
        assert match[0].file_path == "x/1.1.1.dcm"
        assert match[0].study.patient.name == "NGUYEN^VAN AN"


class TestSeriesAndInstances:
    def test_series(self, database: Database, hospitals: tuple[int, int]) -> None:
        with database.read() as session:
            matches = search_series(
                session,
                studies=StudyQuery(study_instance_uids=(f"{ROOT}.1",)),
                series=SeriesQuery(),
                limit=10,
            )
            dx = search_series(
                session, studies=StudyQuery(), series=SeriesQuery(modality=("DX",)), limit=10
            )
        assert [(m.series.series_number, m.number_of_instances) for m in matches] == [
            (None, 1),
            (None, 2),
        ]
        assert [m.file_path for m in dx] == ["x/1.2.1.dcm"]

    def test_instances(self, database: Database, hospitals: tuple[int, int]) -> None:
        with database.read() as session:
            matches = search_instances(
                session,
                studies=StudyQuery(),
                series=SeriesQuery(),
                instances=InstanceQuery(instance_number=2),
                limit=10,
            )
            every = count_matches(
                session, studies=StudyQuery(), series=SeriesQuery(), instances=InstanceQuery()
            )
            assert every == 5
        assert [m.instance.sop_instance_uid for m in matches] == [f"{ROOT}.1.2.2"]

    def test_locate_within_facilities(self, database: Database, hospitals: tuple[int, int]) -> None:
        a, b = hospitals
        with database.read() as session:
            study = f"{ROOT}.1"
            assert len(locate_instances(session, study_instance_uid=study)) == 3
            assert len(locate_instances(session, study_instance_uid=study, facility_ids={a})) == 3
            assert locate_instances(session, study_instance_uid=study, facility_ids={b}) == []
            one = locate_instances(
                session,
                study_instance_uid=study,
                series_instance_uid=f"{study}.2",
                sop_instance_uid=f"{study}.2.2",
            )
        assert [m.instance.instance_number for m in one] == [2]


class TestFacilitiesHolding:
    def test_by_study_series_or_instance(
        self, database: Database, hospitals: tuple[int, int]
    ) -> None:
        a, b = hospitals
        with database.read() as session:

            def holding(study: str, series: str, sop: str) -> set[int]:
                return facilities_holding(
                    session,
                    study_instance_uid=study,
                    series_instance_uid=series,
                    sop_instance_uid=sop,
                )

            assert holding(f"{ROOT}.1", "9.9", "9.9.9") == {a}
            assert holding("9", f"{ROOT}.3.1", "9.9.9") == {b}
            assert holding("9", "9.9", f"{ROOT}.3.1.1") == {b}
            assert holding(f"{ROOT}.1", f"{ROOT}.3.1", "9") == {a, b}
            assert holding("9", "9.9", "9.9.9") == set()


class TestPaging:
    """A page is chosen on ids first, then read; every match is on exactly one page."""

    @pytest.fixture
    def many(self, database: Database, hospitals: tuple[int, int]) -> None:
        for n in range(4, 12):
            _index(
                database,
                str(n),
                facility="BV_A" if n % 2 else "BVXA",
                patient_id=f"MRN-{n}",
                modality="CT" if n % 3 else "CR",
                name="Lê^Thị Hoa" if n % 4 else "NGUYEN^VAN AN",
            )
            _index(database, str(n), facility="BV_A" if n % 2 else "BVXA", series="2", number=1)

    @pytest.mark.parametrize(
        "query",
        [
            StudyQuery(),
            StudyQuery(patient_name="lê^*"),
            StudyQuery(modalities_in_study=("CT",), study_date=("20260101", "20261231")),
            StudyQuery(patient_id="MRN-?", patient_name="nguyen*"),
        ],
    )
    def test_pages_of_studies(
        self, database: Database, hospitals: tuple[int, int], many: None, query: StudyQuery
    ) -> None:
        a, _ = hospitals
        for scoped in (query, replace(query, facility_ids={a})):
            with database.read() as session:
                every = _uids(search_studies(session, scoped, limit=100))
                pages = [
                    _uids(search_studies(session, scoped, limit=3, offset=offset))
                    for offset in range(0, len(every) + 3, 3)
                ]
                total = count_matches(session, studies=scoped)
            assert every
            assert [uid for page in pages for uid in page] == every
            assert all(len(page) == 3 for page in pages[: len(every) // 3])
            assert pages[-1] == []
            assert total == len(every)

    def test_pages_of_series_and_instances(
        self, database: Database, hospitals: tuple[int, int], many: None
    ) -> None:
        studies = StudyQuery(patient_name="lê^*")
        series = SeriesQuery(modality=("CT", "CR"))
        with database.read() as session:
            every_series = search_series(session, studies=studies, series=series, limit=100)
            paged_series = [
                m
                for offset in range(0, 20, 2)
                for m in search_series(
                    session, studies=studies, series=series, limit=2, offset=offset
                )
            ]
            every_instance = search_instances(
                session, studies=studies, series=series, instances=InstanceQuery(), limit=100
            )
            paged_instances = [
                m
                for offset in range(0, 20, 4)
                for m in search_instances(
                    session,
                    studies=studies,
                    series=series,
                    instances=InstanceQuery(),
                    limit=4,
                    offset=offset,
                )
            ]
            counted = count_matches(
                session, studies=studies, series=series, instances=InstanceQuery()
            )
        assert [m.series.id for m in paged_series] == [m.series.id for m in every_series]
        assert [m.instance.id for m in paged_instances] == [m.instance.id for m in every_instance]
        assert len(every_instance) == counted == len(every_series) > 0
        assert all(m.study.patient.name == "Lê^Thị Hoa" for m in every_series)

    def test_matches_name_the_first_file_and_its_transfer_syntax(
        self, database: Database, hospitals: tuple[int, int]
    ) -> None:
        with database.read() as session:
            [study] = search_studies(
                session, StudyQuery(study_instance_uids=(f"{ROOT}.1",)), limit=10
            )
            series = search_series(
                session,
                studies=StudyQuery(study_instance_uids=(f"{ROOT}.1",)),
                series=SeriesQuery(),
                limit=10,
            )
        assert (study.file_path, study.transfer_syntax_uid) == (
            "x/1.1.1.dcm",
            "1.2.840.10008.1.2.1",
        )
        assert [(m.file_path, m.transfer_syntax_uid) for m in series] == [
            ("x/1.1.1.dcm", "1.2.840.10008.1.2.1"),
            ("x/1.2.1.dcm", "1.2.840.10008.1.2.1"),
        ]
