"""Review drafts, signatures and signed reports, on SQLite and PostgreSQL: optimistic
locking on the review version, the current decisions, and signed rows that never change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, update

from store import (
    Database,
    DecisionRecord,
    Finding,
    Report,
    ReportStatus,
    ReviewState,
    SignedReportImmutableError,
    StaleReviewError,
    Study,
    add_user,
    current_decisions,
    report_document_path,
    save_review,
    sign_review,
    undecided_findings,
)
from tests.support.worklist import add_result, add_study

SIGNED_AT = datetime(2026, 12, 15, 9, 30, tzinfo=UTC)
SHA = "ab" * 32


@pytest.fixture
def study(database: Database) -> tuple[int, int, list[int]]:
    """A study with two AI findings, and a radiologist: (study id, reader id, finding ids)."""
    study_id = add_study(database, "8.1.1")
    add_result(database, study_id, [("pneumothorax", 0.9, True), ("cardiomegaly", 0.2, False)])
    with database.write() as session:
        reader = add_user(
            session,
            username="mai",
            role="radiologist",
            facility_code="LOCAL",
            password_hash="$argon2id$not-used-here",
        )
        reader_id = reader.id
    with database.read() as session:
        ids = list(session.scalars(select(Finding.id).order_by(Finding.id)))
    return study_id, reader_id, ids


def _decide_all(finding_ids: list[int]) -> list[DecisionRecord]:
    return [
        DecisionRecord(label="pneumothorax", decision="accepted", finding_id=finding_ids[0]),
        DecisionRecord(label="cardiomegaly", decision="rejected", finding_id=finding_ids[1]),
    ]


def _signed(database: Database, study: tuple[int, int, list[int]]) -> int:
    """Save and sign the study; the report's id."""
    study_id, reader, ids = study
    with database.write() as session:
        version = save_review(
            session,
            study_id=study_id,
            version=0,
            reader_user_id=reader,
            decisions=_decide_all(ids),
            impression="Tràn khí màng phổi.",
        )
        report = sign_review(
            session,
            study_id=study_id,
            version=version,
            signer_user_id=reader,
            signed_at=SIGNED_AT,
            document_sha256=SHA,
        )
        return report.id


class TestSaveReview:
    def test_each_save_is_a_new_version_and_its_decisions_are_current(
        self, database: Database, study: tuple[int, int, list[int]]
    ) -> None:
        study_id, reader, ids = study
        with database.write() as session:
            first = save_review(
                session,
                study_id=study_id,
                version=0,
                reader_user_id=reader,
                decisions=_decide_all(ids)[:1],
                impression="nháp",
            )
            second = save_review(
                session,
                study_id=study_id,
                version=first,
                reader_user_id=reader,
                decisions=_decide_all(ids),
                impression="bản hai",
            )
        assert (first, second) == (1, 2)
        with database.read() as session:
            current = current_decisions(session, study_id)
            stored = session.get(Study, study_id)
            assert stored is not None
            assert (stored.review_state, stored.review_impression) == (
                ReviewState.IN_REVIEW,
                "bản hai",
            )
            assert undecided_findings(session, study_id) == []
        assert [(d.label, d.review_version) for d in current] == [
            ("pneumothorax", 2),
            ("cardiomegaly", 2),
        ]

    def test_a_stale_version_saves_nothing(
        self, database: Database, study: tuple[int, int, list[int]]
    ) -> None:
        study_id, reader, ids = study
        with database.write() as session:
            save_review(
                session,
                study_id=study_id,
                version=0,
                reader_user_id=reader,
                decisions=[],
                impression="first",
            )
        with (
            pytest.raises(StaleReviewError, match="changed by another reader"),
            database.write() as session,
        ):
            save_review(
                session,
                study_id=study_id,
                version=0,
                reader_user_id=reader,
                decisions=_decide_all(ids),
                impression="second",
            )
        with database.read() as session:
            assert current_decisions(session, study_id) == []
            stored = session.get(Study, study_id)
            assert stored is not None
            assert (stored.review_version, stored.review_impression) == (1, "first")

    @pytest.mark.parametrize(
        ("decision", "message"),
        [
            (DecisionRecord(label="x", decision="accepted", finding_id=10_000), "not one of"),
            (DecisionRecord(label="x", decision="added", finding_id=None), None),
            (DecisionRecord(label="", decision="added"), "`label` must be 1 to 64"),
            (DecisionRecord(label="x", decision="maybe", finding_id=None), "maybe"),
        ],
    )
    def test_decisions_are_checked(
        self,
        database: Database,
        study: tuple[int, int, list[int]],
        decision: DecisionRecord,
        message: str | None,
    ) -> None:
        study_id, reader, _ = study

        def save() -> int:
            with database.write() as session:
                return save_review(
                    session,
                    study_id=study_id,
                    version=0,
                    reader_user_id=reader,
                    decisions=[decision],
                    impression="",
                )

        if message is None:
            assert save() == 1
        else:
            with pytest.raises(ValueError, match=message):
                save()
            with database.read() as session:
                stored = session.get(Study, study_id)
                assert stored is not None
                assert stored.review_version == 0

    def test_an_impression_over_the_limit_is_refused(
        self, database: Database, study: tuple[int, int, list[int]]
    ) -> None:
        study_id, reader, _ = study
        with database.write() as session, pytest.raises(ValueError, match="at most 10000"):
            save_review(
                session,
                study_id=study_id,
                version=0,
                reader_user_id=reader,
                decisions=[],
                impression="ệ" * 10_001,
            )


class TestSignReview:
    def test_signing_needs_every_decision(
        self, database: Database, study: tuple[int, int, list[int]]
    ) -> None:
        study_id, reader, ids = study
        with database.write() as session:
            version = save_review(
                session,
                study_id=study_id,
                version=0,
                reader_user_id=reader,
                decisions=_decide_all(ids)[:1],
                impression="",
            )
        with database.write() as session, pytest.raises(ValueError, match="cardiomegaly"):
            sign_review(
                session,
                study_id=study_id,
                version=version,
                signer_user_id=reader,
                signed_at=SIGNED_AT,
                document_sha256=SHA,
            )

    def test_a_signed_version_is_not_signed_twice(
        self, database: Database, study: tuple[int, int, list[int]]
    ) -> None:
        _signed(database, study)
        study_id, reader, _ = study
        with database.write() as session, pytest.raises(StaleReviewError, match="already signed"):
            sign_review(
                session,
                study_id=study_id,
                version=2,
                signer_user_id=reader,
                signed_at=SIGNED_AT,
                document_sha256=SHA,
            )

    def test_an_amendment_is_the_next_version_and_supersedes_the_first(
        self, database: Database, study: tuple[int, int, list[int]]
    ) -> None:
        first = _signed(database, study)
        study_id, reader, ids = study
        with database.write() as session:
            version = save_review(
                session,
                study_id=study_id,
                version=2,
                reader_user_id=reader,
                decisions=_decide_all(ids),
                impression="Sửa đổi.",
            )
            amended = sign_review(
                session,
                study_id=study_id,
                version=version,
                signer_user_id=reader,
                signed_at=SIGNED_AT,
                document_sha256="cd" * 32,
            )
            assert (amended.version, amended.status) == (2, ReportStatus.AMENDED)
            assert amended.supersedes_report_id == first
        with database.read() as session:
            stored = session.get(Study, study_id)
            assert stored is not None
            assert (stored.review_state, stored.review_version) == (ReviewState.AMENDED, 4)


class TestSignedReportsNeverChange:
    def test_an_orm_update_is_refused(
        self, database: Database, study: tuple[int, int, list[int]]
    ) -> None:
        report_id = _signed(database, study)

        def change() -> None:
            with database.write() as session:
                report = session.get(Report, report_id)
                assert report is not None
                report.impression = "đã sửa lén"

        with pytest.raises(SignedReportImmutableError, match="cannot be changed or deleted"):
            change()
        with database.read() as session:
            stored = session.get(Report, report_id)
            assert stored is not None
            assert stored.impression == "Tràn khí màng phổi."

    def test_an_orm_delete_is_refused(
        self, database: Database, study: tuple[int, int, list[int]]
    ) -> None:
        report_id = _signed(database, study)

        def remove() -> None:
            with database.write() as session:
                session.delete(session.get(Report, report_id))

        with pytest.raises(SignedReportImmutableError, match="sign an amended version"):
            remove()
        with database.read() as session:
            assert session.get(Report, report_id) is not None

    @pytest.mark.parametrize(
        "statement",
        [update(Report).values(impression="bulk"), delete(Report)],
        ids=["update", "delete"],
    )
    def test_a_bulk_statement_is_refused(
        self, database: Database, study: tuple[int, int, list[int]], statement: object
    ) -> None:
        _signed(database, study)
        with pytest.raises(SignedReportImmutableError), database.write() as session:
            session.execute(statement)  # type: ignore[call-overload]
        with database.read() as session:
            reports = list(session.scalars(select(Report)))
        assert [r.impression for r in reports] == ["Tràn khí màng phổi."]


class TestReportDocumentPath:
    def test_the_path_names_the_study_version_and_hash(self) -> None:
        assert report_document_path("1.2.3", 2, SHA) == f"1.2.3/v2-{SHA[:16]}.pdf"

    @pytest.mark.parametrize(
        ("version", "digest", "message"),
        [(0, SHA, "`version` must be a positive"), (1, "xyz", "`document_sha256` must be")],
    )
    def test_bad_arguments_are_refused(self, version: int, digest: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            report_document_path("1.2.3", version, digest)
