"""Readers' agreement with each model, on SQLite and PostgreSQL: counts from the current
decisions only, per model version, label and facility, with the Wilson score interval."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from store import Database, agreement, get_facility, wilson_interval
from tests.support.agreement import add_cases, move_decisions

#: (model, version, label, facility, accepted, rejected, edited, added, decided)
ALL_ROWS = [
    ("cxr-densenet", "1.0.0", "cardiomegaly", "LOCAL", 1, 1, 0, 0, 2),
    ("cxr-densenet", "1.0.0", "nodule", "LOCAL", 0, 0, 0, 1, 1),
    ("cxr-densenet", "1.0.0", "pneumothorax", "BV-B", 1, 0, 0, 0, 1),
    ("cxr-densenet", "1.0.0", "pneumothorax", "LOCAL", 1, 0, 1, 0, 2),
    ("cxr-effnet", "2.0.0", "pneumothorax", "BV-B", 0, 1, 0, 0, 1),
]


def _counts(database: Database, **filters: object) -> list[tuple[object, ...]]:
    with database.read() as session:
        rows = agreement(session, **filters)  # type: ignore[arg-type]
    return [
        (
            r.model_name,
            r.model_version,
            r.label,
            r.facility_code,
            r.accepted,
            r.rejected,
            r.edited,
            r.added,
            r.decided,
        )
        for r in rows
    ]


class TestWilsonInterval:
    # Newcombe, Statistics in Medicine 17 (1998) 857-872, table II, method 3.
    @pytest.mark.parametrize(
        ("successes", "trials", "low", "high"),
        [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ],
    )
    def test_known_intervals(self, successes: int, trials: int, low: float, high: float) -> None:
        assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=5e-5)

    def test_all_successes_reaches_one_and_mirrors_none(self) -> None:
        low, high = wilson_interval(20, 20)
        assert high == 1.0
        assert low == pytest.approx(1 - wilson_interval(0, 20)[1])

    @pytest.mark.parametrize(
        ("successes", "trials", "z", "message"),
        [
            (0, 0, 1.96, "`trials` must be a positive number, 0 is given"),
            (5, 4, 1.96, "`successes` must be 0 to 4, 5 is given"),
            (-1, 4, 1.96, "`successes` must be 0 to 4, -1 is given"),
            (1, 4, 0.0, "`z` must be positive, 0.0 is given"),
        ],
    )
    def test_bad_arguments_are_named(
        self, successes: int, trials: int, z: float, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            wilson_interval(successes, trials, z=z)


class TestAgreement:
    def test_counts_current_decisions_per_model_label_and_facility(
        self, database: Database
    ) -> None:
        add_cases(database, local="LOCAL", other="BV-B")
        assert _counts(database) == ALL_ROWS

    def test_rates_and_intervals(self, database: Database) -> None:
        add_cases(database, local="LOCAL", other="BV-B")
        with database.read() as session:
            rows = {(r.model_name, r.label, r.facility_code): r for r in agreement(session)}
        cardiomegaly = rows["cxr-densenet", "cardiomegaly", "LOCAL"]
        assert cardiomegaly.rate == 0.5
        assert (cardiomegaly.rate_low, cardiomegaly.rate_high) == wilson_interval(1, 2)
        assert cardiomegaly.rate_low == pytest.approx(0.0945, abs=5e-5)
        assert cardiomegaly.rate_high == pytest.approx(0.9055, abs=5e-5)
        # An edit is a disagreement: the reader changed the AI's finding.
        assert rows["cxr-densenet", "pneumothorax", "LOCAL"].rate == 0.5
        assert rows["cxr-effnet", "pneumothorax", "BV-B"].rate == 0.0
        nodule = rows["cxr-densenet", "nodule", "LOCAL"]
        assert (nodule.rate, nodule.rate_low, nodule.rate_high) == (None, None, None)

    def test_superseded_decisions_are_not_counted(self, database: Database) -> None:
        cases = add_cases(database, local="LOCAL", other="BV-B")
        # The first save of study one accepted cardiomegaly; the newest rejects it.
        old = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
        move_decisions(database, cases.one, old, review_version=cases.first_save)
        move_decisions(database, cases.three, old)
        until = datetime(2026, 11, 2, tzinfo=UTC)
        assert _counts(database, until=until) == [ALL_ROWS[2], ALL_ROWS[4]]
        assert _counts(database, since=until) == [ALL_ROWS[0], ALL_ROWS[1], ALL_ROWS[3]]

    def test_filters_by_facility_and_model(self, database: Database) -> None:
        add_cases(database, local="LOCAL", other="BV-B")
        with database.read() as session:
            other = get_facility(session, "BV-B").id
        assert _counts(database, facility_ids=[other]) == [ALL_ROWS[2], ALL_ROWS[4]]
        assert _counts(database, model="cxr-effnet") == [ALL_ROWS[4]]
        assert _counts(database, model="cxr-effnet", facility_ids=[]) == []
        assert _counts(database, model="no-such-model") == []

    def test_nothing_decided_is_empty(self, database: Database) -> None:
        assert _counts(database) == []

    def test_naive_or_reversed_times_are_refused(self, database: Database) -> None:
        with database.read() as session:
            with pytest.raises(ValueError, match="`since` must be timezone-aware"):
                agreement(session, since=datetime(2026, 11, 1))
            with pytest.raises(ValueError, match="must be after `since`"):
                agreement(
                    session,
                    since=datetime(2026, 11, 2, tzinfo=UTC),
                    until=datetime(2026, 11, 1, tzinfo=UTC),
                )
