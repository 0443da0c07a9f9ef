"""Study assembly: stable after the quiet period, one job per pipeline, waiting with a reason."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from dicom_gateway import StudyAssembler
from soi.runtime import Runtime
from store import Job, JobState, Study, StudyState, utcnow
from tests.support.data import make_cr, pydicom_file, write_dataset
from tests.support.dcmtk import storescu


def _send(runtime: Runtime, paths: list[Path]) -> None:
    assert runtime.listener is not None
    run = storescu(paths, port=runtime.listener.port, called_aet="SOI")
    assert run.all_succeeded, run.summary()


def _study(runtime: Runtime, uid: str) -> Study:
    with runtime.database.read() as session:
        study = session.scalars(select(Study).where(Study.study_instance_uid == uid)).one()
        study.jobs
        return study


class TestStudyAssembler:
    def test_chest_study_without_model_gets_one_waiting_cxr_job(
        self, runtime: Runtime, tmp_path: Path
    ) -> None:
        study_uid = "1.2.826.0.1.3680043.8.498.1"
        paths = [
            write_dataset(make_cr(study_instance_uid=study_uid, seed=i), tmp_path / f"{i}.dcm")
            for i in range(3)
        ]
        _send(runtime, paths)
        # An installation without a chest X-ray model: the job waits, saying why.
        assembler = StudyAssembler(
            database=runtime.database,
            quiet_period=runtime.assembler.quiet_period,
            available_pipelines=frozenset(),
        )
        assert assembler.run_once(now=utcnow()) == []  # still inside the quiet period
        assembled = assembler.run_once(now=utcnow() + timedelta(seconds=5))
        assert [(a.study_instance_uid, a.pipelines) for a in assembled] == [(study_uid, ("cxr",))]
        study = _study(runtime, study_uid)
        assert study.state == StudyState.STABLE
        assert study.num_instances == 3
        [job] = study.jobs
        assert job.pipeline == "cxr"
        assert job.state == JobState.WAITING
        assert "not available" in job.state_reason
        assert len(job.instance_uids) == 3
        # Assembling again changes nothing.
        assert assembler.run_once(now=utcnow() + timedelta(seconds=10)) == []

    def test_late_instance_reopens_the_study_and_keeps_one_job(
        self, runtime: Runtime, tmp_path: Path
    ) -> None:
        study_uid = "1.2.826.0.1.3680043.8.498.2"
        _send(runtime, [write_dataset(make_cr(study_instance_uid=study_uid), tmp_path / "a.dcm")])
        runtime.assembler.run_once(now=utcnow() + timedelta(seconds=5))
        _send(
            runtime,
            [write_dataset(make_cr(study_instance_uid=study_uid, seed=1), tmp_path / "b.dcm")],
        )
        study = _study(runtime, study_uid)
        assert study.state == StudyState.RECEIVING
        assert "after the study was stable" in study.state_reason
        runtime.assembler.run_once(now=utcnow() + timedelta(seconds=5))
        with runtime.database.read() as session:
            jobs = session.scalars(select(Job)).all()
        assert len(jobs) == 1
        assert len(jobs[0].instance_uids) == 2

    def test_study_no_pipeline_reads_is_stable_without_jobs(self, runtime: Runtime) -> None:
        _send(runtime, [pydicom_file("MR_small.dcm")])
        [assembled] = runtime.assembler.run_once(now=utcnow() + timedelta(seconds=5))
        study = _study(runtime, assembled.study_instance_uid)
        assert study.jobs == []
        assert "no pipeline applies" in study.state_reason

    def test_available_pipeline_jobs_are_queued(self, runtime: Runtime, tmp_path: Path) -> None:
        # The shipped chest X-ray model makes the cxr pipeline available.
        assert "cxr" in runtime.assembler.available_pipelines
        _send(runtime, [write_dataset(make_cr(), tmp_path / "a.dcm")])
        assembler = StudyAssembler(
            database=runtime.database,
            quiet_period=timedelta(seconds=0),
            available_pipelines={"cxr"},
        )
        time.sleep(0.01)
        assembler.run_once()
        with runtime.database.read() as session:
            [job] = session.scalars(select(Job)).all()
        assert job.state == JobState.QUEUED

    def test_background_loop_assembles_after_the_quiet_period(
        self, runtime: Runtime, tmp_path: Path
    ) -> None:
        import threading

        stop = threading.Event()
        thread = threading.Thread(
            target=runtime.assembler.run_forever, args=(stop,), kwargs={"interval": 0.1}
        )
        thread.start()
        try:
            study_uid = "1.2.826.0.1.3680043.8.498.3"
            _send(
                runtime, [write_dataset(make_cr(study_instance_uid=study_uid), tmp_path / "a.dcm")]
            )
            deadline = time.monotonic() + 10
            while _study(runtime, study_uid).state != StudyState.STABLE:
                assert time.monotonic() < deadline, "study never became stable"
                time.sleep(0.1)
        finally:
            stop.set()
            thread.join(timeout=5)
