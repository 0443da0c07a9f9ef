"""The database: SQLite in WAL mode for the embedded default, PostgreSQL in national mode."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError

from store import (
    DEFAULT_FACILITY_CODE,
    AuditOutcome,
    Database,
    current_revision,
    head_revision,
    list_audit_events,
    record_event,
    upgrade,
)
from store.models import AuditEvent, Base, Facility


class TestSchema:
    def test_migrations_reach_head_and_create_every_table(self, database: Database) -> None:
        assert current_revision(database) == head_revision()
        tables = set(inspect(database.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables

    def test_upgrade_twice_changes_nothing(self, database: Database) -> None:
        assert upgrade(database) == head_revision()
        with database.read() as session:
            codes = session.scalars(select(Facility.code)).all()
        assert codes == [DEFAULT_FACILITY_CODE]

    def test_schema_matches_the_models(self, database: Database) -> None:
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []


class TestSQLite:
    def test_wal_and_full_synchronous(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        from store import sqlite_url

        db = Database(sqlite_url(tmp_path / "x.db"))
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        db.dispose()

    def test_memory_database_is_refused(self) -> None:
        with pytest.raises(ValueError, match="must name a SQLite file"):
            Database("sqlite+pysqlite:///:memory:")


class TestAuditAppendOnly:
    def test_events_can_be_added_and_read(self, database: Database) -> None:
        with database.write() as session:
            record_event(
                session,
                actor="PACS1",
                actor_kind="dicom-peer",
                action="dimse.store",
                outcome=AuditOutcome.SUCCESS,
                patient_id=7,
                detail={"bytes": 10},
            )
        with database.read() as session:
            events = list_audit_events(session, patient_id=7)
        assert [(e.actor, e.outcome, e.detail) for e in events] == [
            ("PACS1", AuditOutcome.SUCCESS, {"bytes": 10})
        ]

    @pytest.mark.parametrize(
        "statement",
        ["UPDATE audit_events SET actor = 'someone else'", "DELETE FROM audit_events"],
    )
    def test_update_and_delete_are_refused_by_the_database(
        self, database: Database, statement: str
    ) -> None:
        with database.write() as session:
            record_event(session, actor="A", actor_kind="user", action="read", outcome="success")
        with pytest.raises(DBAPIError, match="append-only"), database.write() as session:
            session.execute(text(statement))
        with database.read() as session:
            assert session.scalars(select(AuditEvent.actor)).all() == ["A"]
