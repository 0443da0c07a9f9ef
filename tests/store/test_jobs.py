"""Jobs: one per study and pipeline, claimed atomically by concurrent workers."""

from __future__ import annotations

import threading
from datetime import timedelta

from store import (
    Database,
    JobState,
    claim_next_job,
    ensure_job,
    list_jobs,
    recover_stale_jobs,
    release_waiting_jobs,
    utcnow,
)
from tests.support.store import index_cxr_study


def _study(database: Database, uid: str) -> int:
    return index_cxr_study(database, uid)


class TestEnsureJob:
    def test_one_job_per_study_and_pipeline(self, database: Database) -> None:
        study_id = _study(database, "1.2.3")
        for _ in range(3):
            with database.write() as session:
                ensure_job(
                    session, study_id=study_id, pipeline="cxr", instance_uids=["a"], available=False
                )
        with database.read() as session:
            jobs = list_jobs(session, study_id=study_id)
        assert [(j.pipeline, j.state) for j in jobs] == [("cxr", JobState.WAITING)]
        assert "not available" in jobs[0].state_reason

    def test_waiting_jobs_are_queued_when_the_pipeline_arrives(self, database: Database) -> None:
        study_id = _study(database, "1.2.4")
        with database.write() as session:
            ensure_job(
                session, study_id=study_id, pipeline="cxr", instance_uids=[], available=False
            )
        with database.write() as session:
            assert release_waiting_jobs(session, {"fundus"}) == 0
            assert release_waiting_jobs(session, {"cxr"}) == 1
        with database.read() as session:
            assert list_jobs(session)[0].state == JobState.QUEUED


class TestClaim:
    def test_concurrent_workers_claim_each_job_once(self, database: Database) -> None:
        for index in range(20):
            study_id = _study(database, f"1.2.5.{index}")
            with database.write() as session:
                ensure_job(
                    session, study_id=study_id, pipeline="cxr", instance_uids=[], available=True
                )
        claimed: list[tuple[str, int]] = []
        lock = threading.Lock()

        def worker(name: str) -> None:
            while True:
                with database.write() as session:
                    job = claim_next_job(session, pipelines={"cxr"}, worker=name)
                    if job is None:
                        return
                    with lock:
                        claimed.append((name, job.id))

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        ids = [job_id for _, job_id in claimed]
        assert sorted(ids) == sorted(set(ids))
        assert len(ids) == 20
        with database.read() as session:
            assert {j.state for j in list_jobs(session)} == {JobState.RUNNING}

    def test_stale_claims_return_to_the_queue(self, database: Database) -> None:
        study_id = _study(database, "1.2.6")
        with database.write() as session:
            ensure_job(session, study_id=study_id, pipeline="cxr", instance_uids=[], available=True)
            assert claim_next_job(session, pipelines={"cxr"}, worker="dead") is not None
        with database.write() as session:
            assert recover_stale_jobs(session, claimed_before=utcnow() - timedelta(hours=1)) == 0
            assert recover_stale_jobs(session, claimed_before=utcnow() + timedelta(seconds=1)) == 1
        with database.read() as session:
            job = list_jobs(session)[0]
        assert job.state == JobState.QUEUED
        assert job.attempts == 1
