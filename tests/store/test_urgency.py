"""A study's urgency follows its current results, and the migration fills it in."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, insert, select

from store import (
    Database,
    NotFoundError,
    ResultState,
    Study,
    Urgency,
    refresh_study_urgency,
    upgrade,
)
from store.migrate import head_revision
from tests.support.worklist import T0, add_result, add_study


def _urgency(database: Database, study_id: int) -> tuple[int, float]:
    with database.read() as session:
        row = session.execute(
            select(Study.urgency, Study.urgency_score).where(Study.id == study_id)
        ).one()
    return int(row[0]), float(row[1])


class TestUrgencyOnResult:
    def test_a_new_study_has_no_ai_urgency(self, database: Database) -> None:
        assert _urgency(database, add_study(database, "4.1")) == (Urgency.NONE, 0.0)

    @pytest.mark.parametrize(
        ("findings", "expected"),
        [
            ([("pneumothorax", 0.7, True), ("effusion", 0.9, True)], (Urgency.CRITICAL, 0.9)),
            ([("pneumothorax", 0.3, False), ("effusion", 0.6, True)], (Urgency.POSITIVE, 0.6)),
            ([("effusion", 0.4, False)], (Urgency.NORMAL, 0.0)),
            ([], (Urgency.NORMAL, 0.0)),
        ],
    )
    def test_storing_a_result_sets_it(
        self,
        database: Database,
        findings: list[tuple[str, float, bool]],
        expected: tuple[int, float],
    ) -> None:
        study_id = add_study(database, "4.2")
        add_result(database, study_id, findings)
        urgency, score = _urgency(database, study_id)
        assert urgency == expected[0]
        assert score == pytest.approx(expected[1])

    def test_the_critical_labels_are_the_callers(self, database: Database) -> None:
        study_id = add_study(database, "4.3")
        add_result(database, study_id, [("effusion", 0.8, True)], critical_labels=["effusion"])
        assert _urgency(database, study_id)[0] == Urgency.CRITICAL

    def test_a_rerun_replaces_the_urgency_and_an_ungradable_one_clears_it(
        self, database: Database
    ) -> None:
        study_id = add_study(database, "4.4")
        add_result(database, study_id, [("pneumothorax", 0.9, True)])
        add_result(database, study_id, [("pneumothorax", 0.1, False)])
        assert _urgency(database, study_id) == (Urgency.NORMAL, 0.0)
        add_result(database, study_id, state=ResultState.UNGRADABLE)
        assert _urgency(database, study_id) == (Urgency.NONE, 0.0)

    def test_an_unknown_study_is_refused(self, database: Database) -> None:
        with database.write() as session, pytest.raises(NotFoundError, match="no study"):
            refresh_study_urgency(session, 999, critical_labels=())


class TestBackfillMigration:
    """Revision 0008 fills in the urgency of the studies stored before it."""

    def test_upgrade_from_0007_computes_urgency_from_current_results(
        self, database_url: str
    ) -> None:
        database = Database(database_url)
        try:
            assert upgrade(database, "0007") == "0007"
            meta = MetaData()
            meta.reflect(database.engine)
            t = meta.tables
            plans = {
                "5.1": [[("pneumothorax", 0.8, True), ("effusion", 0.9, True)]],
                "5.2": [[("effusion", 0.6, True)]],
                "5.3": [[("effusion", 0.2, False)]],
                "5.4": [],
                # An old critical result replaced by a normal rerun of the same job.
                "5.5": [[("pneumothorax", 0.9, True)], [("pneumothorax", 0.1, False)]],
            }
            with database.engine.begin() as connection:
                patient = connection.execute(
                    insert(t["patients"])
                    .values(name="", birth_date="", sex="", created_at=T0, updated_at=T0)
                    .returning(t["patients"].c.id)
                ).scalar_one()
                facility = connection.execute(select(t["facilities"].c.id)).scalars().first()
                for uid, results in plans.items():
                    study = connection.execute(
                        insert(t["studies"])
                        .values(
                            study_instance_uid=uid,
                            patient_id=patient,
                            facility_id=facility,
                            accession_number="",
                            study_date="",
                            study_time="",
                            study_description="",
                            modalities="CR",
                            state="stable",
                            state_reason="",
                            num_instances=1,
                            first_received_at=T0,
                            last_received_at=T0,
                        )
                        .returning(t["studies"].c.id)
                    ).scalar_one()
                    if not results:
                        continue
                    job = connection.execute(
                        insert(t["jobs"])
                        .values(
                            study_id=study,
                            pipeline="cxr",
                            state="done",
                            state_reason="",
                            instance_uids=[],
                            attempts=1,
                            failures=0,
                            created_at=T0,
                            updated_at=T0,
                        )
                        .returning(t["jobs"].c.id)
                    ).scalar_one()
                    for findings in results:
                        result = connection.execute(
                            insert(t["results"])
                            .values(
                                job_id=job,
                                study_id=study,
                                model_name="cxr",
                                model_version="1",
                                state="complete",
                                reason="",
                                status="preliminary",
                                details={},
                                created_at=T0,
                            )
                            .returning(t["results"].c.id)
                        ).scalar_one()
                        for label, p, positive in findings:
                            connection.execute(
                                insert(t["findings"]).values(
                                    result_id=result,
                                    label=label,
                                    code_scheme="",
                                    code_value="",
                                    code_meaning="",
                                    probability=p,
                                    positive=positive,
                                )
                            )

            assert upgrade(database) == head_revision()

            with database.read() as session:
                rows = session.execute(
                    select(
                        Study.study_instance_uid,
                        Study.urgency,
                        Study.urgency_score,
                        Study.review_state,
                        Study.review_version,
                    ).order_by(Study.study_instance_uid)
                ).all()
            got = {row[0]: (int(row[1]), round(row[2], 6), row[3].value, row[4]) for row in rows}
            assert got == {
                "5.1": (Urgency.CRITICAL, 0.9, "unread", 0),
                "5.2": (Urgency.POSITIVE, 0.6, "unread", 0),
                "5.3": (Urgency.NORMAL, 0.0, "unread", 0),
                "5.4": (Urgency.NONE, 0.0, "unread", 0),
                "5.5": (Urgency.NORMAL, 0.0, "unread", 0),
            }
        finally:
            database.dispose()
