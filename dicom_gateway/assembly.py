"""Study assembly: a study is stable after a quiet period; then its jobs are created."""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from store import (
    Database,
    ensure_job,
    mark_stable,
    quiet_studies,
    release_waiting_jobs,
    study_pipelines,
    utcnow,
)

__all__ = ["AssembledStudy", "StudyAssembler"]

_log = structlog.get_logger("soi.assembly")


@dataclass(frozen=True, slots=True)
class AssembledStudy:
    """A study that became stable, and the pipelines it was routed to."""

    study_instance_uid: str
    pipelines: tuple[str, ...]


class StudyAssembler:
    """Marks quiet studies stable and creates one job per applicable pipeline.

    Parameters
    ----------
    database:
        The store.
    quiet_period:
        How long a study must go without a new instance to be stable.
    available_pipelines:
        Pipelines this installation can run; jobs for others wait with a clear reason.
    """

    def __init__(
        self,
        *,
        database: Database,
        quiet_period: timedelta,
        available_pipelines: Collection[str] = frozenset(),
    ) -> None:
        if quiet_period < timedelta(0):
            raise ValueError(f"`quiet_period` must not be negative, {quiet_period} is given")
        self.database = database
        self.quiet_period = quiet_period
        self.available_pipelines = frozenset(available_pipelines)

    def run_once(self, *, now: datetime | None = None, limit: int = 100) -> list[AssembledStudy]:
        """Assemble every study that has been quiet long enough; return them."""
        now = now or utcnow()
        assembled: list[AssembledStudy] = []
        with self.database.write() as session:
            release_waiting_jobs(session, self.available_pipelines)
            for study in quiet_studies(
                session, received_before=now - self.quiet_period, limit=limit
            ):
                routed = study_pipelines(session, study.id)
                notes: list[str] = []
                for pipeline, instance_uids in sorted(routed.items()):
                    available = pipeline in self.available_pipelines
                    ensure_job(
                        session,
                        study_id=study.id,
                        pipeline=pipeline,
                        instance_uids=instance_uids,
                        available=available,
                    )
                    notes.append(f"{pipeline} ({'queued' if available else 'waiting'})")
                quiet = int(self.quiet_period.total_seconds())
                if notes:
                    reason = f"no new instance for {quiet} s; jobs: {', '.join(notes)}"
                else:
                    reason = (
                        f"no new instance for {quiet} s; no pipeline applies to any of its "
                        f"{study.num_instances} instance(s)"
                    )
                mark_stable(session, study, reason=reason)
                assembled.append(AssembledStudy(study.study_instance_uid, tuple(sorted(routed))))
        for item in assembled:
            _log.info(
                "study stable",
                study_instance_uid=item.study_instance_uid,
                pipelines=list(item.pipelines),
            )
        return assembled

    def run_forever(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Assemble until ``stop`` is set; database errors are logged and retried."""
        while not stop.is_set():
            try:
                self.run_once()
            except SQLAlchemyError as exc:
                _log.error("study assembly failed; retrying", error=str(exc))
            stop.wait(interval)
