"""Store rows for tests that need a study without going through the gateway."""

from __future__ import annotations

import io
from collections.abc import Iterable

from pydicom import Dataset

from dicom_gateway import Ingestor, Source
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

__all__ = ["encoded", "index_cxr_study", "ingest_datasets"]

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


def encoded(ds: Dataset) -> bytes:
    """The data set as a C-STORE carries it: its transfer syntax's encoding (default
    explicit VR little endian), no file meta."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    whole = buffer.getvalue()
    return whole[132 + 12 + int.from_bytes(whole[140:144], "little") :]


def ingest_datasets(ingestor: Ingestor, datasets: Iterable[Dataset]) -> None:
    """Store data sets through the gateway's ingest path, as from a local modality."""
    with ingestor.database.read() as session:
        facility = get_facility(session, "LOCAL")
    source = Source("TESTMOD", "127.0.0.1", facility.id, facility.code)
    for ds in datasets:
        outcome = ingestor.store(
            encoded(ds),
            transfer_syntax_uid=str(
                getattr(ds.get("file_meta"), "TransferSyntaxUID", EXPLICIT_VR_LITTLE_ENDIAN)
            ),
            sop_class_uid=str(ds.SOPClassUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            source=source,
        )
        assert outcome.ok, outcome


def index_cxr_study(
    database: Database,
    study_instance_uid: str,
    *,
    facility_code: str = "LOCAL",
    identifier: IdentifierRecord | None = None,
) -> int:
    """Index one chest CR instance of a new study; return the study's id.

    The study belongs to ``facility_code``; its patient holds ``identifier`` (default:
    an MRN equal to the Study Instance UID).
    """
    uid = study_instance_uid
    ident = identifier or IdentifierRecord(IdentifierKind.MRN, "urn:soi:mrn:LOCAL", uid)
    with database.write() as session:
        facility = get_facility(session, facility_code)
        outcome = index_instance(
            session,
            InstanceRecord(
                sop_instance_uid=f"{uid}.1",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                series_instance_uid=f"{uid}.0",
                study_instance_uid=uid,
                patient=PatientRecord((ident,)),
                facility_id=facility.id,
                applicability=Applicability.APPLICABLE,
                pipelines=("cxr",),
            ),
            StoredFile(relative_path=f"x/{uid}.dcm", size=1, sha256="0" * 64),
        )
    return outcome.study_id
