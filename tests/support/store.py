"""Store rows for tests that need a study without going through the gateway."""

from __future__ import annotations

from store import (
    Applicability,
    Database,
    IdentifierKind,
    IdentifierRecord,
    InstanceRecord,
    PatientRecord,
    StoredFile,
    get_facility,
    index_instance,
)

__all__ = ["index_cxr_study"]


def index_cxr_study(database: Database, study_instance_uid: str) -> int:
    """Index one chest CR instance of a new study (LOCAL facility); return the study's id."""
    uid = study_instance_uid
    with database.write() as session:
        facility = get_facility(session, "LOCAL")
        outcome = index_instance(
            session,
            InstanceRecord(
                sop_instance_uid=f"{uid}.1",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                series_instance_uid=f"{uid}.0",
                study_instance_uid=uid,
                patient=PatientRecord(
                    (IdentifierRecord(IdentifierKind.MRN, "urn:soi:mrn:LOCAL", uid),)
                ),
                facility_id=facility.id,
                applicability=Applicability.APPLICABLE,
                pipelines=("cxr",),
            ),
            StoredFile(relative_path=f"x/{uid}.dcm", size=1, sha256="0" * 64),
        )
    return outcome.study_id
