"""Job workers as real processes: a CXR sent with storescu gets its findings; a worker
killed or frozen mid-job loses the job to another after the lease, which is done once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from soi.runtime import Runtime
from soi.settings import load_settings
from store import Database, Job, JobState, Result, sqlite_url, utcnow
from tests.support import storescu
from tests.support.soi_process import SoiProcess, die_with_parent, soi_executable
from tests.support.store import ingest_datasets
from training.labels import CxrFinding
from training.phantoms import generate_cxr, phantom_to_dicom

pytestmark = pytest.mark.slow

LEASE_SECONDS = 3.0
#: Images in the study the workers fight over: enough that one run takes seconds.
BIG_STUDY = 40


def _chest(seed: int, study: str, findings: set[CxrFinding], size: int = 1024) -> object:
    rng = np.random.default_rng(seed)
    ds = phantom_to_dicom(
        generate_cxr(rng, findings=findings, size=size),
        rng,
        modality="CR",
        study_instance_uid=study,
    )
    ds.PatientID = "WORKER-E2E"
    return ds


def test_cxr_sent_with_storescu_gets_preliminary_findings(tmp_path: Path) -> None:
    study = "1.2.826.0.1.3680043.8.498.5151"
    path = tmp_path / "chest.dcm"
    _chest(31, study, {CxrFinding.CARDIOMEGALY}).save_as(path, enforce_file_format=True)  # type: ignore[attr-defined]
    with SoiProcess(tmp_path / "data", quiet_period=1.0) as soi:
        assert "Models cxr (cxr 0.2.0) on onnx" in soi.log_text()
        storescu([path], port=soi.dicom_port, called_aet=soi.ae_title)
        deadline = time.monotonic() + 60
        while True:
            detail = soi.study(study)
            if detail and detail["results"]:
                break
            assert time.monotonic() < deadline, soi.log_tail()
            time.sleep(0.3)
    [job] = detail["jobs"]
    assert job["state"] == "done"
    [result] = detail["results"]
    assert result["status"] == "preliminary"
    assert result["state"] == "complete"
    assert result["model_version"] == "0.2.0"
    findings = {f["label"]: f for f in result["findings"]}
    assert findings["cardiomegaly"]["positive"]
    assert findings["cardiomegaly"]["code"] == {
        "scheme": "SCT",
        "value": "8186001",
        "meaning": "Cardiomegaly",
    }
    overlay = tmp_path / "data" / "results" / findings["cardiomegaly"]["overlay"]
    assert overlay.read_bytes().startswith(b"\x89PNG")


@pytest.fixture
def queued_big_study(tmp_path: Path) -> tuple[Path, int]:
    """A data folder whose store holds one queued cxr job over a 40-image study."""
    data_dir = tmp_path / "data"
    settings = load_settings(data_dir=data_dir, min_free_mb=0, quiet_period_seconds=0.0)
    runtime = Runtime.build(settings, with_listener=False)
    study = "1.2.826.0.1.3680043.8.498.6161"
    ingest_datasets(
        runtime.ingestor,
        [_chest(100 + i, study, {CxrFinding.PNEUMOTHORAX}) for i in range(BIG_STUDY)],  # type: ignore[misc]
    )
    runtime.assembler.run_once(now=utcnow() + timedelta(seconds=5))
    with runtime.database.read() as session:
        job = session.scalars(select(Job)).one()
    assert job.state is JobState.QUEUED
    runtime.close()
    return data_dir, job.id


@contextmanager
def worker_process(data_dir: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``soi worker`` on ``data_dir``; stopped with SIGTERM (or killed) at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOI_")}
    env.update(
        {
            "SOI_MIN_FREE_MB": "0",
            "SOI_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            "SOI_WORKER_INTERVAL_SECONDS": "0.2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*soi_executable(), "worker", "--data-dir", str(data_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _job(database: Database, job_id: int) -> Job:
    with database.read() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _wait_until(condition: object, what: str, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}\n{log.read_text(errors='replace')[-3000:]}"
        time.sleep(0.02)


def _results(database: Database, job_id: int) -> list[Result]:
    with database.read() as session:
        statement = (
            select(Result).where(Result.job_id == job_id).options(selectinload(Result.findings))
        )
        return list(session.scalars(statement).all())


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_a_worker_lost_mid_job_hands_it_on_and_it_is_done_once(
    queued_big_study: tuple[Path, int], tmp_path: Path, how: str
) -> None:
    data_dir, job_id = queued_big_study
    database = Database(sqlite_url(data_dir / "soi.db"))
    first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
    try:
        with worker_process(data_dir, first_log) as first:
            _wait_until(
                lambda: _job(database, job_id).state is JobState.RUNNING,
                "the first worker never claimed the job",
                first_log,
            )
            # Mid-job: the first worker dies (SIGKILL) or hangs (SIGSTOP).
            os.kill(first.pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
            assert _job(database, job_id).state is JobState.RUNNING, "the job finished too soon"
            assert _results(database, job_id) == []
            with worker_process(data_dir, second_log) as second:
                _wait_until(
                    lambda: _job(database, job_id).state is JobState.DONE,
                    "the second worker did not finish the job after the lease",
                    second_log,
                )
                job = _job(database, job_id)
                assert (job.attempts, job.failures) == (2, 1)
                if how == "frozen":
                    # The first worker wakes up, finishes its run and must store nothing.
                    os.kill(first.pid, signal.SIGCONT)
                    _wait_until(
                        lambda: "the lease ran out" in first_log.read_text(errors="replace"),
                        "the first worker did not notice it lost the job",
                        first_log,
                    )
                second.terminate()
                assert second.wait(30) == 0
            assert "Stopped." in second_log.read_text()
        results = _results(database, job_id)
    finally:
        database.dispose()
    [result] = results
    assert result.state.value == "complete"
    assert all("attempt-2" in (f.overlay_path or "attempt-2") for f in result.findings)
    assert not (data_dir / "results" / f"jobs/{job_id}/attempt-1").exists()
