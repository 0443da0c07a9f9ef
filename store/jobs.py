"""Inference jobs: created by routing, claimed atomically by workers."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store._upsert import insert_ignore
from store.enums import JobState
from store.errors import StoreError
from store.models import Job
from store.types import utcnow

__all__ = [
    "LeaseLostError",
    "claim_next_job",
    "ensure_job",
    "finish_job",
    "list_jobs",
    "recover_stale_jobs",
    "release_waiting_jobs",
    "retry_job",
    "waiting_reason",
]


_FINISHED = (JobState.DONE, JobState.UNGRADABLE, JobState.FAILED)


def waiting_reason(pipeline: str) -> str:
    """Explain why a job for an unavailable pipeline waits."""
    return (
        f"pipeline {pipeline!r} is not available in this installation yet; "
        "the job waits in the queue and runs once it is"
    )


def ensure_job(
    session: Session,
    *,
    study_id: int,
    pipeline: str,
    instance_uids: Sequence[str],
    available: bool,
) -> Job:
    """Create the job of ``pipeline`` for a study, once; run it again if the study grew.

    A study has at most one job per pipeline (a unique constraint), so routing the
    same study twice, or after a crash, never creates a second job. A job that has
    not started yet takes the new instance list. A finished job whose study received
    new instances is queued again (its results stay; the new one supersedes them);
    a running one takes the new list and is queued again when it finishes (see
    :func:`finish_job`).
    """
    now = utcnow()
    state = JobState.QUEUED if available else JobState.WAITING
    insert_ignore(
        session,
        Job,
        {
            "study_id": study_id,
            "pipeline": pipeline,
            "state": state,
            "state_reason": "" if available else waiting_reason(pipeline),
            "instance_uids": list(instance_uids),
            "attempts": 0,
            "failures": 0,
            "created_at": now,
            "updated_at": now,
        },
    )
    job = session.scalars(
        select(Job).where(Job.study_id == study_id, Job.pipeline == pipeline)
    ).one()
    wanted = list(instance_uids)
    if job.instance_uids == wanted:
        return job
    job.instance_uids = wanted
    if job.state in _FINISHED:
        job.state = state
        job.failures = 0
        job.claimed_by = None
        job.state_reason = (
            "re-run: the study received new instances" if available else waiting_reason(pipeline)
        )
        job.updated_at = now
    return job


def claim_next_job(session: Session, *, pipelines: Collection[str], worker: str) -> Job | None:
    """Claim the oldest queued job of one of ``pipelines`` for ``worker``.

    On PostgreSQL the row is locked with ``FOR UPDATE SKIP LOCKED`` so concurrent
    workers never claim the same job; on SQLite the write transaction is exclusive.
    """
    if not pipelines:
        return None
    statement = (
        select(Job)
        .where(Job.state == JobState.QUEUED, Job.pipeline.in_(list(pipelines)))
        .order_by(Job.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    job = session.scalars(statement).one_or_none()
    if job is None:
        return None
    job.state = JobState.RUNNING
    job.claimed_by = worker[:128]
    job.claimed_at = utcnow()
    job.attempts += 1
    job.state_reason = ""
    session.flush()
    return job


class LeaseLostError(StoreError):
    """The job is no longer held by this claim: its lease ran out and it was handed on."""


def _held(session: Session, job_id: int, attempt: int) -> Job:
    """The job, if it is still running under claim ``attempt``; else :class:`LeaseLostError`."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.state is not JobState.RUNNING or job.attempts != attempt:
        state = "gone" if job is None else f"{job.state.value} (attempt {job.attempts})"
        raise LeaseLostError(
            f"job {job_id} is no longer held by attempt {attempt}: it is {state}; "
            "another worker took it over after the lease ran out"
        )
    return job


def finish_job(
    session: Session,
    job_id: int,
    *,
    attempt: int,
    state: JobState,
    reason: str = "",
    instance_uids: Sequence[str] | None = None,
) -> Job:
    """Record that claim ``attempt`` of a job finished it: ``done``, ``ungradable`` or ``failed``.

    The claim is a fencing token: a worker whose lease ran out (and whose job another
    worker claimed again) cannot finish it, so a job is never done twice. The state
    changes only if the job is still ``running`` under that attempt, inside the
    caller's transaction, which must also hold what the job produced.

    When ``instance_uids`` (what the worker read) differs from the job's list, the
    study received instances while the job ran: the job is queued again at once.

    Raises
    ------
    LeaseLostError
        If the job is no longer running under ``attempt``; roll the transaction back.
    """
    if state not in (JobState.DONE, JobState.UNGRADABLE, JobState.FAILED):
        raise ValueError(f"`state` must be done, ungradable or failed, {state!r} is given")
    job = _held(session, job_id, attempt)
    job.updated_at = utcnow()
    if instance_uids is not None and list(instance_uids) != job.instance_uids:
        job.state = JobState.QUEUED
        job.claimed_by = None
        job.failures = 0
        job.state_reason = "re-run: the study received new instances while it ran"
    else:
        job.state = state
        job.state_reason = reason[:500]
    session.flush()
    return job


def retry_job(
    session: Session, job_id: int, *, attempt: int, reason: str, max_failures: int
) -> Job:
    """Count a failure of the job claimed under ``attempt``; queue it again or give up.

    The job is queued again while it has failed fewer than ``max_failures`` times in a
    row; then it is ``failed`` with ``reason``.

    Raises
    ------
    LeaseLostError
        If the job is no longer running under ``attempt``.
    """
    job = _held(session, job_id, attempt)
    job.failures += 1
    job.claimed_by = None
    job.updated_at = utcnow()
    if job.failures < max_failures:
        job.state = JobState.QUEUED
        job.state_reason = f"retrying after failure {job.failures}: {reason}"[:500]
    else:
        job.state = JobState.FAILED
        job.state_reason = f"gave up after {job.failures} failures: {reason}"[:500]
    session.flush()
    return job


def release_waiting_jobs(session: Session, available: Collection[str]) -> int:
    """Queue the waiting jobs whose pipeline has become available; return how many."""
    if not available:
        return 0
    result = session.execute(
        update(Job)
        .where(Job.state == JobState.WAITING, Job.pipeline.in_(list(available)))
        .values(state=JobState.QUEUED, state_reason="", updated_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def recover_stale_jobs(
    session: Session, *, claimed_before: datetime, max_failures: int | None = None
) -> int:
    """Take back running jobs whose worker died before ``claimed_before``; return how many.

    Each counts as a failure. A job is queued again, unless it has now failed
    ``max_failures`` times in a row (a study that brings down every worker that reads
    it): then it fails with that reason.
    """
    stale = (Job.state == JobState.RUNNING, Job.claimed_at < claimed_before)
    now = utcnow()
    given_up = 0
    if max_failures is not None:
        failed = session.execute(
            update(Job)
            .where(*stale, Job.failures + 1 >= max_failures)
            .values(
                state=JobState.FAILED,
                failures=Job.failures + 1,
                claimed_by=None,
                state_reason=(f"gave up: the worker stopped while running it {max_failures} times"),
                updated_at=now,
            )
        )
        given_up = int(failed.rowcount)  # type: ignore[attr-defined]
    result = session.execute(
        update(Job)
        .where(*stale)
        .values(
            state=JobState.QUEUED,
            failures=Job.failures + 1,
            claimed_by=None,
            state_reason="requeued: the worker that claimed it stopped",
            updated_at=now,
        )
    )
    return given_up + int(result.rowcount)  # type: ignore[attr-defined]


def list_jobs(session: Session, *, study_id: int | None = None) -> Sequence[Job]:
    """Return jobs, oldest first, optionally of one study."""
    statement = select(Job).order_by(Job.id)
    if study_id is not None:
        statement = statement.where(Job.study_id == study_id)
    return session.scalars(statement).all()
