"""Ingest under concurrency: the same study, patient and instances from several senders."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import func, select

from dicom_gateway import Ingestor, Router, Source, StoreStatus
from store import (
    Database,
    Instance,
    InstanceFileStore,
    Patient,
    Study,
    add_facility,
    get_facility,
)
from tests.support.data import make_cr
from tests.support.store import encoded


class TestConcurrentIngest:
    def test_one_patient_one_study_each_instance_once(
        self, database: Database, tmp_path: Path
    ) -> None:
        ingestor = Ingestor(
            database=database, files=InstanceFileStore(tmp_path / "i"), router=Router.from_file()
        )
        with database.read() as session:
            facility = get_facility(session, "LOCAL")
        source = Source("MOD", "127.0.0.1", facility.id, facility.code)
        study_uid = "1.2.826.0.1.3680043.8.498.77"
        datasets = [make_cr(study_instance_uid=study_uid, seed=i) for i in range(12)]
        # Every instance is sent twice, by different threads, at about the same time.
        jobs = [(ds, encoded(ds)) for ds in datasets for _ in range(2)]

        def send(job: tuple[object, bytes]) -> StoreStatus:
            ds, body = job
            return ingestor.store(
                body,
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                sop_class_uid=str(ds.SOPClassUID),  # type: ignore[attr-defined]
                sop_instance_uid=str(ds.SOPInstanceUID),  # type: ignore[attr-defined]
                source=source,
            ).status

        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(send, jobs))
        assert statuses == [StoreStatus.SUCCESS] * len(jobs)
        with database.read() as session:
            assert session.scalar(select(func.count()).select_from(Patient)) == 1
            assert session.scalar(select(func.count()).select_from(Study)) == 1
            uids = session.scalars(select(Instance.sop_instance_uid)).all()
            study = session.scalars(select(Study)).one()
        assert sorted(uids) == sorted(str(ds.SOPInstanceUID) for ds in datasets)
        assert study.num_instances == len(datasets)


class TestOwnFacilityOnly:
    def test_concurrent_senders_of_two_facilities_never_share_a_study(
        self, database: Database, tmp_path: Path
    ) -> None:
        """Two facilities send instances of one study at once through the STOW rule:
        only one facility's instances are kept; the other's are refused with 0x0124 and
        leave no file behind."""
        files = InstanceFileStore(tmp_path / "i")
        ingestor = Ingestor(database=database, files=files, router=Router.from_file())
        with database.write() as session:
            local = get_facility(session, "LOCAL")
            other = add_facility(session, code="BVHUYEN", name="Bệnh viện huyện")
            sources = [
                Source("MOD", "127.0.0.1", local.id, local.code),
                Source("MOD2", "127.0.0.2", other.id, other.code),
            ]
        study_uid = "1.2.826.0.1.3680043.8.498.78"
        datasets = [make_cr(study_instance_uid=study_uid, seed=i) for i in range(10)]

        def send(index: int) -> StoreStatus:
            ds = datasets[index]
            return ingestor.store(
                encoded(ds),
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                sop_class_uid=str(ds.SOPClassUID),
                sop_instance_uid=str(ds.SOPInstanceUID),
                source=sources[index % 2],
                own_facility_only=True,
            ).status

        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(send, range(len(datasets))))
        kept = {i % 2 for i, status in enumerate(statuses) if status == StoreStatus.SUCCESS}
        refused = {i % 2 for i, status in enumerate(statuses) if status != StoreStatus.SUCCESS}
        assert len(kept) == 1
        assert refused == {0, 1} - kept
        assert {s for s in statuses if s != StoreStatus.SUCCESS} == {StoreStatus.NOT_AUTHORIZED}
        with database.read() as session:
            study = session.scalars(select(Study)).one()
            assert study.facility_id == sources[kept.pop()].facility_id
            assert study.num_instances == 5
        on_disk = [p for p in files.root.rglob("*") if p.is_file() and p.suffix == ".dcm"]
        assert len(on_disk) == 5
