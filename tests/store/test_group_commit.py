"""Group commit: shared transactions, each caller gets its own outcome after the commit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from store import AuditEvent, Database, GroupCommitter, record_event


def _event(actor: str):  # type: ignore[no-untyped-def]
    def work(session: Session) -> str:
        record_event(session, actor=actor, actor_kind="test", action="t", outcome="success")
        return actor

    return work


class TestGroupCommitter:
    def test_many_threads_each_committed_once(self, database: Database, tmp_path: Path) -> None:
        committer = GroupCommitter(database)
        folders = [tmp_path / f"d{i % 3}" for i in range(40)]
        for folder in folders:
            folder.mkdir(exist_ok=True)
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(
                pool.map(
                    lambda i: committer.run(_event(f"a{i}"), sync_dirs=[folders[i]]), range(40)
                )
            )
        assert results == [f"a{i}" for i in range(40)]
        with database.read() as session:
            actors = sorted(session.scalars(select(AuditEvent.actor)).all())
        assert actors == sorted(f"a{i}" for i in range(40))

    def test_a_failing_unit_does_not_undo_the_others(self, database: Database) -> None:
        committer = GroupCommitter(database)
        started = threading.Barrier(3)

        def failing(session: Session) -> None:
            record_event(session, actor="bad", actor_kind="test", action="t", outcome="success")
            raise RuntimeError("this unit fails")

        def run(kind: str) -> str:
            started.wait()
            if kind == "bad":
                with pytest.raises(RuntimeError, match="this unit fails"):
                    committer.run(failing)
                return "raised"
            return committer.run(_event(kind))

        with ThreadPoolExecutor(max_workers=3) as pool:
            outcomes = list(pool.map(run, ["good1", "bad", "good2"]))
        assert outcomes == ["good1", "raised", "good2"]
        with database.read() as session:
            actors = sorted(session.scalars(select(AuditEvent.actor)).all())
        assert actors == ["good1", "good2"]

    def test_unflushable_folder_fails_the_batch_clearly(
        self, database: Database, tmp_path: Path
    ) -> None:
        committer = GroupCommitter(database)
        from store import FileStoreError

        with pytest.raises(FileStoreError, match="cannot flush instance folders"):
            committer.run(_event("x"), sync_dirs=[tmp_path / "absent"])
        with database.read() as session:
            assert session.scalars(select(AuditEvent)).all() == []

    def test_batch_size_must_be_positive(self, database: Database) -> None:
        with pytest.raises(ValueError, match="`max_batch` must be >= 1, 0 is given"):
            GroupCommitter(database, max_batch=0)
