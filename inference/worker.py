"""The job worker: claims jobs from the store, runs their pipeline, stores the results.

One loop, any number of processes or threads. Each step is a committed transaction,
so a worker can die at any moment:

1. **Claim** (short write transaction): stale claims are taken back first (a job whose
   worker has held it longer than the lease is queued again, or failed after
   ``max_attempts`` claims), then the oldest queued job of a pipeline this worker
   runs is marked ``running`` under a new attempt number.
2. **Run** (no transaction open): the pipeline's handler reads the instance files and
   returns the result, its findings and the files that go with it (heatmaps).
3. **Store**: the files are written durably under ``jobs/<job>/attempt-<n>/``, then one
   write transaction records the result and its findings, moves the job to ``done``,
   ``ungradable`` or ``failed``, and adds an audit event. The job changes only if it
   is still running under this attempt (a fencing token), so a worker whose lease ran
   out while another took the job over stores nothing: a job is never done twice.

A handler error that may pass (the model runtime failed, a file could not be read or
written) puts the job back in the queue until ``max_attempts``; then it fails with a
``failed`` result carrying the reason in English and Vietnamese, never silently.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from store import (
    DEFAULT_CRITICAL_LABELS,
    AuditOutcome,
    Database,
    FindingRecord,
    Instance,
    InstanceFileStore,
    Job,
    JobState,
    LeaseLostError,
    ResultFileStore,
    ResultReason,
    ResultState,
    Study,
    claim_next_job,
    finish_job,
    record_event,
    record_result,
    recover_stale_jobs,
    retry_job,
    utcnow,
)

__all__ = [
    "InstanceInput",
    "JobHandler",
    "JobInput",
    "JobOutput",
    "JobWorker",
    "WorkerReport",
    "default_worker_name",
]

_log = structlog.get_logger("soi.worker")

_JOB_STATE = {
    ResultState.COMPLETE: JobState.DONE,
    ResultState.UNGRADABLE: JobState.UNGRADABLE,
    ResultState.FAILED: JobState.FAILED,
}


def default_worker_name(suffix: str = "") -> str:
    """``host:pid[:suffix]``, what a claim records as its worker."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    return f"{name}:{suffix}" if suffix else name


#: Called in the transaction that stores a result: (session, result id, study id).
ResultHook = Callable[[Session, int, int], object]


@dataclass(frozen=True, slots=True)
class InstanceInput:
    """One instance a job reads: its UID and its file on disk."""

    sop_instance_uid: str
    path: Path


@dataclass(frozen=True, slots=True)
class JobInput:
    """What a handler gets: the job, the study, the instance files, where files go."""

    job_id: int
    attempt: int
    pipeline: str
    study_id: int
    study_instance_uid: str
    instance_uids: tuple[str, ...]
    instances: tuple[InstanceInput, ...]
    missing_instance_uids: tuple[str, ...]
    file_prefix: str


@dataclass(frozen=True, slots=True)
class JobOutput:
    """What a handler concluded: a result, its findings and the files they name.

    ``files`` maps paths relative to the result file store (under the job's
    ``file_prefix``) to their bytes; the findings name the same paths.
    """

    state: ResultState
    model_name: str
    model_version: str
    reason: ResultReason = field(default_factory=ResultReason)
    findings: tuple[FindingRecord, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, bytes] = field(default_factory=dict)


class JobHandler(Protocol):
    """Runs one pipeline's jobs.

    ``handle`` raises :class:`~inference.errors.InferenceError` (or ``OSError``) for a
    failure that may pass on a retry; a problem of the study itself is a ``failed`` or
    ``ungradable`` :class:`JobOutput`.
    """

    pipeline: str
    model_name: str
    model_version: str

    def handle(self, job: JobInput) -> JobOutput:
        """Run the pipeline on one job."""
        ...

    def close(self) -> None:
        """Release the model."""
        ...


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """What one :meth:`JobWorker.run_once` did with the job it claimed."""

    job_id: int
    attempt: int
    pipeline: str
    study_instance_uid: str
    outcome: str
    reason: str = ""
    result_id: int | None = None


class JobWorker:
    """Claims and runs jobs of the pipelines it has handlers for.

    Parameters
    ----------
    database:
        The store.
    instance_files:
        Where the instance files lie.
    result_files:
        Where result files (heatmaps, overlays) are written.
    handlers:
        Pipeline name → handler.
    name:
        Recorded with each claim (default ``host:pid``).
    lease:
        How long a claim holds: a job running longer is taken back from its worker.
    max_attempts:
        Failed attempts in a row (errors, or workers that died holding the job) before
        the job fails for good with a ``failed`` result.
    after_result:
        Called with (session, result id, study id) in the transaction that stores each
        result, e.g. to plan its deliveries: they commit with it, or not at all.
    critical_labels:
        Finding labels whose positive finding makes a study critical on the worklist;
        the study's urgency is updated in the transaction that stores each result.
    """

    def __init__(
        self,
        *,
        database: Database,
        instance_files: InstanceFileStore,
        result_files: ResultFileStore,
        handlers: Mapping[str, JobHandler],
        name: str | None = None,
        lease: timedelta = timedelta(minutes=5),
        max_attempts: int = 3,
        after_result: ResultHook | None = None,
        critical_labels: Collection[str] = DEFAULT_CRITICAL_LABELS,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"`max_attempts` must be a positive number, {max_attempts} is given")
        if lease <= timedelta(0):
            raise ValueError(f"`lease` must be positive, {lease} is given")
        self.database = database
        self.instance_files = instance_files
        self.result_files = result_files
        self.handlers = dict(handlers)
        self.name = name or default_worker_name()
        self.lease = lease
        self.max_attempts = max_attempts
        self.after_result = after_result
        self.critical_labels = frozenset(critical_labels)

    @property
    def pipelines(self) -> frozenset[str]:
        """The pipelines this worker runs."""
        return frozenset(self.handlers)

    def run_once(self) -> WorkerReport | None:
        """Claim one job and run it to the end; ``None`` when the queue is empty."""
        claimed = self._claim()
        if claimed is None:
            return None
        handler = self.handlers[claimed.pipeline]
        log = _log.bind(job=claimed.job_id, attempt=claimed.attempt, pipeline=claimed.pipeline)
        try:
            output = handler.handle(claimed)
            for relative, data in output.files.items():
                self.result_files.write(relative, data)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then reported
            self.result_files.remove_folder(claimed.file_prefix)
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("job attempt failed", error=reason)
            return self._retry_or_fail(claimed, handler, reason)
        try:
            result_id, job_state = self._store(claimed, output)
        except LeaseLostError as exc:
            self.result_files.remove_folder(claimed.file_prefix)
            log.warning("result dropped: the lease ran out", error=str(exc))
            return WorkerReport(
                claimed.job_id,
                claimed.attempt,
                claimed.pipeline,
                claimed.study_instance_uid,
                outcome="lease-lost",
                reason=str(exc),
            )
        log.info("job finished", state=output.state.value, result=result_id)
        return WorkerReport(
            claimed.job_id,
            claimed.attempt,
            claimed.pipeline,
            claimed.study_instance_uid,
            outcome=job_state.value,
            reason=output.reason.en,
            result_id=result_id,
        )

    def run_forever(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Run jobs until ``stop`` is set, waiting ``interval`` seconds when idle.

        Database errors are logged and retried; the loop keeps going.
        """
        while not stop.is_set():
            try:
                report = self.run_once()
            except SQLAlchemyError as exc:
                _log.error("job worker: database error; retrying", error=str(exc))
                report = None
            if report is None:
                stop.wait(interval)

    def close(self) -> None:
        """Release the handlers' models."""
        for handler in self.handlers.values():
            handler.close()

    def _claim(self) -> JobInput | None:
        with self.database.write() as session:
            recover_stale_jobs(
                session, claimed_before=utcnow() - self.lease, max_failures=self.max_attempts
            )
            job = claim_next_job(session, pipelines=self.pipelines, worker=self.name)
            if job is None:
                return None
            study = session.get(Study, job.study_id)
            wanted = list(job.instance_uids)
            rows = session.execute(
                select(Instance.sop_instance_uid, Instance.file_path).where(
                    Instance.study_id == job.study_id, Instance.sop_instance_uid.in_(wanted)
                )
            ).all()
            paths = {uid: self.instance_files.absolute(path) for uid, path in rows}
            return JobInput(
                job_id=job.id,
                attempt=job.attempts,
                pipeline=job.pipeline,
                study_id=job.study_id,
                study_instance_uid=study.study_instance_uid if study is not None else "",
                instance_uids=tuple(wanted),
                instances=tuple(InstanceInput(uid, paths[uid]) for uid in wanted if uid in paths),
                missing_instance_uids=tuple(uid for uid in wanted if uid not in paths),
                file_prefix=f"jobs/{job.id}/attempt-{job.attempts}",
            )

    def _store(self, claimed: JobInput, output: JobOutput) -> tuple[int, JobState]:
        with self.database.write() as session:
            job = finish_job(
                session,
                claimed.job_id,
                attempt=claimed.attempt,
                state=_JOB_STATE[output.state],
                reason=output.reason.en,
                instance_uids=claimed.instance_uids,
            )
            result = record_result(
                session,
                job_id=claimed.job_id,
                study_id=claimed.study_id,
                model_name=output.model_name,
                model_version=output.model_version,
                state=output.state,
                reason=output.reason,
                findings=output.findings,
                details=output.details,
                critical_labels=self.critical_labels,
            )
            self._audit(session, job, claimed, output.state.value, result.id)
            if self.after_result is not None:
                self.after_result(session, int(result.id), claimed.study_id)
            return int(result.id), job.state

    def _retry_or_fail(self, claimed: JobInput, handler: JobHandler, reason: str) -> WorkerReport:
        result_id: int | None = None
        try:
            with self.database.write() as session:
                job = retry_job(
                    session,
                    claimed.job_id,
                    attempt=claimed.attempt,
                    reason=reason,
                    max_failures=self.max_attempts,
                )
                if job.state is JobState.FAILED:
                    why = ResultReason(
                        en=f"gave up after {job.failures} failed attempts: {reason}",
                        vi=(
                            f"Không xử lý được sau {job.failures} lần thử "
                            "(lỗi hệ thống, không phải do ảnh); chi tiết bằng tiếng Anh: "
                            f"{reason}"
                        ),
                    )
                    result = record_result(
                        session,
                        job_id=claimed.job_id,
                        study_id=claimed.study_id,
                        model_name=handler.model_name,
                        model_version=handler.model_version,
                        state=ResultState.FAILED,
                        reason=why,
                        critical_labels=self.critical_labels,
                    )
                    self._audit(session, job, claimed, "failed", result.id)
                    result_id = int(result.id)
                    if self.after_result is not None:
                        self.after_result(session, result_id, claimed.study_id)
                outcome = job.state.value
        except LeaseLostError as exc:
            return WorkerReport(
                claimed.job_id,
                claimed.attempt,
                claimed.pipeline,
                claimed.study_instance_uid,
                outcome="lease-lost",
                reason=str(exc),
            )
        return WorkerReport(
            claimed.job_id,
            claimed.attempt,
            claimed.pipeline,
            claimed.study_instance_uid,
            outcome=outcome,
            reason=reason,
            result_id=result_id,
        )

    def _audit(self, session: Any, job: Job, claimed: JobInput, state: str, result_id: int) -> None:
        study = session.get(Study, job.study_id)
        record_event(
            session,
            actor=self.name,
            actor_kind="worker",
            action=f"{claimed.pipeline}.result",
            outcome=AuditOutcome.SUCCESS if state != "failed" else AuditOutcome.FAILURE,
            facility_id=study.facility_id if study is not None else None,
            patient_id=study.patient_id if study is not None else None,
            study_instance_uid=claimed.study_instance_uid,
            detail={
                "job": claimed.job_id,
                "attempt": claimed.attempt,
                "result": result_id,
                "state": state,
            },
        )
