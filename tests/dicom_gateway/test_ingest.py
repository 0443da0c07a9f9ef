"""Ingest under concurrency: the same study, patient and instances from several senders."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import func, select

from dicom_gateway import Ingestor, Router, Source, StoreStatus
from store import Database, Instance, InstanceFileStore, Patient, Study, get_facility
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
