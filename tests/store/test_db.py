"""The database: SQLite in WAL mode for the embedded default, PostgreSQL in national mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, select, text, update
from sqlalchemy.exc import DBAPIError

from store import (
    DEFAULT_FACILITY_CODE,
    AuditOutcome,
    Database,
    StudyQuery,
    current_revision,
    head_revision,
    list_audit_events,
    record_event,
    search_studies,
    sqlite_url,
    upgrade,
)
from store.models import AuditEvent, Base, Facility, User


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


class TestFacilityReportLanguageMigration:
    """Revision 0004 adds ``facilities.report_language`` and keeps existing facilities."""

    def test_upgrade_from_0003_adds_a_nullable_column(self, database_url: str) -> None:
        database = Database(database_url)
        try:
            assert upgrade(database, "0003") == "0003"
            columns = {c["name"] for c in inspect(database.engine).get_columns("facilities")}
            assert "report_language" not in columns
            with database.engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO facilities (code, name, kind, created_at) "
                        "VALUES ('BV-OLD', 'Bệnh viện cũ', 'hospital', CURRENT_TIMESTAMP)"
                    )
                )

            assert upgrade(database, "0004") == "0004"

            [column] = [
                c
                for c in inspect(database.engine).get_columns("facilities")
                if c["name"] == "report_language"
            ]
            assert column["nullable"] is True
            assert getattr(column["type"], "length", None) == 8
            with database.read() as session:
                rows = session.execute(
                    select(Facility.code, Facility.name, Facility.report_language).order_by(
                        Facility.code
                    )
                ).all()
            assert [tuple(row) for row in rows] == [
                ("BV-OLD", "Bệnh viện cũ", None),
                (DEFAULT_FACILITY_CODE, "This hospital", None),
            ]
            with database.write() as session:
                session.execute(
                    update(Facility).where(Facility.code == "BV-OLD").values(report_language="en")
                )
            with database.read() as session:
                assert (
                    session.scalar(
                        select(Facility.report_language).where(Facility.code == "BV-OLD")
                    )
                    == "en"
                )
        finally:
            database.dispose()


class TestAuthMigration:
    """Revision 0005 adds the API token and browser session tables; users stay."""

    def test_upgrade_from_0004_keeps_users_and_adds_the_tables(self, database_url: str) -> None:
        database = Database(database_url)
        try:
            assert upgrade(database, "0004") == "0004"
            assert "api_tokens" not in inspect(database.engine).get_table_names()
            with database.engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO users (username, display_name, role, disabled, created_at) "
                        "VALUES ('ris', '', 'integration', false, CURRENT_TIMESTAMP)"
                    )
                )

            assert upgrade(database, "0005") == "0005"

            tables = set(inspect(database.engine).get_table_names())
            assert {"api_tokens", "browser_sessions"} <= tables
            uniques = {
                tuple(u["column_names"])
                for u in inspect(database.engine).get_unique_constraints("api_tokens")
            }
            assert ("token_hash",) in uniques
            with database.read() as session:
                assert session.scalars(select(User.username)).all() == ["ris"]
        finally:
            database.dispose()


class TestQueryIndexMigration:
    """Revision 0006 indexes the columns QIDO-RS searches by."""

    INDEXES = (
        ("patient_identifiers", "ix_patient_identifiers_value", ["value"]),
        ("studies", "ix_studies_study_date", ["study_date"]),
        ("studies", "ix_studies_accession_number", ["accession_number"]),
        ("series", "ix_series_modality", ["modality"]),
    )

    def test_upgrade_from_0005_adds_the_indexes(self, database_url: str) -> None:
        database = Database(database_url)
        try:
            assert upgrade(database, "0005") == "0005"
            before = {
                name: {i["name"] for i in inspect(database.engine).get_indexes(name)}
                for name in ("patient_identifiers", "studies", "series")
            }
            for table, index, _ in self.INDEXES:
                assert index not in before[table]

            assert upgrade(database, "0006") == "0006"

            for table, index, columns in self.INDEXES:
                found = {i["name"]: i for i in inspect(database.engine).get_indexes(table)}
                assert found[index]["column_names"] == columns
                assert not found[index]["unique"]
        finally:
            database.dispose()

    def test_sqlite_searches_studies_by_accession_number_through_the_index(
        self, tmp_path: Path
    ) -> None:
        database = Database(sqlite_url(tmp_path / "soi.db"))
        statements: list[tuple[str, Any]] = []

        def capture(
            conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
        ) -> None:
            statements.append((statement, parameters))

        try:
            upgrade(database)
            event.listen(database.engine, "before_cursor_execute", capture)
            with database.read() as session:
                assert search_studies(session, StudyQuery(accession_number="ACC-1"), limit=10) == []
            event.remove(database.engine, "before_cursor_execute", capture)
            [(statement, parameters)] = [
                (s, p) for s, p in statements if "studies.accession_number" in s
            ]
            with database.engine.connect() as connection:
                plan = connection.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", parameters
                ).all()
            details = [row[-1] for row in plan]
            assert any("ix_studies_accession_number" in detail for detail in details), details
        finally:
            database.dispose()


class TestSeriesModalityIndexMigration:
    """Revision 0007 indexes series by study and modality together."""

    def test_upgrade_from_0006_adds_the_index(self, database_url: str) -> None:
        database = Database(database_url)
        try:
            assert upgrade(database, "0006") == "0006"
            names = {i["name"] for i in inspect(database.engine).get_indexes("series")}
            assert "ix_series_study_id_modality" not in names

            assert upgrade(database, "0007") == "0007"

            found = {i["name"]: i for i in inspect(database.engine).get_indexes("series")}
            assert found["ix_series_study_id_modality"]["column_names"] == ["study_id", "modality"]
            assert not found["ix_series_study_id_modality"]["unique"]
        finally:
            database.dispose()

    def test_sqlite_checks_modalities_in_study_from_the_index_alone(self, tmp_path: Path) -> None:
        database = Database(sqlite_url(tmp_path / "soi.db"))
        statements: list[tuple[str, Any]] = []

        def capture(
            conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
        ) -> None:
            statements.append((statement, parameters))

        try:
            upgrade(database)
            event.listen(database.engine, "before_cursor_execute", capture)
            with database.read() as session:
                query = StudyQuery(modalities_in_study=("CT",), study_date=("20190101", "20191231"))
                assert search_studies(session, query, limit=50) == []
            event.remove(database.engine, "before_cursor_execute", capture)
            [(statement, parameters)] = [(s, p) for s, p in statements if ".modality IN" in s]
            with database.engine.connect() as connection:
                plan = connection.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", parameters
                ).all()
            details = [row[-1] for row in plan]
            assert any(
                "COVERING INDEX ix_series_study_id_modality" in detail for detail in details
            ), details
        finally:
            database.dispose()


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
