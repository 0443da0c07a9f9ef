"""Store rows for tests that need an AI result (for the outbox) without running a model."""

from __future__ import annotations

from store import Database, ResultState, ensure_job, record_result
from tests.support.store import index_cxr_study

__all__ = ["record_cxr_result"]


def record_cxr_result(database: Database, study_instance_uid: str) -> tuple[int, int]:
    """Index a chest CR study, queue its job and record a complete result with no findings.

    Returns
    -------
    tuple[int, int]
        The study's id and the result's id.
    """
    study_id = index_cxr_study(database, study_instance_uid)
    with database.write() as session:
        job = ensure_job(
            session,
            study_id=study_id,
            pipeline="cxr",
            instance_uids=[f"{study_instance_uid}.1"],
            available=True,
        )
        result = record_result(
            session,
            job_id=job.id,
            study_id=study_id,
            model_name="cxr",
            model_version="1.0.0",
            state=ResultState.COMPLETE,
            reason=None,
            findings=(),
        )
        return study_id, result.id
