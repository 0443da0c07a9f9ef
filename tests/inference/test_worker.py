"""The job worker: claims cxr jobs, stores results, findings and heatmaps, exactly once."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless
from sqlalchemy import select

from inference import JobInput, JobOutput, JobWorker, RunnerError
from soi.runtime import Runtime
from soi.settings import Settings
from store import (
    AuditEvent,
    Job,
    JobState,
    Result,
    ResultState,
    ResultStatus,
    list_results,
    result_reason,
    utcnow,
)
from tests.support.store import ingest_datasets
from training.labels import CxrFinding
from training.phantoms import generate_cxr, phantom_to_dicom

STUDY = "1.2.826.0.1.3680043.8.498.4242"


def chest(
    seed: int,
    findings: set[CxrFinding],
    *,
    study: str = STUDY,
    view: str = "PA",
    size: int = 512,
) -> Dataset:
    """A synthetic chest radiograph of ``study`` (one patient, one series per view)."""
    rng = np.random.default_rng(seed)
    phantom = generate_cxr(rng, findings=findings, size=size, view=view)
    ds = phantom_to_dicom(phantom, rng, modality="DX", study_instance_uid=study)
    ds.PatientID = "CXR-WORKER-1"
    return ds


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime with the shipped chest X-ray model loaded in one worker."""
    rt = Runtime.build(
        settings.model_copy(update={"quiet_period_seconds": 0.0}),
        with_listener=False,
        with_workers=True,
    )
    yield rt
    rt.close()


def assemble(runtime: Runtime) -> None:
    runtime.assembler.run_once(now=utcnow() + timedelta(seconds=5))


def job_of(runtime: Runtime, study_uid: str = STUDY) -> Job:
    with runtime.database.read() as session:
        return session.scalars(
            select(Job).join(Job.study).where(Job.study.has(study_instance_uid=study_uid))
        ).one()


def results_of(runtime: Runtime, job: Job) -> list[Result]:
    with runtime.database.read() as session:
        return list(list_results(session, job.study_id))


class TestCxrJobs:
    def test_study_gets_preliminary_findings_with_heatmaps(self, runtime: Runtime) -> None:
        frontal = chest(1, {CxrFinding.CARDIOMEGALY, CxrFinding.PLEURAL_EFFUSION})
        lateral = chest(2, set(), view="LATERAL")
        ingest_datasets(runtime.ingestor, [frontal, lateral])
        assemble(runtime)
        [worker] = runtime.workers

        report = worker.run_once()

        assert report is not None
        assert report.outcome == "done", report
        job = job_of(runtime)
        assert job.state is JobState.DONE
        [result] = results_of(runtime, job)
        assert result.state is ResultState.COMPLETE
        assert result.status is ResultStatus.PRELIMINARY
        assert (result.model_name, result.model_version) == ("cxr", "0.2.0")
        assert [f.label for f in result.findings] == [str(f) for f in CxrFinding]
        by_label = {f.label: f for f in result.findings}
        for key in ("cardiomegaly", "pleural_effusion"):
            assert by_label[key].positive, (key, by_label[key].probability)
        for finding in result.findings:
            # The lateral view is refused by a gate: every finding was read on the PA.
            assert finding.sop_instance_uid == frontal.SOPInstanceUID
            assert finding.threshold is not None
            assert finding.positive == (finding.probability >= finding.threshold)
            if not finding.positive:
                assert finding.heatmap_path is None
                assert finding.overlay_path is None
                continue
            assert finding.heatmap_path is not None
            assert finding.overlay_path is not None
            heat = np.load(runtime.result_files.absolute(finding.heatmap_path))
            assert heat.dtype == np.float16
            assert max(heat.shape) <= 512
            assert float(heat.min()) >= 0.0
            assert float(heat.max()) <= 1.0
            overlay = Image.open(runtime.result_files.absolute(finding.overlay_path))
            assert overlay.mode == "RGB"
            assert overlay.size == (512, 512)
        instances = {entry["sop_instance_uid"]: entry for entry in result.details["instances"]}
        assert instances[frontal.SOPInstanceUID]["state"] == "complete"
        refused = instances[lateral.SOPInstanceUID]
        assert refused["state"] == "ungradable"
        assert "lateral" in refused["reason"]["en"].lower()
        assert refused["reason"]["vi"]
        assert result.details["preliminary"] is True
        assert result.details["explanation"] == "cam"
        with runtime.database.read() as session:
            [event] = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "cxr.result")
            ).all()
        assert event.study_instance_uid == STUDY
        assert event.detail["result"] == result.id
        # Nothing is left to do, and nothing is done twice.
        assert worker.run_once() is None
        assert len(results_of(runtime, job)) == 1

    def test_study_without_a_gradable_image_is_ungradable_with_reasons(
        self, runtime: Runtime
    ) -> None:
        ingest_datasets(runtime.ingestor, [chest(3, set(), view="LATERAL")])
        assemble(runtime)
        report = runtime.workers[0].run_once()
        assert report is not None
        assert report.outcome == "ungradable"
        job = job_of(runtime)
        assert job.state is JobState.UNGRADABLE
        [result] = results_of(runtime, job)
        assert result.state is ResultState.UNGRADABLE
        assert result.findings == []
        reason = result_reason(result)
        assert "lateral" in reason.en.lower()
        assert reason.vi
        assert reason.vi != reason.en
        assert "lateral" in job.state_reason.lower()

    def test_undecodable_pixels_fail_precisely_and_the_worker_keeps_going(
        self, runtime: Runtime
    ) -> None:
        # A JPEG 2000 instance whose compressed bytes are not a codestream: the header
        # is fine (the gateway keeps it), the pixels cannot be decoded.
        broken = chest(4, set(), study=f"{STUDY}.1")
        broken.file_meta.TransferSyntaxUID = JPEG2000Lossless
        broken.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(range(256)) * 8])
        broken["PixelData"].VR = "OB"
        good = chest(5, set(), study=f"{STUDY}.2")
        ingest_datasets(runtime.ingestor, [broken, good])
        assemble(runtime)
        [worker] = runtime.workers
        outcomes = [worker.run_once(), worker.run_once()]
        assert sorted(r.outcome for r in outcomes if r is not None) == ["done", "failed"]
        failed = job_of(runtime, f"{STUDY}.1")
        assert failed.state is JobState.FAILED
        [result] = results_of(runtime, failed)
        assert result.state is ResultState.FAILED
        reason = result_reason(result)
        assert "pixel" in reason.en.lower(), reason
        assert reason.vi
        assert job_of(runtime, f"{STUDY}.2").state is JobState.DONE

    def test_new_instances_after_the_result_run_the_job_again(self, runtime: Runtime) -> None:
        ingest_datasets(runtime.ingestor, [chest(6, set())])
        assemble(runtime)
        [worker] = runtime.workers
        assert worker.run_once() is not None
        ingest_datasets(runtime.ingestor, [chest(7, {CxrFinding.PNEUMOTHORAX})])
        assemble(runtime)
        job = job_of(runtime)
        assert job.state is JobState.QUEUED
        assert len(job.instance_uids) == 2
        assert "new instances" in job.state_reason
        report = worker.run_once()
        assert report is not None
        assert report.outcome == "done"
        first, second = results_of(runtime, job)
        assert len(second.details["instances"]) == 2
        assert len(first.details["instances"]) == 1


class _Flaky:
    """A handler that fails ``failures`` times, then answers like the real one."""

    pipeline = "cxr"
    model_name = "cxr"
    model_version = "0.2.0"

    def __init__(self, real: object, failures: int) -> None:
        self.real = real
        self.failures = failures
        self.calls = 0

    def handle(self, job: JobInput) -> JobOutput:
        self.calls += 1
        if self.calls <= self.failures:
            raise RunnerError("ONNX Runtime failed: out of memory")
        output: JobOutput = self.real.handle(job)  # type: ignore[attr-defined]
        return output

    def close(self) -> None:
        """Nothing to release."""


def _worker_like(runtime: Runtime, handler: object, **options: object) -> JobWorker:
    return JobWorker(
        database=runtime.database,
        instance_files=runtime.files,
        result_files=runtime.result_files,
        handlers={"cxr": handler},  # type: ignore[dict-item]
        **options,  # type: ignore[arg-type]
    )


class TestFailuresAndLeases:
    def test_a_runtime_failure_is_retried(self, runtime: Runtime) -> None:
        ingest_datasets(runtime.ingestor, [chest(8, set())])
        assemble(runtime)
        flaky = _Flaky(runtime.workers[0].handlers["cxr"], failures=1)
        worker = _worker_like(runtime, flaky, max_attempts=3)
        first = worker.run_once()
        assert first is not None
        assert first.outcome == "queued"
        assert "out of memory" in job_of(runtime).state_reason
        second = worker.run_once()
        assert second is not None
        assert second.outcome == "done"
        job = job_of(runtime)
        assert (job.attempts, job.failures) == (2, 1)
        assert len(results_of(runtime, job)) == 1

    def test_repeated_failures_end_in_a_failed_result(self, runtime: Runtime) -> None:
        ingest_datasets(runtime.ingestor, [chest(9, set())])
        assemble(runtime)
        worker = _worker_like(
            runtime, _Flaky(runtime.workers[0].handlers["cxr"], failures=5), max_attempts=2
        )
        assert [r.outcome for r in (worker.run_once(), worker.run_once()) if r] == [
            "queued",
            "failed",
        ]
        assert worker.run_once() is None
        job = job_of(runtime)
        assert job.state is JobState.FAILED
        [result] = results_of(runtime, job)
        assert result.state is ResultState.FAILED
        reason = result_reason(result)
        assert "gave up after 2 failed attempts" in reason.en
        assert "out of memory" in reason.en
        assert reason.vi

    def test_a_worker_whose_lease_ran_out_stores_nothing(self, runtime: Runtime) -> None:
        ingest_datasets(runtime.ingestor, [chest(10, {CxrFinding.CARDIOMEGALY})])
        assemble(runtime)
        real = runtime.workers[0].handlers["cxr"]
        entered, release = threading.Event(), threading.Event()

        class Stalling:
            pipeline, model_name, model_version = "cxr", "cxr", "0.2.0"

            def handle(self, job: JobInput) -> JobOutput:
                output: JobOutput = real.handle(job)
                entered.set()
                release.wait(30)  # the worker hangs (swapping, a stuck disk) ...
                return output

            def close(self) -> None:
                """Nothing to release."""

        slow = _worker_like(runtime, Stalling(), name="slow", lease=timedelta(seconds=30))
        reports: list[object] = []
        thread = threading.Thread(target=lambda: reports.append(slow.run_once()))
        thread.start()
        assert entered.wait(60)
        # ... long enough for another worker to take the job back and finish it.
        fast = _worker_like(runtime, real, name="fast", lease=timedelta(milliseconds=1))
        taken = fast.run_once()
        assert taken is not None
        assert taken.outcome == "done"
        assert taken.attempt == 2
        release.set()
        thread.join(60)
        [late] = reports
        assert getattr(late, "outcome", None) == "lease-lost"
        job = job_of(runtime)
        assert job.state is JobState.DONE
        assert job.attempts == 2
        [result] = results_of(runtime, job)
        assert result.findings[0].overlay_path is not None
        assert "attempt-2" in result.findings[0].overlay_path
        # The late worker's files were removed, the winner's kept.
        assert not (runtime.result_files.root / f"jobs/{job.id}/attempt-1").exists()
        assert runtime.result_files.absolute(result.findings[0].overlay_path).is_file()


def test_overlay_is_a_png_people_can_open(runtime: Runtime, tmp_path: Path) -> None:
    ingest_datasets(runtime.ingestor, [chest(11, {CxrFinding.PNEUMOTHORAX}, size=1024)])
    assemble(runtime)
    runtime.workers[0].run_once()
    [result] = results_of(runtime, job_of(runtime))
    overlays = [f.overlay_path for f in result.findings if f.overlay_path]
    assert overlays
    data = runtime.result_files.absolute(overlays[0]).read_bytes()
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    assert image.size == (1024, 1024)
