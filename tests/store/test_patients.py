"""Patients are matched on identifiers, never on names."""

from __future__ import annotations

import pytest

from store import (
    Database,
    IdentifierKind,
    IdentifierRecord,
    PatientRecord,
    match_or_create_patient,
)

CCCD = IdentifierRecord(IdentifierKind.NATIONAL_ID, "urn:vn:cccd", "001090000001")
BHYT = IdentifierRecord(IdentifierKind.HEALTH_INSURANCE, "urn:vn:bhyt", "DN4010100000001")
MRN_A = IdentifierRecord(IdentifierKind.MRN, "urn:soi:mrn:HOSP-A", "12345")
MRN_B = IdentifierRecord(IdentifierKind.MRN, "urn:soi:mrn:HOSP-B", "12345")


class TestPatientMatching:
    def test_same_name_different_identifiers_are_two_people(self, database: Database) -> None:
        with database.write() as session:
            a = match_or_create_patient(session, PatientRecord((MRN_A,), name="NGUYEN^VAN AN"))
            b = match_or_create_patient(session, PatientRecord((MRN_B,), name="NGUYEN^VAN AN"))
            assert a.id != b.id

    def test_national_id_links_records_from_two_hospitals(self, database: Database) -> None:
        with database.write() as session:
            a = match_or_create_patient(session, PatientRecord((MRN_A, CCCD), name="Trần Thị B"))
            b = match_or_create_patient(session, PatientRecord((MRN_B, CCCD), name="TRAN^THI B"))
            assert a.id == b.id
            kinds = sorted((i.kind.value, i.system) for i in a.identifiers)
        assert kinds == [
            ("mrn", "urn:soi:mrn:HOSP-A"),
            ("mrn", "urn:soi:mrn:HOSP-B"),
            ("national_id", "urn:vn:cccd"),
        ]

    def test_higher_priority_identifier_decides(self, database: Database) -> None:
        with database.write() as session:
            by_mrn = match_or_create_patient(session, PatientRecord((MRN_A,)))
            by_bhyt = match_or_create_patient(session, PatientRecord((BHYT,)))
            both = match_or_create_patient(session, PatientRecord((MRN_A, BHYT)))
            assert both.id == by_bhyt.id != by_mrn.id

    def test_vietnamese_name_is_kept_exactly(self, database: Database) -> None:
        with database.write() as session:
            patient = match_or_create_patient(
                session, PatientRecord((CCCD,), name="Nguyễn^Thị Ánh Tuyết")
            )
            patient_id = patient.id
        with database.read() as session:
            from store import Patient

            assert session.get(Patient, patient_id).name == "Nguyễn^Thị Ánh Tuyết"  # type: ignore[union-attr]

    def test_no_identifier_is_refused(self, database: Database) -> None:
        with pytest.raises(ValueError, match="never matched by name"), database.write() as session:
            match_or_create_patient(session, PatientRecord((), name="NO^ID"))
