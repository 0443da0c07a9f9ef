"""Indexing instances: another facility's study is refused inside the transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from store import (
    Applicability,
    Database,
    ForeignStudyError,
    IdentifierKind,
    IdentifierRecord,
    Instance,
    InstanceRecord,
    PatientRecord,
    StoredFile,
    add_facility,
    get_facility,
    index_instance,
)


def _record(uid: str, *, study: str, series: str, facility_id: int) -> InstanceRecord:
    return InstanceRecord(
        sop_instance_uid=uid,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        series_instance_uid=series,
        study_instance_uid=study,
        patient=PatientRecord(
            (IdentifierRecord(IdentifierKind.MRN, f"urn:soi:mrn:{facility_id}", "P1"),)
        ),
        facility_id=facility_id,
        applicability=Applicability.APPLICABLE,
        pipelines=("cxr",),
    )


def _stored(uid: str) -> StoredFile:
    return StoredFile(relative_path=f"x/{uid}.dcm", size=1, sha256="0" * 64)


@pytest.fixture
def facilities(database: Database) -> tuple[int, int]:
    with database.write() as session:
        other = add_facility(session, code="BVHUYEN", name="Bệnh viện huyện")
        return get_facility(session, "LOCAL").id, other.id


def _count(database: Database) -> int:
    with database.read() as session:
        return int(session.scalar(select(func.count()).select_from(Instance)) or 0)


class TestOwnFacilityOnly:
    def test_another_facilitys_study_is_refused(
        self, database: Database, facilities: tuple[int, int]
    ) -> None:
        local, other = facilities
        with database.write() as session:
            index_instance(
                session, _record("1.1", study="1", series="1.0", facility_id=local), _stored("1.1")
            )
        with (
            pytest.raises(ForeignStudyError, match="another facility"),
            database.write() as session,
        ):
            index_instance(
                session,
                _record("1.2", study="1", series="1.0", facility_id=other),
                _stored("1.2"),
                own_facility_only=True,
            )
        assert _count(database) == 1

    def test_a_series_of_another_study_is_refused(
        self, database: Database, facilities: tuple[int, int]
    ) -> None:
        local, other = facilities
        with database.write() as session:
            index_instance(
                session, _record("1.1", study="1", series="1.0", facility_id=local), _stored("1.1")
            )
        with pytest.raises(ForeignStudyError, match="another study"), database.write() as session:
            index_instance(
                session,
                _record("2.1", study="2", series="1.0", facility_id=other),
                _stored("2.1"),
                own_facility_only=True,
            )
        assert _count(database) == 1

    def test_own_study_and_dimse_default_are_kept(
        self, database: Database, facilities: tuple[int, int]
    ) -> None:
        local, other = facilities
        with database.write() as session:
            index_instance(
                session, _record("1.1", study="1", series="1.0", facility_id=local), _stored("1.1")
            )
            outcome = index_instance(
                session,
                _record("1.2", study="1", series="1.0", facility_id=local),
                _stored("1.2"),
                own_facility_only=True,
            )
            assert outcome.created
            # Without the flag (a DIMSE peer's forward), the instance joins the study.
            assert index_instance(
                session, _record("1.3", study="1", series="1.0", facility_id=other), _stored("1.3")
            ).created
        assert _count(database) == 3
