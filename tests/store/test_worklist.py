"""The worklist: order, filters, pages and scope, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from store import (
    Database,
    ResultState,
    ReviewState,
    Urgency,
    WorklistFilter,
    add_facility,
    add_user,
    get_facility,
    worklist_page,
)
from tests.support.worklist import T0, add_result, add_study, set_review

PNEUMOTHORAX, CARDIOMEGALY, EFFUSION = "pneumothorax", "cardiomegaly", "effusion"


def _uids(database: Database, **kwargs: object) -> list[str]:
    with database.read() as session:
        page = worklist_page(session, limit=kwargs.pop("limit", 50), **kwargs)  # type: ignore[arg-type]
    return [row.study_instance_uid for row in page.rows]


@pytest.fixture
def facilities(database: Database) -> dict[str, int]:
    """BV-A and BV-B beside the default facility."""
    with database.write() as session:
        add_facility(session, code="BV-A", name="Bệnh viện A")
        add_facility(session, code="BV-B", name="Bệnh viện B")
    with database.read() as session:
        return {code: get_facility(session, code).id for code in ("LOCAL", "BV-A", "BV-B")}


class TestOrder:
    def test_critical_positive_normal_none_then_signed_oldest_first(
        self, database: Database, facilities: dict[str, int]
    ) -> None:
        # Received in the reverse of the expected order, so arrival order alone fails.
        plan = [
            ("1.9.1", [(EFFUSION, 0.9, True)], ReviewState.SIGNED),
            ("1.9.2", [], None),
            ("1.9.3", None, None),
            ("1.9.4", [(CARDIOMEGALY, 0.2, False)], None),
            ("1.9.5", [(CARDIOMEGALY, 0.6, True)], None),
            ("1.9.6", [(CARDIOMEGALY, 0.95, True)], ReviewState.IN_REVIEW),
            ("1.9.7", [(PNEUMOTHORAX, 0.55, True), (EFFUSION, 0.7, True)], None),
            ("1.9.8", [(PNEUMOTHORAX, 0.8, True)], None),
        ]
        for minute, (uid, findings, review) in enumerate(plan):
            study_id = add_study(database, uid, received_minute=minute)
            if findings is not None:
                add_result(database, study_id, findings)
            if review is not None:
                set_review(database, study_id, review)
        # Same urgency and score as 1.9.5 but received earlier: before it.
        early = add_study(database, "1.9.0", received_minute=-5)
        add_result(database, early, [(CARDIOMEGALY, 0.6, True)])

        with database.read() as session:
            page = worklist_page(session, facility_ids=None, limit=50, now=T0 + timedelta(hours=1))
        assert [row.study_instance_uid for row in page.rows] == [
            "1.9.8",  # critical 0.8
            "1.9.7",  # critical, highest positive 0.7
            "1.9.6",  # positive 0.95, in review (open)
            "1.9.0",  # positive 0.6, waiting longer
            "1.9.5",  # positive 0.6
            "1.9.2",  # normal (no findings), received before 1.9.4
            "1.9.4",  # normal (a negative finding)
            "1.9.3",  # no result
            "1.9.1",  # signed: last
        ]
        assert page.total == 9
        first = page.rows[0]
        assert first.urgency is Urgency.CRITICAL
        assert first.urgency_score == pytest.approx(0.8)
        assert first.waiting_minutes == 60 - 7
        assert first.ai_preliminary is True
        assert first.model_name == "cxr-densenet"
        assert first.findings[0].label == PNEUMOTHORAX
        assert first.patient_identifier == ("national_id", "01.9.8")
        assert page.rows[7].findings == ()
        assert page.rows[7].ai_preliminary is False
        assert page.rows[7].urgency is Urgency.NONE

    def test_quality_gate_comes_from_the_newest_result(self, database: Database) -> None:
        failing = add_study(database, "1.8.1")
        add_result(database, failing, state=ResultState.UNGRADABLE)
        passing = add_study(database, "1.8.2", received_minute=1)
        add_result(
            database,
            passing,
            [(CARDIOMEGALY, 0.1, False)],
            details={"instances": [{"sop_instance_uid": "x", "gates": [{"passed": True}]}]},
        )
        with database.read() as session:
            rows = {
                r.study_instance_uid: r
                for r in worklist_page(session, facility_ids=None, limit=10).rows
            }
        assert rows["1.8.1"].quality_gate == "failed"
        assert rows["1.8.1"].urgency is Urgency.NONE
        assert rows["1.8.2"].quality_gate == "passed"


class TestFiltersAndScope:
    @pytest.fixture
    def studies(self, database: Database, facilities: dict[str, int]) -> dict[str, int]:
        with database.write() as session:
            reader = add_user(
                session,
                username="mai",
                role="radiologist",
                facility_code="BV-A",
                password_hash="$argon2id$unused",
            )
            session.flush()
            reader_id = reader.id
        ids = {
            "a-cr": add_study(database, "2.1.1", facility_code="BV-A", study_date="20261110"),
            "a-dx": add_study(
                database, "2.1.2", facility_code="BV-A", modality="DX", study_date="20261120"
            ),
            "b-cr": add_study(database, "2.2.1", facility_code="BV-B", study_date="20261130"),
        }
        set_review(database, ids["a-dx"], ReviewState.IN_REVIEW, assigned_to_user_id=reader_id)
        set_review(database, ids["b-cr"], ReviewState.SIGNED)
        ids["reader"] = reader_id
        return ids

    def test_scope_limits_to_the_facilities_given(
        self, database: Database, facilities: dict[str, int], studies: dict[str, int]
    ) -> None:
        assert sorted(_uids(database, facility_ids={facilities["BV-A"]})) == ["2.1.1", "2.1.2"]
        assert _uids(database, facility_ids=set()) == []
        assert sorted(_uids(database, facility_ids=None)) == ["2.1.1", "2.1.2", "2.2.1"]

    @pytest.mark.parametrize(
        ("make_filter", "expected"),
        [
            (lambda ids, fac: WorklistFilter(facility_id=fac["BV-B"]), ["2.2.1"]),
            (lambda ids, fac: WorklistFilter(modality="DX"), ["2.1.2"]),
            (
                lambda ids, fac: WorklistFilter(review_states=(ReviewState.SIGNED,)),
                ["2.2.1"],
            ),
            (
                lambda ids, fac: WorklistFilter(
                    review_states=(ReviewState.UNREAD, ReviewState.IN_REVIEW)
                ),
                ["2.1.1", "2.1.2"],
            ),
            (lambda ids, fac: WorklistFilter(study_date=("20261115", "")), ["2.1.2", "2.2.1"]),
            (lambda ids, fac: WorklistFilter(study_date=("", "20261120")), ["2.1.1", "2.1.2"]),
            (lambda ids, fac: WorklistFilter(assigned_to_user_id=ids["reader"]), ["2.1.2"]),
        ],
    )
    def test_each_filter(
        self,
        database: Database,
        facilities: dict[str, int],
        studies: dict[str, int],
        make_filter: object,
        expected: list[str],
    ) -> None:
        filters = make_filter(studies, facilities)  # type: ignore[operator]
        with database.read() as session:
            page = worklist_page(session, facility_ids=None, filters=filters, limit=50)
        assert sorted(row.study_instance_uid for row in page.rows) == expected
        assert page.total == len(expected)

    def test_the_assigned_reader_is_named(
        self, database: Database, facilities: dict[str, int], studies: dict[str, int]
    ) -> None:
        with database.read() as session:
            page = worklist_page(
                session, facility_ids=None, filters=WorklistFilter(modality="DX"), limit=5
            )
        assert page.rows[0].assigned_to == "mai"
        assert page.rows[0].review_state is ReviewState.IN_REVIEW

    @pytest.mark.parametrize(
        ("dates", "message"),
        [(("2026-11-01", ""), "YYYYMMDD"), (("20261201", "20261101"), "after the high bound")],
    )
    def test_bad_dates_are_refused(self, dates: tuple[str, str], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            WorklistFilter(study_date=dates)


class TestPages:
    def test_pages_cross_from_open_to_signed_without_overlap(self, database: Database) -> None:
        expected = []
        for i in range(7):
            study_id = add_study(database, f"3.1.{i}", received_minute=i)
            if i < 3:
                set_review(database, study_id, ReviewState.SIGNED)
        expected = [f"3.1.{i}" for i in (3, 4, 5, 6, 0, 1, 2)]
        seen: list[str] = []
        for offset in range(0, 8, 3):
            with database.read() as session:
                page = worklist_page(session, facility_ids=None, limit=3, offset=offset)
            assert page.total == 7
            seen += [row.study_instance_uid for row in page.rows]
        assert seen == expected
        assert _uids(database, facility_ids=None, limit=2, offset=4) == ["3.1.0", "3.1.1"]
        assert _uids(database, facility_ids=None, limit=5, offset=100) == []

    @pytest.mark.parametrize(("limit", "offset"), [(0, 0), (10, -1)])
    def test_bad_pages_are_refused(self, database: Database, limit: int, offset: int) -> None:
        with database.read() as session, pytest.raises(ValueError, match="must be"):
            worklist_page(session, facility_ids=None, limit=limit, offset=offset)
