"""QIDO-RS results read the attributes the index lacks from the header of the files Soi
kept, whatever their transfer syntax, and never from further than needed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from sqlalchemy import select, update

from dicom_gateway import Ingestor, Router, Source, StoreStatus
from dicom_gateway.dicomweb import Level, QidoService, parse_search
from store import Database, Instance, InstanceFileStore, get_facility
from tests.support.data import make_cr
from tests.support.store import encoded

STUDY = "1.2.826.0.1.3680043.8.498.4401"


def _keep(database: Database, files: InstanceFileStore, ds: Dataset, syntax: str) -> None:
    """Keep ``ds`` through the ingest, as received in ``syntax``."""
    ingestor = Ingestor(database=database, files=files, router=Router.from_file())
    with database.read() as session:
        facility = get_facility(session, "LOCAL")
    ds.ReferringPhysicianName = "TRAN^BAC SI"
    ds.StudyID = "S-17"
    ds.Manufacturer = "Soi tests"
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    outcome = ingestor.store(
        encoded(ds),
        transfer_syntax_uid=syntax,
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        source=Source("MOD", "127.0.0.1", facility.id, facility.code),
    )
    assert outcome.status == StoreStatus.SUCCESS, outcome.comment


def _search(database: Database, files: InstanceFileStore, *params: tuple[str, str]) -> dict:  # type: ignore[type-arg]
    service = QidoService(database=database, files=files)
    result = service.search(
        parse_search(list(params), level=Level.STUDY), facility_ids=None, base_url="http://soi"
    )
    [item] = result.items
    return item


class TestHeaderAttributes:
    @pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    def test_read_from_the_kept_file(self, database: Database, tmp_path: Path, syntax: str) -> None:
        files = InstanceFileStore(tmp_path / "instances")
        _keep(database, files, make_cr(study_instance_uid=STUDY, patient_id="MRN-44"), syntax)

        item = _search(database, files, ("StudyInstanceUID", STUDY))

        assert item["00100020"] == {"vr": "LO", "Value": ["MRN-44"]}  # PatientID
        assert item["00200010"] == {"vr": "SH", "Value": ["S-17"]}  # StudyID
        assert item["00080090"] == {"vr": "PN", "Value": [{"Alphabetic": "TRAN^BAC SI"}]}
        assert item["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "NGUYEN^VAN AN"}]}
        assert item["00201206"] == {"vr": "IS", "Value": [1]}  # from the index
        assert "00080070" not in item  # Manufacturer: not a study attribute

    def test_an_attribute_asked_for_is_read_past_the_study_attributes(
        self, database: Database, tmp_path: Path
    ) -> None:
        files = InstanceFileStore(tmp_path / "instances")
        _keep(database, files, make_cr(study_instance_uid=STUDY), ExplicitVRLittleEndian)

        item = _search(
            database,
            files,
            ("StudyInstanceUID", STUDY),
            ("includefield", "Manufacturer"),
            ("includefield", "Rows"),
            ("includefield", "PatientComments"),
        )

        assert item["00080070"] == {"vr": "LO", "Value": ["Soi tests"]}
        assert item["00280010"] == {"vr": "US", "Value": [64]}
        assert item["00104000"] == {"vr": "LT"}  # asked for, absent from the file

    def test_a_deflated_file_is_read_whole(self, database: Database, tmp_path: Path) -> None:
        files = InstanceFileStore(tmp_path / "instances")
        _keep(
            database,
            files,
            make_cr(study_instance_uid=STUDY, patient_id="MRN-45"),
            ExplicitVRLittleEndian,
        )
        # Said to be deflated, the file is read as any DICOM file, not from its data set.
        with database.write() as session:
            session.execute(
                update(Instance).values(transfer_syntax_uid=DeflatedExplicitVRLittleEndian)
            )

        item = _search(database, files, ("StudyInstanceUID", STUDY))

        assert item["00100020"] == {"vr": "LO", "Value": ["MRN-45"]}
        assert item["00200010"] == {"vr": "SH", "Value": ["S-17"]}

    def test_a_file_not_laid_out_as_soi_writes_it_is_read_whole(
        self, database: Database, tmp_path: Path
    ) -> None:
        files = InstanceFileStore(tmp_path / "instances")
        ds = make_cr(study_instance_uid=STUDY, patient_id="MRN-46")
        _keep(database, files, ds, ExplicitVRLittleEndian)
        with database.read() as session:
            path = files.absolute(session.scalars(select(Instance.file_path)).one())
        # The same instance with another referring physician, its File Meta Information
        # without the Group Length (a file copied into the store by hand, say).
        ds.ReferringPhysicianName = "LE^KHAC"
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        whole = buffer.getvalue()
        path.write_bytes(whole[:132] + whole[144:])

        item = _search(database, files, ("StudyInstanceUID", STUDY))

        assert item["00100020"] == {"vr": "LO", "Value": ["MRN-46"]}
        assert item["00080090"] == {"vr": "PN", "Value": [{"Alphabetic": "LE^KHAC"}]}

    def test_an_unreadable_file_leaves_the_index_attributes(
        self, database: Database, tmp_path: Path
    ) -> None:
        files = InstanceFileStore(tmp_path / "instances")
        _keep(database, files, make_cr(study_instance_uid=STUDY), ExplicitVRLittleEndian)
        with database.read() as session:
            path = files.absolute(session.scalars(select(Instance.file_path)).one())
        data = path.read_bytes()
        path.write_bytes(data[:200])  # truncated inside the data set

        item = _search(database, files, ("StudyInstanceUID", STUDY))

        assert item["0020000D"] == {"vr": "UI", "Value": [STUDY]}
        assert item["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "NGUYEN^VAN AN"}]}
        assert "00200010" not in item
